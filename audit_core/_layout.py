"""Names of hot files: one place that writes them and parses them back.

A hot file is ``audit.<trader_id>.<stream_id>.<YYYY-MM-DD>.jsonl``: the stream in the name keeps
two processes out of each other's files and chains; the UTC date orders a stream's files.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import NamedTuple

HOT_SUFFIX = ".jsonl"
_HOT_NAME = re.compile(
    r"^audit\.(?P<trader>[A-Za-z0-9_\-]+)\.(?P<stream>[A-Za-z0-9_\-]+)\.(?P<day>\d{4}-\d{2}-\d{2})\.jsonl$"
)

NS_PER_DAY = 86_400 * 1_000_000_000


class HotFileName(NamedTuple):
    trader_id: str
    stream_id: str
    day: dt.date

    @property
    def stream_key(self) -> str:
        return f"{self.trader_id}.{self.stream_id}"


def hot_file_name(trader_id: str, stream_id: str, day: dt.date) -> str:
    return f"audit.{trader_id}.{stream_id}.{day.isoformat()}{HOT_SUFFIX}"


def parse_hot_file_name(path: Path) -> HotFileName | None:
    match = _HOT_NAME.match(path.name)
    if match is None:
        return None
    return HotFileName(match["trader"], match["stream"], dt.date.fromisoformat(match["day"]))


def utc_day(ts_ns: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=ts_ns // NS_PER_DAY)


def next_midnight_ns(ts_ns: int) -> int:
    return (ts_ns // NS_PER_DAY + 1) * NS_PER_DAY
