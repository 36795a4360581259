"""Which days ``state_at`` must read: the day asked about, plus each parameter's last change before it.

The converter records in each manifest output the parameters changed in that Parquet file and the
instant of each one's last change there (``parameters``: ``audit_core.cold._parquet.parameter_index_sql``;
``verify_cold`` derives it again from the file and reports a difference). The value in force at
``at`` is each parameter's latest change at or before ``at``: it is on ``at``'s own day, or it is
the latest of the recorded last changes before that day. So ``state_at`` reads ``at``'s day and,
for each parameter, only the rows at the instant of its last change before that day, in the day
partitions that hold it: a number of files that grows with the parameters, not with the trail.
Within those files ``state_at`` asks for ``param.*`` as an ``event_type`` range and for nothing
before the earliest instant or day planned, which the engine checks against each row group's
statistics: row groups without parameter changes (a day's trade and signal files) are not read.
What still grows with events per day is ``at``'s own day, read up to ``at``: a parameter's latest
change before ``at`` can be anywhere in it, and the index records only each file's last change.

Read whole, to stay right where the index cannot vouch: days with a file whose entry records no
index (converted before it existed, unreadable, or not named by any entry), and the days of the hot
rows read at ``open_trail``. The index is built from the manifest entries and a listing of the
files on first use, and again whenever the cold root (``_root.json``, which the converter,
retention and a rebuild rewrite after every change) changes: one ``stat`` per call. Beyond
``MAX_DAYS`` days, or on a store without a root or entries, ``plan`` returns None and the whole
trail is read, as before. (A Parquet file copied into the store by hand, without the converter and
its root, is seen by ``state_at`` once the root changes or the trail is opened again; ``verify``
reports such a file as unexpected.) The plan depends on ``at``'s day only, so on DuckDB the SQL is
compiled once per day's shape (``workbench._compiled``), not once for every instant.
"""

from __future__ import annotations

import datetime as dt
import re
import weakref
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench._time import utc_day

if TYPE_CHECKING:
    from workbench.trail import Trail

#: Above this many day partitions the predicate would cost more than it saves: everything is read.
MAX_DAYS = 64
_NS_PER_DAY = 86_400 * 10**9
_PARTITION = re.compile(r"^year=(\d{4})/month=(\d{2})/day=(\d{2})/[^/]+\.parquet$")
_COLD_GLOB = "year=*/month=*/day=*/*.parquet"


@dataclass(frozen=True)
class ParameterIndex:
    """The cold store's parameter index, built when its root was ``version`` (``_store_version``)."""

    version: tuple[int, ...]
    #: Days with a file the index cannot vouch for.
    unknown_days: frozenset[dt.date]
    #: (owner, param_name) -> [(instant of its last change in a file, that file's day), ...]
    changes: dict[tuple[str, str], list[tuple[int, dt.date]]]


@dataclass(frozen=True)
class Plan:
    """What ``state_at`` reads: ``whole_days`` entirely (up to the instant), and the rows at ``instants``
    in ``instant_days``."""

    whole_days: frozenset[dt.date]
    instants: frozenset[int]
    instant_days: frozenset[dt.date]


_INDEXES: weakref.WeakKeyDictionary[Any, ParameterIndex] = weakref.WeakKeyDictionary()


