"""Stream checkpoints sent to a witness, and verify against them: each attack the anchor stops, on real files."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from audit_core import AuditConfig, AuditEventEmitter, FailureKind, parse_record
from audit_core._layout import stream_checkpoint_path, stream_leaves_path
from audit_core.cli import main
from audit_core.hot.anchors import rebuild_stream
from audit_core.hot.writer import AppendOnlyWriter
from audit_core.trust.stream_tree import MemoryLeaves, StreamTree, make_note, read_note, verify_consistency
from audit_core.trust.witness import CallbackWitness, DirectoryWitness, WitnessConflict, WitnessRefused
from audit_core.verification import verify_trail

TRADER = "T-W"


def config(tmp_path: Path, stream: str = "main", **extra: object) -> AuditConfig:
    options: dict[str, object] = {
        "base_path": tmp_path / "trail", "trader_id": TRADER, "stream_id": stream, "sync_writes": False,
        "checkpoint_interval_s": 3600, "witness_path": tmp_path / "witness", **extra,
    }
    return AuditConfig(**options)  # type: ignore[arg-type]


def emit(emitter: AuditEventEmitter, count: int, start: int = 0) -> None:
    for step in range(start, start + count):
        emitter.emit_param_change("test.params", "threshold", step, step + 1, "tick")


def write_stream(tmp_path: Path, count: int = 20, stream: str = "main", **extra: object) -> AuditEventEmitter:
    with AuditEventEmitter(config(tmp_path, stream, **extra)) as emitter:
        emit(emitter, count)
    return emitter


def hot(tmp_path: Path) -> Path:
    return tmp_path / "trail" / "hot"


def kinds(report: object) -> set[FailureKind]:
    return {failure.kind for failure in report.failures}  # type: ignore[attr-defined]


def newest_file(tmp_path: Path, stream: str = "main") -> Path:
    return sorted(hot(tmp_path).glob(f"audit.{TRADER}.{stream}.*.jsonl"))[-1]


class TestCheckpointsReachTheWitness:
    def test_close_leaves_the_witness_holding_every_line(self, tmp_path: Path) -> None:
        write_stream(tmp_path, 20)
        held = DirectoryWitness(tmp_path / "witness").held(TRADER, "main")
        assert held is not None
        assert held.size == len(newest_file(tmp_path).read_bytes().splitlines())
        assert stream_leaves_path(hot(tmp_path), TRADER, "main").stat().st_size == 32 * held.size
        report = verify_trail(tmp_path / "trail", witness=tmp_path / "witness")
        assert report.ok, report.failures

    def test_periodic_checkpoints_extend_each_other_across_reopens(self, tmp_path: Path) -> None:
        # A remote witness behind a callback: it answers a stale old size with a conflict, as tlog-witness does.
        held: list[tuple[str, int, list[bytes]]] = []

        def publish(note: str, old_size: int, proof: Sequence[bytes]) -> None:
            size = read_note(held[-1][0]).size if held else 0
            if old_size != size:
                raise WitnessConflict(f"ledgerline/{TRADER}/main", size, old_size)
            held.append((note, old_size, list(proof)))

        for round_ in range(3):
            writer = AppendOnlyWriter(config(tmp_path, witness_path=None), witness=CallbackWitness(publish))
            with AuditEventEmitter(config(tmp_path, witness_path=None), writer=writer) as emitter:
                emit(emitter, 5, round_ * 10)
                writer.checkpointer.checkpoint()
                emit(emitter, 5, round_ * 10 + 5)
        assert [read_note(note).size for note, _, _ in held] == [5, 10, 15, 20, 25, 30]
        for (before, _, _), (note, old_size, proof) in itertools.pairwise(held):
            old, new = read_note(before), read_note(note)
            assert old_size == old.size
            verify_consistency(old.size, new.size, old.root, new.root, proof)

    def test_a_failing_witness_is_counted_chained_and_never_reaches_emit(self, tmp_path: Path) -> None:
        down = [True]

        def publish(note: str, old_size: int, proof: Sequence[bytes]) -> None:
            if down[0]:
                raise OSError("witness host unreachable")

        writer = AppendOnlyWriter(config(tmp_path, witness_path=None), witness=CallbackWitness(publish))
        with AuditEventEmitter(config(tmp_path, witness_path=None), writer=writer) as emitter:
            emit(emitter, 3)
            writer.checkpointer.checkpoint()
            emit(emitter, 3, 3)
            writer.checkpointer.checkpoint()  # still down: counted, not chained again
            down[0] = False
            writer.checkpointer.checkpoint()
            emit(emitter, 1, 6)
        assert writer.checkpointer.failures == 2
        assert "witness host unreachable" in str(writer.checkpointer.last_error)
        types = [parse_record(line).event_type for line in newest_file(tmp_path).read_bytes().splitlines()]
        assert [t for t in types if t.startswith("sys.")] == ["sys.checkpoint_failed", "sys.checkpoint_recovered"]
        assert types.index("sys.checkpoint_failed") == 3  # chained right after the records it could not anchor
        assert verify_trail(tmp_path / "trail").ok  # the trail itself is whole

    def test_signed_trail_sends_c2sp_notes_the_witness_checks(self, tmp_path: Path) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from audit_core.trust.checkpoint import verify_checkpoint

        private = Ed25519PrivateKey.generate()
        key_file = tmp_path / "signing.pem"
        key_file.write_bytes(private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        public = private.public_key()
        write_stream(tmp_path, 8, signing_key_path=key_file)
        note = (tmp_path / "witness" / f"{TRADER}.main.checkpoint").read_text()
        assert verify_checkpoint(note, public).origin == f"ledgerline/{TRADER}/main"
        assert verify_trail(tmp_path / "trail", public_key=public, witness=tmp_path / "witness").ok
        other = Ed25519PrivateKey.generate().public_key()
        report = verify_trail(tmp_path / "trail", public_key=other, witness=tmp_path / "witness")
        assert FailureKind.KEY_UNTRUSTED in kinds(report)  # the note's key is not the trusted one (format.md 6)

    def test_hmac_trail_notes_carry_an_hmac_line(self, tmp_path: Path) -> None:
        write_stream(tmp_path, 8, hmac_key="k-secret")
        note = (tmp_path / "witness" / f"{TRADER}.main.checkpoint").read_text()
        assert read_note(note, hmac_key=b"k-secret").trust == "hmac"
        assert verify_trail(tmp_path / "trail", hmac_key=b"k-secret", witness=tmp_path / "witness").ok
        report = verify_trail(tmp_path / "trail", hmac_key=b"wrong", witness=tmp_path / "witness")
        assert not report.ok


class TestAttacksTheWitnessDetects:
    def test_truncating_the_newest_file_and_deleting_its_seal_and_checkpoint(self, tmp_path: Path) -> None:
        write_stream(tmp_path, 20)
        newest = newest_file(tmp_path)
        lines = newest.read_bytes().splitlines(keepends=True)
        count = len(lines)
        os.chmod(newest, 0o640)
        newest.write_bytes(b"".join(lines[:-3]))  # three whole records off the end
        for sidecar in (newest.with_name(newest.name + ".seal"), newest.with_name(newest.name + ".checkpoint")):
            sidecar.unlink(missing_ok=True)
        stream_leaves_path(hot(tmp_path), TRADER, "main").unlink()  # and the tree sidecar
        assert verify_trail(tmp_path / "trail").ok  # without the anchor this looks like a live file
        report = verify_trail(tmp_path / "trail", witness=tmp_path / "witness")
        assert kinds(report) == {FailureKind.ANCHOR_MISMATCH}
        assert f"witnessed at {count} line(s) but holds {count - 3}" in str(report.failures[0])

    def test_rewriting_a_covered_line_is_a_root_mismatch(self, tmp_path: Path) -> None:
        write_stream(tmp_path, 20)
        checkpoint = tmp_path / "saved.checkpoint"
        shutil.copy(tmp_path / "witness" / f"{TRADER}.main.checkpoint", checkpoint)
        # Re-derive the whole trail under another history: the witness's root tells.
        shutil.rmtree(tmp_path / "trail")
        write_stream(tmp_path / "other", 21)
        shutil.copytree(tmp_path / "other" / "trail", tmp_path / "trail")
        report = verify_trail(tmp_path / "trail", checkpoint=checkpoint)
        assert kinds(report) == {FailureKind.ANCHOR_MISMATCH}
        assert "root expected" in str(report.failures[0])

    def test_deleting_a_whole_stream_is_detected(self, tmp_path: Path) -> None:
        write_stream(tmp_path, 5, stream="keep")
        write_stream(tmp_path, 5, stream="gone")
        for path in hot(tmp_path).glob(f"audit.{TRADER}.gone.*"):
            path.unlink()
        assert verify_trail(tmp_path / "trail").ok
        report = verify_trail(tmp_path / "trail", witness=tmp_path / "witness")
        assert kinds(report) == {FailureKind.STREAM_MISSING}
        assert f"stream {TRADER}.gone is witnessed at" in str(report.failures[0])

    def test_deleting_the_whole_trail_is_a_missing_stream(self, tmp_path: Path) -> None:
        write_stream(tmp_path, 5)
        shutil.rmtree(tmp_path / "trail")
        (tmp_path / "trail").mkdir()
        report = verify_trail(tmp_path / "trail", witness=tmp_path / "witness")
        assert FailureKind.STREAM_MISSING in kinds(report)

    def test_deleting_the_first_file_leaves_lines_only_the_sidecar_has(self, tmp_path: Path) -> None:
        day = 86_400 * 10**9
        now = [20_000 * day]
        cfg = config(tmp_path)
        with AuditEventEmitter(cfg, clock=lambda: now[0]) as emitter:
            emit(emitter, 4)
            now[0] += day
            emit(emitter, 4, 4)
        first = sorted(hot(tmp_path).glob(f"audit.{TRADER}.main.*.jsonl"))[0]
        first.unlink()
        report = verify_trail(tmp_path / "trail", witness=tmp_path / "witness")
        assert FailureKind.STREAM_MISSING in kinds(report)

    def test_a_tampered_sidecar_is_detected(self, tmp_path: Path) -> None:
        write_stream(tmp_path, 10)
        sidecar = stream_leaves_path(hot(tmp_path), TRADER, "main")
        data = bytearray(sidecar.read_bytes())
        data[40] ^= 1
        sidecar.write_bytes(bytes(data))
        report = verify_trail(tmp_path / "trail", witness=tmp_path / "witness")
        assert kinds(report) == {FailureKind.ANCHOR_MISMATCH}
        assert "sidecar's leaf 1 differs" in str(report.failures[0])


class TestTheWitnessRefuses:
    def test_rollback_split_view_and_a_stale_old_size(self, tmp_path: Path) -> None:
        notes: list[str] = []
        writer = AppendOnlyWriter(config(tmp_path, witness_path=None),
                                  witness=CallbackWitness(lambda note, old, proof: notes.append(note)))
        with AuditEventEmitter(config(tmp_path, witness_path=None), writer=writer) as emitter:
            emit(emitter, 3)
            writer.checkpointer.checkpoint()
            emit(emitter, 3, 3)
        witness = DirectoryWitness(tmp_path / "witness")
        first, last = notes[0], notes[-1]
        witness.add_checkpoint(first, 0, [])
        tree = StreamTree(MemoryLeaves(rebuild_stream([newest_file(tmp_path)], []).leaves), read_note(last).size)
        old_size, new_size = read_note(first).size, read_note(last).size
        with pytest.raises(WitnessConflict) as conflict:
            witness.add_checkpoint(last, 0, [])
        assert conflict.value.held_size == old_size
        forged = tree.consistency_proof(old_size, new_size)
        forged[0] = bytes(32)
        with pytest.raises(WitnessRefused, match="does not hold"):
            witness.add_checkpoint(last, old_size, forged)
        witness.add_checkpoint(last, old_size, tree.consistency_proof(old_size, new_size))
        with pytest.raises(WitnessRefused, match="rollback"):
            witness.add_checkpoint(first, new_size, [])
        split = make_note(f"ledgerline/{TRADER}/main", new_size, bytes(32))  # same size, another root
        with pytest.raises(WitnessRefused, match="split view"):
            witness.add_checkpoint(split, new_size, [])
        held = witness.held(TRADER, "main")
        assert held is not None and held.note == last

    def test_a_writer_on_a_rolled_back_stream_reports_it(self, tmp_path: Path) -> None:
        write_stream(tmp_path, 10)
        newest = newest_file(tmp_path)
        os.chmod(newest, 0o640)
        newest.write_bytes(b"".join(newest.read_bytes().splitlines(keepends=True)[:-4]))
        for suffix in (".seal", ".checkpoint"):
            newest.with_name(newest.name + suffix).unlink(missing_ok=True)
        with AuditEventEmitter(config(tmp_path)) as emitter:
            emit(emitter, 1, 100)
            checkpointer = emitter.writer.checkpointer
        assert checkpointer.failures >= 1
        assert "(a rollback or truncation)" in str(checkpointer.last_error)

    def test_untrusted_witness_files_are_reported_not_believed(self, tmp_path: Path) -> None:
        write_stream(tmp_path, 5)
        witness = tmp_path / "witness"
        (witness / "T-W.other.checkpoint").write_bytes(b"\xff\xfegarbage")
        (witness / "T-W.link.checkpoint").symlink_to(witness / f"{TRADER}.main.checkpoint")
        shutil.copy(witness / f"{TRADER}.main.checkpoint", witness / "T-W.renamed.checkpoint")
        report = verify_trail(tmp_path / "trail", witness=witness)
        unreadable = [f for f in report.failures if f.kind == FailureKind.UNREADABLE_FILE]
        assert {Path(f.file).name for f in unreadable} == {
            "T-W.other.checkpoint", "T-W.link.checkpoint", "T-W.renamed.checkpoint"}

    def test_an_empty_witness_anchors_nothing_and_says_so(self, tmp_path: Path) -> None:
        write_stream(tmp_path, 5)
        (tmp_path / "empty").mkdir()
        report = verify_trail(tmp_path / "trail", witness=tmp_path / "empty")
        assert kinds(report) == {FailureKind.NOTHING_VERIFIED}


class TestCli:
    def test_verify_witness_and_prove_consistency(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        with AuditEventEmitter(config(tmp_path)) as emitter:
            emit(emitter, 4)
            emitter.writer.checkpointer.checkpoint()
            shutil.copy(stream_checkpoint_path(hot(tmp_path), TRADER, "main"), tmp_path / "old.checkpoint")
            emit(emitter, 4, 4)
        shutil.copy(stream_checkpoint_path(hot(tmp_path), TRADER, "main"), tmp_path / "new.checkpoint")
        trail, old, new = (str(tmp_path / name) for name in ("trail", "old.checkpoint", "new.checkpoint"))
        assert main(["verify", trail, "--witness", str(tmp_path / "witness")]) == 0
        assert main(["prove", "--consistency", old, new, trail]) == 0
        assert '"old_size": 4' in capsys.readouterr().out
        assert main(["prove", "--consistency", new, old, trail]) == 1  # backwards: a rollback
        newest = newest_file(tmp_path)
        os.chmod(newest, 0o640)
        newest.write_bytes(b"".join(newest.read_bytes().splitlines(keepends=True)[:-2]))
        assert main(["verify", trail, "--checkpoint", new]) == 1
        assert main(["prove", "--consistency", old, new, trail]) == 1
        assert "anchor_mismatch" in capsys.readouterr().out
        garbage = tmp_path / "garbage.checkpoint"
        garbage.write_bytes(b"ledgerline/T-W/main\nnot a size\n")
        assert main(["verify", trail, "--checkpoint", str(garbage)]) == 1
        assert "unreadable_file" in capsys.readouterr().out
        assert main(["prove", "--consistency", str(garbage), new, trail]) == 1  # FAILED, one line, no traceback
        assert "FAILED" in capsys.readouterr().err


class TestRetention:
    """Files retention removed (with a verified sys.retention record) are not a missing stream: the
    sidecar keeps their leaves, and the rebuilt tree must still reach the witnessed root."""

    @pytest.fixture
    def retained(self, tmp_path: Path) -> Path:
        from audit_core.cold.converter import ParquetConverter
        from audit_core.cold.retention import apply_retention

        day = 86_400 * 10**9
        start = int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()) * 10**9
        now = [start]
        with AuditEventEmitter(config(tmp_path), clock=lambda: now[0]) as emitter:
            for i in range(5 * 4):  # four records a day for five days
                now[0] = start + i * day // 4 + 1
                emit(emitter, 1, i)
        trail = tmp_path / "trail"
        assert all(r.converted for r in ParquetConverter(trail / "hot", trail / "cold").convert_all())
        after = dt.datetime(2026, 1, 7, 0, 0, 1, tzinfo=dt.UTC)
        plan = apply_retention(trail / "hot", trail / "cold", days=3, now=after)
        assert len(plan.hot_files) == 3
        return trail

    def test_a_stream_whose_first_files_retention_removed_still_verifies(self, retained: Path, tmp_path: Path) -> None:
        report = verify_trail(retained, witness=tmp_path / "witness")
        assert report.ok, report.failures

    def test_a_tampered_sidecar_of_removed_lines_is_detected(self, retained: Path, tmp_path: Path) -> None:
        sidecar = stream_leaves_path(retained / "hot", TRADER, "main")
        data = bytearray(sidecar.read_bytes())
        data[0] ^= 1  # the first removed line's leaf
        sidecar.write_bytes(bytes(data))
        report = verify_trail(retained, witness=tmp_path / "witness")
        assert kinds(report) == {FailureKind.ANCHOR_MISMATCH}
        assert "root expected" in str(report.failures[0])

    def test_a_deleted_sidecar_loses_the_removed_lines_and_is_detected(self, retained: Path, tmp_path: Path) -> None:
        stream_leaves_path(retained / "hot", TRADER, "main").unlink()
        report = verify_trail(retained, witness=tmp_path / "witness")
        assert kinds(report) == {FailureKind.ANCHOR_MISMATCH}


class TestConfig:
    @pytest.mark.parametrize(("field", "value"), [("checkpoint_interval_s", 0), ("checkpoint_every_records", 0)])
    def test_bad_values_name_the_field(self, tmp_path: Path, field: str, value: object) -> None:
        from pydantic import ValidationError

        with pytest.raises(ValidationError, match=field):
            config(tmp_path, **{field: value})

    def test_checkpoints_off_writes_no_sidecar_and_no_note(self, tmp_path: Path) -> None:
        write_stream(tmp_path, 5, checkpoint_interval_s=None)
        assert not stream_leaves_path(hot(tmp_path), TRADER, "main").exists()
        assert not stream_checkpoint_path(hot(tmp_path), TRADER, "main").exists()
        assert not (tmp_path / "witness").exists()

    def test_every_n_records_checkpoints_without_waiting_for_the_interval(self, tmp_path: Path) -> None:
        with AuditEventEmitter(config(tmp_path, checkpoint_every_records=5)) as emitter:
            emit(emitter, 12)
            deadline = 200
            while emitter.writer.checkpointer.checkpoints == 0 and deadline:
                threading.Event().wait(0.05)  # the checkpointer's thread, not a timing assert: it polls every 50 ms
                deadline -= 1
            assert emitter.writer.checkpointer.checkpoints >= 1


class TestSidecarFailures:
    def test_a_failed_sidecar_sync_is_counted_and_the_next_checkpoint_rebuilds(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import audit_core.hot._checkpointer as checkpointer_module

        class FailingSync:
            """The os module as the checkpointer sees it, with fdatasync failing as on a dying disk."""

            def __getattr__(self, name: str) -> object:
                return getattr(os, name)

            @staticmethod
            def fdatasync(fd: int) -> None:
                raise OSError(5, "Input/output error")

        with AuditEventEmitter(config(tmp_path)) as emitter:
            checkpointer = emitter.writer.checkpointer
            emit(emitter, 3)
            checkpointer.checkpoint()
            monkeypatch.setattr(checkpointer_module, "os", FailingSync())
            emit(emitter, 3, 3)
            checkpointer.checkpoint()
            assert checkpointer.failures == 1 and "Input/output error" in str(checkpointer.last_error)
            monkeypatch.undo()
            emit(emitter, 3, 6)
        assert checkpointer.failures == 1
        lines = len(newest_file(tmp_path).read_bytes().splitlines())
        assert stream_leaves_path(hot(tmp_path), TRADER, "main").stat().st_size == 32 * lines
        assert verify_trail(tmp_path / "trail", witness=tmp_path / "witness").ok
