"""How many worker processes a verification may use, and when they are worth starting.

CPython's hashlib keeps the GIL for inputs under 2 KiB (every record), so verification spreads
over processes, not threads: ``hot/_verify_jobs.py`` (hot files) and ``cold/cold_verify.py``
(manifest entries).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Below this many bytes of input worker processes cost more than they save (a fresh interpreter
#: takes ~0.3 s to start; a forked child little, but its results come back pickled).
PARALLEL_MIN_BYTES = 32 << 20


def default_jobs() -> int:
    """All the cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def check_jobs(jobs: int | None) -> int:
    """``jobs`` as a worker count: None means all cores.

    Raises:
        ValueError: ``jobs`` is not a positive whole number; names it.
    """
    if jobs is None:
        return default_jobs()
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive whole number of processes, got {jobs!r}")
    return jobs


def worth_parallel(files: Iterable[Path], jobs: int, *, weight: int = 1) -> bool:
    """Whether ``jobs`` workers pay for themselves on ``files``: more than one, of ``PARALLEL_MIN_BYTES`` or more
    (four times that in a process with threads, whose workers start as fresh interpreters). ``weight``:
    how many bytes of hot JSONL one byte of ``files`` holds (Parquet: about 5)."""
    if jobs < 2:
        return False
    count = total = 0
    for path in files:
        count += 1
        try:
            total += path.stat().st_size
        except OSError:
            continue  # the verifier reports it
    # Fresh interpreters (a process with threads) take ~0.3 s each to start, forked children a few ms.
    return count > 1 and total * weight >= PARALLEL_MIN_BYTES * (1 if _single_threaded() else 4)


def run_tasks(function: Callable[[T], R], tasks: Sequence[T], jobs: int, weights: Sequence[int]) -> list[R]:
    """``[function(task) for task in tasks]``, computed by up to ``jobs`` processes, heaviest first (``weights``).

    A process with one thread forks a child per worker but one and works beside them; each takes the
    next task when it ends one (``_forked``), and nothing is imported again or sent to the children.
    A process with other threads (DuckDB's, a writer's, a trading node's) must not fork: a child could
    inherit a lock one of them held at that moment and hang. It starts fresh interpreters instead,
    dealing them shares of about equal weight, which import only ``audit_core`` (never the caller's
    ``__main__``, as multiprocessing's fork server and spawn would). ``function`` must be a
    module-level function; its results must pickle, and for fresh interpreters the tasks too.
    """
    workers = max(1, min(jobs, len(tasks)))
    order = sorted(range(len(tasks)), key=lambda i: -weights[i])
    if _single_threaded():
        return _forked(function, tasks, order, workers)
    shares: list[list[int]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for index in order:
        lightest = loads.index(min(loads))
        shares[lightest].append(index)
        loads[lightest] += weights[index]
    return _interpreters(function, tasks, shares)


#: Runs of tasks ``_forked`` puts in its pipe at most, one 4-byte number each: 4 KiB, a page, the least
#: a Linux pipe holds (under the per-user limit on pipe buffers), so they are written before any is read.
_PIPE_RUNS = 1024


def _forked(function: Callable[[T], R], tasks: Sequence[T], order: list[int], workers: int) -> list[R]:
    """``run_tasks`` in a single-threaded process: a forked child per worker but one, and this process.

    The tasks are taken as they are asked for, in ``order``, from one pipe that holds their numbers
    (runs of them, beyond ``_PIPE_RUNS`` tasks), written before the fork: a process that ends a task
    takes the next, so a task that takes longer than its weight said leaves no core idle (shares dealt
    by bytes beforehand ended 4% apart in a 2-worker ``verify`` of 90 files). A read of one number
    (4 bytes, under PIPE_BUF) is atomic, so no number is taken twice, and an empty pipe reads as ended.
    """
    import pickle  # imported here, as in the other two: a verification in one process does not pay for it
    import signal

    per_run = max(1, -(-len(order) // _PIPE_RUNS))
    runs = [order[start : start + per_run] for start in range(0, len(order), per_run)]
    numbers, write_end = os.pipe()
    try:
        os.write(write_end, b"".join(number.to_bytes(4, "little") for number in range(len(runs))))
    finally:
        os.close(write_end)

    def take() -> list[tuple[int, R]]:
        done = []
        while number := os.read(numbers, 4):
            for index in runs[int.from_bytes(number, "little")]:
                done.append((index, function(tasks[index])))
        return done

    results: list[Any] = [None] * len(tasks)
    children: list[tuple[int, int]] = []  # (pid, read end of its pipe)
    try:
        for _ in range(workers - 1):
            read_end, write_end = os.pipe()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # the child: take tasks, pickle the results into the pipe, never return
                status = 1
                try:
                    os.close(read_end)
                    with os.fdopen(write_end, "wb") as out:
                        out.write(pickle.dumps(take()))
                    status = 0
                except BaseException:
                    import traceback

                    traceback.print_exc()
                finally:
                    sys.stderr.flush()
                    os._exit(status)
            os.close(write_end)
            children.append((pid, read_end))
        for index, result in take():
            results[index] = result
        while children:
            pid, read_end = children[0]
            with os.fdopen(read_end, "rb") as pipe:
                output = pipe.read()
            children.pop(0)
            if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0:
                raise RuntimeError("a verification worker failed; its error is above")
            for index, result in pickle.loads(output):  # our own child's output
                results[index] = result
    finally:
        os.close(numbers)
        for pid, read_end in children:  # after a failure, the others are not waited for
            os.close(read_end)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
    return results


def _interpreters(function: Callable[[T], R], tasks: Sequence[T], shares: list[list[int]]) -> list[R]:
    """``run_tasks`` in a process with threads: a fresh interpreter per share (``_serve``)."""
    import pickle
    import subprocess  # imported here: a verification that forks (most) does not pay for it

    package_parent = str(Path(__file__).resolve().parents[2])
    code = f"import sys; sys.path.insert(0, {package_parent!r}); from audit_core.trust.jobs import _serve; _serve()"
    children = []
    for share in shares:
        child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert child.stdin is not None
        child.stdin.write(pickle.dumps((function, [tasks[i] for i in share])))
        child.stdin.close()
        children.append(child)
    results: list[Any] = [None] * len(tasks)
    try:
        for share, child in zip(shares, children, strict=True):
            assert child.stdout is not None
            with child.stdout:
                output = child.stdout.read()
            if child.wait() != 0:
                raise RuntimeError(f"a verification worker failed (exit status {child.returncode}); its error is above")
            for index, result in zip(share, pickle.loads(output), strict=True):  # our own child's output
                results[index] = result
    finally:
        for child in children:  # after a failure, the others are not waited for
            if child.poll() is None:
                child.kill()
            child.wait()
            if child.stdout is not None:
                child.stdout.close()
    return results


def _serve() -> None:
    """A worker started by ``run_tasks``: tasks from stdin, results to stdout, both pickled."""
    import pickle

    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing printed by an import may corrupt the results
    function, tasks = pickle.loads(sys.stdin.buffer.read())
    out.write(pickle.dumps([function(task) for task in tasks]))
    out.flush()


def _single_threaded() -> bool:
    """Whether this process runs one thread, native ones included (Linux ``/proc``); False when unknown."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False
