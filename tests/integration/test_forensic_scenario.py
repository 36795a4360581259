"""An independent forensic scenario: every analysis, asked the obvious way, against a truth computed without it.

The trail (``forensic_scenario.write_scenario``: four emitters, three UTC days, cold Parquet plus hot
JSONL) has incidents planted at known nanoseconds. The expected answers come from plain Python over
the records parsed back from the hot JSONL (``forensic_scenario``'s truth functions), never from the
workbench. Results are read the way an analyst reads them, with ``to_pandas()``, and compared
exactly: instants as ``int`` nanoseconds, money as ``Decimal`` (a float anywhere fails the test).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest
from forensic_scenario import (
    CONVERSION_END,
    CONVERSION_START,
    DAY,
    DAY1,
    DAY2,
    DAY3,
    END,
    FILTER_REASONS,
    INCIDENT_MINUTES,
    MINUTE,
    OBSERVER,
    OPS,
    SIG_TIE,
    START,
    STEP_RANK,
    STRATEGY,
    T0,
    T_PARAM_TIE,
    T_RESET,
    T_TIE,
    T_TIE_CLOSE,
    Record,
    account_balances,
    causal_order,
    conversion,
    count_by_type,
    covered_fills,
    incident,
    lifecycle,
    owner_of,
    param_changes,
    pnl_by_currency,
    pnl_by_strategy,
    pnl_series,
    read_hot_records,
    realized_pnl_records,
    state_at,
    state_by_source,
    stream_key,
    write_no_balance_trail,
    write_scenario,
)

import workbench
from workbench import (
    WorkbenchInputError,
    detect_unexplained_changes,
    open_trail,
    parameter_history,
    pnl_reconciliation,
    realized_pnl_series,
    reconstruct_incident,
    signal_conversion,
    trade_lifecycle,
)

S = 1_000_000_000
#: The columns ``state_at`` starts with (issue 14's contract).
STATE_COLUMNS = ["owner", "param_name", "value", "value_num", "value_text", "value_bool", "value_json", "source",
                 "trigger_reason", "ts_event", "time", "event_type", "stream", "sequence"]
#: Every planted instant where the state of the parameters is worth comparing whole.
STATE_INSTANTS = {
    "before the first change": START - 1, "after the first changes": START + 10 * S,
    "last ns of day 1": DAY2 - 1, "first ns of day 2": DAY2, "1 ns before the override": T0 - 1,
    "the override": T0, "1 ns after the override": T0 + 1, "1 ns before the reset": T_RESET - 1,
    "the reset": T_RESET, "1 ns before the tie": T_PARAM_TIE - 1, "the tie": T_PARAM_TIE,
    "last ns of day 2": DAY3 - 1, "first ns of day 3": DAY3, "the end": END,
}
ALLOWED_SOURCES = ["meta_controller", "kelly_sizer", "particle_portfolio", "risk_gate", "signal_engine"]


# --- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory):
    return write_scenario(tmp_path_factory.mktemp("forensic") / "trail")


@pytest.fixture(scope="module")
def records(scenario) -> list[Record]:
    """The truth's input: every record parsed back from the hot JSONL (converted files included)."""
    return read_hot_records(scenario.hot_path)


@pytest.fixture(scope="module")
def trail(scenario):
    return open_trail(scenario.base)


@pytest.fixture(scope="module")
def no_balances(tmp_path_factory: pytest.TempPathFactory):
    """A second trail: specification-style fills with realized P&L, and no account state."""
    base = tmp_path_factory.mktemp("no-balances") / "trail"
    written = write_no_balance_trail(base)
    return open_trail(base), written


# --- reading results exactly --------------------------------------------------------------------


def plain(value: Any) -> Any:
    """A cell as plain Python: None for every kind of missing value, numpy scalars unwrapped."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def exact_int(value: Any) -> int | None:
    value = plain(value)
    assert value is None or (isinstance(value, int) and not isinstance(value, bool)), (
        f"{value!r} ({type(value).__name__}) is not an int: an int64 did not arrive exactly")
    return value


def exact_decimal(value: Any) -> Decimal | None:
    value = plain(value)
    assert value is None or isinstance(value, Decimal), (
        f"{value!r} ({type(value).__name__}) is not a Decimal: money did not arrive exactly")
    return value


def rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{name: plain(cell) for name, cell in row.items()} for row in frame.to_dict("records")]


def keys(frame: pd.DataFrame) -> list[tuple[str, int]]:
    """(stream, sequence) of every row, in the frame's order."""
    return [(stream, exact_int(sequence)) for stream, sequence in zip(frame["stream"], frame["sequence"], strict=True)]


def key_set(table: Any) -> set[tuple[str, int]]:
    return set(keys(table.select("stream", "sequence").to_pandas()))


