"""Evidence bundles: export from a real signed trail, verify offline, and every tampering fails with its reason."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from bundle_helpers import MINUTE, PARAMS, T0, read_bundle, stream_of, write_bundle, write_signed_trail

from audit_core import AuditConfig, AuditEventEmitter
from audit_core._layout import stream_checkpoint_path
from audit_core.evidence import BundleExportError, export_bundle, verify_bundle
from audit_core.evidence.bundle_format import range_proof
from audit_core.hot.anchors import group_stream_files, read_sidecar, rebuild_stream
from audit_core.hot.verifier import trail_files
from audit_core.trust.keyring import TrustedKeys
from audit_core.trust.signing import generate_keypair, key_id, load_public_key, raw_public_key
from audit_core.trust.stream_tree import MemoryLeaves, StreamTree

WINDOW = {"start_ns": T0 + 10 * MINUTE, "end_ns": T0 + 30 * MINUTE}


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    return write_signed_trail(tmp_path_factory.mktemp("bundle") / "a")


@pytest.fixture(scope="module")
def other(tmp_path_factory):
    """A second trail with the same trader and streams (for checkpoint swaps)."""
    return write_signed_trail(tmp_path_factory.mktemp("bundle") / "b", minutes=45)


@pytest.fixture(scope="module")
def bundle(signed, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "case.bundle"
    return export_bundle(signed.trail, out, **WINDOW, event_types=["param.*"], witness=signed.witness)


def verify(path, signed, **kwargs):
    kwargs.setdefault("public_key", load_public_key(signed.public_key))
    return verify_bundle(path, **kwargs)


def reasons(report):
    return {(failure.reason, failure.stream.rsplit("/", 1)[-1] if failure.stream else None)
            for failure in report.failures}


def records_in(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


class TestExportAndVerify:
    def test_a_bundle_verifies_complete_in_a_directory_holding_only_it_and_the_public_key(self, signed, bundle,
                                                                                          tmp_path):
        shutil.copy(bundle, tmp_path / "case.bundle")
        shutil.copy(signed.public_key, tmp_path / "writer.pub")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["case.bundle", "writer.pub"]
        done = subprocess.run([sys.executable, "-m", "audit_core.cli", "verify-bundle", "case.bundle",
                               "--public-key", "writer.pub", "--json"], cwd=tmp_path, capture_output=True, text=True,
                              check=False)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["claim"] == "complete" and report["failures"] == []
        control = next(s for s in report["streams"] if s["origin"] == "ledgerline/T1/control")
        # 20 minutes of one record a minute; a change every third minute: 12, 15, ..., 27
        assert (control["in_window"], control["matching"], control["redacted"]) == (20, 6, 0)
        assert control["key_id"] == key_id(load_public_key(signed.public_key)) and control["trusted"]
        assert control["witnessed_size"] == control["N"] == 60

    def test_the_bundle_holds_the_lines_exactly_as_written_with_their_edges(self, signed, bundle):
        index, entries = read_bundle(bundle)
        control = stream_of(index, "control")
        hot = b"".join(path.read_bytes() for path in sorted((signed.trail / "hot").glob("audit.T1.control.*.jsonl")))
        lines = hot.splitlines()
        assert entries[control["lines"]] == b"".join(line + b"\n" for line in lines[control["first"]:control["end"]])
        assert (control["first"], control["end"]) == (9, 31)  # the records of minutes 9 and 30 are the edges

    def test_a_stream_with_no_record_in_the_window_shows_its_edges(self, signed, bundle):
        report = verify(bundle, signed)
        quiet = next(s for s in report.streams if s.origin.endswith("/quiet"))
        assert (quiet.first, quiet.end, quiet.in_window, quiet.matching) == (0, 2, 0, 0)

    def test_without_a_trusted_key_the_claim_is_unauthenticated(self, signed, bundle):
        report = verify_bundle(bundle)
        assert report.valid and report.claim == "unauthenticated"
        assert not any(stream.trusted for stream in report.streams)
        assert "NOT trusted" in report.to_text()

    def test_the_text_says_what_is_and_is_not_proven(self, signed, bundle):
        text = verify(bundle, signed).to_text()
        assert "claim: COMPLETE" in text
        assert "no other stream" in text
        assert "positions 9..30 of a checkpoint of 60 line(s)" in text

    def test_same_trail_and_arguments_give_the_same_bytes_but_created_ns(self, signed, bundle, tmp_path):
        again = export_bundle(signed.trail, tmp_path / "again.bundle", **WINDOW, event_types=["param.*"],
                              witness=signed.witness)
        first, first_entries = read_bundle(bundle)
        second, second_entries = read_bundle(again)
        first.pop("created_ns"), second.pop("created_ns")
        assert first == second
        assert {k: v for k, v in first_entries.items() if k != "bundle.json"} == {
            k: v for k, v in second_entries.items() if k != "bundle.json"}
        with zipfile.ZipFile(again) as archive:
            assert [info.date_time for info in archive.infolist()] == [(1980, 1, 1, 0, 0, 0)] * 3

    def test_no_temporary_file_is_left_beside_the_bundle(self, bundle):
        assert [p.name for p in bundle.parent.iterdir()] == ["case.bundle"]


class TestSelection:
    @pytest.mark.parametrize(("kwargs", "matching"), [
        ({"event_types": ["param.*"]}, 6),
        ({"event_types": ["param.risk_change"]}, 6),
        ({"event_types": ["sys.*"]}, 14),
        ({"event_types": ["*"]}, 20),
        ({"event_types": ["param"]}, 0),
        ({"sources": ["kelly_sizer"]}, 3),
        ({"params": ["risk_multiplier"]}, 3),
        ({"params": ["risk_multiplier"], "sources": ["kelly_sizer"]}, 0),
    ])
    def test_filters_count_the_matching_records(self, signed, tmp_path, kwargs, matching):
        out = export_bundle(signed.trail, tmp_path / "f.bundle", **WINDOW, **kwargs)
        report = verify(out, signed)
        control = next(s for s in report.streams if s.origin.endswith("/control"))
        assert report.claim == "complete" and control.matching == matching and control.in_window == 20

    def test_redacted_mode_hashes_the_non_matching_records_and_claims_complete_redacted(self, signed, tmp_path):
        out = export_bundle(signed.trail, tmp_path / "r.bundle", **WINDOW, params=["kelly_fraction"], redact=True)
        report = verify(out, signed)
        control = next(s for s in report.streams if s.origin.endswith("/control"))
        assert report.claim == "complete-redacted"
        assert (control.in_window, control.matching, control.redacted) == (20, 3, 17)
        index, entries = read_bundle(out)
        kept = [json.loads(line) for line in entries[stream_of(index, "control")["lines"]].splitlines()]
        assert [r.get("param_name") for r in kept[1:-1]] == ["kelly_fraction"] * 3  # plus the two edges

    def test_a_window_past_the_checkpoint_says_covered_up_to(self, signed, tmp_path):
        out = export_bundle(signed.trail, tmp_path / "late.bundle", start_ns=T0 + 50 * MINUTE,
                            end_ns=T0 + 500 * MINUTE)
        report = verify(out, signed)
        control = next(s for s in report.streams if s.origin.endswith("/control"))
        assert report.claim == "complete" and control.end == control.N == 60
        assert "covered up to position 59" in report.to_text()

    def test_export_refuses_a_window_its_checkpoint_does_not_reach(self, tmp_path):
        trail = write_signed_trail(tmp_path, minutes=6, witness=False)
        stale = stream_checkpoint_path(trail.trail / "hot", "T1", "control").read_bytes()
        with AuditEventEmitter(AuditConfig(base_path=trail.trail, trader_id="T1", stream_id="control",
                                           signing_key_path=trail.private_key),
                               clock=lambda: T0 + 100 * MINUTE) as emitter:
            emitter.emit_system("sys.heartbeat", "node", payload={})
        path = stream_checkpoint_path(trail.trail / "hot", "T1", "control")
        path.chmod(0o644)
        path.write_bytes(stale)
        with pytest.raises(BundleExportError, match="do not reach the window's first record"):
            export_bundle(trail.trail, tmp_path / "x.bundle", start_ns=T0 + 50 * MINUTE, end_ns=T0 + 200 * MINUTE)

    def test_bad_windows_are_typed_errors(self, signed, tmp_path):
        from audit_core.errors import AuditConfigError

        with pytest.raises(AuditConfigError, match="window is empty"):
            export_bundle(signed.trail, tmp_path / "x.bundle", start_ns=T0, end_ns=T0)
        with pytest.raises(AuditConfigError, match="params"):
            export_bundle(signed.trail, tmp_path / "x.bundle", start_ns=T0, end_ns=T0 + 1, params=[])


def honest_proof(signed, stream, first, end):
    """The range proof an attacker holding the trail computes for a range of their choosing."""
    hot = signed.trail / "hot"
    files = group_stream_files(trail_files(hot)[0])[f"T1.{stream}"]
    leaves = rebuild_stream(files, read_sidecar(hot / f"audit.T1.{stream}.leaves")).leaves
    tree = StreamTree(MemoryLeaves(leaves), len(leaves))
    return [node.hex() for node in range_proof(tree.subtree_hash, len(leaves), first, end)]


class TestTampering:
    """Every tampering of a bundle fails with its named reason (format.md section 7)."""

    def tampered(self, bundle, tmp_path, change, extra=()):
        index, entries = read_bundle(bundle)
        control = stream_of(index, "control")
        lines = entries[control["lines"]].splitlines(keepends=True)
        result = change(index, control, lines)
        entries[control["lines"]] = b"".join(lines)
        return write_bundle(tmp_path / "t.bundle", index if result is None else result, entries, list(extra))

    def check(self, path, signed, *expected, **kwargs):
        report = verify(path, signed, **kwargs)
        assert report.claim == "invalid"
        assert set(expected) <= reasons(report), report.to_dict()
        return report

    def test_record_edit(self, signed, bundle, tmp_path):
        def edit(index, control, lines):
            lines[4] = lines[4].replace(b'"minute":13', b'"minute":99')
        report = self.check(self.tampered(bundle, tmp_path, edit), signed, ("range_proof_invalid", "control"),
                            ("checksum_mismatch", "control"))
        assert {f.position for f in report.failures if f.reason == "checksum_mismatch"} == {13}

    def test_dropped_record_inside_the_range(self, signed, bundle, tmp_path):
        def drop(index, control, lines):
            del lines[4]
        self.check(self.tampered(bundle, tmp_path, drop), signed, ("range_proof_invalid", "control"))

    def test_dropped_record_with_the_range_shrunk_to_match(self, signed, bundle, tmp_path):
        def drop(index, control, lines):
            del lines[4]
            control["end"] -= 1
        self.check(self.tampered(bundle, tmp_path, drop), signed, ("range_proof_invalid", "control"))

    def test_proof_edit(self, signed, bundle, tmp_path):
        def edit(index, control, lines):
            control["range_proof"][0] = "0" * 64
        self.check(self.tampered(bundle, tmp_path, edit), signed, ("range_proof_invalid", "control"))

    def test_proof_with_an_extra_hash(self, signed, bundle, tmp_path):
        def edit(index, control, lines):
            control["range_proof"].append("0" * 64)
        self.check(self.tampered(bundle, tmp_path, edit), signed, ("range_proof_invalid", "control"))

    def test_checkpoint_of_another_stream(self, signed, bundle, tmp_path):
        def swap(index, control, lines):
            control["checkpoint"] = stream_of(index, "quiet")["checkpoint"]
        self.check(self.tampered(bundle, tmp_path, swap), signed, ("checkpoint_malformed", "control"))

    def test_checkpoint_of_another_trail(self, signed, other, bundle, tmp_path):
        note = stream_checkpoint_path(other.trail / "hot", "T1", "control").read_text()

        def swap(index, control, lines):
            control["checkpoint"] = note
        # the other trail's key is not trusted, and its root is not these lines'
        self.check(self.tampered(bundle, tmp_path, swap), signed, ("key_untrusted", "control"))
        report = verify(tmp_path / "t.bundle", other, public_key=load_public_key(other.public_key))
        assert ("range_proof_invalid", "control") in reasons(report)

    def test_redacted_entry_in_a_bundle_that_is_not_redacted(self, signed, bundle, tmp_path):
        def redact(index, control, lines):
            position = control["first"] + 5
            control["redacted"][str(position)] = hashlib.sha256(b"\x00" + lines[5].rstrip(b"\n")).hexdigest()
            del lines[5]
        report = self.check(self.tampered(bundle, tmp_path, redact), signed, ("redaction_not_allowed", "control"))
        assert {f.reason for f in report.failures} == {"redaction_not_allowed"}  # the proof itself still holds

    def test_redacted_edge(self, signed, tmp_path):
        out = export_bundle(signed.trail, tmp_path / "r.bundle", **WINDOW, params=["kelly_fraction"], redact=True)

        def redact_edge(index, control, lines):
            control["redacted"][str(control["first"])] = hashlib.sha256(b"\x00" + lines[0].rstrip(b"\n")).hexdigest()
            del lines[0]
        self.check(self.tampered(out, tmp_path, redact_edge), signed, ("redaction_not_allowed", "control"))

    @pytest.mark.parametrize("edge", ["left", "right"])
    def test_boundary_record_removed_with_an_honest_proof(self, signed, bundle, tmp_path, edge):
        def shrink(index, control, lines):
            if edge == "left":
                del lines[0]
                control["first"] += 1
            else:
                del lines[-1]
                control["end"] -= 1
            control["range_proof"] = honest_proof(signed, "control", control["first"], control["end"])
        report = self.check(self.tampered(bundle, tmp_path, shrink), signed, ("boundary_unproven", "control"))
        assert {f.reason for f in report.failures} == {"boundary_unproven"}

    def test_boundary_moved_into_the_window(self, signed, bundle, tmp_path):
        def move(index, control, lines):
            del lines[:3]
            control["first"] += 3
            control["range_proof"] = honest_proof(signed, "control", control["first"], control["end"])
        self.check(self.tampered(bundle, tmp_path, move), signed, ("boundary_unproven", "control"))

    def test_witness_proof_edit(self, tmp_path):
        """A checkpoint older than the witness's note: the bundle carries a real consistency proof."""
        trail = write_signed_trail(tmp_path, minutes=6)
        local = stream_checkpoint_path(trail.trail / "hot", "T1", "control")
        stale = local.read_bytes()
        with AuditEventEmitter(AuditConfig(base_path=trail.trail, trader_id="T1", stream_id="control",
                                           signing_key_path=trail.private_key, witness_path=trail.witness),
                               clock=lambda: T0 + 100 * MINUTE) as emitter:
            emitter.emit_system("sys.heartbeat", "node", payload={})
        local.chmod(0o644)
        local.write_bytes(stale)
        out = export_bundle(trail.trail, tmp_path / "w.bundle", start_ns=T0, end_ns=T0 + 3 * MINUTE,
                            witness=trail.witness)
        report = verify(out, trail)
        control = next(s for s in report.streams if s.origin.endswith("/control"))
        assert report.claim == "complete" and (control.N, control.witnessed_size) == (6, 7)

        def edit(index, control, lines):
            assert control["witness"]["consistency_proof"]
            control["witness"]["consistency_proof"][0] = "ab" * 32
        self.check(self.tampered(out, tmp_path, edit), trail, ("consistency_invalid", "control"))

    def test_witness_note_of_the_same_size_with_a_proof_added(self, signed, bundle, tmp_path):
        def edit(index, control, lines):
            control["witness"]["consistency_proof"] = ["ab" * 32]
        self.check(self.tampered(bundle, tmp_path, edit), signed, ("consistency_invalid", "control"))

    def test_key_outside_its_window_with_a_trusted_keys_file(self, signed, bundle, tmp_path):
        raw = raw_public_key(load_public_key(signed.public_key))
        entry = {"key_id": hashlib.sha256(raw).hexdigest()[:16], "public_key": __import__("base64").b64encode(
            raw).decode(), "roles": ["writer"], "not_before_ns": T0 + 10**18, "not_after_ns": None}
        keys = tmp_path / "trusted-keys.json"
        keys.write_text(json.dumps({"format": "ledgerline-trusted-keys/1", "keys": [entry]}))
        report = verify_bundle(bundle, trusted_keys=TrustedKeys.load(keys))
        assert report.claim == "invalid" and ("key_outside_window", "control") in reasons(report)
        done = subprocess.run([sys.executable, "-m", "audit_core.cli", "verify-bundle", str(bundle),
                               "--trusted-keys", str(keys)], capture_output=True, text=True, check=False)
        assert done.returncode == 1 and "key_outside_window" in done.stdout

    def test_key_not_in_the_trusted_keys(self, signed, bundle, tmp_path):
        generate_keypair(tmp_path / "x.key", tmp_path / "x.pub")
        report = verify_bundle(bundle, public_key=load_public_key(tmp_path / "x.pub"))
        assert ("key_untrusted", "control") in reasons(report)

    @pytest.mark.parametrize("name", ["../evil", "/etc/passwd", "streams\\x.lines", "streams/../bundle.json"])
    def test_zip_slip_entry_names(self, signed, bundle, tmp_path, name):
        path = self.tampered(bundle, tmp_path, lambda *_: None, extra=[(name, b"x")])
        assert reasons(self.check(path, signed)) == {("bundle_malformed", None)}

    def test_duplicate_entry(self, signed, bundle, tmp_path):
        index, entries = read_bundle(bundle)
        name = stream_of(index, "control")["lines"]
        path = self.tampered(bundle, tmp_path, lambda *_: None, extra=[(name, entries[name])])
        report = self.check(path, signed, ("bundle_malformed", None))
        assert "listed 2 times" in report.failures[0].message

    def test_extra_entry(self, signed, bundle, tmp_path):
        path = self.tampered(bundle, tmp_path, lambda *_: None, extra=[("streams/T1.extra.lines", b"")])
        report = self.check(path, signed, ("bundle_malformed", None))
        assert "does not reference" in report.failures[0].message

    @pytest.mark.parametrize("change", [
        lambda index: index.update(format="ledgerline-bundle/2"),
        lambda index: index.update(redacted="no"),
        lambda index: index["streams"][0].update(first="9"),
        lambda index: index["streams"][0].update(range_proof=["XYZ"]),
        lambda index: index["streams"][0].update(lines="streams/../x"),
        lambda index: index["streams"][0].update(extra=1),
        lambda index: index["selection"].update(start_ns=True),
        lambda index: index["selection"].update(params=[]),
        lambda index: index.update(streams=[]),
        lambda index: index.update(keys=[{"key_id": "00", "public_key": "AA=="}]),
    ])
    def test_wrong_types_are_bundle_malformed(self, signed, bundle, tmp_path, change):
        report = self.check(self.tampered(bundle, tmp_path, lambda index, *_: change(index) and None), signed)
        assert reasons(report) == {("bundle_malformed", None)}

    @pytest.mark.parametrize("data", [b"\xff\xfe", b"[1, 2", b'{"a": NaN}', b'{"format": 1, "format": 2}', b"[]"])
    def test_bad_json_is_bundle_malformed(self, signed, bundle, tmp_path, data):
        _, entries = read_bundle(bundle)
        path = write_bundle(tmp_path / "j.bundle", None, {**entries, "bundle.json": data})
        assert reasons(self.check(path, signed)) == {("bundle_malformed", None)}

    def test_an_entry_compressed_otherwise_than_stored_or_deflated(self, signed, bundle, tmp_path):
        _, entries = read_bundle(bundle)
        with zipfile.ZipFile(tmp_path / "z.bundle", "w", compression=zipfile.ZIP_LZMA) as archive:
            for name, data in entries.items():
                archive.writestr(name, data)
        report = self.check(tmp_path / "z.bundle", signed, ("bundle_malformed", None))
        assert "only stored or deflated" in report.failures[0].message

    def test_not_a_zip_and_a_declared_size_bomb(self, signed, bundle, tmp_path):
        junk = tmp_path / "junk.bundle"
        junk.write_bytes(b"PK\x03\x04 not really")
        assert reasons(self.check(junk, signed)) == {("bundle_malformed", None)}
        data = bytearray(bundle.read_bytes())
        central = data.index(b"PK\x01\x02")  # bundle.json's central directory record comes first
        data[central + 24 : central + 28] = (65 * 1024**2).to_bytes(4, "little")
        bomb = tmp_path / "bomb.bundle"
        bomb.write_bytes(bytes(data))
        report = self.check(bomb, signed, ("bundle_malformed", None))
        assert "declares" in report.failures[0].message


