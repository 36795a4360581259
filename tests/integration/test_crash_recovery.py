"""Crash recovery: real processes killed with SIGKILL, and a torn write at every byte offset of a record.

The child processes write real files with real fsyncs; the parent kills them at random moments,
recovers the stream by opening it again, and checks that ``verify`` passes and that every durable
emit that had returned before the kill is in the trail exactly once.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from audit_core import AuditConfig, AuditEventEmitter, FailureKind, TradeEvent, parse_record, verify
from audit_core.trust.record import split_record

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TRADER = "T-CRASH"
STREAM = "s1"

#: Emits durable fills (and, from a second thread, non-durable param changes) until killed. After each
#: durable emit returns it prints the order id and its ts_recorded: the parent knows which emits had
#: returned at the kill, and when (by the child's clock).
CHILD_CODE = r"""
import sys, threading, time
from audit_core import AuditConfig, AuditEventEmitter

base, round_id = sys.argv[1], sys.argv[2]
options, clock = {}, time.time_ns
if len(sys.argv) > 3:
    # Degraded-rotation rounds: a spill directory, and a clock that starts `lead` ns before a UTC
    # midnight and runs at wall speed, so the stream rotates while the parent keeps its disk full.
    fallback, midnight, lead = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    started = time.monotonic_ns()
    clock = lambda: midnight - lead + time.monotonic_ns() - started
    options = {"fallback_path": fallback, "retry_interval_s": 0.01}
config = AuditConfig(base_path=base, trader_id="T-CRASH", stream_id="s1", flush_interval_s=0.005, **options)
emitter = AuditEventEmitter(config, clock=clock)

def params():
    step = 0
    while True:
        emitter.emit_param_change("child.params", "threshold", step, step + 1, "tick")
        step += 1
        if step % 4 == 0:
            time.sleep(0.001)  # a busy strategy, not a flood: keeps the trail small enough to verify each round

threading.Thread(target=params, daemon=True).start()
sys.stdout.write("ready\n")
sys.stdout.flush()
index = 0
while True:
    order_id = f"{round_id}-{index}"
    fill = emitter.emit_trade(
        "trade.fill", "child.trades", "EURUSD", order_id=order_id, side="BUY", size="1", price="1.1",
        reason="x" * (index % 97),
    )
    sys.stdout.write(f"{order_id} {fill.ts_recorded}\n")
    sys.stdout.flush()
    if index % 4 == 0:
        emitter.emit_param_change("child.main", "position", index, index + 1)
    index += 1
"""


def crash_config(base: Path) -> AuditConfig:
    return AuditConfig(base_path=base, trader_id=TRADER, stream_id=STREAM)


def hot_files(base: Path) -> list[Path]:
    return sorted((base / "hot").glob("*.jsonl"))


def file_order_ids(path: Path) -> Counter[str]:
    """Order ids of the trade records in a hot file; lines that are not records (torn) are skipped."""
    found: Counter[str] = Counter()
    for line in path.read_bytes().splitlines():
        if b'"event_type":"trade.' not in line:
            continue
        try:
            event = parse_record(line)
        except ValueError:  # pydantic.ValidationError and json.JSONDecodeError are ValueErrors
            continue
        if isinstance(event, TradeEvent):
            assert event.order_id is not None
            found[event.order_id] += 1
    return found


def trail_order_ids(base: Path, cache: dict[tuple[str, int, int], Counter[str]]) -> Counter[str]:
    """Order ids of every trade record in every hot file; files unchanged since the last call are not re-read."""
    found: Counter[str] = Counter()
    for path in hot_files(base):
        info = path.stat()
        key = (path.name, info.st_size, info.st_mtime_ns)
        if key not in cache:
            cache[key] = file_order_ids(path)
        found += cache[key]
    return found


class Child:
    """One child process; ``returned`` collects the order ids it printed."""

    def __init__(self, base: Path, round_id: str, extra: tuple[str, ...] = ()) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD_CODE, str(base), round_id, *extra],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        os.set_blocking(self.process.stdout.fileno(), False)
        self._buffer = b""
        self.ready = False
        self.returned: list[str] = []
        self.recorded: list[int] = []  # ts_recorded of each returned emit

    def _take(self, data: bytes) -> None:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if line == b"ready":
                self.ready = True
            else:
                order_id, _, recorded = line.decode().partition(" ")
                self.returned.append(order_id)
                self.recorded.append(int(recorded))

    def read_until(self, done: Callable[[], bool], timeout: float = 20.0) -> None:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while not done():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.process.poll() is not None:
                    self.kill()
                    pytest.fail(f"child did not get there (exit {self.process.returncode}): {self.stderr()}")
                if selector.select(remaining):
                    data = os.read(self.process.stdout.fileno(), 65536)
                    if data:
                        self._take(data)

    def kill(self) -> None:
        """SIGKILL, reap, then collect every whole line the child printed before it died."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        assert self.process.stdout is not None
        while data := os.read(self.process.stdout.fileno(), 65536):
            self._take(data)

    def stderr(self) -> str:
        assert self.process.stderr is not None
        return self.process.stderr.read().decode(errors="replace")

    def close(self) -> None:
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