def typed(value: Any) -> dict[str, Any]:
    """The typed value columns a JSON value gives (issue 14: num, text without quotes, bool, json containers)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return {"value_num": float(value) if number else None, "value_text": value if isinstance(value, str) else None,
            "value_bool": value if isinstance(value, bool) else None,
            "value_json": value if isinstance(value, (list, dict)) else None}


def state_rows(frame: pd.DataFrame) -> dict[tuple[str, str], dict[str, Any]]:
    """``state_at``'s frame as (owner, param_name) -> row, JSON text decoded (its formatting is not the point)."""
    result = {}
    for row in rows(frame):
        for name in ("value", "value_json"):
            row[name] = None if row[name] is None else json.loads(row[name])
        row["ts_event"], row["sequence"] = exact_int(row["ts_event"]), exact_int(row["sequence"])
        assert (row["owner"], row["param_name"]) not in result, f"two rows for {row['owner']}/{row['param_name']}"
        result[(row["owner"], row["param_name"])] = row
    return result


#: The columns of a ``state_at`` row the truth states (``time`` is display only).
EXPECTED_FIELDS = [name for name in STATE_COLUMNS if name != "time"]


def expected_state(change: Record) -> dict[str, Any]:
    event = change.event
    return {"owner": owner_of(change), "param_name": event.param_name, "value": event.new_value,
            **typed(event.new_value), "source": event.source, "trigger_reason": event.trigger_reason,
            "ts_event": change.ts, "event_type": event.event_type, "stream": change.stream,
            "sequence": change.sequence}


def by_key(records: list[Record]) -> dict[tuple[str, int], Record]:
    return {record.key: record for record in records}


# --- the truth itself ---------------------------------------------------------------------------------


class TestTruth:
    """The generator planted what the other tests rely on, and the truth functions agree with the records."""

    def test_the_hot_jsonl_holds_exactly_what_was_emitted(self, scenario, records):
        on_disk = {record.key: record.event.to_line() for record in records}
        assert on_disk == {record.key: record.event.to_line() for record in scenario.emitted}
        for stream in {record.stream for record in records}:
            sequences = sorted(record.sequence for record in records if record.stream == stream)
            assert sequences == list(range(len(sequences))), stream

    def test_the_trail_crosses_two_midnights_and_is_split_between_cold_and_hot(self, scenario, records, trail):
        instants = {record.ts for record in records}
        assert DAY1 < START < DAY2 < DAY3 < END < DAY3 + DAY
        assert (min(instants), max(instants)) == (START, END)
        assert {DAY2 - 1, DAY2, DAY3 - 1, DAY3} <= instants
        assert sorted(path.name for path in scenario.cold_path.glob("year=2026/month=03/*")) == ["day=10", "day=11"]
        hot = {path.name for path in trail.hot.files}
        assert f"audit.TRADER-001.{OPS}.2026-03-11.0000.jsonl" in hot  # the override is read from hot JSONL
        assert f"audit.TRADER-001.{STRATEGY}.2026-03-11.0000.jsonl" in hot  # the tie's signal too...
        assert f"audit.TRADER-001.{OBSERVER}.2026-03-11.0000.jsonl" not in hot  # ...its order and fill are cold
        assert 0 < trail.hot.rows < len(records)

    def test_every_linked_record_has_a_causal_rank(self, records):
        linked = {record.event_type for record in records if record.get("correlation_id") is not None}
        assert linked <= set(STEP_RANK)

    def test_the_override_and_its_reset(self, records):
        key = ("meta_controller", "risk_multiplier")
        before, at, reset = (state_at(records, ts)[key] for ts in (T0 - 1, T0, T_RESET))
        assert (before.event.new_value, before.event.source) == (1.0, "meta_controller")
        assert (at.ts, at.event.new_value, at.event.source, at.event.trigger_reason) == (T0, 8.0, "ops_console", None)
        assert at.event.owner == "meta_controller" and at.stream == stream_key(OPS)
        assert (reset.ts, reset.event.new_value, reset.event.source) == (T_RESET, 1.0, "meta_controller")
        assert T0 % 1_000 != 0 and T_RESET - T0 == 48 * MINUTE

    def test_each_change_replaces_the_value_in_force(self, records):
        current: dict[tuple[str, str], Any] = {}
        for change in param_changes(records):
            key = (owner_of(change), change.event.param_name)
            if key in current:
                assert change.event.old_value == current[key], (key, change.ts)
            current[key] = change.event.new_value

    def test_the_tie_puts_the_observer_stream_first_and_the_signal_first_in_causal_order(self, records):
        tied = sorted((record for record in records if record.ts == T_TIE), key=lambda record: record.key)
        assert [record.event_type for record in tied] == [
            "trade.order", "trade.fill", "trade.position_opened", "sys.account_state",  # a-observer sorts first
            "sys.evolution_trigger", "trade.signal"]
        assert [record.event_type for record in causal_order(tied)] == [
            "trade.signal", "trade.order", "trade.fill", "trade.position_opened", "sys.account_state",
            "sys.evolution_trigger"]

    def test_the_pnl_truth_reconciles_and_its_traps_are_live(self, scenario, records):
        balances = account_balances(records)
        assert balances == scenario.balances  # what the account states say is what the broker booked
        (first_ts, first), (last_ts, last) = balances[0], balances[-1]
        truth = pnl_by_currency(records)
        assert set(truth) == {"USD", "JPY"} and all(truth.values())
        assert {currency: last[currency] - first[currency] for currency in first} == truth
        pnl = realized_pnl_records(records)
        assert all(first_ts < record.ts <= last_ts for record in pnl)
        assert {record.event_type for record in pnl} == {"trade.position_closed", "trade.fill"}
        (covered,) = covered_fills(records)  # the closing fill that also carries its realized P&L
        closing = [record for record in pnl if record.event_type == "trade.position_closed"
                   and record.event.position_id == covered.event.position_id]
        assert [record.event.order_id for record in closing] == [covered.event.order_id]  # covered both ways
        every = sum((record.event.realized_pnl for record in records if record.get("realized_pnl") is not None),
                    Decimal(0))
        closed_only = sum((record.event.realized_pnl for record in pnl if record.event_type == "trade.position_closed"),
                          Decimal(0))
        assert every != sum(truth.values()) and closed_only != sum(truth.values())
        opened = [record for record in records if record.event_type == "trade.position_opened"]
        assert len(opened) > len([record for record in pnl if record.event_type == "trade.position_closed"])

    def test_no_trade_straddles_the_conversion_window(self, records):
        signals = {record.event.correlation_id: record for record in records if record.event_type == "trade.signal"}
        for record in records:
            if record.event_type in ("trade.order", "trade.fill", "trade.rejected"):
                signal = signals[record.event.correlation_id]
                assert record.event.strategy_source == signal.event.strategy_source
                for edge in (CONVERSION_START, CONVERSION_END):
                    assert (record.ts < edge) == (signal.ts < edge), record.key
        truth = conversion(records, CONVERSION_START, CONVERSION_END)
        assert {reason for _, reason in truth.not_traded} == set(FILTER_REASONS)
        assert all(row["rejected"] for strategy, row in truth.counts.items() if strategy != "carry")

    def test_the_incident_window_has_records_on_both_edges_and_none_just_outside(self, records):
        offsets = [record.ts - T0 for record in incident(records, T0)]
        half = INCIDENT_MINUTES * MINUTE
        assert offsets[0] == -half and offsets[-1] == half and 0 in offsets
        assert {T0 - half - 1, T0 + half + 1} <= {record.ts for record in records}