def plan(trail: Trail, at: int) -> Plan | None:
    """The days and instants ``state_at(trail, at)`` must read, or None to read the whole trail."""
    index = cached_index(_INDEXES, trail, build)
    if index is None:
        return None
    day = utc_day(at)
    day_start = (at // _NS_PER_DAY) * _NS_PER_DAY
    whole = {day, *(unknown for unknown in index.unknown_days if unknown <= day)}
    hot = trail.hot
    if trail.include_hot and hot.rows and hot.first_ts is not None and hot.last_ts is not None:
        first, last = utc_day(hot.first_ts), min(utc_day(hot.last_ts), day)
        if (last - first).days >= MAX_DAYS:
            return None
        whole.update(first + dt.timedelta(days=n) for n in range(max((last - first).days + 1, 0)))
    instants: set[int] = set()
    instant_days: set[dt.date] = set()
    for changes in index.changes.values():
        before = [ts for ts, _ in changes if ts < day_start]
        if not before:
            continue
        latest = max(before)
        instants.add(latest)
        instant_days.update(file_day for ts, file_day in changes if ts == latest)
    if len(whole | instant_days) > MAX_DAYS:
        return None
    return Plan(frozenset(whole), frozenset(instants), frozenset(instant_days))


def day_start(day: dt.date) -> int:
    """The first nanosecond of UTC day ``day``."""
    return (day - dt.date(1970, 1, 1)).days * _NS_PER_DAY


def cached_index(cache: Any, trail: Trail, build: Any) -> Any:
    """``cache[trail]``, rebuilt with ``build(cold, version)`` when the store's root changed; None when
    the store has no root or ``build`` cannot vouch for it (the caller then reads the whole trail)."""
    cold = trail.cold_path
    version = _store_version(cold)
    if version is None:
        return None
    index = cache.get(trail)
    if index is None or index.version != version:
        index = build(cold, version)
        if index is None:
            return None
        cache[trail] = index
    return index


def _store_version(cold: Path) -> tuple[int, ...] | None:
    """What changes when the store's files change: the cold root, which the converter, retention and a
    rebuild rewrite (by rename) after every change. None without one."""
    from audit_core.cold.manifest import ROOT_FILE

    try:
        stat = (cold / ROOT_FILE).stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def build(cold: Path, version: tuple[int, ...]) -> ParameterIndex | None:
    """The index of the cold store ``cold`` holding ``files``, from its manifest entries; None if it has none.

    Entries are read as untrusted input: one that cannot be read, or an output whose ``parameters``
    is not in its form, vouches for nothing (its files' days are read whole).
    """
    files = [str(path.relative_to(cold)) for path in cold.glob(_COLD_GLOB)]
    outputs = recorded_outputs(cold)
    if outputs is None:
        return None
    recorded: dict[str, list[tuple[str, str, int]]] = {}
    for relative, output in outputs.items():
        parameters = _parameters(output.get("parameters"))
        if parameters is not None:
            recorded[relative] = parameters
    unknown: set[dt.date] = set()
    changes: dict[tuple[str, str], list[tuple[int, dt.date]]] = defaultdict(list)
    for relative in files:
        day = file_day(relative)
        if day is None:
            return None
        parameters = recorded.get(relative)
        if parameters is None:
            unknown.add(day)
            continue
        for owner, name, last in parameters:
            changes[(owner, name)].append((last, day))
    return ParameterIndex(version, frozenset(unknown), dict(changes))


def recorded_outputs(cold: Path) -> dict[str, dict[str, Any]] | None:
    """Each output the manifest entries of cold store ``cold`` record, by path; None if it has no entries.

    Entries are read as untrusted input: one that cannot be read (not authentic, not JSON) records nothing.
    """
    from audit_core.cold.manifest import MANIFEST_DIR, read_manifest
    from audit_core.errors import AuditError

    entries = sorted((cold / MANIFEST_DIR).glob("*.json"))
    if not entries:
        return None
    recorded: dict[str, dict[str, Any]] = {}
    for path in entries:
        try:
            entry = read_manifest(path)
        except (AuditError, OSError, ValueError):
            continue
        outputs = entry.get("outputs")
        for output in outputs if isinstance(outputs, list) else []:
            if isinstance(output, dict) and isinstance(output.get("path"), str):
                recorded[output["path"]] = output
    return recorded


def file_day(relative: str) -> dt.date | None:
    """The UTC day of a cold file from its path (``year=/month=/day=/<name>.parquet``); None if not one."""
    match = _PARTITION.match(relative.replace("\\", "/"))
    if match is None:
        return None
    try:
        return dt.date(*(int(part) for part in match.groups()))
    except ValueError:
        return None


def _parameters(value: Any) -> list[tuple[str, str, int]] | None:
    """``parameters`` of a manifest output if in its form (``[[owner, name, ts], ...]``), else None."""
    if not isinstance(value, list):
        return None
    parsed = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str) and isinstance(item[1], str)
                and isinstance(item[2], int) and not isinstance(item[2], bool)):
            return None
        parsed.append((item[0], item[1], item[2]))
    return parsed
