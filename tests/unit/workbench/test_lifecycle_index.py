"""trade_lifecycle reads only the days the cold files' id filters say may hold the trade, with the answer of a
whole-trail scan: for every order and signal of a generated trail (netting positions whose round trips span
days), on a trail all converted and on one split between cold and hot, and with an id filter removed or
malformed (that file's day is then read whole)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from audit_core.cold.converter import ParquetConverter
from audit_core.cold.manifest import MANIFEST_DIR
from benchmarks.trail_gen import generate_trail, open_unverified
from workbench import _id_index, open_trail, trade_lifecycle
from workbench._parameter_index import file_day
from workbench._time import utc_day


@pytest.fixture(scope="module", params=["cold", "split"])
def generated(request, tmp_path_factory):
    """Six days, all converted ("cold") or the first three only ("split": the rest read from hot files)."""
    base = tmp_path_factory.mktemp("lifecycle") / "trail"
    trail = generate_trail(base, events=2_400, days=6, seed=11, convert=False)
    converter = ParquetConverter(trail.hot_path, trail.cold_path)
    days = ("2026-01-01", "2026-01-02", "2026-01-03")
    for path in sorted(trail.hot_path.glob("*.jsonl")):
        if request.param == "cold" or any(f".{day}." in path.name for day in days):
            assert converter.convert_file(path).converted, path
    return base, request.param


def _ids(trail, column: str, event_type: str) -> list[str]:
    t = trail.events
    rows = t.filter(t.event_type == event_type, t[column].notnull()).select(column).distinct().order_by(column)
    return [row[column] for row in rows.to_pyarrow().to_pylist()]


def _whole_scan(monkeypatch, trail, **anchor):
    with monkeypatch.context() as patched:
        patched.setattr(_id_index, "days_holding", lambda trail, ids: None)  # the documented read-everything path
        return trade_lifecycle(trail, **anchor).to_pyarrow().to_pylist()


def test_every_trade_has_the_answer_of_a_whole_trail_scan(generated, monkeypatch):
    base, mode = generated
    trail = open_trail(base)
    assert (trail.hot.rows > 0) == (mode == "split")
    closing = _ids(trail, "order_id", "trade.position_closed")
    orders = _ids(trail, "order_id", "trade.order")
    signals = _ids(trail, "correlation_id", "trade.signal")
    assert len(closing) >= 10 and len(orders) >= 100 and len(signals) >= 100
    checked = 0
    for column, values in (("order_id", closing[:8] + orders[::30]), ("correlation_id", signals[::30])):
        for value in values:
            mine = trade_lifecycle(trail, **{column: value}).to_pyarrow().to_pylist()
            assert mine, (column, value)
            assert mine == _whole_scan(monkeypatch, trail, **{column: value}), (column, value)
            checked += 1
    assert checked >= 15
    # An id no record carries: no rows, and no file read but the unvouched and hot days.
    assert trade_lifecycle(trail, order_id="O-nowhere").to_pyarrow().num_rows == 0


def test_one_trade_reads_a_few_days_not_the_trail(generated):
    base, mode = generated
    trail = open_trail(base)
    closing = _ids(trail, "order_id", "trade.position_closed")
    all_days = {path.parent for path in trail.cold_path.glob("year=*/month=*/day=*/*.parquet")}
    read = [_id_index.days_holding(trail, [value]) for value in closing]
    assert all(days is not None for days in read)
    # Cold days the filters rule out are skipped; hot days are always read.
    cold_days = len(all_days)
    assert min(len(days) for days in read if days is not None) < cold_days + (3 if mode == "split" else 0)
    assert _id_index.days_holding(trail, ["O-nowhere"]) == (frozenset() if mode == "cold" else _hot_days(trail))


def _hot_days(trail) -> frozenset[dt.date]:
    first, last = utc_day(trail.hot.first_ts), utc_day(trail.hot.last_ts)
    return frozenset(first + dt.timedelta(days=n) for n in range((last - first).days + 1))


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("converted") / "trail"
    generate_trail(base, events=1_200, days=4, seed=12)
    return base


@pytest.mark.parametrize("edit", ["removed", "malformed"])
def test_a_file_without_a_readable_filter_is_read_whole(converted, tmp_path, monkeypatch, edit):
    copy = tmp_path / "trail"
    shutil.copytree(converted, copy)
    entry = sorted((copy / "cold" / MANIFEST_DIR).glob("*exec*.json"))[0]
    document = json.loads(entry.read_text())
    output = document["outputs"][0]
    if edit == "removed":
        del output["ids"]
    else:
        output["ids"] = {"bits": 64, "hashes": 7, "filter": "not base64!"}
    entry.chmod(0o644)
    entry.write_text(json.dumps(document))
    trail = open_unverified(copy)
    day = file_day(output["path"])
    assert day in _id_index.days_holding(trail, ["O-nowhere"])
    closing = _ids(trail, "order_id", "trade.position_closed")
    for value in closing[:5]:
        assert trade_lifecycle(trail, order_id=value).to_pyarrow().to_pylist() == _whole_scan(
            monkeypatch, trail, order_id=value)
