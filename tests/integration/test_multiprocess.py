"""Two processes, many threads each, one base_path: two streams, each whole, gapless and verified.

Each process takes its own stream through an exclusive lock (the default ``main`` moves to ``main-2``
when it is held), so neither ever writes into the other's file or chain.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from audit_core import AuditConfig, AuditEventEmitter, AuditWriteError, verify
from audit_core._layout import parse_hot_file_name
from audit_core.trust.record import GENESIS_HASH

PROJECT_ROOT = Path(__file__).resolve().parents[2]
THREADS = 8
PARAMS_PER_THREAD = 2000
TRADES_PER_THREAD = 10

#: argv: base_path, tag, threads, params per thread, trades per thread. Prints {"stream", "pid"} once
#: its stream is locked, waits for a line on stdin, writes from all threads at once, closes, prints counts.
CHILD_CODE = r"""
import json, os, sys, threading
from audit_core import AuditConfig, AuditEventEmitter

base, tag = sys.argv[1], sys.argv[2]
threads, params, trades = map(int, sys.argv[3:6])
emitter = AuditEventEmitter(AuditConfig(base_path=base))
print(json.dumps({"stream": emitter.writer.stream_id, "pid": os.getpid()}), flush=True)
sys.stdin.readline()
barrier = threading.Barrier(threads)
errors = []

def work(index):
    try:
        barrier.wait()
        every = max(1, params // trades) if trades else 0
        for step in range(params):
            emitter.emit_param_change(f"{tag}.t{index}", "step", step, step + 1)
            if every and step % every == 0:
                emitter.emit_trade(
                    "trade.fill", f"{tag}.t{index}", "ES", order_id=f"{tag}-{index}-{step}",
                    side="BUY", size="1", price="5000.25",
                )
    except BaseException as exc:
        errors.append(repr(exc))

workers = [threading.Thread(target=work, args=(index,)) for index in range(threads)]
for worker in workers:
    worker.start()
for worker in workers:
    worker.join()
emitter.close()
print(json.dumps({"errors": errors, "stats": vars(emitter.writer.stats)}), flush=True)
"""


class Child:
    def __init__(self, base: Path, tag: str, threads: int = 0, params: int = 0, trades: int = 0) -> None:
        self.tag = tag
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD_CODE, str(base), tag, str(threads), str(params), str(trades)],
            cwd=PROJECT_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.hello = self._line()

    def _line(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(10)
            assert self.process.stderr is not None
            pytest.fail(f"child {self.tag} exited {self.process.returncode}: {self.process.stderr.read()}")
        return json.loads(line)

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def finish(self, timeout: float = 120) -> dict[str, Any]:
        result = self._line()
        assert self.process.wait(timeout) == 0
        return result

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()


def test_two_processes_with_eight_threads_each_get_two_whole_gapless_streams(tmp_path):
    children = [Child(tmp_path, tag, THREADS, PARAMS_PER_THREAD, TRADES_PER_THREAD) for tag in ("proc-a", "proc-b")]
    try:
        for child in children:
            child.go()
        results = [child.finish() for child in children]
    finally:
        for child in children:
            child.stop()

    assert [result["errors"] for result in results] == [[], []]
    streams = {child.hello["stream"]: child.tag for child in children}
    assert sorted(streams) == ["main", "main-2"]
    per_process = THREADS * (PARAMS_PER_THREAD + TRADES_PER_THREAD)

    files = sorted((tmp_path / "hot").glob("*.jsonl"))
    by_stream: dict[str, list[Path]] = defaultdict(list)
    for path in files:
        name = parse_hot_file_name(path)
        assert name is not None, path.name
        by_stream[name.stream_id].append(path)
    assert sorted(by_stream) == ["main", "main-2"]
    assert not set(by_stream["main"]) & set(by_stream["main-2"])

    for stream, paths in by_stream.items():
        tag = streams[stream]
        rows = []
        for path in paths:
            data = path.read_bytes()
            assert data.endswith(b"\n")
            rows += [json.loads(line) for line in data.splitlines()]  # an interleaved line would not parse
        assert len(rows) == per_process, stream
        assert [row["sequence"] for row in rows] == list(range(per_process)), f"{stream}: not gapless in file order"
        assert rows[0]["prev_hash"] == GENESIS_HASH
        assert all(row["prev_hash"] == previous["checksum"] for previous, row in itertools.pairwise(rows))
        assert {row["trader_id"] for row in rows} == {"TRADER-001"}
        sources = Counter(row["source"].split(".")[0] for row in rows)
        assert sources == {tag: per_process}, f"{stream} holds records of another process: {sources}"
        kinds = Counter(row["event_type"] for row in rows)
        assert kinds == {"param.state_change": THREADS * PARAMS_PER_THREAD, "trade.fill": THREADS * TRADES_PER_THREAD}
        for thread in range(THREADS):
            steps = [row["old_value"] for row in rows if row["source"] == f"{tag}.t{thread}" and "old_value" in row]
            assert steps == list(range(PARAMS_PER_THREAD)), f"{stream}: thread {thread} out of call order"

    report = verify(tmp_path)
    assert report.ok, report.to_text()
    assert report.records == 2 * per_process
    assert sorted(summary.stream for summary in report.streams.values()) == ["TRADER-001.main", "TRADER-001.main-2"]
    assert all(summary.records == per_process for summary in report.streams.values())
    assert report.sealed_files == len(files)


def test_explicit_stream_held_by_another_process_is_refused_with_its_pid(tmp_path):
    holder = Child(tmp_path, "holder", threads=1)
    try:
        assert holder.hello["stream"] == "main"

        with pytest.raises(AuditWriteError, match=rf"held by another process \(pid {holder.process.pid}\)"):
            AuditEventEmitter(AuditConfig(base_path=tmp_path, stream_id="main"))

        # The default stream id moves aside instead; once it is closed the explicit one is still held.
        with AuditEventEmitter(AuditConfig(base_path=tmp_path)) as emitter:
            assert emitter.writer.stream_id == "main-2"
            emitter.emit_param_change("parent", "k", 0, 1)
        with pytest.raises(AuditWriteError, match=str(holder.process.pid)):
            AuditEventEmitter(AuditConfig(base_path=tmp_path, stream_id="main"))

        holder.go()
        assert holder.finish()["errors"] == []
    finally:
        holder.stop()

    # Released with the process: the explicit stream can be opened now.
    with AuditEventEmitter(AuditConfig(base_path=tmp_path, stream_id="main")) as emitter:
        emitter.emit_param_change("parent", "k", 1, 2)
    assert verify(tmp_path).ok