# --- state_at: the value in force -------------------------------------------------------------------------


class TestStateAt:
    def test_the_override_is_the_value_in_force(self, trail, records):
        frame = workbench.state_at(trail, T0, param_name="risk_multiplier").to_pandas()
        assert list(frame.columns[:len(STATE_COLUMNS)]) == STATE_COLUMNS
        (row,) = rows(frame)
        assert (row["owner"], row["param_name"], row["value_num"], row["source"], row["trigger_reason"]) == (
            "meta_controller", "risk_multiplier", 8.0, "ops_console", None)
        assert exact_int(row["ts_event"]) == T0
        assert (row["stream"], exact_int(row["sequence"])) == state_at(records, T0)[
            ("meta_controller", "risk_multiplier")].key

    @pytest.mark.parametrize(("at", "value", "source", "reason"), [
        (T0 - 1, 1.0, "meta_controller", "session start"),
        (T0 + 1, 8.0, "ops_console", None),
        (T_RESET - 1, 8.0, "ops_console", None),
        (T_RESET, 1.0, "meta_controller", "override reverted (limit 2.0)"),
        (END, 1.0, "meta_controller", "override reverted (limit 2.0)"),
    ], ids=["1ns-before", "1ns-after", "1ns-before-reset", "reset", "end"])
    def test_before_during_and_after_the_override(self, trail, at, value, source, reason):
        (row,) = rows(workbench.state_at(trail, at, param_name="risk_multiplier").to_pandas())
        assert (row["owner"], row["value_num"], row["source"], row["trigger_reason"]) == (
            "meta_controller", value, source, reason)

    @pytest.mark.parametrize("at", list(STATE_INSTANTS.values()), ids=list(STATE_INSTANTS))
    def test_every_parameter_at_the_planted_instants(self, trail, records, at):
        got = state_rows(workbench.state_at(trail, at).to_pandas())
        expected = {key: expected_state(change) for key, change in state_at(records, at).items()}
        assert {key: {name: row[name] for name in EXPECTED_FIELDS} for key, row in got.items()} == expected

    def test_typed_values(self, trail):
        day3 = state_rows(workbench.state_at(trail, DAY3).to_pandas())
        regime = day3[("meta_controller", "regime_state")]
        assert (regime["value_text"], regime["value_num"], regime["value_bool"]) == ("DORSAL", None, None)
        assert day3[("risk_gate", "trading_enabled")]["value_bool"] is True
        assert day3[("particle_portfolio", "strategy_weights")]["value_json"] == {
            "momentum": 0.5, "mean_reversion": 0.2, "carry": 0.3}
        assert day3[("meta_controller", "allowed_instruments")]["value_json"] == [
            "EURUSD.SIM", "GBPUSD.SIM", "USDJPY.SIM", "AUDUSD.SIM", "NZDUSD.SIM"]
        assert day3[("particle_portfolio", "k")]["value_num"] == 8.0
        assert day3[("risk_gate", "max_order_size")]["value_num"] == 200_000.0
        halted = state_rows(workbench.state_at(trail, DAY3 - 1, param_name="trading_enabled").to_pandas())
        assert halted[("risk_gate", "trading_enabled")]["value_bool"] is False

    def test_one_row_per_owner_when_one_source_sets_the_parameter_of_two(self, trail):
        got = state_rows(workbench.state_at(trail, DAY3, param_name="entry_threshold").to_pandas())
        assert {key: (row["value_num"], row["source"]) for key, row in got.items()} == {
            ("momentum", "entry_threshold"): (0.65, "signal_engine"),
            ("mean_reversion", "entry_threshold"): (0.55, "signal_engine")}

    def test_two_changes_in_one_nanosecond_follow_causal_order(self, trail):
        before = state_rows(workbench.state_at(trail, T_PARAM_TIE - 1, param_name="max_drawdown_pct").to_pandas())
        at = state_rows(workbench.state_at(trail, T_PARAM_TIE, param_name="max_drawdown_pct").to_pandas())
        assert before[("risk_gate", "max_drawdown_pct")]["value_num"] == 6.0
        row = at[("risk_gate", "max_drawdown_pct")]  # "ops" sorts before "z-strategy": risk_gate's change is last
        assert (row["value_num"], row["source"], row["stream"]) == (4.0, "risk_gate", stream_key(STRATEGY))

    @pytest.mark.parametrize("at", [T0, T_RESET, T_PARAM_TIE], ids=["override", "reset", "tie"])
    def test_by_source_shows_who_set_what_and_which_is_in_force(self, trail, records, at):
        frame = workbench.state_at(trail, at, param_name=["risk_multiplier", "max_drawdown_pct"],
                                   by_source=True).to_pandas()
        got = {(row["source"], row["param_name"]): (row["value_num"], row["in_force"], exact_int(row["ts_event"]))
               for row in rows(frame)}
        expected = {(source, name): (float(change.event.new_value), in_force, change.ts)
                    for (_, source, name), (change, in_force) in state_by_source(records, at).items()
                    if name in ("risk_multiplier", "max_drawdown_pct")}  # one owner each
        assert got == expected

    @pytest.mark.parametrize("form", [
        lambda ns: ns, np.int64, lambda ns: pd.Timestamp(ns, unit="ns", tz="UTC"),
        lambda ns: pd.Timestamp(ns, unit="ns", tz="UTC").isoformat(),
        lambda ns: pd.Timestamp(ns, unit="ns", tz="UTC").tz_convert("Europe/Paris").isoformat(),
    ], ids=["int", "numpy-int64", "timestamp", "iso-utc", "iso-offset"])
    def test_every_instant_form_keeps_the_nanosecond(self, trail, form):
        for at, value in ((T0 - 1, 1.0), (T0, 8.0)):
            (row,) = rows(workbench.state_at(trail, form(at), param_name="risk_multiplier").to_pandas())
            assert row["value_num"] == value, (form(at), value)

    @pytest.mark.parametrize("form", [
        dt.datetime(2026, 3, 11, tzinfo=dt.UTC), dt.datetime(2026, 3, 11), dt.date(2026, 3, 11), "2026-03-11",
        "2026-03-11T00:00:00.000000000Z"], ids=["datetime", "naive-datetime", "date", "date-text", "iso"])
    def test_midnight_in_every_form_is_the_first_nanosecond_of_the_day(self, trail, records, form):
        got = state_rows(workbench.state_at(trail, form).to_pandas())
        assert {key: row["ts_event"] for key, row in got.items()} == {
            key: change.ts for key, change in state_at(records, DAY2).items()}

    def test_parameter_history_in_order_with_owners(self, trail, records):
        frame = parameter_history(trail, "risk_multiplier").to_pandas()
        expected = [change for change in param_changes(records) if change.event.param_name == "risk_multiplier"]
        assert keys(frame) == [change.key for change in expected]
        assert [exact_int(ts) for ts in frame["ts_event"]] == [change.ts for change in expected]
        assert list(frame["new_value_num"]) == [1.0, 8.0, 1.0]