class TestSigkillAtRandomMoments:
    ROUNDS = 60

    def test_every_returned_durable_emit_survives_every_kill(self, tmp_path):
        rng = random.Random(20260301)
        base = tmp_path / "trail"
        config = crash_config(base)
        returned: list[str] = []
        torn_recovered = 0
        cache: dict[tuple[str, int, int], Counter[str]] = {}
        for round_no in range(self.ROUNDS):
            child = Child(base, f"r{round_no}")
            try:
                child.read_until(lambda c=child: c.ready)
                if round_no % 2:
                    time.sleep(rng.uniform(0.005, 0.080))
                else:
                    wanted = rng.randint(1, 40)
                    child.read_until(lambda c=child, n=wanted: len(c.returned) >= n)
                child.kill()
                assert child.process.returncode == -signal.SIGKILL, child.stderr()
            finally:
                child.close()
            returned += child.returned

            # Opening the stream again recovers it (ends a torn line, chains sys.recovery); close seals it.
            with AuditEventEmitter(config) as recovery:
                assert recovery.writer.stream_id == STREAM
                torn_recovered += bool(recovery.writer.tail.torn_bytes)

            report = verify(base)
            assert report.ok, f"round {round_no}:\n{report.to_text()}"
            assert all(torn.kind is FailureKind.TORN_LINE for torn in report.recovered)
            assert len(report.recovered) == torn_recovered
            assert len(report.streams) == 1
            found = trail_order_ids(base, cache)
            missing = [order_id for order_id in returned if found[order_id] != 1]
            assert not missing, f"round {round_no}: returned emits not in the trail exactly once: {missing[:10]}"
            duplicated = [order_id for order_id, count in found.items() if count > 1]
            assert not duplicated, f"round {round_no}: duplicated in the trail: {duplicated[:10]}"

        assert len(returned) > self.ROUNDS, "the children hardly got to emit: kills came too early to test anything"
        # One file per round: each child continues the sealed stream in a new segment, which its
        # recovery (the parent's emitter) continues after the kill and seals.
        files = hot_files(base)
        days = {path.name.split(".")[3] for path in files}
        assert len(files) == self.ROUNDS + len(days) - 1  # plus one file per UTC midnight crossed, if any
        sequences = [split_record(line).sequence for path in files for line in path.read_bytes().splitlines()
                     if line.endswith(b"}")]
        assert sequences == list(range(len(sequences)))


