"""One vocabulary and typo safety: families, exclusions, unknown values, instants in the wrong unit,
analyses as ``Trail`` methods, and causal order of records that share a nanosecond."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest
from conftest import MIDNIGHT, T0, S

from audit_core import AuditConfig, AuditEventEmitter
from workbench import (
    TrailNotVerifiedWarning,
    UnknownValueWarning,
    WorkbenchInputError,
    count_by_type,
    open_trail,
    reconstruct_incident,
    signal_conversion,
    trade_lifecycle,
)
from workbench.filters import FAMILIES


def count(table) -> int:
    return int(table.count().execute())


def types(table) -> list[str]:
    return sorted(set(table.select("event_type").to_pyarrow().column(0).to_pylist()))


class TestFamiliesAndExclusions:
    def test_each_family_is_exactly_its_event_types(self, hand_trail):
        trail = open_trail(hand_trail.base)
        assert types(trail.filter(family="parameter")) == ["param.k_change", "param.risk_change"]
        assert types(trail.filter(family="signal")) == ["trade.signal"]
        assert types(trail.filter(family="order")) == ["trade.order"]
        assert types(trail.filter(family="fill")) == ["trade.fill"]
        assert types(trail.filter(family="position")) == ["trade.position_closed", "trade.position_opened"]
        assert types(trail.filter(family="system")) == ["sys.account_state", "sys.regime_change"]
        assert count(trail.filter(family=["order", "fill"])) == 4
        assert sum(count(trail.filter(family=name)) for name in FAMILIES) == hand_trail.events

    def test_an_unknown_family_is_named(self, hand_trail):
        with pytest.raises(WorkbenchInputError, match=r"family='fills' is not a family; expected one of"):
            open_trail(hand_trail.base).filter(family="fills")

    def test_trade_star_includes_signals_and_exclude_removes_them(self, hand_trail):
        trail = open_trail(hand_trail.base)
        every_trade = trail.filter(event_type="trade.*")
        assert "trade.signal" in types(every_trade)
        without_signals = trail.filter(event_type="trade.*", exclude="trade.signal*")
        assert "trade.signal" not in types(without_signals)
        assert count(without_signals) == count(every_trade) - count(trail.filter(family="signal"))
        assert count(trail.filter(exclude=["param.*", "sys.*"])) == count(every_trade)


class TestTypos:
    @pytest.mark.parametrize(("arguments", "message"), [
        ({"event_type": "trade.fil"}, r"event_type='trade.fil' matches nothing.*did you mean 'trade.fill'"),
        ({"event_type": "trad.*"}, r"event_type='trad.\*' matches nothing in this trail; did you mean 'trade"),
        ({"source": "meta_controler"}, r"source='meta_controler' matches nothing.*did you mean 'meta_controller'"),
        ({"instrument": "EURUSD"}, r"instrument='EURUSD' matches nothing.*did you mean 'EURUSD.SIM'"),
        ({"strategy": "momentun"}, r"strategy='momentun' matches nothing.*did you mean 'momentum'"),
        ({"param_name": "risk_multiplyer"}, r"param_name='risk_multiplyer'.*did you mean 'risk_multiplier'"),
        ({"exclude": "trade.signl"}, r"event_type='trade.signl' matches nothing.*'trade.signal'"),
    ])
    def test_a_value_that_matches_nothing_warns_with_a_suggestion(self, hand_trail, arguments, message):
        trail = open_trail(hand_trail.base)
        with pytest.warns(UnknownValueWarning, match=message):
            trail.filter(**arguments)

    def test_known_values_and_matching_patterns_say_nothing(self, hand_trail):
        trail = open_trail(hand_trail.base)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            trail.filter(event_type=["trade.*", "*.fill"], source="meta_controller", instrument="EURUSD.SIM",
                         strategy="momentum", param_name="risk_multiplier")

    def test_raise_mode_raises_and_ignore_mode_is_silent(self, hand_trail):
        strict = open_trail(hand_trail.base, on_unknown="raise")
        with pytest.raises(WorkbenchInputError, match=r"source='nobody' matches nothing in this trail"):
            strict.filter(source="nobody")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert count(open_trail(hand_trail.base, on_unknown="ignore").filter(source="nobody")) == 0
        with pytest.raises(WorkbenchInputError, match=r"on_unknown='loud': expected one of"):
            open_trail(hand_trail.base, on_unknown="loud")

    def test_analyses_check_what_the_user_gave_not_their_own_constants(self, hand_trail):
        trail = open_trail(hand_trail.base)  # no trade.rejected in this trail: signal_conversion must not warn
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            signal_conversion(trail).to_pandas()
            trade_lifecycle(trail, "O-1").to_pandas()
        with pytest.warns(UnknownValueWarning, match=r"source='AuditObserve' .*did you mean 'AuditObserver'"):
            reconstruct_incident(trail, T0, minutes=5, source="AuditObserve")
        with pytest.warns(UnknownValueWarning, match=r"source='kelly'.*'kelly_sizer'"):
            count_by_type(trail, source="kelly")

    def test_an_empty_trail_suggests_nothing(self, tmp_path):
        (tmp_path / "hot").mkdir()
        trail = open_trail(tmp_path)
        with pytest.warns(TrailNotVerifiedWarning, match="no records to check"):  # nothing was verified either
            trail.events  # noqa: B018 - the first read warns, once
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert count(trail.filter(source="anything")) == 0


class TestInstants:
    @pytest.mark.parametrize(("value", "unit", "fix"), [
        (T0 // S, "seconds", T0), (T0 // 1_000_000, "milliseconds", T0), (T0 // 1_000, "microseconds", T0)])
    def test_an_instant_in_another_unit_raises_with_the_fix(self, hand_trail, value, unit, fix):
        trail = open_trail(hand_trail.base)
        with pytest.raises(WorkbenchInputError, match=rf"start={value} lies outside this trail as nanoseconds but "
                                                      rf"inside it as {unit}: .* pass {fix}"):
            trail.filter(start=value)
        with pytest.raises(WorkbenchInputError, match=rf"at={value} .* as {unit}"):
            reconstruct_incident(trail, value)

    def test_nanoseconds_outside_the_trail_and_tiny_test_times_are_taken_as_given(self, hand_trail):
        trail = open_trail(hand_trail.base)
        assert count(trail.filter(start=MIDNIGHT + 10 * 86_400 * S)) == 0
        assert count(trail.filter(start=5, end=10)) == 0
        assert count(trail.filter(start=T0)) == hand_trail.events - 1  # the account state 10 s before T0

    def test_a_pandas_timestamp_keeps_its_nanoseconds(self, hand_trail):
        trail = open_trail(hand_trail.base)
        exact = pd.Timestamp(T0 + 60_500_000_000, unit="ns", tz="UTC")
        assert trail.to_ns(exact, "at") == T0 + 60_500_000_000
        assert count(trail.filter(start=exact, end=exact + pd.Timedelta(1, "ns"))) == 2
        assert count(trail.filter(start=exact + pd.Timedelta(1, "ns"), end=T0 + 61 * S)) == 0


class TestTrailMethods:
    def test_every_analysis_is_a_method_with_the_same_answer(self, hand_trail):
        import workbench as wb

        trail = open_trail(hand_trail.base)
        frames = {
            "incident": (trail.incident(T0 + 60 * S, minutes=1), wb.reconstruct_incident(trail, T0 + 60 * S, 1)),
            "lifecycle": (trail.lifecycle("O-1"), wb.trade_lifecycle(trail, "O-1")),
            "history": (trail.parameter_history("risk_multiplier"), wb.parameter_history(trail, "risk_multiplier")),
            "state": (trail.state_at(MIDNIGHT), wb.state_at(trail, MIDNIGHT)),
            "series": (trail.pnl_series(), wb.realized_pnl_series(trail)),
            "conversion": (trail.conversion().summary, wb.signal_conversion(trail).summary),
            "counts": (trail.count_by_type(), wb.count_by_type(trail)),
        }
        for name, (method, function) in frames.items():
            assert method.to_pyarrow().equals(function.to_pyarrow()), name
        assert trail.pnl().to_pandas().equals(wb.pnl_reconciliation(trail).to_pandas())
        found = trail.unexplained_changes(integrity=False).findings.to_pyarrow()
        assert found.equals(wb.detect_unexplained_changes(trail, integrity=False).findings.to_pyarrow())


def write_tied_trail(base):
    """A signal in stream ``z-strategy`` and its order and fill in stream ``a-observer``, all at one ns.

    ``a-observer`` sorts first, so (ts_event, stream, sequence) would list the order and fill before the
    signal that caused them. An unlinked record in each stream at the same instant keeps its place.
    """
    at = T0 + 7
    make = lambda stream: AuditEventEmitter(AuditConfig(  # noqa: E731
        base_path=base, trader_id="T", stream_id=stream, sync_writes=False), clock=lambda: at)
    observer, strategy = make("a-observer"), make("z-strategy")
    trade = {"order_id": "O-9", "side": "BUY", "size": "10", "strategy_source": "momentum", "correlation_id": "S-9"}
    observer.emit_system("sys.heartbeat", "AuditObserver", {"n": 1}, ts_event=at)             # a-observer 0
    observer.emit_trade("trade.order", "AuditObserver", "EURUSD.SIM", ts_event=at, **trade)   # a-observer 1
    observer.emit_trade("trade.fill", "AuditObserver", "EURUSD.SIM", price="1.1", ts_event=at, **trade)  # 2
    strategy.emit_system("sys.regime_change", "meta", {"to": "DORSAL"}, ts_event=at)          # z-strategy 0
    strategy.emit_signal("particles", "momentum", 0.9, 0.9, instrument_id="EURUSD.SIM", correlation_id="S-9",
                         ts_event=at)                                                          # z-strategy 1
    observer.close()
    strategy.close()
    return at


class TestCausalOrder:
    EXPECTED = [("T.a-observer", 0, "sys.heartbeat"), ("T.z-strategy", 1, "trade.signal"),
                ("T.a-observer", 1, "trade.order"), ("T.a-observer", 2, "trade.fill"),
                ("T.z-strategy", 0, "sys.regime_change")]

    def test_a_signal_comes_before_its_order_and_fill_at_the_same_nanosecond(self, tmp_path):
        at = write_tied_trail(tmp_path)
        trail = open_trail(tmp_path)
        incident = trail.incident(at, minutes=1).select("stream", "sequence", "event_type").to_pyarrow().to_pylist()
        assert [tuple(row.values()) for row in incident] == self.EXPECTED
        steps = trail.lifecycle(correlation_id="S-9").to_pandas()
        assert steps["step"].tolist() == ["signal", "order", "fill"]
        assert steps["since_previous_ns"].tolist()[1:] == [0, 0]
