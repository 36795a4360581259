"""The tamper battery: every attack x every trail mode, against one expected matrix (issue 12).

Each attack is a small function ``attack(trail) -> None`` applied to a fresh copy of a real trail
(three days of one stream written by the emitter, sealed; day 1 and 2 converted, then retention of
day 1, a legal hold on day 2 accepted into the cold root; day 3 sealed and not converted). The
attacker can write the disk but holds no key. ``verify_trail`` (hot and cold, one report) is then
run with the trail's keys, and its outcome compared with ``tamper_battery_expected.json``:

* a list of ``FailureKind`` values: the attack must be reported with at least one of them;
* ``"not protected"``: the attack must PASS verification. These are the documented gaps (an
  unkeyed trail cannot stop someone who recomputes every hash; the newest file has no anchor
  outside itself, issue 13). Asserting that they pass means closing a gap is noticed too;
* ``"not applicable"``: the mode has nothing to attack (no signature to strip in an unsigned
  trail); the attack function says so by raising ``NotApplicable``.

Clean trails (half converted after retention, fully converted, recovered after a crash with a
torn line) must verify in every mode: no false alarms. The helpers come from the attack suites
(``test_cold_attacks``, ``test_tamper``, ``test_retention_attacks``); this module only composes
them. At the end of the session ``conftest.pytest_terminal_summary`` prints ``RESULTS`` as a table.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_cold_attacks import (
    HOUR,
    JAN_5,
    MODES,
    Trail,
    cut_last_rows,
    edit_column,
    entries,
    make_trail,
    write_raw,
)
from test_cold_attacks import rewrite as rewrite_parquet
from test_retention_attacks import delete_hot_file, forged_retention_line, reseal_without_key
from test_tamper import checksum_of, edit_field, forged_line, read_lines, rechain_from, rewrite, with_checksum

from audit_core import AuditEventEmitter
from audit_core._layout import checkpoint_path, seal_path
from audit_core.cold.manifest import HOLDS_FILE, JOURNAL_DIR, MANIFEST_DIR, ROOT_FILE, read_manifest, write_entry
from audit_core.cold.retention import apply_retention
from audit_core.trust import documents
from audit_core.trust.report import FailureKind
from audit_core.trust.seals import SEAL_CHECKSUM, read_seal, seal_file
from audit_core.verification import TrailReport, verify_trail

EXPECTED_FILE = Path(__file__).with_name("tamper_battery_expected.json")
NOT_PROTECTED = "not protected"
NOT_APPLICABLE = "not applicable"
HELD_DAY = "2026-01-06"

#: (attack, mode, expected, outcome) for every case run; printed by conftest.pytest_terminal_summary.
#: ``outcome`` is the sorted failure kinds reported (empty: passed verification) or NOT_APPLICABLE.
RESULTS: list[tuple[str, str, object, object]] = []


class NotApplicable(Exception):
    """The attacked thing does not exist in this mode."""


# --- the trails ------------------------------------------------------------------------------------


def build_template(base: Path, mode: str) -> Trail:
    """Three sealed days; days 1-2 converted; retention removes day 1; a hold on day 2 is accepted."""
    trail = make_trail(base, mode)
    first, second, _ = trail.hot_files()
    converter = trail.converter()
    assert converter.convert_file(first).converted and converter.convert_file(second).converted
    plan = apply_retention(trail.hot, trail.cold, days=1, now=dt.datetime(2026, 1, 7, 12, tzinfo=dt.UTC),
                           config=trail.config, public_key=trail.public_key)
    assert plan.partitions == ["year=2026/month=01/day=05"] and [h.file for h in plan.hot_files] == [first.name]
    (trail.cold / HOLDS_FILE).write_text(json.dumps([{"start": HELD_DAY, "end": HELD_DAY, "reason": "inquiry 7"}]))
    trail.converter().update_root(accept_legal_holds=True)
    return trail


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Trail]:
    return {mode: build_template(tmp_path_factory.mktemp(f"template-{mode}"), mode) for mode in MODES}


def clone(template: Trail, dest: Path) -> Trail:
    """A fresh copy of ``template`` at ``dest`` (keys shared), for one attack to damage."""
    shutil.copytree(template.base, dest, symlinks=True)
    config = template.config.model_copy(update={"base_path": dest})
    return Trail(dest, template.mode, config, template.hmac_key, template.signing_key, template.public_key)


def verify_all(trail: Trail) -> TrailReport:
    return verify_trail(trail.base, hmac_key=trail.hmac_key, public_key=trail.public_key)


def scratch(trail: Trail) -> Path:
    """A working directory outside the trail (``verify_trail`` would read anything under its base)."""
    path = trail.base.parent / f"{trail.base.name}-scratch"
    path.mkdir(exist_ok=True)
    return path


def writable(path: Path) -> Path:
    path.chmod(0o644)
    return path


def main_files(trail: Trail) -> list[Path]:
    """The main stream's remaining hot files: day 2 (converted) and day 3 (newest, not converted)."""
    files = trail.hot_files()
    assert [f.name.split(".")[3] for f in files] == ["2026-01-06", "2026-01-07"], files
    return files