class TestSigkillDuringDegradedRotation:
    """Kills while the disk is full and the stream crosses a UTC midnight (spill + rotation degraded).

    Each round the child starts shortly before a midnight of its own clock; the parent fills the
    tmpfs the trail lives on, the child degrades (non-durable records wait, durable ones are spilled
    and synced), midnight passes, and the child is killed at a random moment. The parent frees the
    disk and reopens the stream (which ends a torn line and imports the spill). Every round: verify
    passes and every durable emit that returned is in the trail exactly once.
    """

    ROUNDS = 40

    def test_every_returned_durable_emit_survives_kills_during_a_degraded_rotation(self, tmp_path):
        from test_disk_full import fill, mounted_tmpfs

        rng = random.Random(20261130)
        with mounted_tmpfs(tmp_path, size="96m") as disk:  # room for 40 rounds of imported spills
            base, fallback = disk / "trail", tmp_path / "fallback"
            config = AuditConfig(base_path=base, trader_id=TRADER, stream_id=STREAM, fallback_path=fallback)
            returned: list[str] = []
            cache: dict[tuple[str, int, int], Counter[str]] = {}
            degraded_after_midnight = 0
            for round_no in range(self.ROUNDS):
                midnight = FIRST_MIDNIGHT + round_no * NS_PER_DAY
                lead = rng.randint(20, 100) * 1_000_000  # ms before midnight, by the child's clock
                child = Child(base, f"d{round_no}", (str(fallback), str(midnight), str(lead)))
                filler = None
                try:
                    child.read_until(lambda c=child: c.ready)
                    wanted = rng.randint(1, 8)
                    child.read_until(lambda c=child, n=wanted: len(c.returned) >= n)
                    spilled_before = spill_size(fallback)
                    filler = fill(disk)
                    time.sleep(rng.uniform(0.02, 0.25))
                    child.kill()
                    assert child.process.returncode == -signal.SIGKILL, child.stderr()
                finally:
                    child.close()
                    if filler is not None:
                        filler.unlink()
                returned += child.returned
                if spill_size(fallback) > spilled_before and max(child.recorded) >= midnight:
                    degraded_after_midnight += 1

                with AuditEventEmitter(config, clock=lambda m=midnight: m + NS_PER_DAY // 2):
                    pass  # recovery: ends a torn line, imports the spill, seals

                report = verify(base)
                assert report.ok, f"round {round_no}:\n{report.to_text()}"
                found = trail_order_ids(base, cache)
                missing = [order_id for order_id in returned if found[order_id] != 1]
                assert not missing, f"round {round_no}: returned emits not in the trail exactly once: {missing[:10]}"
                duplicated = [order_id for order_id, count in found.items() if count > 1]
                assert not duplicated, f"round {round_no}: duplicated in the trail: {duplicated[:10]}"

        # Most kills must have come while degraded and after the child's midnight, or this tested little.
        assert degraded_after_midnight >= self.ROUNDS // 2, degraded_after_midnight


FIRST_MIDNIGHT = 1_767_657_600 * 10**9  # 2026-01-06 00:00:00 UTC
NS_PER_DAY = 86_400 * 10**9


def spill_size(fallback: Path) -> int:
    return sum(path.stat().st_size for path in fallback.glob("*")) if fallback.exists() else 0


# --- torn writes at every byte offset -------------------------------------------------------------


def build_crashed_trail(base: Path, crash: Callable[[Any], None]) -> tuple[Path, bytes]:
    """A trail whose writer crashed (unsealed file); returns its file and one more whole record line.

    The extra record is what the crashed writer would have appended next: it is taken off the end of
    the file, so its sequence and prev_hash continue the chain exactly as a real torn write would.
    """
    emitter = AuditEventEmitter(crash_config(base))
    emitter.emit_param_change("torn-test", "limit", 1, 2, "setup")
    emitter.emit_trade("trade.order", "torn-test", "ES", order_id="o-1", side="SELL", size="3")
    emitter.emit_param_change("torn-test", "limit", 2, {"nested": ["é", 1.5, None]}, "unicode")
    emitter.emit_trade("trade.fill", "torn-test", "ES", order_id="o-1", side="SELL", size="3", price="5012.25")
    crash(emitter)
    (path,) = hot_files(base)
    data = path.read_bytes()
    cut = data.rstrip(b"\n").rfind(b"\n") + 1
    os.chmod(path, 0o640)
    path.write_bytes(data[:cut])
    return path, data[cut:]


def recovery_payloads(path: Path) -> list[dict[str, Any]]:
    payloads = []
    for line in path.read_bytes().splitlines():
        if b'"event_type":"sys.recovery"' in line:
            payloads.append(json.loads(line)["payload"])
    return payloads


def recover_torn_write(template: Path, name: str, record: bytes, k: int, base: Path) -> list[str]:
    """Copy ``template``, append ``record[:k]`` (a write torn after k bytes), recover, check; the problems."""
    shutil.copytree(template, base)
    target = base / "hot" / name
    with target.open("ab") as handle:
        handle.write(record[:k])
    before = target.read_bytes()

    with AuditEventEmitter(crash_config(base)) as emitter:
        emitter.emit_param_change("torn-test", "after", k, k + 1, "after recovery")

    after = target.read_bytes()
    report = verify(base)
    problems = []
    if not after.startswith(before):
        problems.append("bytes before the recovery were rewritten")
    if not report.ok:
        problems.append(report.to_text())
    sequences = [split_record(line).sequence for line in after.splitlines() if line.endswith(b"}")]
    if sequences != list(range(len(sequences))):
        problems.append(f"sequences are not 0..n-1 in file order: {sequences}")
    payloads = recovery_payloads(target)
    expected = {
        "reason": "torn_write",
        "torn_file": name,
        "torn_offset": len(before) - k,
        "torn_length": k,
        "torn_sha256": hashlib.sha256(record[:k]).hexdigest(),
    }
    if k == len(record) - 1 and not payloads and not report.recovered:
        # Everything but the newline: ending the line leaves a whole record that continues the chain,
        # which a writer may keep as the last record instead of reporting a torn write.
        pass
    elif len(report.recovered) != 1 or report.recovered[0].kind is not FailureKind.TORN_LINE:
        problems.append(f"expected exactly one recovered torn line, got {report.recovered}")
    elif len(payloads) != 1 or {key: payloads[0].get(key) for key in expected} != expected:
        problems.append(f"recovery payload {payloads} does not describe {expected}")
    shutil.rmtree(base)
    return [f"k={k} of {len(record)}: {problem}" for problem in problems]


class TestTornWriteAtEveryOffset:
    def test_every_proper_prefix_of_a_record_is_recovered_and_reported(self, tmp_path, crash):
        template = tmp_path / "template"
        path, record = build_crashed_trail(template, crash)
        assert record.endswith(b"\n") and len(record) > 400

        wrong = [
            problem
            for k in range(1, len(record) - 1)
            for problem in recover_torn_write(template, path.name, record, k, tmp_path / f"k{k}")
        ]

        assert not wrong, f"{len(wrong)} problem(s):\n" + "\n".join(wrong[:5])

    def test_record_torn_just_before_its_newline_is_recovered_without_a_duplicate_sequence(self, tmp_path, crash):
        """The whole record reached the file but its newline did not (k = len(line) - 1)."""
        template = tmp_path / "template"
        path, record = build_crashed_trail(template, crash)

        wrong = recover_torn_write(template, path.name, record, len(record) - 1, tmp_path / "k")

        assert not wrong, "\n".join(wrong)


class TestUnrecoveredTornLines:
    def test_torn_line_at_the_end_of_a_crashed_file_without_recovery_is_a_failure(self, tmp_path, crash):
        path, record = build_crashed_trail(tmp_path, crash)
        with path.open("ab") as handle:
            handle.write(record[:40])

        report = verify(tmp_path)

        assert not report.ok
        assert [f.kind for f in report.failures] == [FailureKind.TORN_LINE]
        assert report.failures[0].sequence == split_record(record).sequence
        assert report.recovered == []

    def test_torn_bytes_appended_to_a_closed_trail_copy_are_a_failure(self, tmp_path):
        original = tmp_path / "original"
        with AuditEventEmitter(crash_config(original)) as emitter:
            for index in range(3):
                emitter.emit_param_change("torn-test", "k", index, index + 1)
        copy = tmp_path / "copy"
        shutil.copytree(original, copy)
        (path,) = hot_files(copy)
        last = path.read_bytes().splitlines(keepends=True)[-1]
        os.chmod(path, 0o640)
        with path.open("ab") as handle:
            handle.write(last[: len(last) // 2])

        report = verify(copy)

        assert not report.ok
        assert FailureKind.TORN_LINE in {f.kind for f in report.failures}
        assert report.recovered == []
        assert verify(original).ok

    @pytest.mark.parametrize("sealed", [True, False], ids=["sealed", "crashed"])
    @pytest.mark.parametrize("cut", [0.5, -2])
    def test_truncated_line_in_the_middle_of_a_file_is_a_failure(self, tmp_path, crash, sealed, cut):
        emitter = AuditEventEmitter(crash_config(tmp_path))
        for index in range(4):
            emitter.emit_param_change("torn-test", f"key-{index}", index, index + 1)
        emitter.close() if sealed else crash(emitter)
        (path,) = hot_files(tmp_path)
        lines = path.read_bytes().splitlines(keepends=True)
        # A truncated copy of record 1 between records 1 and 2, no sys.recovery for it. It is cut after
        # the point where records 1 and 2 differ, so it is not a prefix of the line that follows it.
        common = next(i for i, (a, b) in enumerate(zip(lines[1], lines[2], strict=False)) if a != b)
        end = int(len(lines[1]) * cut) if cut > 0 else len(lines[1]) + int(cut)
        assert end > common
        lines.insert(2, lines[1][:end] + b"\n")
        os.chmod(path, 0o640)
        path.write_bytes(b"".join(lines))

        report = verify(tmp_path)

        assert not report.ok
        assert report.recovered == []
        assert any(f.line == 3 and f.kind in (FailureKind.UNPARSEABLE_LINE, FailureKind.TORN_LINE)
                   for f in report.failures), report.to_text()

    def test_recovery_record_for_a_different_torn_line_does_not_excuse_it(self, tmp_path, crash):
        path, record = build_crashed_trail(tmp_path, crash)
        with path.open("ab") as handle:
            handle.write(record[:50])
        with AuditEventEmitter(crash_config(tmp_path)):
            pass
        assert verify(tmp_path).ok
        # Change the torn bytes (same length): the sys.recovery record's sha256 no longer matches them.
        data = bytearray(path.read_bytes())
        offset = recovery_payloads(path)[0]["torn_offset"]
        data[offset + 10] ^= 0x01
        os.chmod(path, 0o640)
        path.write_bytes(bytes(data))

        report = verify(tmp_path)

        assert not report.ok
        assert report.recovered == []
