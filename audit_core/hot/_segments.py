"""Opening a stream's files: which exist, which segment comes next, where a reopened writer continues.

Split out of ``writer`` (which keeps to appending, rotating and syncing): ``StreamFiles`` is a
mixin of ``AppendOnlyWriter`` and works on that writer's directory, stream and current path. It runs
when the writer opens (lock, torn tail, unsealed files, spilled records) and whenever a new file is
named (rotation, a lost live file).
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit_core._layout import (
    day_start_ns,
    hot_file_name,
    next_midnight_ns,
    parse_hot_file_name,
    seal_path,
    utc_day,
)
from audit_core.config import AuditConfig
from audit_core.hot._degradation import SpillFile, spilled_records
from audit_core.hot._stream import StreamTail, acquire_stream, append_to, continues, read_tail, write_synced

logger = logging.getLogger("ledgerline.writer")

#: A rotation time that never comes (``rotate_daily=False``).
NEVER = 2**63


class StreamFiles:
    """Names, finds and resumes the files of the writer's stream."""

    # The writer's state this mixin uses (defined in ``AppendOnlyWriter.__init__``).
    _config: AuditConfig
    _clock: Callable[[], int]
    _dir: Path
    _fd: int
    _lock_fd: int
    _path: Path | None
    _rotate_at_ns: int
    _spill: SpillFile
    stream_id: str
    tail: StreamTail
    imported_records: int

    if TYPE_CHECKING:
        def _open_current(self) -> None: ...
        def _seal(self, path: Path, next_file: str | None) -> None: ...

    def stream_files(self) -> list[Path]:
        """This stream's hot files, oldest first."""
        prefix = f"audit.{self._config.trader_id}.{self.stream_id}."
        named = [(parse_hot_file_name(p), p) for p in self._dir.glob(prefix + "*.jsonl")]
        return [p for name, p in sorted((n, p) for n, p in named if n is not None and n.stream_id == self.stream_id)]

    def _acquire_stream(self) -> str:
        stream, self._lock_fd = acquire_stream(
            self._dir, self._config.trader_id, self._config.stream_id,
            explicit="stream_id" in self._config.model_fields_set,
        )
        return stream

    def _release_stream(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = -1

    def _open_stream(self) -> None:
        """Close off a torn last line, then resume the stream (releasing it if that fails)."""
        try:
            files = self.stream_files()
            self.tail = read_tail(files, self._config.max_record_bytes)
            if self.tail.torn_bytes:
                append_to(self.tail.path, b"\n")  # end the torn line; never truncate it
                if continues(self.tail.last_record, self.tail.torn_bytes):
                    # Only the newline was lost: the record is whole and now ends its line.
                    self.tail = StreamTail(self.tail.torn_bytes + b"\n")
            self._resume(files)
        except BaseException:
            self._release_stream()
            raise

    def _resume(self, files: list[Path]) -> None:
        """Seal files a crash left unsealed; continue the newest unsealed file or start a new one.

        The newest file is continued when its day is the writing day (``_writing_day``): a clock
        behind it (an NTP step back, a backtest re-run into the same path) continues there too.
        """
        now = self._clock()
        day = self._writing_day(now)
        for older, newer in itertools.pairwise(files):
            if not seal_path(older).exists():
                self._seal(older, next_file=newer.name)
        newest = files[-1] if files else None
        if newest is not None and not seal_path(newest).exists():
            name = parse_hot_file_name(newest)
            if name is not None and name.day == day:
                self._path = newest
            else:
                self._path = self._new_file_path(now)
                self._seal(newest, next_file=self._path.name)
        else:
            self._path = self._new_file_path(now)
        self._open_current()
        self._rotate_at_ns = self._next_rotation_ns(self._clock())
        self._import_spill()

    def _import_spill(self) -> None:
        """Append records that a degraded process spilled but died before writing here."""
        imported = spilled_records(self._spill.directory, self._config.trader_id, self.stream_id,
                                   self.tail.last_record)
        self.imported_records = len(imported)
        if not imported:
            return
        write_synced(self._fd, b"".join(imported))
        self.tail = StreamTail(imported[-1], self.tail.torn_bytes, self.tail.torn_offset, self.tail.path)
        logger.warning("ledgerline: imported %d spilled record(s) into %s", len(imported), self._path)

    def _next_segment(self, day: Any) -> int:
        # The current file counts even when it is gone (deleted under us): its name is never reused.
        current = [] if self._path is None else [self._path]
        segments = [
            name.segment for name in map(parse_hot_file_name, [*self.stream_files(), *current])
            if name and name.day == day
        ]
        return max(segments) + 1 if segments else 0

    def _writing_day(self, now_ns: int) -> dt.date:
        """The day a new file of the stream is named for: the clock's, never before the newest file's.

        Files order by (day, segment); a file named for a day before the newest one would sort
        before records it follows and break the chain. So a clock behind the newest file (an NTP
        step back, a backtest re-run into the same path) keeps writing under the newest day.
        """
        current = [] if self._path is None else [self._path]
        days = [name.day for name in map(parse_hot_file_name, [*self.stream_files(), *current]) if name]
        return max([utc_day(now_ns), *days])

    def _new_file_path(self, now_ns: int) -> Path:
        """The path of the stream's next file: the writing day's next unused segment."""
        day = self._writing_day(now_ns)
        return self._dir / hot_file_name(self._config.trader_id, self.stream_id, day, self._next_segment(day))

    def _next_rotation_ns(self, now_ns: int) -> int:
        """When the current file rotates: the midnight ending its day (never, with ``rotate_daily`` off)."""
        if not self._config.rotate_daily:
            return NEVER
        name = None if self._path is None else parse_hot_file_name(self._path)
        start = now_ns if name is None else max(now_ns, day_start_ns(name.day))
        return next_midnight_ns(start)