def newest(trail: Trail) -> Path:
    return main_files(trail)[-1]


def edit_lines(path: Path, change: Callable[[list[bytes]], list[bytes]]) -> None:
    rewrite(path, change(read_lines(path)))


# --- hot attacks (on the newest sealed file unless named otherwise) ---------------------------------


def hot_flip_byte(trail: Trail) -> None:
    def flip(lines: list[bytes]) -> list[bytes]:
        line = lines[3]
        at = len(line) // 2
        lines[3] = line[:at] + bytes([line[at] ^ 0x01]) + line[at + 1 :]
        return lines

    edit_lines(newest(trail), flip)


def hot_edit_field(trail: Trail) -> None:
    edit_lines(newest(trail), lambda lines: [*lines[:3], edit_field(lines[3], "source"), *lines[4:]])


def hot_edit_field_new_checksum(trail: Trail) -> None:
    """The edited record gets a fresh plain SHA-256 checksum (all that is possible without the key)."""
    edit_lines(newest(trail), lambda lines: [*lines[:3], with_checksum(edit_field(lines[3], "source")), *lines[4:]])


def hot_rechain_sha256(trail: Trail) -> None:
    """Edit a record, recompute its checksum and every later one's prev_hash and checksum (plain SHA-256)."""
    edit_lines(newest(trail), lambda lines: rechain_from([*lines[:3], edit_field(lines[3], "source"), *lines[4:]], 3))


def hot_rechain_and_reseal_sha256(trail: Trail) -> None:
    """The full recompute: rechain from an edited record, then write a new seal (plain SHA-256, unsigned)."""
    path = newest(trail)
    hot_rechain_sha256(trail)
    original = read_seal(path)
    assert original is not None
    writable(seal_path(path))
    seal_file(path, next_file=original["next_file"], sealed_at_ns=original["sealed_at_ns"])


def hot_delete_line(trail: Trail) -> None:
    edit_lines(newest(trail), lambda lines: lines[:3] + lines[4:])


def hot_duplicate_line(trail: Trail) -> None:
    edit_lines(newest(trail), lambda lines: [*lines[:4], lines[3], *lines[4:]])


def hot_swap_lines(trail: Trail) -> None:
    edit_lines(newest(trail), lambda lines: [*lines[:3], lines[4], lines[3], *lines[5:]])


def hot_insert_line(trail: Trail) -> None:
    """A brand-new record with the right sequence, prev_hash and a plain SHA-256 checksum, inserted."""

    def insert(lines: list[bytes]) -> list[bytes]:
        sequence = json.loads(lines[3])["sequence"]
        return [*lines[:3], forged_line(sequence, checksum_of(lines[2])), *lines[3:]]

    edit_lines(newest(trail), insert)


