"""Instants as the workbench accepts them, turned into UTC nanoseconds; day partitions of a time window."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from workbench.errors import WorkbenchInputError

NS_PER_SECOND = 1_000_000_000
NS_PER_MINUTE = 60 * NS_PER_SECOND
NS_PER_DAY = 86_400 * NS_PER_SECOND
_EPOCH_DAY = dt.date(1970, 1, 1)
_DATE_FIRST = re.compile(r"^\s*\d{4}-\d{2}-\d{2}")

#: What an instant may be, for error messages.
INSTANT_FORMS = "a datetime, a date, nanoseconds since the epoch (int) or a string like '2026-01-05 14:32'"


def to_ns(value: Any, argument: str) -> int:
    """An instant as UTC nanoseconds since the epoch.

    Naive datetimes and strings without an offset are UTC. Strings must start with a date
    (``"2026-01-05 14:32"``, ``"2026-01-05T14:32:00.123456789Z"``); a bare ``"14:32"`` is refused
    rather than guessed. ``argument`` names the parameter in error messages.
    """
    if isinstance(value, bool) or value is None:
        raise WorkbenchInputError(f"{argument}={value!r} is not an instant; expected {INSTANT_FORMS}")
    if is_integer(value):
        if int(value) < 0:
            raise WorkbenchInputError(f"{argument}={value!r}: nanoseconds since the epoch must be >= 0")
        return int(value)
    import pandas as pd  # here: an integer instant (a cold start's first query, often) needs no pandas

    if isinstance(value, str):
        if not _DATE_FIRST.match(value):
            raise WorkbenchInputError(
                f"{argument}={value!r} does not start with a date (YYYY-MM-DD); expected {INSTANT_FORMS}")
        try:
            stamp = pd.Timestamp(value)
        except (ValueError, OverflowError) as exc:
            raise WorkbenchInputError(f"{argument}={value!r} is not a readable time ({exc})") from None
    elif isinstance(value, dt.datetime) or type(value).__name__ == "datetime64":
        stamp = pd.Timestamp(value)
    elif isinstance(value, dt.date):
        return (value - _EPOCH_DAY).days * NS_PER_DAY
    else:
        raise WorkbenchInputError(
            f"{argument}={value!r} ({type(value).__name__}) is not an instant; expected {INSTANT_FORMS}")
    if pd.isna(stamp):
        raise WorkbenchInputError(f"{argument}={value!r} is not an instant (NaT)")
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.value)


def is_integer(value: Any) -> bool:
    """Whether ``value`` is an integer instant: a Python int or a numpy int64/int32 (not a bool)."""
    return not isinstance(value, bool) and (isinstance(value, int) or type(value).__name__ in ("int64", "int32"))


def to_duration_ns(value: Any, argument: str, unit_ns: int = NS_PER_MINUTE) -> int:
    """A positive duration: a number of ``unit_ns`` (minutes by default) or a ``timedelta``."""
    if isinstance(value, dt.timedelta):
        nanoseconds = (value.days * 86_400 + value.seconds) * NS_PER_SECOND + value.microseconds * 1000
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        nanoseconds = int(value * unit_ns)
    else:
        raise WorkbenchInputError(f"{argument}={value!r} is not a duration; expected a number or a timedelta")
    if nanoseconds <= 0:
        raise WorkbenchInputError(f"{argument}={value!r} must be positive")
    return nanoseconds


def utc_day(ns: int) -> dt.date:
    return _EPOCH_DAY + dt.timedelta(days=ns // NS_PER_DAY)


def day_segments(first: dt.date, last: dt.date) -> list[tuple[int, int | None, int | None, int | None, int | None]]:
    """The days ``first``..``last`` (inclusive) as few (year, month range, day range) pieces.

    Each piece is ``(year, month_from, month_to, day_from, day_to)``; ``None`` means unbounded.
    Whole years collapse to one piece each, whole months of a year to one piece, so a window of
    any length gives at most a handful of pieces.
    """
    pieces: list[tuple[int, int | None, int | None, int | None, int | None]] = []
    day = first
    while day <= last:
        month_end = (dt.date(day.year + day.month // 12, day.month % 12 + 1, 1) - dt.timedelta(days=1))
        if day.day > 1 or last < month_end:  # a part of one month
            end = min(month_end, last)
            pieces.append((day.year, day.month, day.month, day.day, end.day))
            day = end + dt.timedelta(days=1)
            continue
        year_end = dt.date(day.year, 12, 31)
        if day.month == 1 and last >= year_end:  # whole years
            pieces.append((day.year, None, None, None, None))
            day = dt.date(day.year + 1, 1, 1)
            continue
        # whole months of one year, up to the last whole month in range
        end_month = 12 if last >= year_end else (last.month if last == _month_end(last) else last.month - 1)
        pieces.append((day.year, day.month, end_month, None, None))
        day = dt.date(day.year + end_month // 12, end_month % 12 + 1, 1)
    return pieces


def _month_end(day: dt.date) -> dt.date:
    return dt.date(day.year + day.month // 12, day.month % 12 + 1, 1) - dt.timedelta(days=1)
