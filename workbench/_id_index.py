"""Which days ``trade_lifecycle`` must read: the days whose files may hold one of a trade's ids.

The converter records in each manifest output a Bloom filter over the file's ``order_id`` and
``correlation_id`` values (``ids``: ``audit_core.cold._id_filter``; ``verify_cold`` derives it again
from the file and reports a difference). A filter that says no is exact, so the rows carrying an
id are all in the days of the files whose filter says yes, the days of files whose entry records no
filter (converted before it existed, unreadable, too many ids, or a file no entry names), and the
days of the hot rows read at ``open_trail``: a number of days that grows with the trade, not with
the trail. Like ``_parameter_index`` (whose manifest reading and root check it shares), it is
built on first use and again whenever the cold root changes; beyond ``MAX_DAYS`` days, or on a
store without a root or entries, ``days_holding`` returns None and the whole trail is read.
"""

from __future__ import annotations

import datetime as dt
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench._parameter_index import _COLD_GLOB, MAX_DAYS, cached_index, file_day, recorded_outputs
from workbench._time import utc_day

if TYPE_CHECKING:
    from audit_core.cold._id_filter import IdFilter
    from workbench.trail import Trail


@dataclass(frozen=True)
class IdIndex:
    """The cold store's id filters, built when its root was ``version``."""

    version: tuple[int, ...]
    #: Days with a file no filter vouches for.
    unknown_days: frozenset[dt.date]
    #: (day, filter) of every other file.
    filters: tuple[tuple[dt.date, IdFilter], ...]


_INDEXES: weakref.WeakKeyDictionary[Any, IdIndex] = weakref.WeakKeyDictionary()


def days_holding(trail: Trail, ids: Iterable[str]) -> frozenset[dt.date] | None:
    """The days whose rows may carry one of ``ids`` as ``order_id`` or ``correlation_id`` (every day that
    does is in it), or None to read the whole trail."""
    index = cached_index(_INDEXES, trail, build)
    if index is None:
        return None
    wanted = sorted(set(ids))
    days = set(index.unknown_days)
    days.update(day for day, id_filter in index.filters
                if day not in days and any(id_filter.may_contain(value) for value in wanted))
    hot = trail.hot
    if trail.include_hot and hot.rows and hot.first_ts is not None and hot.last_ts is not None:
        first, last = utc_day(hot.first_ts), utc_day(hot.last_ts)
        if (last - first).days >= MAX_DAYS:
            return None
        days.update(first + dt.timedelta(days=n) for n in range((last - first).days + 1))
    return frozenset(days) if len(days) <= MAX_DAYS else None


def build(cold: Any, version: tuple[int, ...]) -> IdIndex | None:
    """The id index of cold store ``cold`` from its manifest entries and files; None if it has no entries."""
    from audit_core.cold._id_filter import parse

    outputs = recorded_outputs(cold)
    if outputs is None:
        return None
    unknown: set[dt.date] = set()
    filters = []
    for path in cold.glob(_COLD_GLOB):
        relative = str(path.relative_to(cold))
        day = file_day(relative)
        if day is None:
            return None
        output = outputs.get(relative)
        id_filter = None if output is None else parse(output.get("ids"))
        if id_filter is None:
            unknown.add(day)
        else:
            filters.append((day, id_filter))
    return IdIndex(version, frozenset(unknown), tuple(filters))
