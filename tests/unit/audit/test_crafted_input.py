"""Crafted input never crashes a reader: every crafted file, every reader gives a named failure.

A real trail is written through ``AuditEventEmitter`` and ``ParquetConverter`` (four days of one
stream: day 1 sealed and converted, days 2 and 3 sealed, day 4 the live file), then one file is
damaged the way an attacker with write access to the disk (but not the keys) would. Each reader
must name the damaged file and say what is wrong with it: ``verify`` and ``verify_cold`` as a
failure of the expected kind, ``convert_all`` as a result of that file (and still convert every good
one), the CLI with exit 1 and no traceback, ``tail``/``stats``/``open_trail`` by reporting and
skipping. The expected outcome of every (crafted input, reader) pair is in ``CRAFTED``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import pickle
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from audit_core import AuditConfig, AuditEventEmitter, FailureKind, VerificationFailure, tail, verify
from audit_core.cli import main
from audit_core.cold.cold_verify import verify_cold
from audit_core.cold.converter import UNREADABLE, ParquetConverter, read_hot_file
from audit_core.cold.manifest import HOLDS_FILE, MANIFEST_DIR, read_manifest
from audit_core.cold.retention import load_holds
from audit_core.errors import AuditError, AuditFormatError
from audit_core.trust.checkpoint import parse_checkpoint
from audit_core.trust.record import compute_checksum, split_record
from audit_core.trust.seals import read_seal, seal_file
from audit_core.trust.signing import generate_keypair, load_public_key

JAN_1 = int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()) * 10**9
HOUR = 3600 * 10**9
PER_DAY = 24
RECORDS = 4 * PER_DAY
KEY = "crafted-input-key"


# --- the trails -------------------------------------------------------------------------------


def hot_file(base: Path, day: int) -> Path:
    return base / "hot" / f"audit.TRADER-001.main.2026-01-0{day}.0000.jsonl"


def write_trail(base: Path, mode: str) -> None:
    """Four days of one stream: days 1-3 sealed, day 4 live (as after a crash: no seal); day 1 converted."""
    base.mkdir()
    extra: dict[str, object] = {}
    if mode == "keyed":
        extra["hmac_key"] = KEY
    if mode == "signed":
        generate_keypair(base / "signing.key", base / "signing.pub")
        extra["signing_key_path"] = base / "signing.key"
    config = AuditConfig(base_path=base, sync_writes=False, **extra)
    now = [JAN_1]
    with AuditEventEmitter(config, clock=lambda: now[0]) as emitter:
        for i in range(RECORDS):
            now[0] = JAN_1 + i * HOUR + 1
            emitter.emit_trade("trade.fill", "obs", "EURUSD.SIM", order_id=f"O-{i}", side="BUY", size="1",
                               price="1.1")
    live = hot_file(base, 4)
    for sidecar in (".seal", ".checkpoint"):
        live.with_name(live.name + sidecar).unlink(missing_ok=True)
    live.chmod(0o640)
    result = converter(base, mode).convert_file(hot_file(base, 1))
    assert result.converted, result


def keys(base: Path, mode: str) -> dict[str, object]:
    """The library keyword arguments that verify a trail of ``mode``."""
    if mode == "keyed":
        return {"hmac_key": KEY.encode()}
    if mode == "signed":
        return {"public_key": load_public_key(base / "signing.pub")}
    return {}


def cli_keys(base: Path, mode: str) -> list[str]:
    if mode == "keyed":
        return ["--hmac-key-env", "LL_CRAFTED_KEY"]
    if mode == "signed":
        return ["--public-key", str(base / "signing.pub")]
    return []


def converter(base: Path, mode: str) -> ParquetConverter:
    return ParquetConverter(base / "hot", base / "cold", **keys(base, mode))


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("crafted")
    made = {}
    for mode in ("plain", "keyed", "signed"):
        write_trail(root / mode, mode)
        made[mode] = root / mode
    return made


# --- the damage -------------------------------------------------------------------------------


def writable(path: Path) -> Path:
    path.chmod(0o640)
    return path


def append(day: int, data: bytes) -> Callable[[Path], Path]:
    def damage(base: Path) -> Path:
        target = writable(hot_file(base, day))
        with target.open("ab") as handle:
            handle.write(data)
        return target

    return damage


def _replace(target: Path, data: bytes | Callable[[dict[str, object]], object]) -> Path:
    """Write ``data`` over ``target``, or ``data(its parsed JSON)`` as JSON when ``data`` is a function."""
    if callable(data):
        target.write_text(json.dumps(data(json.loads(target.read_bytes()))))
    else:
        target.write_bytes(data)
    return target


def replace_seal(data: bytes | Callable[[dict[str, object]], object]) -> Callable[[Path], Path]:
    return lambda base: _replace(writable(hot_file(base, 1).with_name(hot_file(base, 1).name + ".seal")), data)


def replace_manifest(data: bytes | Callable[[dict[str, object]], object]) -> Callable[[Path], Path]:
    return lambda base: _replace(base / "cold" / MANIFEST_DIR / (hot_file(base, 1).name + ".json"), data)


def damage_parquet(cut: Callable[[bytes], bytes]) -> Callable[[Path], Path]:
    def damage(base: Path) -> Path:
        (target,) = (base / "cold").glob("year=2026/month=01/day=01/*.parquet")
        writable(target).write_bytes(cut(target.read_bytes()))
        return target

    return damage


def forge_appended_lines(base: Path) -> Path:
    """Two records appended to the live file, chained and checksummed, but without the HMAC key."""
    target = writable(hot_file(base, 4))
    last = target.read_bytes().splitlines(keepends=True)[-1]
    record = json.loads(last)
    for _ in range(2):
        record = {**record, "sequence": record["sequence"] + 1, "prev_hash": record["checksum"],
                  "order_id": "FORGED"}
        del record["checksum"]
        body = json.dumps(record, separators=(",", ":")).encode()
        record["checksum"] = hashlib.sha256(body).hexdigest()
        with target.open("ab") as handle:
            handle.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")
    return target


def stray_forged_record(base: Path) -> Path:
    """hot/notes.jsonl holding a well-formed record (a fill nobody made), its plain SHA-256 checksum right."""
    record = json.loads(hot_file(base, 2).read_bytes().splitlines()[0])
    record = {**record, "order_id": "FORGED", "sequence": 10_000}
    del record["checksum"]
    body = json.dumps(record, separators=(",", ":")).encode()
    target = base / "hot" / "notes.jsonl"
    target.write_bytes(body[:-1] + b',"checksum":"' + hashlib.sha256(body).hexdigest().encode() + b'"}\n')
    return target


def garbage_checkpoint(base: Path) -> Path:
    target = writable(hot_file(base, 1).with_name(hot_file(base, 1).name + ".checkpoint"))
    target.write_bytes(b"\xff\xfegarbage\n\n")
    return target


DEEP = b"[" * 100_000 + b"]" * 100_000


@dataclass(frozen=True)
class Crafted:
    """A crafted input and what each reader must make of it."""

    name: str
    damage: Callable[[Path], Path]  # damages the trail, returns the damaged file
    hot_kind: FailureKind | None = None  # what verify() of the hot files reports (None: not affected)
    cold_kind: FailureKind | None = None  # what verify_cold() reports
    convert: str | None = None  # convert_all's ``skipped`` for the damaged source (None: not affected)
    tail_skips: bool = False  # tail leaves out (and names) a line of the damaged file
    stats_skips: bool = False  # stats leaves out (and names) the damaged file
    open_trail: str = "quiet"  # "warns": an UnreadableFileWarning names the damaged file
    extra_rows: int = 0  # rows open_trail shows beyond the RECORDS honest ones
    mode: str = "plain"  # "keyed": HMAC trail; "signed": Ed25519-signed seals

    def __str__(self) -> str:
        return self.name


def line(name: str, data: bytes) -> Crafted:
    """A line appended to day 2 (sealed, not converted yet)."""
    return Crafted(name, append(2, data), hot_kind=FailureKind.UNPARSEABLE_LINE, convert="failed verification",
                   tail_skips=True, open_trail="warns")


def seal(name: str, data: bytes | Callable[[dict[str, object]], object]) -> Crafted:
    """Day 1's seal (its file converted) replaced."""
    return Crafted(name, replace_seal(data), hot_kind=FailureKind.SEAL_INVALID, convert=UNREADABLE,
                   open_trail="warns")


