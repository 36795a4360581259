"""Every analysis against answers worked out by hand on the hand-built trail (see conftest)."""

from __future__ import annotations

import json
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import CONTROL, EXEC, MIDNIGHT, T0, S

from workbench import (
    TrailNotVerifiedWarning,
    UnknownValueWarning,
    WorkbenchInputError,
    detect_unexplained_changes,
    open_trail,
    parameter_history,
    pnl_reconciliation,
    realized_pnl_series,
    reconstruct_incident,
    signal_conversion,
    state_at,
    trade_lifecycle,
)
from workbench.incident import INCIDENT_COLUMNS
from workbench.trades import CONVERSION_COLUMNS, LIFECYCLE_COLUMNS


@pytest.fixture(params=["hot", "half", "cold"])
def trail(request, hand_trail):
    """The same trail three ways: all hot, 2026-01-05 converted, everything converted."""
    if request.param == "half":
        hand_trail.convert(only_jan5=True)
    elif request.param == "cold":
        hand_trail.convert()
    return open_trail(hand_trail.base)


def rows(table, *columns):
    return [tuple(row[c] for c in columns) for row in table.to_pyarrow().to_pylist()]


class TestReconstructIncident:
    def test_true_order_ties_broken_by_stream_then_sequence(self, trail):
        incident = reconstruct_incident(trail, T0 + 60 * S, minutes=1)
        assert rows(incident, "stream", "sequence", "offset_ns") == [
            (CONTROL, 0, -60 * S), (CONTROL, 1, -30 * S),
            (CONTROL, 2, 0), (EXEC, 1, 0), (EXEC, 2, 0),  # three records in the same nanosecond
            (EXEC, 3, S // 2), (EXEC, 4, S // 2), (EXEC, 5, 30 * S),
            (CONTROL, 3, 60 * S),  # both ends are included
        ]

    def test_descriptions(self, trail):
        frame = reconstruct_incident(trail, T0 + 60 * S, minutes=1).to_pandas()
        assert list(frame.columns) == list(INCIDENT_COLUMNS)
        assert list(frame["description"]) == [
            "meta_controller changed risk_multiplier: 1.0 -> 0.5 (drawdown > 10%)",
            "kelly_sizer changed kelly_fraction: 0.25 -> 0.3 (no reason given)",
            'sys.regime_change from meta_controller: {"from":"VENTRAL","to":"DORSAL"}',
            "momentum signal 0.82 on EURUSD.SIM (confidence 0.91): acted on",
            "momentum submitted order O-1: BUY 100000 EURUSD.SIM",
            "order O-1 filled: BUY 100000 EURUSD.SIM @ 1.10012",
            "momentum opened position P-1: BUY 100000 EURUSD.SIM @ 1.10012",
            "momentum signal 0.12 on EURUSD.SIM (confidence 0.3): filtered, below_threshold",
            "manual_override changed risk_multiplier: 0.5 -> 3.5 (manual)",
        ]
        assert str(frame["time"].dtype) == "datetime64[us, UTC]"

    def test_a_window_across_midnight(self, trail):
        incident = reconstruct_incident(trail, "2026-01-06 00:00", minutes=0.5)
        assert rows(incident, "event_type", "sequence") == [
            ("trade.signal", 5), ("param.risk_change", 3), ("trade.signal", 6)]

    def test_narrowed_by_type_and_source(self, trail):
        incident = reconstruct_incident(trail, MIDNIGHT, minutes=5, event_type="param.*", source="manual_override")
        assert rows(incident, "param_name", "new_value") == [("risk_multiplier", "3.5")]

    def test_an_empty_window_has_the_columns_and_no_rows(self, trail):
        frame = reconstruct_incident(trail, "2026-03-01 12:00").to_pandas()
        assert frame.empty and list(frame.columns) == list(INCIDENT_COLUMNS)

    def test_bad_minutes_are_named(self, trail):
        with pytest.raises(WorkbenchInputError, match=r"minutes=0 must be positive"):
            reconstruct_incident(trail, T0, minutes=0)
        with pytest.raises(WorkbenchInputError, match=r"minutes='5' is not a duration"):
            reconstruct_incident(trail, T0, minutes="5")


class TestStateAt:
    def test_last_change_at_or_before_the_instant_per_source_and_parameter(self, trail):
        before = state_at(trail, MIDNIGHT - 1)
        assert rows(before, "param_name", "source", "value", "value_num", "sequence") == [
            ("kelly_fraction", "kelly_sizer", "0.3", 0.3, 1),
            ("risk_multiplier", "meta_controller", "0.5", 0.5, 0),
        ]
        at_midnight = state_at(trail, MIDNIGHT)  # a change at exactly the instant counts
        assert rows(at_midnight, "param_name", "source", "value") == [
            ("kelly_fraction", "kelly_sizer", "0.3"),
            ("risk_multiplier", "manual_override", "3.5"),
            ("risk_multiplier", "meta_controller", "0.5"),
        ]

    def test_before_any_change_nothing_and_narrowing(self, trail):
        assert rows(state_at(trail, T0 - 1), "param_name") == []
        assert rows(state_at(trail, "2026-01-07", param_name="k"), "source", "value") == [("particle_portfolio", "8")]
        assert rows(state_at(trail, "2026-01-07", source="manual_override"), "value") == [("3.5",)]


class TestParameterHistory:
    def test_every_change_in_order_with_reasons(self, trail):
        history = parameter_history(trail, "risk_multiplier")
        assert rows(history, "source", "old_value", "new_value", "trigger_reason") == [
            ("meta_controller", "1.0", "0.5", "drawdown > 10%"), ("manual_override", "0.5", "3.5", "manual")]
        assert rows(parameter_history(trail, "risk_multiplier", "meta_controller"), "new_value_num") == [(0.5,)]
        assert rows(parameter_history(trail, "risk_multiplier", start=MIDNIGHT), "new_value") == [("3.5",)]
        with pytest.warns(UnknownValueWarning, match=r"param_name='risk_multiplyer' .*'risk_multiplier'"):
            assert rows(parameter_history(trail, "risk_multiplyer"), "new_value") == []


class TestTradeLifecycle:
    def test_by_order_id_signal_to_realized_pnl_with_latencies(self, trail):
        steps = trade_lifecycle(trail, "O-1")
        assert rows(steps, "step", "since_previous_ns", "since_start_ns", "realized_pnl") == [
            ("signal", None, 0, None),
            ("order", 0, 0, None),
            ("fill", S // 2, S // 2, None),
            ("position_opened", 0, S // 2, Decimal("-2.20")),
            ("position_closed", 89_700_000_000, 90_200_000_000, Decimal("95.60")),
        ]
        assert steps.columns == LIFECYCLE_COLUMNS

    def test_by_correlation_id_includes_the_position_its_fill_closed(self, trail):
        steps = trade_lifecycle(trail, correlation_id="SIG-3")
        assert rows(steps, "step", "order_id") == [
            ("position_opened", "O-1"), ("signal", None), ("order", "O-2"), ("fill", "O-2"),
            ("position_closed", "O-2")]

    def test_unknown_id_is_empty(self, trail):
        assert rows(trade_lifecycle(trail, "O-404"), "step") == []

    @pytest.mark.parametrize("kwargs", [{}, {"order_id": "O-1", "correlation_id": "SIG-1"}])
    def test_exactly_one_id(self, trail, kwargs):
        with pytest.raises(WorkbenchInputError, match=r"exactly one of order_id or correlation_id"):
            trade_lifecycle(trail, **kwargs)


class TestPnlReconciliation:
    def test_realized_pnl_reconciles_exactly_with_recorded_balances(self, trail):
        reconciliation = pnl_reconciliation(trail)
        (row,) = reconciliation.to_pandas().to_dict("records")
        assert row["currency"] == "USD"
        assert row["realized_pnl"] == Decimal("95.60") and row["balance_change"] == Decimal("95.60")
        assert row["difference"] == 0 and isinstance(row["difference"], Decimal)
        assert row["reconciled"] is True and reconciliation.ok is True

    def test_against_balances_supplied_by_the_caller(self, trail):
        reconciliation = pnl_reconciliation(trail, balances={"USD": "1000100.00"})
        (row,) = reconciliation.to_pandas().to_dict("records")
        assert row["difference"] == Decimal("4.40") and reconciliation.ok is False

    def test_per_strategy_with_commissions(self, trail):
        by_strategy = pnl_reconciliation(trail).by_strategy
        assert rows(by_strategy, "strategy_source", "realized_pnl", "positions_closed", "commission", "fills") == [
            ("mean_reversion", None, 0, Decimal("2.20"), 1),
            ("momentum", Decimal("95.60"), 1, Decimal("2.20"), 1),
        ]

    def test_series(self, trail):
        assert rows(realized_pnl_series(trail), "group", "cumulative_pnl") == [("momentum", Decimal("95.60"))]

    def test_a_float_balance_is_refused(self, trail):
        with pytest.raises(WorkbenchInputError, match=r"balances\['USD'\]=1.5: pass a Decimal"):
            pnl_reconciliation(trail, balances={"USD": 1.5})


class TestSignalConversion:
    def test_counts_rates_and_reasons(self, trail):
        conversion = signal_conversion(trail)
        frame = conversion.to_pandas()
        assert list(frame.columns) == ["strategy_source", *CONVERSION_COLUMNS]
        assert rows(conversion.summary, "strategy_source", "signals", "acted_on", "filtered", "orders", "fills",
                    "conversion_rate", "fill_rate") == [
            ("mean_reversion", 1, 1, 0, 1, 1, 1.0, 1.0), ("momentum", 2, 1, 1, 1, 1, 0.5, 1.0)]
        assert rows(conversion.not_traded, "strategy_source", "filter_reason", "signals", "share") == [
            ("momentum", "below_threshold", 1, 1.0)]

    def test_a_window(self, trail):
        conversion = signal_conversion(trail, end=MIDNIGHT)
        assert rows(conversion.summary, "strategy_source", "signals") == [("momentum", 2)]
        assert rows(signal_conversion(trail, start="2026-02-01", end="2026-02-02").summary, "signals") == []

    def test_window_is_a_deprecated_alias_of_start_and_end(self, trail):
        with pytest.warns(DeprecationWarning, match=r"window=\(start, end\)\) is deprecated: pass start= and end="):
            conversion = signal_conversion(trail, window=(None, MIDNIGHT))
        assert rows(conversion.summary, "strategy_source", "signals") == [("momentum", 2)]
        with pytest.raises(WorkbenchInputError, match=r"pass only start= and end="), \
                pytest.warns(DeprecationWarning):
            signal_conversion(trail, window=(None, MIDNIGHT), start=MIDNIGHT)

    def test_start_is_a_keyword_like_everywhere(self, trail):
        assert rows(trail.conversion(start=MIDNIGHT).summary, "strategy_source", "signals") == [
            ("mean_reversion", 1)]

    def test_bad_arguments_are_named(self, trail):
        with pytest.raises(WorkbenchInputError, match=r"by='strategy' is not a column"):
            signal_conversion(trail, by="strategy")
        with pytest.raises(WorkbenchInputError, match=r"window='2026-01-05': expected \(start, end\)"), \
                pytest.warns(DeprecationWarning):
            signal_conversion(trail, window="2026-01-05")


class TestUnexplainedChanges:
    ALLOWED = ["meta_controller", "kelly_sizer", "particle_portfolio"]

    def test_missing_reason_bounds_and_sources(self, trail):
        found = detect_unexplained_changes(trail, bounds={"risk_multiplier": (0.0, 2.0), "k": (1, None)},
                                           allowed_sources=self.ALLOWED)
        assert rows(found.findings, "kind", "source", "param_name", "new_value") == [
            ("missing_reason", "kelly_sizer", "kelly_fraction", "0.3"),
            ("out_of_bounds", "manual_override", "risk_multiplier", "3.5"),
            ("unexpected_source", "manual_override", "risk_multiplier", "3.5"),
        ]
        assert found.integrity_ok
        frame = found.to_pandas()
        assert frame["detail"][1] == "risk_multiplier must be within [0.0, 2.0], got 3.5"

    def test_allowed_sources_per_parameter(self, trail):
        found = detect_unexplained_changes(trail, allowed_sources={"k": ["meta_controller"]}, integrity=False)
        assert rows(found.findings.filter(found.findings.kind != "missing_reason"), "kind", "param_name") == [
            ("unexpected_source", "k")]

    def test_bad_arguments_are_named(self, trail):
        with pytest.raises(WorkbenchInputError, match=r"bounds\['k'\]=\(5, 1\): low is above high"):
            detect_unexplained_changes(trail, bounds={"k": (5, 1)})
        with pytest.raises(WorkbenchInputError, match=r"allowed_sources='meta_controller': expected a collection"):
            detect_unexplained_changes(trail, allowed_sources="meta_controller")


def test_sequence_gaps_and_integrity_failures_are_surfaced(hand_trail):
    hand_trail.convert()
    (day,) = (hand_trail.base / "cold").glob("year=2026/month=01/day=05/audit.TRADER-001.exec.*.parquet")
    table = pq.read_table(day)
    keep = pa.array([sequence != 3 for sequence in table.column("sequence").to_pylist()])
    pq.write_table(table.filter(keep), day)  # someone deleted the fill of O-1 from cold storage
    trail = open_trail(hand_trail.base)
    assert trail.verification.state == "failed"
    with pytest.warns(TrailNotVerifiedWarning, match="FAILED: .*parquet_mismatch") as caught:
        found = detect_unexplained_changes(trail)
    assert len(caught) == 1
    assert found.verification is trail.verification
    gaps = rows(found.findings.filter(found.findings.kind == "sequence_gap"), "stream", "sequence", "detail")
    assert gaps == [(EXEC, 4, "sequence jumps from 2 to 4 in stream TRADER-001.exec: 1 record(s) missing")]
    assert not found.integrity_ok
    kinds = set(found.to_pandas()["kind"])
    assert {"sequence_gap", "missing_reason"} <= kinds and kinds & {"seal_mismatch", "sequence_gap"}
    assert any(json.dumps(f.detail) for f in found.integrity)


class TestBackdatedRecords:
    """``ts_event`` well before ``ts_recorded``: an "approval" written after the incident it claims to precede."""

    @staticmethod
    def backdated_trail(base):
        from audit_core import AuditConfig, AuditEventEmitter

        now = [T0]
        with AuditEventEmitter(AuditConfig(base_path=base, trader_id="T1", stream_id="ops", sync_writes=False),
                               clock=lambda: now[0]) as emitter:
            emitter.emit_param_change("meta_controller", "risk_multiplier", 1.0, 2.0, "drawdown")  # on time
            now[0] = T0 + 600 * S
            emitter.emit_trade("trade.fill", "obs", "ES", order_id="O-1", side="BUY", size="1", price="1",
                               ts_event=T0 + 599 * S)  # a venue time 1 s behind: normal
            emitter.emit_system("sys.approval", "risk_desk", {"approved": "risk_multiplier"},
                                ts_event=T0 - 60 * S)  # written 11 minutes after the time it claims
        return open_trail(base)

    def test_a_record_claiming_a_time_before_it_was_recorded_is_flagged(self, tmp_path):
        found = detect_unexplained_changes(self.backdated_trail(tmp_path), integrity=False)
        assert rows(found.findings, "kind", "source", "sequence", "ts_event") == [
            ("backdated", "risk_desk", 2, T0 - 60 * S)]
        (detail,) = rows(found.findings, "detail")
        assert detail[0] == (f"ts_event is {660 * S} ns before ts_recorded {T0 + 600 * S} "
                             f"(tolerance 5000000000 ns): recorded as if it happened earlier")

    def test_the_tolerance_is_configurable_and_none_turns_the_check_off(self, tmp_path):
        trail = self.backdated_trail(tmp_path)
        strict = detect_unexplained_changes(trail, integrity=False, backdate_tolerance_ns=0)
        assert rows(strict.findings, "kind", "sequence") == [("backdated", 2), ("backdated", 1)]  # by ts_event
        lax = detect_unexplained_changes(trail, integrity=False, backdate_tolerance_ns=3600 * S)
        assert rows(lax.findings, "kind") == []
        off = detect_unexplained_changes(trail, integrity=False, backdate_tolerance_ns=None)
        assert rows(off.findings, "kind") == []

    @pytest.mark.parametrize("bad", [-1, 1.5, True, "5s"])
    def test_a_bad_tolerance_is_named(self, tmp_path, bad):
        trail = self.backdated_trail(tmp_path)
        with pytest.raises(WorkbenchInputError, match=r"backdate_tolerance_ns=.*non-negative integer"):
            detect_unexplained_changes(trail, integrity=False, backdate_tolerance_ns=bad)
