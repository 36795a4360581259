"""How many worker processes a verification may use, and when they are worth starting.

CPython's hashlib keeps the GIL for inputs under 2 KiB (every record), so verification spreads
over processes, not threads: ``hot/_verify_jobs.py`` (hot files) and ``cold/cold_verify.py``
(manifest entries).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable
from multiprocessing.context import BaseContext
from pathlib import Path

#: Below this many bytes of input a worker pool costs more than it saves (start-up ~0.1 s per worker).
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


def worth_parallel(files: Iterable[Path], jobs: int) -> bool:
    """Whether ``jobs`` workers pay for themselves on ``files``: more than one, of ``PARALLEL_MIN_BYTES`` or more."""
    if jobs < 2:
        return False
    count = total = 0
    for path in files:
        count += 1
        try:
            total += path.stat().st_size
        except OSError:
            continue  # the verifier reports it
    return count > 1 and total >= PARALLEL_MIN_BYTES


def pool_context() -> BaseContext:
    """Fork when this process has one thread; else start workers from a fork server.

    A worker forked from a process with other threads (DuckDB's, a writer's, a trading node's)
    could inherit a lock one of them held at that moment and hang. Fork is the fast start and needs
    no re-import of ``__main__``; a fork server (and so an ``if __name__ == "__main__":`` guard
    in a script that verifies a large trail) is the price of threads.
    """
    return multiprocessing.get_context("fork" if _single_threaded() else "forkserver")


def _single_threaded() -> bool:
    """Whether this process runs one thread, native ones included (Linux ``/proc``); False when unknown."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False
