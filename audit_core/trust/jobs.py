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
    """Workers start from a fork server: one forked from a process with threads (DuckDB, a writer)
    could inherit a lock held at that moment and hang."""
    return multiprocessing.get_context("forkserver")
