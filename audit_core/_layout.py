"""Names of hot files and their sidecars: one place that writes them and parses them back.

A hot file is ``audit.<trader_id>.<stream_id>.<YYYY-MM-DD>.<segment>.jsonl``. The stream in the
name keeps two processes out of each other's files and chains; the UTC date and then the segment
order a stream's files. A new segment starts when a process reopens a stream whose file of the
day was sealed by a clean close (sealed files are never appended to again).

Segments have no width limit: ``0000``..``9999``, then ``10000``, ``10001``... (at least four
digits, no leading zero beyond four), so one name per segment, and files order by the parsed number,
never by the name's text. (With a fixed four-digit pattern, segment 10000 did not parse, so the
writer did not see it, picked 10000 again on the next open and appended to a sealed file.)
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import NamedTuple

HOT_SUFFIX = ".jsonl"
#: The stream ``sys.retention`` records are written to (and the only one they count in).
RETENTION_STREAM = "retention"
SEAL_SUFFIX = ".seal"
CHECKPOINT_SUFFIX = ".checkpoint"
LEAVES_SUFFIX = ".leaves"
STREAM_CHECKPOINT_SUFFIX = ".stream-checkpoint"
_HOT_NAME = re.compile(
    r"^audit\.(?P<trader>[A-Za-z0-9_\-]+)\.(?P<stream>[A-Za-z0-9_\-]+)"
    r"\.(?P<day>\d{4}-\d{2}-\d{2})\.(?P<segment>\d{4}|[1-9]\d{4,})\.jsonl$"
)

NS_PER_DAY = 86_400 * 1_000_000_000


class HotFileName(NamedTuple):
    trader_id: str
    stream_id: str
    day: dt.date
    segment: int

    @property
    def stream_key(self) -> str:
        return f"{self.trader_id}.{self.stream_id}"

    @property
    def order(self) -> tuple[dt.date, int]:
        return (self.day, self.segment)


def hot_file_name(trader_id: str, stream_id: str, day: dt.date, segment: int = 0) -> str:
    """The name of a hot file; ``segment`` is zero-padded to four digits and may grow past them."""
    if segment < 0:
        raise ValueError(f"segment must be >= 0, got {segment}")
    return f"audit.{trader_id}.{stream_id}.{day.isoformat()}.{segment:04d}{HOT_SUFFIX}"


def parse_hot_file_name(path: Path) -> HotFileName | None:
    match = _HOT_NAME.match(path.name)
    if match is None:
        return None
    return HotFileName(
        match["trader"], match["stream"], dt.date.fromisoformat(match["day"]), int(match["segment"])
    )


def hot_files(path: Path | str) -> list[Path]:
    """The JSONL files under ``path`` (or ``path`` itself), ordered by stream then day."""
    root = Path(path)
    if root.is_file():
        return [root]
    if not root.exists():
        raise FileNotFoundError(f"no trail at {root}")
    found = [p for p in root.rglob(f"*{HOT_SUFFIX}") if p.is_file()]
    return sorted(found, key=_stream_order)


def _stream_order(path: Path) -> tuple[str, str, str, int]:
    name = parse_hot_file_name(path)
    if name is None:
        return (str(path), "", "", 0)
    return (str(path.parent), name.stream_key, name.day.isoformat(), name.segment)


#: Why a ``*.jsonl`` file found in a trail directory is not read.
NOT_A_TRAIL_FILE = ("not a trail file (trail files are named audit.<trader>.<stream>.<YYYY-MM-DD>.<segment>.jsonl): "
                    "not read, and nothing in it is trusted")


def trail_files(path: Path | str) -> tuple[list[Path], list[Path]]:
    """(trail files, stray files) under ``path``: THE rule for which hot files a reader may read.

    Files found in a directory must be named like trail files; any other ``*.jsonl`` there
    (``notes.jsonl``) is a stray, never read by ``verify``, the workbench, ``tail``, the converter
    or retention. A file given by name is a trail file, whatever its name.
    """
    if Path(path).is_file():
        return [Path(path)], []
    files: list[Path] = []
    strays: list[Path] = []
    for found in hot_files(path):
        (files if parse_hot_file_name(found) is not None else strays).append(found)
    return files, strays


def seal_path(path: Path) -> Path:
    """The seal sidecar of a hot file."""
    return path.with_name(path.name + SEAL_SUFFIX)


def checkpoint_path(path: Path) -> Path:
    """The C2SP checkpoint sidecar of a hot file, written next to its seal when the seal is signed."""
    return path.with_name(path.name + CHECKPOINT_SUFFIX)


def stream_leaves_path(directory: Path, trader_id: str, stream_id: str) -> Path:
    """The sidecar of a stream's tree: its RFC 6962 leaf hashes, 32 bytes each (see trust/stream_tree)."""
    return directory / f"audit.{trader_id}.{stream_id}{LEAVES_SUFFIX}"


def stream_checkpoint_path(directory: Path, trader_id: str, stream_id: str) -> Path:
    """The stream's latest checkpoint note, kept next to its files (an anchor only once a witness holds it)."""
    return directory / f"audit.{trader_id}.{stream_id}{STREAM_CHECKPOINT_SUFFIX}"


def lock_path(directory: Path, trader_id: str, stream_id: str) -> Path:
    """The lock file that gives one process a stream."""
    return directory / f".audit.{trader_id}.{stream_id}.lock"


def utc_day(ts_ns: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=ts_ns // NS_PER_DAY)


def next_midnight_ns(ts_ns: int) -> int:
    return (ts_ns // NS_PER_DAY + 1) * NS_PER_DAY


def day_start_ns(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days * NS_PER_DAY


def hot_directory(root: Path) -> Path:
    """Where a trail's hot files and tree sidecars are: ``root/hot``, ``root`` itself, or a file's directory."""
    return root / "hot" if (root / "hot").is_dir() else (root if root.is_dir() else root.parent)
