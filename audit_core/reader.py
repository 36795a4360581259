"""Read hot JSONL records back as events, newest last: what ``ledgerline tail`` shows."""

from __future__ import annotations

import datetime as dt
from collections import deque
from pathlib import Path

from pydantic import ValidationError

from audit_core.events import AuditEvent, parse_record
from audit_core.integrity import hot_files


def tail(path: Path | str, n: int = 20) -> list[AuditEvent]:
    """The newest ``n`` events under ``path`` (a hot file or a directory), oldest first.

    Events from several streams are merged by ``ts_event`` (ties by stream, then sequence).
    Lines that are not valid records (a torn write, tampering) are skipped here; ``verify``
    reports them.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    newest: list[AuditEvent] = []
    for file in hot_files(path):
        lines: deque[bytes] = deque(maxlen=n)
        with file.open("rb") as handle:
            for line in handle:
                if line.endswith(b"\n"):
                    lines.append(line)
        for line in lines:
            try:
                newest.append(parse_record(line))
            except (ValueError, ValidationError):
                continue
    newest.sort(key=lambda e: (e.ts_event, e.trader_id, e.sequence or 0))
    return newest[-n:]


def describe_event(event: AuditEvent) -> str:
    """One human-readable line for an event."""
    when = dt.datetime.fromtimestamp(event.ts_event // 1_000_000_000, dt.UTC)
    stamp = f"{when:%Y-%m-%d %H:%M:%S}.{event.ts_event % 1_000_000_000:09d}Z"
    fields = event.model_dump(
        exclude={"ts_event", "event_type", "source", "trader_id", "sequence", "prev_hash"}, exclude_none=True
    )
    detail = " ".join(f"{key}={value}" for key, value in fields.items())
    return f"{stamp} #{event.sequence} {event.event_type:<24} {event.source:<20} {detail}"