def manifest(name: str, data: bytes | Callable[[dict[str, object]], object]) -> Crafted:
    """Day 1's manifest entry replaced."""
    return Crafted(name, replace_manifest(data), cold_kind=FailureKind.UNREADABLE_FILE, convert=UNREADABLE,
                   open_trail="warns")


def parquet(name: str, cut: Callable[[bytes], bytes]) -> Crafted:
    """Day 1's Parquet file damaged."""
    return Crafted(name, damage_parquet(cut), cold_kind=FailureKind.UNREADABLE_FILE, stats_skips=True,
                   open_trail="warns")


CRAFTED = [
    line("stray non-JSON line", b"operator was here\n"),
    line("JSON line that is not a record", b'{"hello":"world"}\n'),
    line("JSON array line", b"[1,2,3]\n"),
    line("deeply nested line", b'{"a":' + DEEP + b"}\n"),
    line("invalid UTF-8 line", b"\xff\xfe\x00\n"),
    seal("garbage seal", b"\x00garbage{"),
    seal("deeply nested seal", DEEP),
    seal("seal that is not an object", b"[]"),
    seal("seal with fields of the wrong type", lambda seal: {**seal, "records": "24", "first_sequence": [0]}),
    seal("seal with a nested extra field", lambda seal: {**seal, "x": {"y": [[[[1]]]]}}),
    Crafted("two appended lines in a keyed trail", forge_appended_lines, hot_kind=FailureKind.CHECKSUM_MISMATCH,
            extra_rows=2, mode="keyed"),
    Crafted("garbage checkpoint", garbage_checkpoint, hot_kind=FailureKind.UNREADABLE_FILE, mode="signed"),
    Crafted("stray notes.jsonl with a forged record", stray_forged_record, hot_kind=FailureKind.UNEXPECTED_FILE,
            tail_skips=True, open_trail="warns"),
    parquet("truncated Parquet file", lambda data: data[: len(data) // 2]),
    parquet("Parquet file without its footer", lambda data: data[:-9]),
    parquet("garbage Parquet file", lambda data: b"PAR1 not parquet PAR1"),
    manifest("garbage manifest", b"{{{"),
    manifest("deeply nested manifest", DEEP),
    manifest("manifest that is not an object", b"[1]"),
    manifest("manifest with a path out of the cold store",
             lambda entry: {**entry, "outputs": [{"path": "../../etc/x.parquet", "rows": 1}]}),
    manifest("manifest with fields of the wrong type", lambda entry: {**entry, "source": 7, "outputs": "all"}),
]


@pytest.fixture(params=CRAFTED, ids=str)
def crafted(request: pytest.FixtureRequest, templates: dict[str, Path], tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> tuple[Crafted, Path, Path]:
    """(the crafted input, the damaged trail, the damaged file)."""
    import shutil

    case: Crafted = request.param
    base = tmp_path / "trail"
    shutil.copytree(templates[case.mode], base)
    monkeypatch.setenv("LL_CRAFTED_KEY", KEY)
    return case, base, case.damage(base)


def named(failures: list[VerificationFailure], kind: FailureKind, damaged: Path) -> list[VerificationFailure]:
    """The failures of ``kind`` whose file or detail names the damaged file."""
    return [f for f in failures if f.kind == kind and damaged.name in str(f)]


# --- each reader --------------------------------------------------------------------------------


class TestLibraryReaders:
    def test_verify(self, crafted):
        case, base, damaged = crafted
        report = verify(base / "hot", **keys(base, case.mode))
        if case.hot_kind is None:
            assert report.ok, report.to_text()
        else:
            assert named(report.failures, case.hot_kind, damaged), report.to_text()

    def test_verify_cold(self, crafted):
        case, base, damaged = crafted
        report = verify_cold(base / "cold", **({"hmac_key": KEY.encode()} if case.mode == "keyed" else {}))
        if case.cold_kind is None:
            assert report.ok, report.to_text()
        else:
            assert named(report.failures, case.cold_kind, damaged), report.to_text()

    def test_convert_all_converts_every_good_file_and_names_the_bad_one(self, crafted):
        case, base, damaged = crafted
        results = {r.source: r for r in converter(base, case.mode).convert_all()}
        day1, day2, day3, day4 = (hot_file(base, day).name for day in (1, 2, 3, 4))
        assert results[day4].skipped.startswith("not sealed")
        if case.convert is None:
            assert results[day1].skipped == "already converted"
            assert results[day2].converted and results[day3].converted
            return
        (bad,) = [r for r in results.values() if r.failures]
        assert bad.skipped == case.convert and bad.source in (day1, day2)
        assert damaged.name in bad.failures[0] or bad.source == damaged.name
        assert results[day3].converted, "a good file after the bad one is still converted"
        assert all(r.converted or r.skipped == "already converted" for r in results.values()
                   if r is not bad and r.source != day4)

    def test_tail_reports_and_skips(self, crafted):
        case, base, damaged = crafted
        with pytest.raises(AuditFormatError) if case.tail_skips else _nothing():
            tail(base / "hot", 200)
        skipped: list[AuditFormatError] = []
        events = tail(base / "hot", 200, on_error=skipped.append)
        assert len(events) == RECORDS + case.extra_rows
        assert [e.path for e in skipped] == ([str(damaged)] if case.tail_skips else [])

    def test_partition_stats_report_and_skip(self, crafted):
        case, base, damaged = crafted
        skipped: list[AuditFormatError] = []
        stats = converter(base, case.mode).get_partition_stats(on_error=skipped.append)
        assert [e.path for e in skipped] == ([str(damaged)] if case.stats_skips else [])
        assert sum(p.rows for p in stats) == (0 if case.stats_skips else PER_DAY)

    def test_open_trail_reports_and_skips(self, crafted, request):
        from workbench import TrailNotVerifiedWarning, UnreadableFileWarning, open_trail

        case, base, damaged = crafted
        if case.open_trail == "warns":
            with pytest.warns(UnreadableFileWarning) as caught:
                trail = open_trail(base)
            assert any(damaged.name in str(w.message) for w in caught)
        else:
            trail = open_trail(base)
        # Opened without the keys, as an analyst who has none would: no crafted input passes as verified,
        # and the status names the damaged file.
        assert trail.verification.state != "verified"
        if case.mode == "signed":  # signatures and checkpoints are checked only with the public key, and it says so
            assert "no public_key was given" in trail.verification.summary
        else:
            assert any(damaged.name in f"{failure.file} {failure.detail}" for failure in trail.verification.failures)
        with pytest.warns(TrailNotVerifiedWarning, match="FAILED|not verified"):
            assert trail.events.count().execute() == RECORDS + case.extra_rows


class TestCommandLine:
    def test_verify_exits_one_and_names_the_file(self, crafted, capsys):
        case, base, damaged = crafted
        code = main(["verify", str(base), *cli_keys(base, case.mode)])
        out, err = capsys.readouterr()
        assert "Traceback" not in err and err == ""
        kind = case.hot_kind or case.cold_kind
        assert code == 1 and kind is not None
        assert any(kind.value in line and damaged.name in line for line in out.splitlines()), out

    def test_convert_converts_the_rest_and_exits_one_for_a_bad_file(self, crafted, capsys):
        case, base, damaged = crafted
        code = main(["convert", str(base / "hot"), str(base / "cold"), "-q", *cli_keys(base, case.mode)])
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        assert f"converted {hot_file(base, 3).name}" in out
        if case.convert is None:
            assert code == 0
        else:
            assert code == 1
            (line,) = [line for line in out.splitlines() if line.startswith("NOT converted")]
            assert f": {case.convert}: " in line and (damaged.name in line or hot_file(base, 2).name in line)

    def test_tail_names_the_skipped_file_on_stderr(self, crafted, capsys):
        case, base, damaged = crafted
        code = main(["tail", str(base), "-n", "200"])
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        assert len(out.splitlines()) == RECORDS + case.extra_rows
        if case.tail_skips:
            assert code == 1 and err.count("\n") == 1
            assert err.startswith(f"ledgerline tail: skipped {damaged}:")
        else:
            assert code == 0 and err == ""

    def test_stats_names_the_skipped_file_on_stderr(self, crafted, capsys):
        case, base, damaged = crafted
        code = main(["stats", str(base / "cold")])
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        assert "1 partition(s)" in out
        if case.stats_skips:
            assert code == 1 and err.startswith(f"ledgerline stats: skipped {damaged}: not a readable Parquet file")
        else:
            assert code == 0 and err == ""


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        return None


# --- in a real process: exit codes and stderr as a shell sees them --------------------------------


@pytest.mark.parametrize("name", ["deeply nested seal", "truncated Parquet file", "garbage manifest"])
def test_a_real_process_exits_one_without_a_traceback(name, templates, tmp_path):
    import shutil

    case = next(c for c in CRAFTED if c.name == name)
    base = tmp_path / "trail"
    shutil.copytree(templates[case.mode], base)
    damaged = case.damage(base)
    for argv in (["verify", str(base)], ["convert", str(base / "hot"), str(base / "cold"), "-q"]):
        run = subprocess.run([sys.executable, "-m", "audit_core.cli", *argv], capture_output=True, text=True,
                             timeout=120)
        assert "Traceback" not in run.stderr, run.stderr
        expected = 0 if argv[0] == "convert" and case.convert is None else 1
        assert run.returncode == expected, (argv, run.stdout, run.stderr)
        assert damaged.name in run.stdout or argv[0] == "convert"


# --- numeric arguments ------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["retention", "{cold}", "--days", "99999999999"],
    ["retention", "{cold}", "--days", "-1"],
    ["retention", "{cold}", "--days", "1e3"],
    ["tail", "{base}", "-n", "-5"],
    ["tail", "{base}", "-n", "0"],
    ["tail", "{base}", "-n", str(10**30)],
    ["prove", "--sequence", str(10**30), "{day1}"],
    ["prove", "--sequence", "-1", "{day1}"],
    ["verify", "{base}", "--max-failures", "-1"],
    ["verify", "{base}", "--max-failures", "9" * 5000],
])
def test_a_bad_number_is_a_one_line_usage_error(argv, templates, capsys):
    base = templates["plain"]
    argv = [a.format(base=base, cold=base / "cold", day1=hot_file(base, 1)) for a in argv]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"ledgerline {argv[0]}: error: argument ")
    assert "expected an integer from" in err