def hot_truncate_mid_line(trail: Trail) -> None:
    edit_lines(newest(trail), lambda lines: [*lines[:-1], lines[-1][: len(lines[-1]) // 2]])


def hot_delete_middle_file(trail: Trail) -> None:
    """Delete day 2 (converted, between the retired day 1 and day 3), with its seal and checkpoint."""
    delete_hot_file(main_files(trail)[0])


def hot_delete_newest_seal(trail: Trail) -> None:
    path = newest(trail)
    for sidecar in (seal_path(path), checkpoint_path(path)):
        if sidecar.exists():
            writable(sidecar).unlink()


def hot_delete_newest_seal_and_truncate(trail: Trail) -> None:
    """Delete the newest file's seal (and checkpoint), then cut whole records off its end."""
    hot_delete_newest_seal(trail)
    edit_lines(newest(trail), lambda lines: lines[:-5])


def hot_edit_seal_field(trail: Trail) -> None:
    """Change the seal's record count; its seal_checksum is left as it was."""
    path = seal_path(newest(trail))
    seal = json.loads(path.read_text())
    seal["records"] += 1
    write_raw(writable(path), seal)


def hot_edit_seal_field_new_checksum(trail: Trail) -> None:
    """Change the seal's ``sealed_at_ns`` and recompute its seal_checksum as plain SHA-256 (signature kept)."""
    path = seal_path(newest(trail))
    seal = json.loads(path.read_text())
    seal["sealed_at_ns"] += 1
    signature = seal.pop("signature", None)
    seal = documents.authenticate(seal, SEAL_CHECKSUM, None)
    if signature is not None:
        seal["signature"] = signature
    write_raw(writable(path), seal)


def hot_strip_seal_signature(trail: Trail) -> None:
    path = seal_path(newest(trail))
    seal = json.loads(path.read_text())
    if "signature" not in seal:
        raise NotApplicable("seals are not signed in this mode")
    del seal["signature"]
    write_raw(writable(path), seal)


def hot_edit_checkpoint(trail: Trail) -> None:
    """Change the tree size in the newest file's C2SP checkpoint (signature lines kept)."""
    path = checkpoint_path(newest(trail))
    if not path.exists():
        raise NotApplicable("checkpoints are written only next to signed seals")
    origin, size, rest = path.read_text().split("\n", 2)
    writable(path).write_text(f"{origin}\n{int(size) + 1}\n{rest}")


def hot_stray_notes_forged_retention(trail: Trail) -> None:
    """A stray hot/notes.jsonl with a forged (valid plain SHA-256) sys.retention record covering day 2, deleted."""
    middle = main_files(trail)[0]
    (trail.hot / "notes.jsonl").write_bytes(forged_retention_line(None, middle, scratch(trail)))
    delete_hot_file(middle)


def hot_delete_retention_stream(trail: Trail) -> None:
    """Delete the retention stream's file, whose sys.retention record explains why day 1 is gone."""
    (record,) = trail.hot.glob("audit.T1.retention.*.jsonl")
    delete_hot_file(record)


def hot_append_forged_records(trail: Trail) -> None:
    """Two records appended to the newest sealed file, chained, with plain SHA-256 checksums."""
    path = newest(trail)
    record = json.loads(read_lines(path)[-1])
    with writable(path).open("ab") as handle:
        for _ in range(2):
            record = {**record, "sequence": record["sequence"] + 1, "prev_hash": record["checksum"]}
            del record["checksum"]
            body = json.dumps(record, separators=(",", ":")).encode()
            record["checksum"] = hashlib.sha256(body).hexdigest()
            handle.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")


def hot_retention_text_in_payload(trail: Trail) -> None:
    """An honest writer records a payload an attacker chose (sys.retention text naming day 2); day 2 deleted."""
    middle = main_files(trail)[0]
    seal = read_seal(middle)
    assert seal is not None
    injected = {"event_type": "sys.retention", "plan_id": "x", "hot_files": [{
        "file": middle.name, "stream": "T1.main", "last_sequence": seal["last_sequence"],
        "last_hash": seal["last_hash"],
    }]}
    with AuditEventEmitter(trail.config, clock=lambda: JAN_5 + 4 * 24 * HOUR) as emitter:
        emitter.emit_system("sys.order_note", "strategy", injected)
    delete_hot_file(middle)


# --- cold attacks (on day 2's Parquet file and manifest entry) --------------------------------------


def parquet_file(trail: Trail) -> Path:
    (file,) = trail.parquet()
    assert f"day={HELD_DAY[-2:]}" in file.as_posix(), file
    return file


def cold_column_new_value(trail: Trail) -> None:
    edit_column(parquet_file(trail), "new_value", lambda value: "9.9")


def cold_column_price(trail: Trail) -> None:
    edit_column(parquet_file(trail), "price", lambda value: value + decimal.Decimal("0.01"))


def cold_column_ts_event(trail: Trail) -> None:
    edit_column(parquet_file(trail), "ts_event", lambda value: value + 3 * HOUR)


def cold_footer_statistics(trail: Trail) -> None:
    """Same rows, another footer: no statistics, other row groups."""
    file = parquet_file(trail)
    table = pq.read_table(file)
    rewrite_parquet(file, table, write_statistics=False, row_group_size=7)
    assert pq.read_table(file).equals(table)


def cold_delete_parquet(trail: Trail) -> None:
    writable(parquet_file(trail)).unlink()


def cold_add_unlisted_parquet(trail: Trail) -> None:
    file = parquet_file(trail)
    shutil.copyfile(file, file.with_name("extra-" + file.name))


def cold_cut_rows_and_manifest(trail: Trail) -> None:
    """Cut the last 5 rows and make seal copy, manifest entry and root agree (plain SHA-256, no key)."""
    cut_last_rows(trail, 5, attacker_key=None)


def day2_entry(trail: Trail) -> Path:
    (path,) = [p for p in entries(trail.cold) if read_manifest(p)["outputs"]]
    return path


def cold_delete_retired_entry(trail: Trail) -> None:
    """Delete day 1's manifest entry (its output retired by retention, its hot file gone)."""
    (path,) = [p for p in entries(trail.cold) if read_manifest(p).get("retired")]
    path.unlink()


def cold_forge_manifest_entry(trail: Trail) -> None:
    """Claim the newest (unconverted) hot file is converted: its own seal, no outputs, plain SHA-256."""
    target = newest(trail)
    entry = read_manifest(day2_entry(trail))
    forged = {**entry, "source": target.name, "seal": read_seal(target), "outputs": []}
    forged.pop("signature", None)
    write_entry(trail.cold, forged, None, None)


def cold_strip_manifest_signature(trail: Trail) -> None:
    path = day2_entry(trail)
    entry = json.loads(path.read_text())
    if "signature" not in entry:
        raise NotApplicable("manifest entries are not signed in this mode")
    del entry["signature"]
    entry["seal"].pop("signature", None)
    write_raw(writable(path), entry)


def cold_delete_manifest_dir(trail: Trail) -> None:
    shutil.rmtree(trail.cold / MANIFEST_DIR)


def cold_delete_root(trail: Trail) -> None:
    writable(trail.cold / ROOT_FILE).unlink()


def cold_edit_root(trail: Trail) -> None:
    """Delete day 2's entry and Parquet and drop the entry from the root, re-authenticated as plain SHA-256."""
    path = day2_entry(trail)
    writable(parquet_file(trail)).unlink()
    path.unlink()
    root_file = trail.cold / ROOT_FILE
    root = json.loads(root_file.read_text())
    root["manifests"] = [m for m in root["manifests"] if m["path"] != f"{MANIFEST_DIR}/{path.name}"]
    root.pop("signature", None)
    write_raw(writable(root_file), documents.authenticate(root, "root_checksum", None))


def cold_delete_holds(trail: Trail) -> None:
    writable(trail.cold / HOLDS_FILE).unlink()


def cold_edit_holds(trail: Trail) -> None:
    writable(trail.cold / HOLDS_FILE).write_text("[]")


def cold_edit_journal(trail: Trail) -> None:
    """Add day 2 to the finished retention journal, checksum recomputed as plain SHA-256."""
    (journal,) = (trail.cold / JOURNAL_DIR).glob("*.json")
    writable(journal)
    reseal_without_key(journal, lambda j: j["partitions"].append(f"year=2026/month=01/day={HELD_DAY[-2:]}"))


def cold_delete_journal(trail: Trail) -> None:
    shutil.rmtree(trail.cold / JOURNAL_DIR)


ATTACKS: dict[str, Callable[[Trail], None]] = {
    name: function for name, function in globals().items() if name.startswith(("hot_", "cold_")) and callable(function)
}


# --- the battery -----------------------------------------------------------------------------------


def load_expected() -> dict[str, dict[str, object]]:
    return json.loads(EXPECTED_FILE.read_text())


def test_the_expected_matrix_covers_every_attack_and_mode():
    expected = load_expected()
    assert sorted(expected) == sorted(ATTACKS)
    for attack, row in expected.items():
        assert set(row) - {"note"} == set(MODES), attack
        for mode in MODES:
            cell = row[mode]
            assert cell in (NOT_PROTECTED, NOT_APPLICABLE) or (
                isinstance(cell, list) and cell and set(cell) <= {k.value for k in FailureKind}), (attack, mode, cell)
            if mode != "unkeyed" and cell == NOT_PROTECTED:
                assert "issue 13" in row.get("note", ""), f"{attack}: a keyed gap must cite its issue"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_attack(attack, mode, templates, tmp_path):
    expected = load_expected()[attack][mode]
    trail = clone(templates[mode], tmp_path / "trail")
    try:
        ATTACKS[attack](trail)
    except NotApplicable:
        RESULTS.append((attack, mode, expected, NOT_APPLICABLE))
        assert expected == NOT_APPLICABLE
        return
    report = verify_all(trail)
    kinds = sorted({failure.kind.value for failure in report.failures})
    RESULTS.append((attack, mode, expected, kinds))
    if expected == NOT_PROTECTED:
        assert report.ok, f"a documented gap now detected (update the matrix): {kinds}\n{report.to_text()}"
    else:
        assert isinstance(expected, list)
        assert set(kinds) & set(expected), f"expected one of {expected}, got {kinds or 'OK'}\n{report.to_text()}"


# --- no false alarms -------------------------------------------------------------------------------


def clean_as_built(trail: Trail, crash: Callable[[object], None]) -> None:
    """Half converted, after retention and a legal hold: the template itself."""


def clean_fully_converted(trail: Trail, crash: Callable[[object], None]) -> None:
    trail.convert()


def clean_recovered_torn_line(trail: Trail, crash: Callable[[object], None]) -> None:
    """A process dies after a torn write; the next one recovers, writes on and seals; then all is converted."""
    later = JAN_5 + 3 * 24 * HOUR
    emitter = AuditEventEmitter(trail.config, clock=lambda: later + 5)
    emitter.emit_param_change("c", "k", 1, 2)
    emitter.flush()
    crash(emitter)
    (live,) = [p for p in trail.hot_files() if read_seal(p) is None]
    with live.open("ab") as handle:
        handle.write(b'{"ts_event":1767830400000000000,"event_type":"param.state_chan')
    with AuditEventEmitter(trail.config, clock=lambda: later + 9) as emitter:
        emitter.emit_param_change("c", "k", 2, 3)
    trail.convert()
    event_types = {t for f in trail.parquet() for t in pq.read_table(f).column("event_type").to_pylist()}
    assert {"sys.torn_line", "sys.recovery"} <= event_types


CLEAN = {name: function for name, function in globals().items() if name.startswith("clean_")}


def damage(trail: Trail, case: str, crash: Callable[[object], None]) -> bool:
    """Apply the battery's attack or clean state ``case`` to ``trail``; False when it does not apply in this mode."""
    try:
        if case in CLEAN:
            CLEAN[case](trail, crash)
        else:
            ATTACKS[case](trail)
    except NotApplicable:
        return False
    return True


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("state", sorted(CLEAN))
def test_clean_trail_verifies(state, mode, templates, tmp_path, crash):
    trail = clone(templates[mode], tmp_path / "trail")
    CLEAN[state](trail, crash)
    report = verify_all(trail)
    kinds = sorted({failure.kind.value for failure in report.failures})
    RESULTS.append((state, mode, "clean", kinds))
    assert report.ok, report.to_text()
    assert report.sealed_files >= 2 and report.records > 0

