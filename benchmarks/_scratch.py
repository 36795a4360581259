"""Scratch space for a benchmark run: a fresh directory under ``benchmarks/results/tmp`` (gitignored).

On the repository's disk, so file and sync timings are the disk the results name; removed afterwards,
and ``tmp`` itself too once no other run is using it.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

SCRATCH_ROOT = Path(__file__).resolve().parent / "results" / "tmp"


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A new directory named ``prefix...`` under ``SCRATCH_ROOT``, removed with what it holds on exit."""
    SCRATCH_ROOT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=SCRATCH_ROOT))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.suppress(OSError):
            SCRATCH_ROOT.rmdir()  # only if no other run is using it
