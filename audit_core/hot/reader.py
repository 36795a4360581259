"""Read hot JSONL records back as events, newest last: what ``ledgerline tail`` shows."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path

from pydantic import ValidationError

from audit_core._layout import NOT_A_TRAIL_FILE, parse_hot_file_name, trail_files
from audit_core.errors import AuditFormatError
from audit_core.events import AuditEvent, parse_record


def tail(
    path: Path | str, n: int = 20, on_error: Callable[[AuditFormatError], None] | None = None
) -> list[AuditEvent]:
    """The newest ``n`` events under ``path`` (a hot file or a directory), oldest first.

    Events from several streams are merged by ``ts_event`` (ties by stream, then sequence). A last
    line without its newline (being appended, or torn) is left out. Among the newest ``n`` lines of
    each file, a line that is not a valid record (garbage, a torn write closed off by recovery,
    tampering) is left out and reported: to ``on_error`` if given (one ``AuditFormatError`` per
    file, naming its first such line and how many), else by raising that error. So is a ``*.jsonl``
    file in the directory that is not named like a trail file (``notes.jsonl``): it is never read. ``verify`` says
    whether such a line is an honest torn write or damage.

    Raises:
        ValueError: ``n`` is less than 1.
        AuditFormatError: a line is not a record (only without ``on_error``); names the file and line.
    """
    return [event for _, event in tail_streams(path, n, on_error)]


def tail_streams(
    path: Path | str,
    n: int = 20,
    on_error: Callable[[AuditFormatError], None] | None = None,
    accept: Callable[[str, AuditEvent], bool] | None = None,
    after: dict[Path, int] | None = None,
) -> list[tuple[str, AuditEvent]]:
    """``tail``, with the stream of each event (``trader.stream``), newest ``n`` that ``accept`` keeps.

    Args:
        accept: Keeps an event (given its stream) or not. With a filter, each file is read whole,
            since the newest matching lines may be anywhere in it; without, only its newest ``n`` lines count.
        after: Byte offset per file already shown (``--follow``): only complete lines past it are read;
            updated in place to each file's end of complete lines.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    newest: list[tuple[str, AuditEvent]] = []
    files, strays = trail_files(path)
    for stray in strays:  # reported, never read: a forged line there must not show as a record
        if on_error is None:
            raise AuditFormatError(stray, NOT_A_TRAIL_FILE)
        on_error(AuditFormatError(stray, NOT_A_TRAIL_FILE))
    for file in files:
        name = parse_hot_file_name(file)
        stream = name.stream_key if name else file.name
        lines: deque[tuple[int, int, bytes]] = deque(maxlen=None if accept else n)
        offset = 0
        start = after.get(file, 0) if after is not None else 0
        with file.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if line.endswith(b"\n"):
                    if offset >= start:
                        lines.append((number, offset, line))
                    offset += len(line)
                else:
                    break  # being appended, or torn: not yet a line
        if after is not None:
            after[file] = offset
        bad: list[tuple[int, str]] = []
        unparsed: list[tuple[int, int, bytes, str]] = []
        recoveries: list[object] = []
        kept: deque[tuple[str, AuditEvent]] = deque(maxlen=n)
        for number, offset, line in lines:
            try:
                event = parse_record(line)
            except RecursionError:
                unparsed.append((number, offset, line, "nested too deeply to parse"))
                continue
            except ValidationError as exc:
                unparsed.append((number, offset, line, f"not a valid record: {_first_error(exc)}"))
                continue
            except ValueError as exc:
                unparsed.append((number, offset, line, f"not a JSON record: {exc}"))
                continue
            if event.event_type == "sys.recovery":
                recoveries.append(getattr(event, "payload", None))
            if accept is None or accept(stream, event):
                kept.append((stream, event))
        newest.extend(kept)
        described = described_torn_lines(recoveries, file.name)
        bad = [(number, why) for number, offset, line, why in unparsed if not is_described(offset, line, described)]
        if bad:
            listed = ", ".join(str(number) for number, _ in bad[:5]) + (", ..." if len(bad) > 5 else "")
            error = AuditFormatError(
                file, f"{len(bad)} line(s) are not records and were left out (line {listed}); "
                f"line {bad[0][0]}: {bad[0][1]}", bad[0][0],
            )
            if on_error is None:
                raise error
            on_error(error)
    newest.sort(key=lambda item: (item[1].ts_event, item[1].trader_id, item[0], item[1].sequence or 0))
    return newest[-n:]


def described_torn_lines(payloads: Iterable[object], file_name: str) -> set[tuple[object, ...]]:
    """(offset, length, SHA-256) of each torn line of ``file_name`` that a ``sys.recovery`` payload describes.

    Crash recovery ends a torn line with a newline where it is and appends a ``sys.recovery``
    record saying so; readers leave such a line out without reporting it.
    """
    described: set[tuple[object, ...]] = set()
    for payload in payloads:
        if isinstance(payload, dict) and payload.get("torn_file") == file_name:
            described.add((payload.get("torn_offset"), payload.get("torn_length"), payload.get("torn_sha256")))
    return described


def is_described(offset: int, line: bytes, described: set[tuple[object, ...]]) -> bool:
    """Whether the line at byte ``offset`` (its newline included or not) is a torn line ``described`` names."""
    torn = line.removesuffix(b"\n")
    return (offset, len(torn), hashlib.sha256(torn).hexdigest()) in described


def _first_error(exc: ValidationError) -> str:
    """The first problem pydantic found and the field it is about, e.g. ``Input should be ... (ts_event)``."""
    error = exc.errors()[0]
    location = ".".join(str(part) for part in error.get("loc", ())) or "the record"
    return f"{error['msg']} ({location})"


#: What a terminal may act on instead of printing: C0 and C1 controls (ESC starts ANSI sequences,
#: U+009B is a one-character CSI), DEL, line and paragraph separators, bidirectional overrides.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def printable(text: str, *, json: bool = False) -> str:
    """``text`` with every control character and terminal escape shown as an escape, never obeyed.

    ``"\\x1b[2J"`` (clear the screen) prints as the six characters ``\\x1b[2J``. With ``json`` the
    escapes are JSON's (``\\u001b``), so a record line stays valid JSON with the same values.
    """
    return _UNPRINTABLE.sub(_json_escape if json else _visible, text)


def describe_event(event: AuditEvent) -> str:
    """One human-readable line for an event."""
    when = dt.datetime.fromtimestamp(event.ts_event // 1_000_000_000, dt.UTC)
    stamp = f"{when:%Y-%m-%d %H:%M:%S}.{event.ts_event % 1_000_000_000:09d}Z"
    fields = event.model_dump(
        exclude={"ts_event", "event_type", "source", "trader_id", "sequence", "prev_hash"}, exclude_none=True
    )
    detail = " ".join(f"{key}={value}" for key, value in fields.items())
    return printable(f"{stamp} #{event.sequence} {event.event_type:<24} {event.source:<20} {detail}")
