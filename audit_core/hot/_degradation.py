"""Degradation: what the writer does while the disk refuses bytes, and what it leaves behind.

The writer keeps its queue and offsets; this module owns the rest of an episode: when it began and
why, the details of the ``sys.degraded``/``sys.recovered`` records (``Episode``), the spill file
that keeps records durable on another disk meanwhile (``SpillFile``), and taking spilled records
back into the stream when it reopens after a crash (``spilled_records``).
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit_core._layout import parse_hot_file_name
from audit_core.hot._stream import records_continuing, write_synced

logger = logging.getLogger("ledgerline.writer")

#: Errors that mean "this disk cannot take the bytes now": degrade and retry, do not crash.
DEGRADING_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG, errno.EROFS})
#: A spill file is named after the hot file it stands in for, plus this suffix.
SPILL_SUFFIX = ".spill"
_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
_FILE_MODE = 0o640


@dataclass(frozen=True)
class StateChange:
    """The writer became degraded or recovered; ``details`` go into the sys record's payload."""

    kind: str  # "degraded" | "recovered"
    details: dict[str, Any] = field(default_factory=dict)


def report_changes(callback: Callable[[StateChange], None] | None, changes: list[StateChange]) -> None:
    """Tell ``callback`` (the emitter, which chains sys records) of each change; a failing callback is logged."""
    for change in changes:
        if callback is None:
            continue
        try:
            callback(change)
        except Exception:
            logger.exception("ledgerline: on_state_change callback failed for %s", change.kind)


class Episode:
    """One degradation at a time: when it began, and why."""

    def __init__(self, clock: Callable[[], int]) -> None:
        self._clock = clock
        self.since_ns: int | None = None
        self.error = ""

    @property
    def active(self) -> bool:
        return self.since_ns is not None

    def begin(self, failure: OSError, file: Path | None, buffered_bytes: int, fallback: Path | None) -> StateChange:
        self.since_ns = self._clock()
        self.error = f"{errno.errorcode.get(failure.errno or 0, failure.errno)}: {failure.strerror}"
        logger.error("ledgerline: audit log degraded, %s on %s; buffering", self.error, file)
        return StateChange("degraded", {
            "error": self.error,
            "file": file.name if file else None,
            "buffered_bytes": buffered_bytes,
            "fallback_path": str(fallback) if fallback else None,
        })

    def end(self, spilled_bytes: int, file: Path | None) -> StateChange:
        assert self.since_ns is not None
        duration = self._clock() - self.since_ns
        details = {"error": self.error, "degraded_for_ns": duration, "spilled_bytes": spilled_bytes,
                   "file": file.name if file else None}
        self.since_ns = None
        logger.warning("ledgerline: audit log recovered after %.3f s", duration / 1e9)
        return StateChange("recovered", details)


class SpillFile:
    """The fallback file of a degraded stream: records appended and synced there, opened on first use."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.fd = -1

    def append(self, hot_file: Path, data: bytes) -> None:
        """Append ``data`` (whole records) to the spill file of ``hot_file`` and sync it. Raises OSError."""
        if self.directory is None:
            raise OSError(errno.ENOENT, "no fallback_path configured")
        if self.fd < 0:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.directory / (hot_file.name + SPILL_SUFFIX), _OPEN_FLAGS, _FILE_MODE)
        write_synced(self.fd, data)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def spilled_records(directory: Path | None, trader_id: str, stream_id: str, last_record: bytes | None) -> list[bytes]:
    """Spilled records of this stream that continue its chain after ``last_record`` (none if already taken).

    Only records that continue the chain count (sequence after the last record on disk, matching
    prev_hash), so importing twice, or a spill that repeats records, adds nothing.
    """
    if directory is None or not directory.is_dir():
        return []
    spills = sorted(directory.glob(f"audit.{trader_id}.{stream_id}.*{SPILL_SUFFIX}"), key=_spill_order)
    return records_continuing(last_record, spills)


def _spill_order(path: Path) -> tuple[int, Any, str]:
    """Spill files in stream order: by the hot file they stand in for (segment 10000 after 9999)."""
    name = parse_hot_file_name(path.with_name(path.name.removesuffix(SPILL_SUFFIX)))
    return (0, name.order, path.name) if name is not None else (1, None, path.name)
