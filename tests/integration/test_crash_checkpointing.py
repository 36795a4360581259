"""SIGKILL while stream checkpoints are being made: the sidecar, the local note and the witness stay
consistent with the trail, nothing acknowledged is lost, and verify against the witness passes.

Children are ``fork()``ed from the test process (real processes, real files, real fsyncs, a real
SIGKILL) so that 100+ rounds stay fast; they checkpoint every few records and every few
milliseconds, so most kills land during one (hashing, sidecar append and fsync, note replace,
witness replace).
"""

from __future__ import annotations

import os
import random
import select
import signal
import time
from collections import Counter
from pathlib import Path

from audit_core import AuditConfig, AuditEventEmitter, TradeEvent, parse_record
from audit_core.trust.witness import DirectoryWitness
from audit_core.verification import verify_trail

ROUNDS = 110


def config(tmp_path: Path) -> AuditConfig:
    return AuditConfig(base_path=tmp_path / "trail", trader_id="T-CK", stream_id="s1", flush_interval_s=0.005,
                       checkpoint_interval_s=0.003, checkpoint_every_records=3, witness_path=tmp_path / "witness")


def child(tmp_path: Path, round_id: int, out: int) -> None:
    """Emit durable fills until killed; write each order id to ``out`` once its emit returned."""
    emitter = AuditEventEmitter(config(tmp_path))
    os.write(out, b"ready\n")
    index = 0
    while True:
        order_id = f"{round_id}-{index}"
        emitter.emit_trade("trade.fill", "child.trades", "EURUSD", order_id=order_id, side="BUY", size="1",
                           price="1.1", reason="x" * (index % 50))
        os.write(out, order_id.encode() + b"\n")
        emitter.emit_param_change("child.params", "step", index, index + 1, "tick")
        index += 1


def run_round(tmp_path: Path, round_id: int, wait_s: float) -> list[str]:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(read_end)
        try:
            child(tmp_path, round_id, write_end)
        finally:
            os._exit(1)
    os.close(write_end)
    data = b""
    deadline = time.monotonic() + 30
    while b"ready\n" not in data and time.monotonic() < deadline:
        if select.select([read_end], [], [], 1)[0]:
            data += os.read(read_end, 65536)
    time.sleep(wait_s)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    while chunk := os.read(read_end, 65536):
        data += chunk
    os.close(read_end)
    lines = data.split(b"\n")[:-1]  # a cut-off last line was never a whole acknowledgement
    assert lines and lines[0] == b"ready", data[:200]
    return [line.decode() for line in lines[1:]]


def order_ids(hot: Path) -> Counter[str]:
    found: Counter[str] = Counter()
    for path in sorted(hot.glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            if b'"event_type":"trade.' not in line:
                continue
            try:
                event = parse_record(line)
            except ValueError:
                continue
            if isinstance(event, TradeEvent) and event.order_id is not None:
                found[event.order_id] += 1
    return found


def test_kills_during_checkpointing_lose_nothing_and_the_witness_still_verifies(tmp_path: Path) -> None:
    rng = random.Random(20261130)
    returned: list[str] = []
    witness = DirectoryWitness(tmp_path / "witness")
    checkpointed_rounds = 0
    for round_id in range(ROUNDS):
        before = witness.held("T-CK", "s1")
        returned += run_round(tmp_path, round_id, rng.uniform(0.0, 0.2))
        after = witness.held("T-CK", "s1")
        checkpointed_rounds += after is not None and (before is None or after.size > before.size)
        # Reopening recovers the stream, rebuilds the tree from files and sidecar and checkpoints to the
        # witness: a checkpoint the witness took before the kill must be extended, never contradicted.
        with AuditEventEmitter(config(tmp_path)) as recovery:
            pass
        checkpointer = recovery.writer.checkpointer
        assert checkpointer.failures == 0, f"round {round_id}: {checkpointer.last_error}"
        if round_id % 10 == 9 or round_id == ROUNDS - 1:
            report = verify_trail(tmp_path / "trail", witness=tmp_path / "witness")
            assert report.ok, f"round {round_id}:\n" + "\n".join(map(str, report.failures[:5]))
            found = order_ids(tmp_path / "trail" / "hot")
            missing = [order_id for order_id in returned if found[order_id] != 1]
            assert not missing, f"round {round_id}: acknowledged but lost or repeated: {missing[:5]}"
    held = DirectoryWitness(tmp_path / "witness").held("T-CK", "s1")
    assert held is not None
    lines = sum(len(path.read_bytes().splitlines()) for path in (tmp_path / "trail" / "hot").glob("*.jsonl"))
    assert held.size == lines  # the close after the last round witnessed every line
    for directory in (tmp_path / "trail" / "hot", tmp_path / "witness"):
        assert not list(directory.glob(".*.tmp"))  # temp files of killed replaces were cleaned up
    assert len(returned) > ROUNDS  # the kills did land while emits were running
    # ... and in many rounds the child had sent checkpoints to the witness before it was killed.
    assert checkpointed_rounds > ROUNDS // 3, checkpointed_rounds