# --- the library error --------------------------------------------------------------------------


class TestAuditFormatError:
    def test_names_the_file_and_line(self):
        error = AuditFormatError(Path("/trail/hot/x.jsonl"), "not a record", line=7)
        assert (error.path, error.detail, error.line) == ("/trail/hot/x.jsonl", "not a record", 7)
        assert str(error) == "/trail/hot/x.jsonl:7: not a record"
        assert isinstance(error, AuditError) and isinstance(error, ValueError)
        assert str(AuditFormatError("m.json", "bad")) == "m.json: bad"

    def test_survives_pickling(self):
        error = pickle.loads(pickle.dumps(AuditFormatError("x.seal", "garbage", 3)))
        assert (error.path, error.detail, error.line, str(error)) == ("x.seal", "garbage", 3, "x.seal:3: garbage")

    @pytest.mark.parametrize("name", ["garbage seal", "deeply nested seal", "seal that is not an object",
                                      "seal with fields of the wrong type"])
    def test_read_seal(self, name, templates, tmp_path):
        base = self._copy(templates, tmp_path)
        damaged = next(c for c in CRAFTED if c.name == name).damage(base)
        with pytest.raises(AuditFormatError) as caught:
            read_seal(hot_file(base, 1))
        assert caught.value.path == str(damaged)

    @pytest.mark.parametrize("name", ["garbage manifest", "deeply nested manifest", "manifest that is not an object",
                                      "manifest with a path out of the cold store"])
    def test_read_manifest(self, name, templates, tmp_path):
        base = self._copy(templates, tmp_path)
        damaged = next(c for c in CRAFTED if c.name == name).damage(base)
        with pytest.raises(AuditFormatError, match="manifest entry") as caught:
            read_manifest(damaged)
        assert caught.value.path == str(damaged)

    @pytest.mark.parametrize("note", ["", "garbage", "origin\n12\nroot\n\nno signature\n",
                                      "origin\n\u00b2\nAAAA\n\n\u2014 ledgerline AAAAAAAA\n",
                                      "origin\n" + "9" * 5000 + "\nAAAA\n\n\u2014 ledgerline AAAAAAAA\n"])
    def test_parse_checkpoint(self, note):
        with pytest.raises(AuditFormatError, match=r"^x\.checkpoint: checkpoint "):
            parse_checkpoint(note, "x.checkpoint")

    def test_read_hot_file_and_tail_raise_without_on_error(self, templates, tmp_path):
        base = self._copy(templates, tmp_path)
        damaged = append(2, b"junk\n")(base)
        with pytest.raises(AuditFormatError, match=r":25: 1 line\(s\) are not records") as caught:
            read_hot_file(damaged)
        assert (caught.value.path, caught.value.line) == (str(damaged), 25)
        with pytest.raises(AuditFormatError, match="not a JSON record"):
            tail(damaged, 5)

    @pytest.mark.parametrize("holds", [b"nope", b"[" * 100_000, b'{"start": 1}', b'[{"start": "2026-01-01"}]', b"[7]"])
    def test_legal_holds_file(self, holds, templates, tmp_path, capsys):
        base = self._copy(templates, tmp_path)
        (base / "cold" / HOLDS_FILE).write_bytes(holds)
        with pytest.raises(AuditFormatError) as caught:
            load_holds(base / "cold")
        assert caught.value.path == str(base / "cold" / HOLDS_FILE)
        assert main(["retention", str(base / "cold"), "--days", "1", "--dry-run"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"ledgerline retention: FAILED: {base / 'cold' / HOLDS_FILE}")

    @staticmethod
    def _copy(templates: dict[str, Path], tmp_path: Path) -> Path:
        import shutil

        shutil.copytree(templates["plain"], tmp_path / "trail")
        return tmp_path / "trail"


# --- records that verify but do not fit the cold columns (an unkeyed trail, rehashed) --------------


@pytest.mark.parametrize(("edit", "outcome"), [
    ((b'"price":"1.1"', b'"price":"abc"'), UNREADABLE),
    ((b'{"ts_event":', b'{"ts_event":99999999999'), UNREADABLE),
    ((b'"sequence":47', b'"sequence":99999999999999999999999'), "failed verification"),
])
def test_a_rehashed_record_that_does_not_load_is_reported_and_the_rest_converted(edit, outcome, templates, tmp_path):
    import shutil

    base = tmp_path / "trail"
    shutil.copytree(templates["plain"], base)
    target = writable(hot_file(base, 2))
    lines = target.read_bytes().splitlines(keepends=True)
    body = split_record(lines[-1]).body.replace(*edit)
    lines[-1] = body[:-1] + b',"checksum":"' + compute_checksum(body).encode() + b'"}\n'
    target.write_bytes(b"".join(lines))
    seal = read_seal(target)
    assert seal is not None
    writable(target.with_name(target.name + ".seal")).unlink()
    seal_file(target, next_file=seal["next_file"], sealed_at_ns=seal["sealed_at_ns"])

    results = {r.source: r for r in converter(base, "plain").convert_all()}
    bad = results[target.name]
    assert (bad.converted, bad.skipped) == (False, outcome)
    assert target.name in bad.failures[0]
    assert results[hot_file(base, 3).name].converted
    assert verify_cold(base / "cold").ok, "nothing of the bad file reached the cold store"


# --- no false alarms ------------------------------------------------------------------------------


def test_a_torn_line_that_recovery_described_is_not_reported(tmp_path, crash):
    config = AuditConfig(base_path=tmp_path, sync_writes=False, rotate_daily=False)
    now = [JAN_1]
    emitter = AuditEventEmitter(config, clock=lambda: now[0])
    emitter.emit_param_change("meta", "risk_multiplier", 1.0, 0.5, "drawdown")
    emitter.flush()
    crash(emitter)
    (path,) = (tmp_path / "hot").glob("*.jsonl")
    with path.open("ab") as handle:
        handle.write(b'{"ts_event":17672256')  # the write the crash cut short
    now[0] += HOUR
    with AuditEventEmitter(config, clock=lambda: now[0]) as emitter:
        emitter.emit_param_change("meta", "risk_multiplier", 0.5, 0.7, "recovered")
    assert verify(tmp_path / "hot").ok
    assert [e.event_type for e in tail(tmp_path / "hot", 10)] == ["param.state_change", "sys.recovery",
                                                                   "param.state_change"]
    assert read_hot_file(path).num_rows == 3
    from workbench import open_trail

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert open_trail(tmp_path).events.count().execute() == 3
