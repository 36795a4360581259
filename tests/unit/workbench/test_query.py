"""AuditQuery: the seed's interface on the workbench expressions; never capped silently, never emptied on error."""

from __future__ import annotations

import pytest
from conftest import MIDNIGHT, T0, S

from workbench import AuditQuery, ResultTruncatedWarning, WorkbenchInputError, open_trail


@pytest.fixture
def query(hand_trail):
    hand_trail.convert(only_jan5=True)
    return AuditQuery(hand_trail.base)


class TestQueryTimeRange:
    def test_rows_in_order_with_filters(self, query):
        frame = query.query_time_range(T0, MIDNIGHT + S, event_type="param.*")
        assert list(frame["new_value"]) == ["0.5", "0.3", "3.5"]
        assert not frame.attrs["truncated"] and not query.last_truncated
        frame = query.query_time_range("2026-01-05", "2026-01-07", source="AuditObserver", limit=None)
        assert len(frame) == 8

    def test_a_cut_result_says_so(self, query):
        with pytest.warns(ResultTruncatedWarning, match=r"first 3 rows; more match"):
            frame = query.query_time_range("2026-01-05", "2026-01-07", limit=3)
        assert len(frame) == 3 and frame.attrs["truncated"] and query.last_truncated
        assert list(frame["sequence"]) == [0, 0, 1]  # the first three in true order

    def test_exactly_limit_rows_is_not_truncated(self, query):
        frame = query.query_time_range(T0, T0 + 31 * S, limit=2)
        assert len(frame) == 2 and not frame.attrs["truncated"]

    @pytest.mark.parametrize("limit", [0, -5, 2.5, True])
    def test_a_bad_limit_is_named(self, query, limit):
        with pytest.raises(WorkbenchInputError, match=r"limit="):
            query.query_time_range(T0, MIDNIGHT, limit=limit)


def test_count_by_type(query):
    frame = query.count_by_type()
    assert dict(zip(frame["event_type"], frame["count"], strict=True)) == {
        "trade.signal": 3, "param.risk_change": 3, "sys.account_state": 2, "trade.fill": 2, "trade.order": 2,
        "param.k_change": 1, "sys.regime_change": 1, "trade.position_closed": 1, "trade.position_opened": 1}
    assert list(frame["event_type"][:2]) == ["param.risk_change", "trade.signal"]  # ties by name
    assert int(query.count_by_type(MIDNIGHT, "2026-01-07")["count"].sum()) == 7


def test_incident_and_parameter_history(query):
    incident = query.reconstruct_incident("2026-01-06 00:00", minutes=0.5)
    assert list(incident["event_type"]) == ["trade.signal", "param.risk_change", "trade.signal"]
    history = query.get_parameter_history("risk_multiplier", source="manual_override")
    assert list(history["new_value"]) == ["3.5"]


def test_verify_checksums_over_hot_and_cold(query, hand_trail):
    report = query.verify_checksums()
    assert report.ok and report.records >= hand_trail.events
    victim = next((hand_trail.base / "hot").glob("audit.TRADER-001.exec.2026-01-06.*.jsonl"))
    victim.chmod(0o644)
    victim.write_bytes(victim.read_bytes().replace(b'"1.10112"', b'"1.10113"'))
    report = query.verify_checksums()
    assert not report.ok and any(f.kind.value == "checksum_mismatch" for f in report.failures)


def test_a_trail_can_be_passed_open(hand_trail):
    trail = open_trail(hand_trail.base)
    assert AuditQuery(trail).trail is trail


def test_a_query_error_propagates(hand_trail):
    hand_trail.convert()
    query = AuditQuery(hand_trail.base)
    for file in (hand_trail.base / "cold").glob("year=*/month=*/day=*/*.parquet"):
        file.write_bytes(b"PAR1 truncated")
    with pytest.raises(Exception, match=r"(?i)parquet|magic|invalid|too small"):
        query.query_time_range("2026-01-05", "2026-01-07")


class TestQueryTimeRangeColumns:
    def test_payload_and_description_only_on_request(self, query):
        frame = query.query_time_range("2026-01-05", "2026-01-07", limit=None)
        assert "payload" not in frame.columns and "description" not in frame.columns
        assert list(frame.columns) == [c for c in query.trail.events.columns if c != "payload"]
        asked = query.query_time_range("2026-01-05", "2026-01-07", event_type="param.*", describe=True, payload=True)
        assert list(asked.columns[-2:]) == ["description", "payload"]
        assert asked["description"].iloc[0] == "meta_controller changed risk_multiplier: 1.0 -> 0.5 (drawdown > 10%)"

    def test_columns_are_returned_in_the_order_given(self, query):
        frame = query.query_time_range(T0, MIDNIGHT + S, event_type="param.*", columns=["new_value", "description"])
        assert list(frame.columns) == ["new_value", "description"]
        assert list(frame["new_value"]) == ["0.5", "0.3", "3.5"]  # still in true order
        assert list(query.query_time_range(T0, T0 + 1, columns="source")["source"]) == ["meta_controller"]

    @pytest.mark.parametrize("columns", [["ts_event", "descripton"], ["record"], []])
    def test_an_unknown_column_is_named(self, query, columns):
        with pytest.raises(WorkbenchInputError, match=r"columns=.*expected names from \[.*'ts_event'"):
            query.query_time_range(T0, MIDNIGHT, columns=columns)

    def test_values_are_exact(self, query):
        from decimal import Decimal

        import pandas as pd
        import pyarrow as pa

        frame = query.query_time_range("2026-01-05", "2026-01-07", event_type="trade.fill", limit=None)
        assert frame["price"].dtype == pd.ArrowDtype(pa.decimal128(38, 18))
        assert frame["price"].tolist() == [Decimal("1.10012"), Decimal("1.10112")]
        assert str(frame["ts_event"].dtype) == "int64[pyarrow]" and str(frame["ts_init"].dtype) == "int64[pyarrow]"


def test_every_row_in_slices_is_the_same_frame(generated_trail, monkeypatch):
    import pandas as pd

    import workbench.query

    query = AuditQuery(generated_trail.base_path)
    whole = query.query_time_range(None, None, limit=None, describe=True)
    monkeypatch.setattr(workbench.query, "CHUNK_ROWS", 97)  # 16 slices of time
    sliced = query.query_time_range(None, None, limit=None, describe=True)
    assert len(whole) == generated_trail.events
    pd.testing.assert_frame_equal(sliced, whole)
    assert sliced["ts_event"].is_monotonic_increasing
    window = query.query_time_range("2026-01-02", "2026-01-03", event_type="trade.*", limit=None)
    monkeypatch.setattr(workbench.query, "CHUNK_ROWS", 10**9)
    pd.testing.assert_frame_equal(window, query.query_time_range("2026-01-02", "2026-01-03", event_type="trade.*",
                                                                 limit=None))