# --- instants go round trip --------------------------------------------------------------------------------


class TestRoundTrip:
    """Every instant an analysis returns, fed back as it comes, gives the state at that exact nanosecond."""

    @staticmethod
    def risk_multiplier_at(trail, at: Any) -> tuple[float, str]:
        (row,) = rows(workbench.state_at(trail, at, param_name="risk_multiplier").to_pandas())
        return row["value_num"], row["source"]

    @staticmethod
    def at_offset_zero(trail, at: Any, minutes: float = INCIDENT_MINUTES) -> list[tuple[str, int]]:
        frame = reconstruct_incident(trail, at, minutes=minutes).to_pandas()
        return [key for key, offset in zip(keys(frame), frame["offset_ns"], strict=True) if exact_int(offset) == 0]

    def test_parameter_history(self, trail):
        frame = parameter_history(trail, "risk_multiplier").to_pandas()
        override, reset = frame["ts_event"].iloc[1], frame["ts_event"].iloc[2]
        assert self.risk_multiplier_at(trail, override) == (8.0, "ops_console")
        assert self.risk_multiplier_at(trail, override - 1) == (1.0, "meta_controller")
        assert self.risk_multiplier_at(trail, reset) == (1.0, "meta_controller")
        assert self.at_offset_zero(trail, override) == [(stream_key(OPS), exact_int(frame["sequence"].iloc[1]))]

    def test_unexplained_changes(self, trail, records):
        findings = detect_unexplained_changes(trail, allowed_sources=ALLOWED_SOURCES, integrity=False).to_pandas()
        override = findings[(findings["param_name"] == "risk_multiplier")]
        assert set(override["kind"]) == {"missing_reason", "unexpected_source"}
        (at,) = set(override["ts_event"])
        assert exact_int(at) == T0
        assert self.risk_multiplier_at(trail, override["ts_event"].iloc[0]) == (8.0, "ops_console")
        assert self.at_offset_zero(trail, override["ts_event"].iloc[0]) == [
            state_at(records, T0)[("meta_controller", "risk_multiplier")].key]

    def test_incident(self, trail):
        frame = reconstruct_incident(trail, T0, minutes=INCIDENT_MINUTES).to_pandas()
        (at,) = frame.loc[frame["offset_ns"] == 0, "ts_event"]
        assert self.risk_multiplier_at(trail, at) == (8.0, "ops_console")
        tied = frame.loc[frame["event_type"] == "trade.signal", "ts_event"]
        assert T_TIE in {exact_int(ts) for ts in tied}

    def test_trade_lifecycle(self, trail, records):
        frame = trade_lifecycle(trail, correlation_id=SIG_TIE).to_pandas()
        signal_at = frame.loc[frame["step"] == "signal", "ts_event"].iloc[0]
        assert self.at_offset_zero(trail, signal_at, minutes=1) == [
            record.key for record in causal_order(records) if record.ts == T_TIE]
        assert self.risk_multiplier_at(trail, signal_at) == (8.0, "ops_console")  # the override was still in force

    def test_the_rule_picks_closed_positions_and_uncovered_fills(self, trail, records):
        from workbench.pnl import realized_pnl_events

        assert key_set(realized_pnl_events(trail)) == {record.key for record in realized_pnl_records(records)}

    def test_the_chart_of_the_trail_events_draws_the_rule(self, trail, records):
        from workbench.charts import pnl_over_time

        frame = pnl_over_time(trail.events).data  # the obvious call; it used to sum opened positions too
        assert [exact_int(ts) for ts in frame["ts_event"]] == [ts for ts, *_ in pnl_series(records)]
        last = {(row["strategy_source"], row["currency"]): Decimal(str(row["cumulative_exact"])) for row in rows(frame)}
        assert last == {(strategy, currency): total for _, strategy, currency, _, total in pnl_series(records)}

    def test_realized_pnl_series(self, trail, records):
        frame = realized_pnl_series(trail).to_pandas()
        pnl = realized_pnl_records(records)
        assert len(frame) == len(pnl)
        for i in (0, len(pnl) // 2, len(pnl) - 1):  # a few: each costs two queries
            at, record = frame["ts_event"].iloc[i], pnl[i]
            assert (record.stream, record.sequence) in key_set(trail.events.filter(trail.events.ts_event == at))
            assert record.key in set(self.at_offset_zero(trail, at, minutes=0.5))

    def test_a_timestamp_built_from_ts_event_keeps_the_nanosecond(self, trail):
        frame = parameter_history(trail, "risk_multiplier").to_pandas()
        stamp = pd.to_datetime(frame["ts_event"], unit="ns", utc=True).iloc[1]
        assert stamp.value == T0
        assert self.risk_multiplier_at(trail, stamp) == (8.0, "ops_console")
        assert self.risk_multiplier_at(trail, stamp - pd.Timedelta(1, "ns")) == (1.0, "meta_controller")


# --- incident and lifecycle: true order ---------------------------------------------------------------------


class TestIncidentAndLifecycle:
    def test_the_incident_is_every_record_in_the_window_in_causal_order(self, trail, records):
        frame = reconstruct_incident(trail, T0, minutes=INCIDENT_MINUTES).to_pandas()
        expected = incident(records, T0)
        assert keys(frame) == [record.key for record in expected]
        assert [exact_int(ts) for ts in frame["ts_event"]] == [record.ts for record in expected]
        assert [exact_int(offset) for offset in frame["offset_ns"]] == [record.ts - T0 for record in expected]
        assert "description" in frame.columns and frame["description"].notna().all()

    def test_in_the_tie_the_signal_comes_before_its_order_and_fill(self, trail):
        frame = reconstruct_incident(trail, T_TIE, minutes=1).to_pandas()
        tied = frame[frame["offset_ns"] == 0]
        assert list(tied["event_type"]) == ["trade.signal", "trade.order", "trade.fill", "trade.position_opened",
                                            "sys.account_state", "sys.evolution_trigger"]
        assert list(tied["stream"])[:2] == [stream_key(STRATEGY), stream_key(OBSERVER)]

    def test_the_lifecycle_steps_in_causal_order(self, trail, records):
        frame = trade_lifecycle(trail, correlation_id=SIG_TIE).to_pandas()
        expected = lifecycle(records, SIG_TIE)
        assert keys(frame) == [record.key for record in expected]
        assert list(frame["step"]) == ["signal", "order", "fill", "position_opened", "position_closed"]
        closed_at = expected[-1].ts  # the closing fill lands a few ms after the closing signal
        assert closed_at > T_TIE_CLOSE
        assert [exact_int(ns) for ns in frame["since_previous_ns"]] == [None, 0, 0, 0, closed_at - T_TIE]
        assert [exact_int(ns) for ns in frame["since_start_ns"]] == [record.ts - T_TIE for record in expected]
        assert exact_decimal(frame["realized_pnl"].iloc[-1]) == expected[-1].event.realized_pnl

    def test_the_lifecycle_by_order_id_has_the_same_order(self, trail, records):
        order_id = next(record.event.order_id for record in lifecycle(records, SIG_TIE)
                        if record.event_type == "trade.order")
        frame = trade_lifecycle(trail, order_id=order_id).to_pandas()
        assert list(frame["step"])[:4] == ["signal", "order", "fill", "position_opened"]


# --- P&L: one rule, exact ------------------------------------------------------------------------------------


class TestPnl:
    def test_reconciliation_per_currency(self, trail, records):
        reconciliation = pnl_reconciliation(trail)
        frame = reconciliation.to_pandas()
        balances = account_balances(records)
        (first_ts, first), (last_ts, last) = balances[0], balances[-1]
        truth = pnl_by_currency(records)
        got = {row["currency"]: row for row in rows(frame)}
        assert set(got) == set(truth)
        for currency, pnl in truth.items():
            row = got[currency]
            assert exact_decimal(row["realized_pnl"]) == pnl, currency
            assert exact_decimal(row["balance_start"]) == first[currency]
            assert exact_decimal(row["balance_end"]) == last[currency]
            assert exact_decimal(row["balance_change"]) == last[currency] - first[currency]
            assert exact_decimal(row["difference"]) == 0
            assert (exact_int(row["start_ts"]), exact_int(row["end_ts"])) == (first_ts, last_ts)
            assert row["reconciled"] is True
        assert reconciliation.ok is True

    def test_by_strategy(self, trail, records):
        frame = pnl_reconciliation(trail).by_strategy.to_pandas()
        got = {(row["strategy_source"], row["instrument_id"], row["currency"]): exact_decimal(row["realized_pnl"])
               for row in rows(frame)}
        truth = pnl_by_strategy(records)
        assert {key: got.get(key) for key in truth} == truth
        assert all(value in (None, 0) for key, value in got.items() if key not in truth)  # opened, never closed

    def test_without_account_states_there_is_nothing_to_reconcile(self, no_balances):
        trail, written = no_balances
        reconciliation = pnl_reconciliation(trail)
        assert reconciliation.ok is None
        assert "nothing to reconcile" in reconciliation.to_text()
        got = {row["currency"]: exact_decimal(row["realized_pnl"]) for row in rows(reconciliation.to_pandas())}
        assert got == pnl_by_currency(written) == {"JPY": Decimal("-46184")}

    def test_the_rule_picks_closed_positions_and_uncovered_fills(self, trail, records):
        from workbench.pnl import realized_pnl_events

        assert key_set(realized_pnl_events(trail)) == {record.key for record in realized_pnl_records(records)}

    def test_the_chart_of_the_trail_events_draws_the_rule(self, trail, records):
        from workbench.charts import pnl_over_time

        frame = pnl_over_time(trail.events).data  # the obvious call; it used to sum opened positions too
        assert [exact_int(ts) for ts in frame["ts_event"]] == [ts for ts, *_ in pnl_series(records)]
        last = {(row["strategy_source"], row["currency"]): Decimal(str(row["cumulative_exact"])) for row in rows(frame)}
        assert last == {(strategy, currency): total for _, strategy, currency, _, total in pnl_series(records)}

    def test_realized_pnl_series(self, trail, records):
        frame = realized_pnl_series(trail).to_pandas()
        got = [(exact_int(row["ts_event"]), row["group"], row["currency"], exact_decimal(row["realized_pnl"]),
                exact_decimal(row["cumulative_pnl"])) for row in rows(frame)]
        assert got == pnl_series(records)

    def test_the_series_ends_at_the_reconciled_totals(self, trail, records):
        frame = realized_pnl_series(trail).to_pandas()
        last: dict[tuple[str, str], Decimal] = {}
        for row in rows(frame):
            last[(row["group"], row["currency"])] = exact_decimal(row["cumulative_pnl"])
        totals: dict[str, Decimal] = {}
        for (_, currency), total in last.items():
            totals[currency] = totals.get(currency, Decimal(0)) + total
        assert totals == pnl_by_currency(records)


# --- conversion, counts, filters, typos ----------------------------------------------------------------------


class TestConversion:
    COUNTS = ["signals", "acted_on", "filtered", "orders", "rejected", "filled_orders", "fills"]

    def assert_matches(self, result, records) -> None:
        truth = conversion(records, CONVERSION_START, CONVERSION_END)
        summary = rows(result.summary.to_pandas())
        assert {row["strategy_source"]: {name: exact_int(row[name]) for name in self.COUNTS} for row in summary} == (
            truth.counts)
        for row in summary:
            counts = truth.counts[row["strategy_source"]]
            assert row["conversion_rate"] == counts["acted_on"] / counts["signals"]
            assert row["fill_rate"] == counts["filled_orders"] / counts["orders"]
        reasons = rows(result.not_traded.to_pandas())
        assert {(row["strategy_source"], row["filter_reason"]): exact_int(row["signals"]) for row in reasons} == (
            truth.not_traded)
        for row in reasons:
            assert row["share"] == truth.not_traded[(row["strategy_source"], row["filter_reason"])] / truth.counts[
                row["strategy_source"]]["filtered"]

    def test_start_and_end(self, trail, records):
        self.assert_matches(signal_conversion(trail, start=CONVERSION_START, end=CONVERSION_END), records)

    def test_start_and_end_in_other_forms(self, trail, records):
        self.assert_matches(signal_conversion(trail, start="2026-03-11", end=pd.Timestamp(CONVERSION_END, unit="ns",
                                                                                          tz="UTC")), records)

    def test_window_is_a_deprecated_alias(self, trail, records):
        with pytest.warns(DeprecationWarning, match="window"):
            result = signal_conversion(trail, window=(CONVERSION_START, CONVERSION_END))
        self.assert_matches(result, records)


class TestCountsAndFilters:
    def test_count_by_type(self, trail, records):
        frame = workbench.count_by_type(trail).to_pandas()
        assert {row["event_type"]: exact_int(row["count"]) for row in rows(frame)} == count_by_type(records)

    @pytest.mark.parametrize(("family", "matches"), [
        ("fill", lambda t: t == "trade.fill"), ("parameter", lambda t: t.startswith("param.")),
        ("signal", lambda t: t.startswith("trade.signal")), ("position", lambda t: t.startswith("trade.position_")),
        ("system", lambda t: t.startswith("sys.")),
    ])
    def test_family(self, trail, records, family, matches):
        assert key_set(trail.filter(family=family)) == {r.key for r in records if matches(r.event_type)}

    def test_the_order_family_has_the_orders_and_no_fill(self, trail, records):
        got = key_set(trail.filter(family="order"))
        assert {r.key for r in records if r.event_type == "trade.order"} <= got
        assert not got & {r.key for r in records if r.event_type in ("trade.fill", "trade.signal")}

    def test_trade_star_excluding_signals(self, trail, records):
        got = key_set(trail.filter(event_type="trade.*", exclude="trade.signal*"))
        assert got == {r.key for r in records if r.event_type.startswith("trade.") and r.event_type != "trade.signal"}
        everything = key_set(trail.filter(event_type="trade.*"))  # documented: trade.* includes the signals
        assert everything == {r.key for r in records if r.event_type.startswith("trade.")}

    @pytest.mark.parametrize(("argument", "typo", "meant"), [
        ("event_type", "trade.fil", "trade.fill"), ("source", "ops_consle", "ops_console"),
        ("instrument", "EURUSD", "EURUSD.SIM"), ("strategy", "momentun", "momentum"),
    ])
    def test_a_typo_in_a_filter_warns_with_did_you_mean(self, trail, argument, typo, meant):
        with pytest.warns(workbench.UnknownValueWarning, match=rf"(?is)did you mean.*{meant.replace('.', '[.]')}"):
            count = trail.filter(**{argument: typo}).count().execute()
        assert count == 0

    def test_a_typo_in_a_parameter_name_warns(self, trail):
        with pytest.warns(workbench.UnknownValueWarning, match=r"(?is)did you mean.*risk_multiplier"):
            workbench.state_at(trail, T0, param_name="risk_multipler").to_pandas()

    def test_a_typo_raises_when_asked(self, scenario):
        strict = open_trail(scenario.base, on_unknown="raise")
        with pytest.raises(WorkbenchInputError, match=r"trade\.fill"):
            strict.filter(event_type="trade.fil")

    @pytest.mark.parametrize("divisor", [S, 1_000_000, 1_000], ids=["seconds", "milliseconds", "microseconds"])
    @pytest.mark.parametrize("ask", [
        lambda trail, at: workbench.state_at(trail, at), lambda trail, at: reconstruct_incident(trail, at),
        lambda trail, at: trail.filter(start=at),
    ], ids=["state_at", "reconstruct_incident", "filter"])
    def test_an_instant_in_the_wrong_unit_raises(self, trail, ask, divisor):
        with pytest.raises(WorkbenchInputError, match="nanoseconds"):
            ask(trail, T0 // divisor)

    def test_a_tiny_synthetic_instant_is_still_nanoseconds(self, trail):
        assert workbench.state_at(trail, 5).to_pandas().empty


# --- frames keep every value exact -------------------------------------------------------------------------


class TestExactFrames:
    def test_every_int64_and_decimal_of_the_trail_arrives_exactly(self, trail, records):
        frame = trail.events.to_pandas()
        got = {key: row for key, row in zip(keys(frame), rows(frame), strict=True)}
        assert set(got) == {record.key for record in records}
        for record in records:
            row = got[record.key]
            assert exact_int(row["ts_event"]) == record.ts
            assert exact_int(row["ts_init"]) == record.get("ts_init"), record.key
            for name in ("price", "size", "realized_pnl", "commission"):
                assert exact_decimal(row[name]) == record.get(name), (record.key, name)

    def test_owner_and_typed_values_are_columns_of_the_trail(self, trail, records):
        frame = trail.filter(event_type="param.*").to_pandas()
        got = {key: row for key, row in zip(keys(frame), rows(frame), strict=True)}
        for change in param_changes(records):
            row = got[change.key]
            assert row["owner"] == owner_of(change), change.key
            new = typed(change.event.new_value)
            assert (row["new_value_num"], row["new_value_text"], row["new_value_bool"]) == (
                new["value_num"], new["value_text"], new["value_bool"]), change.key
            assert (None if row["new_value_json"] is None else json.loads(row["new_value_json"])) == new["value_json"]


# --- the analyses are Trail methods ---------------------------------------------------------------------------


class TestTrailMethods:
    """``trail.<analysis>(...)`` answers as the module function does."""

    def test_state_at(self, trail):
        pd.testing.assert_frame_equal(trail.state_at(T0).to_pandas(), workbench.state_at(trail, T0).to_pandas())

    def test_incident_and_lifecycle(self, trail):
        assert keys(trail.incident(T0, minutes=INCIDENT_MINUTES).to_pandas()) == keys(
            reconstruct_incident(trail, T0, minutes=INCIDENT_MINUTES).to_pandas())
        assert keys(trail.lifecycle(correlation_id=SIG_TIE).to_pandas()) == keys(
            trade_lifecycle(trail, correlation_id=SIG_TIE).to_pandas())

    def test_pnl_and_conversion(self, trail):
        pd.testing.assert_frame_equal(trail.pnl().to_pandas(), pnl_reconciliation(trail).to_pandas())
        pd.testing.assert_frame_equal(trail.pnl_series().to_pandas(), realized_pnl_series(trail).to_pandas())
        pd.testing.assert_frame_equal(trail.conversion(start=CONVERSION_START, end=CONVERSION_END).to_pandas(),
                                      signal_conversion(trail, start=CONVERSION_START, end=CONVERSION_END).to_pandas())

    def test_counts_history_and_unexplained_changes(self, trail):
        pd.testing.assert_frame_equal(trail.count_by_type().to_pandas(), workbench.count_by_type(trail).to_pandas())
        pd.testing.assert_frame_equal(trail.parameter_history("risk_multiplier").to_pandas(),
                                      parameter_history(trail, "risk_multiplier").to_pandas())
        pd.testing.assert_frame_equal(
            trail.unexplained_changes(allowed_sources=ALLOWED_SOURCES, integrity=False).to_pandas(),
            detect_unexplained_changes(trail, allowed_sources=ALLOWED_SOURCES, integrity=False).to_pandas())

