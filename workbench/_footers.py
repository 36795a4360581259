"""What ``open_trail`` needs of each cold Parquet file's footer: its column names and ``ts_event`` extent.

Every file's footer is read at every ``open_trail`` (``_backend.read_cold``): whether the files'
columns differ decides how they are read, and their ``ts_event`` statistics give the trail's time
range. Parsing a footer with pyarrow costs 0.3 to 0.8 ms of CPU (more row groups, more), most of a
cold start's time on 90 files; reading its bytes costs a few microseconds. So the summary of a
footer is kept in this process, keyed by the SHA-256 of the footer's bytes: the same bytes give
the same summary, whatever the file's name or timestamps say, and a footer that changed in any
byte is parsed again. Nothing here is trusted evidence: the summary decides how files are read and
the unit check of an integer instant (``Trail.to_ns``), never which rows a query returns.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

#: Parquet's magic bytes, at both ends of a file; the footer's length (4 bytes, little-endian) precedes the last.
MAGIC = b"PAR1"
#: Footers kept at most (a summary is a few hundred bytes; one per cold file of the trails opened).
MAX_KEPT = 65_536


@dataclass(frozen=True)
class Footer:
    """One file's footer, as ``read_cold`` uses it."""

    #: The file's columns, as the sorted dotted paths of their leaves (a flat file's are its column
    #: names): two files whose columns differ in any name or nesting differ here too.
    columns: tuple[str, ...]
    #: Its ``ts_event`` extent by its footer (``audit_core.cold.extent.ts_event_extent``: None when the
    #: footer cannot tell; (None, None) for a file without rows).
    extent: tuple[int | None, int | None] | None


_kept: dict[bytes, Footer] = {}


def read_footers(files: list[Path]) -> tuple[set[tuple[str, ...]], list[tuple[Path, str]], list[int | None]]:
    """The distinct column lists of the Parquet ``files`` (their footers only), the files whose footer
    is unreadable (path, why), and the smallest and largest ``ts_event`` of the others by their
    footers' statistics ([None, None] when a file has none, or there are no files)."""
    columns: set[tuple[str, ...]] = set()
    damaged: list[tuple[Path, str]] = []
    lows: list[int] = []
    highs: list[int] = []
    complete = True
    for file in files:
        try:
            footer = footer_of(file)
        except (OSError, ValueError) as exc:
            damaged.append((file, f"not a readable Parquet file ({exc})"))
            continue
        columns.add(footer.columns)
        if footer.extent is None:
            complete = False
        elif footer.extent[0] is not None and footer.extent[1] is not None:
            lows.append(footer.extent[0])
            highs.append(footer.extent[1])
    if not complete or not lows:
        return columns, damaged, [None, None]
    return columns, damaged, [min(lows), max(highs)]


def footer_of(file: Path) -> Footer:
    """The ``Footer`` of ``file``: parsed by pyarrow the first time these footer bytes are seen in this process.

    Raises:
        OSError: the file cannot be read.
        ValueError: it is not a Parquet file (too short, no magic bytes, a footer length past its
            start, or a footer pyarrow cannot parse), saying why.
    """
    data = _footer_bytes(file)
    key = hashlib.sha256(data).digest()
    footer = _kept.get(key)
    if footer is None:
        footer = _parse(data)
        if len(_kept) >= MAX_KEPT:
            _kept.clear()
        _kept[key] = footer
    return footer


def clear() -> None:
    """Forget every footer summary kept (tests; a process that opened many trails it will not open again)."""
    _kept.clear()


def _footer_bytes(file: Path) -> bytes:
    """``file``'s footer and the 8 bytes after it (its length and the magic bytes)."""
    with open(file, "rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        if size < 12:
            raise ValueError(f"{size} bytes is too short for a Parquet file")
        tail = os.pread(stream.fileno(), 8, size - 8)
        if tail[4:] != MAGIC:
            raise ValueError("no Parquet magic bytes at its end")
        length = int.from_bytes(tail[:4], "little")
        if length > size - 12:
            raise ValueError(f"footer length {length} is past the start of a {size}-byte file")
        body = os.pread(stream.fileno(), length, size - 8 - length)
        if len(body) != length:
            raise ValueError(f"footer cut short: {len(body)} of {length} bytes")
    return body + tail


def _parse(footer: bytes) -> Footer:
    """The ``Footer`` of a file ending in ``footer`` (``_footer_bytes``).

    pyarrow parses it as the end of a file that starts with the magic bytes (the metadata
    ``pyarrow.parquet.read_metadata`` gives, field for field): read from the bytes already read,
    and without importing ``pyarrow.parquet``, whose file systems import ``ssl`` (~0.1 s of a new
    process's first open).
    """
    import pyarrow as pa
    from pyarrow._parquet import ParquetReader

    from audit_core.cold.extent import ts_event_extent

    try:
        reader = ParquetReader()
        reader.open(pa.BufferReader(MAGIC + footer))
        metadata = reader.metadata
        schema = metadata.schema
        # Leaf paths, not the Arrow schema's names: converting a 54-column schema to Arrow cost a
        # third of the footer's parse (10 ms of a 10M-event trail's first open).
        columns = tuple(sorted(schema.column(leaf).path for leaf in range(len(schema))))
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(str(exc)) from None
    return Footer(columns, ts_event_extent(metadata))