class TestCli:
    def test_export_and_verify_bundle_commands(self, signed, tmp_path):
        out = tmp_path / "cli.bundle"
        done = subprocess.run([sys.executable, "-m", "audit_core.cli", "export", str(signed.trail),
                               "--start", "2026-01-06T00:10", "--end", str(T0 + 30 * MINUTE), "--param", PARAMS[0],
                               "--redact", "--public-key", str(signed.public_key), "-o", str(out)],
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        index, _ = read_bundle(out)
        assert index["selection"]["start_ns"] == WINDOW["start_ns"] and index["redacted"] is True
        assert index["keys"][0]["key_id"] == key_id(load_public_key(signed.public_key))
        done = subprocess.run([sys.executable, "-m", "audit_core.cli", "verify-bundle", str(out), "--public-key",
                               str(signed.public_key)], capture_output=True, text=True, check=False)
        assert done.returncode == 0 and "claim: COMPLETE-REDACTED" in done.stdout
        done = subprocess.run([sys.executable, "-m", "audit_core.cli", "verify-bundle", str(tmp_path / "none")],
                              capture_output=True, text=True, check=False)
        assert done.returncode == 2 and "no such file" in done.stderr


def handmade_stream(hot: Path, bodies: list[bytes | None], private_key) -> None:
    """One stream file of chained records from canonical ``bodies`` (None: a torn line), its signed checkpoint."""
    from audit_core.trust.merkle import merkle_leaf_hash
    from audit_core.trust.record import GENESIS_HASH, build_line, compute_checksum
    from audit_core.trust.stream_tree import make_note

    hot.mkdir(parents=True)
    lines, previous, sequence = [], GENESIS_HASH, 0
    for body in bodies:
        if body is None:
            lines.append(b'{"ts_event":17')
            continue
        body = body.replace(b"SEQ", str(sequence).encode()).replace(b"PREV", previous.encode())
        checksum = compute_checksum(body)
        lines.append(build_line(body, checksum)[:-1])
        previous, sequence = checksum, sequence + 1
    (hot / "audit.T1.old.2026-01-06.0000.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
    leaves = [merkle_leaf_hash(line) for line in lines]
    root = StreamTree(MemoryLeaves(leaves), len(leaves)).root()
    note = make_note("ledgerline/T1/old", len(leaves), root, signing_key=private_key)
    stream_checkpoint_path(hot, "T1", "old").write_text(note)


def body(ts_recorded: int | None, name: str = "k") -> bytes:
    head = (b'{"ts_event":1,"event_type":"param.risk_change","source":"ctl","trader_id":"T1","sequence":SEQ,'
            b'"correlation_id":null,"prev_hash":"PREV",')
    stamp = b'"format":2,' if ts_recorded is None else b'"format":3,"ts_recorded":%d,' % ts_recorded
    return head + stamp + b'"param_name":"%s","old_value":1,"new_value":2,"trigger_reason":null}' % name.encode()


class TestOlderRecordsAndTornLines:
    def test_a_record_without_ts_recorded_in_the_range_gives_positions_only(self, signed, tmp_path):
        from audit_core.trust.signing import load_private_key

        handmade_stream(tmp_path / "trail" / "hot", [body(T0), body(None), None, body(T0 + 2), body(T0 + 9)],
                        load_private_key(signed.private_key))
        out = export_bundle(tmp_path / "trail", tmp_path / "old.bundle", start_ns=T0 + 1, end_ns=T0 + 5)
        report = verify(out, signed)
        (stream,) = report.streams
        assert report.claim == "positions-only" and report.valid
        assert (stream.first, stream.end, stream.torn, stream.in_window, stream.matching) == (0, 5, 1, 1, 1)
        assert "completeness by time not established" in report.to_text()

    def test_a_record_whose_ts_recorded_goes_backwards(self, signed, tmp_path):
        from audit_core.trust.signing import load_private_key

        handmade_stream(tmp_path / "trail" / "hot", [body(T0), body(T0 + 5), body(T0 + 3), body(T0 + 9)],
                        load_private_key(signed.private_key))
        out = export_bundle(tmp_path / "trail", tmp_path / "b.bundle", start_ns=T0 + 1, end_ns=T0 + 8)
        report = verify(out, signed)
        assert reasons(report) == {("ts_recorded_backwards", "old")}
        assert [f.position for f in report.failures] == [2]


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    root = tmp_path_factory.mktemp("keyed")
    now = [T0]
    with AuditEventEmitter(AuditConfig(base_path=root / "trail", trader_id="T1", hmac_key="k3y"),
                           clock=lambda: now[0]) as emitter:
        for minute in range(10):
            now[0] = T0 + minute * MINUTE
            emitter.emit_param_change("ctl", "k", minute, minute + 1, None, event_type="param.k_change")
    return export_bundle(root / "trail", root / "k.bundle", start_ns=T0 + 2 * MINUTE, end_ns=T0 + 5 * MINUTE)


class TestKeyedTrail:
    def test_with_the_trail_key_the_hmac_checkpoint_authenticates_and_checksums_are_checked(self, keyed):
        report = verify_bundle(keyed, hmac_key=b"k3y")
        assert report.claim == "complete" and report.streams[0].trusted and report.streams[0].key_id is None
        assert read_bundle(keyed)[0]["keyed"] is True

    def test_without_it_nothing_authenticates_and_the_text_says_checksums_were_not_checked(self, keyed):
        report = verify_bundle(keyed)
        assert report.claim == "unauthenticated"
        assert "were NOT checked" in report.to_text()

    def test_a_wrong_key_fails_the_checkpoint_and_every_checksum(self, keyed):
        report = verify_bundle(keyed, hmac_key=b"other")
        assert {f.reason for f in report.failures} == {"signature_invalid", "checksum_mismatch"}


class TestUntrustedTrailFiles:
    """The exporter believes neither the sidecar nor the files: the signed checkpoint's root decides."""

    def test_a_damaged_sidecar_is_not_needed_when_the_files_rebuild_the_root(self, tmp_path):
        trail = write_signed_trail(tmp_path, minutes=20, witness=False)
        sidecar = trail.trail / "hot" / "audit.T1.control.leaves"
        sidecar.chmod(0o644)
        sidecar.write_bytes(b"\x01" * 32 * 20)
        out = export_bundle(trail.trail, tmp_path / "s.bundle", start_ns=T0 + 5 * MINUTE, end_ns=T0 + 9 * MINUTE)
        assert verify(out, trail).claim == "complete"

    def test_an_edited_hot_line_is_refused(self, tmp_path):
        trail = write_signed_trail(tmp_path, minutes=20, witness=False)
        (path,) = (trail.trail / "hot").glob("audit.T1.control.*.jsonl")
        path.chmod(0o644)
        path.write_bytes(path.read_bytes().replace(b'"minute":7', b'"minute":8'))
        with pytest.raises(BundleExportError, match="line 7 changed after its leaf was recorded"):
            export_bundle(trail.trail, tmp_path / "e.bundle", start_ns=T0 + 5 * MINUTE, end_ns=T0 + 9 * MINUTE)

    def test_a_trail_without_hot_files_is_refused(self, tmp_path):
        with pytest.raises(BundleExportError, match="nothing to export"):
            export_bundle(tmp_path, tmp_path / "n.bundle", start_ns=T0, end_ns=T0 + 1)


class TestRemovedHotFiles:
    """Lines of hot files that are gone (retention) come from the cold store, checked against the signed leaves."""

    @pytest.fixture
    def three_days(self, tmp_path):
        from audit_core.cold.converter import ParquetConverter
        from audit_core.trust.signing import generate_keypair as keygen

        keygen(tmp_path / "w.key", tmp_path / "w.pub")
        now = [T0]
        with AuditEventEmitter(AuditConfig(base_path=tmp_path / "trail", trader_id="T1", signing_key_path=tmp_path
                                           / "w.key"), clock=lambda: now[0]) as emitter:
            for hour in range(72):
                now[0] = T0 + hour * 60 * MINUTE
                emitter.emit_param_change("ctl", "k", hour, hour + 1, None, event_type="param.k_change")
        hot = tmp_path / "trail" / "hot"
        results = ParquetConverter(hot, tmp_path / "trail" / "cold").convert_all()
        assert all(result.converted for result in results)
        original = sorted(hot.glob("audit.T1.main.*.jsonl"))
        lines = b"".join(path.read_bytes() for path in original).splitlines()
        # What retention does to a converted day whose partition stays (a legal hold on the cold side, say).
        original[0].unlink()
        return tmp_path, lines

    def test_a_window_in_a_removed_file_is_exported_from_the_cold_store(self, three_days):
        root, lines = three_days
        out = export_bundle(root / "trail", root / "cold.bundle", start_ns=T0 + 600 * MINUTE,
                            end_ns=T0 + 26 * 60 * MINUTE)
        report = verify_bundle(out, public_key=load_public_key(root / "w.pub"))
        assert report.claim == "complete", report.to_dict()
        index, entries = read_bundle(out)
        main = stream_of(index, "main")
        assert (main["first"], main["end"]) == (9, 27)  # hour 9 to hour 26: across the removed file's end
        assert entries[main["lines"]] == b"".join(line + b"\n" for line in lines[9:27])

    def test_without_the_cold_store_the_export_says_why(self, three_days):
        root, _ = three_days
        shutil.rmtree(root / "trail" / "cold")
        with pytest.raises(BundleExportError, match="hot files retention removed"):
            export_bundle(root / "trail", root / "x.bundle", start_ns=T0 + 600 * MINUTE, end_ns=T0 + 700 * MINUTE)


def test_a_trusted_keys_file_whose_window_holds_the_signing_time_authenticates(signed, bundle, tmp_path):
    import base64

    raw = raw_public_key(load_public_key(signed.public_key))
    entry = {"key_id": hashlib.sha256(raw).hexdigest()[:16], "public_key": base64.b64encode(raw).decode(),
             "roles": ["writer"], "not_before_ns": T0, "not_after_ns": None}
    keys = tmp_path / "trusted-keys.json"
    keys.write_text(json.dumps({"format": "ledgerline-trusted-keys/1", "keys": [entry]}))
    report = verify_bundle(bundle, trusted_keys=TrustedKeys.load(keys))
    assert report.claim == "complete", report.to_dict()
    index, _ = read_bundle(bundle)
    assert "\nsigned-at " in stream_of(index, "control")["checkpoint"]  # the signing time the window is checked at
    assert re.search(r"signed at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", report.to_text()), report.to_text()


def test_verify_bundle_with_a_malformed_trusted_keys_file_is_a_usage_error(bundle, tmp_path):
    from audit_core.cli import main

    (tmp_path / "keys.json").write_text('{"format": "ledgerline-trusted-keys/1", "keys": []}')
    assert main(["verify-bundle", str(bundle), "--trusted-keys", str(tmp_path / "keys.json")]) == 2
    assert main(["verify-bundle", str(bundle)]) == 0  # valid, unauthenticated: exit 0, and the text says so


def test_a_stream_the_witness_does_not_hold_is_exported_unwitnessed(signed, tmp_path):
    witness = tmp_path / "witness"
    witness.mkdir()
    shutil.copy(signed.witness / "T1.control.checkpoint", witness / "T1.control.checkpoint")
    out = export_bundle(signed.trail, tmp_path / "w.bundle", **WINDOW, witness=witness)
    report = verify(out, signed)
    sizes = {s.origin.rsplit("/", 1)[-1]: s.witnessed_size for s in report.streams}
    assert report.claim == "complete" and sizes == {"control": 60, "quiet": None}
    assert "no witness in the bundle" in report.to_text()
