"""Charts: Vega-Lite encodings, bounded embedded data past 5,000 rows, offline PNG/SVG/HTML export and display."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from decimal import Decimal

import altair as alt
import ibis
import numpy as np
import pandas as pd
import pytest

from workbench.chart_encoding import EVENT_FAMILIES
from workbench.charts import (
    MAX_ROWS,
    VEGA5_MIME,
    chartable,
    conversion_funnel,
    enable_offline_rendering,
    event_color,
    event_family,
    explore_timeline,
    incident_timeline,
    parameter_history_chart,
    pnl_over_time,
    save_chart,
    utc_x,
)
from workbench.report import readable

T0 = 1_767_623_520_000_000_000  # 2026-01-05 14:32:00 UTC, in ns
SECOND = 1_000_000_000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def events_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ts_event": [T0 - 90 * SECOND, T0 - 30 * SECOND, T0 - 30 * SECOND + 1, T0 + 15 * SECOND, T0 + 60 * SECOND],
            "event_type": ["param.change", "trade.signal", "trade.order_filled", "param.change", "sys.recovery"],
            "source": ["controller", "momentum", "momentum", "sizer", "writer"],
            "param_name": ["risk_multiplier", None, None, "max_position", None],
            "old_value": ["1.0", None, None, "100", None],
            "new_value": ["0.5", None, None, "250", None],
            "trigger_reason": ["volatility spike", None, None, None, None],
            "description": ["risk 1.0 -> 0.5", "buy signal", "filled 10 @ 101.5", "max_position", "torn line"],
        }
    )


def history_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ts_event": [T0, T0 + 60 * SECOND, T0 + 120 * SECOND, T0 + 30 * SECOND, T0 + 90 * SECOND],
            "source": ["controller", "controller", "controller", "sizer", "sizer"],
            "param_name": ["risk_multiplier"] * 3 + ["max_position"] * 2,
            "old_value": ["1.0", "0.5", "0.8", "100", "250"],
            "new_value": ["0.5", "0.8", "\"off\"", "250", "50"],
            "new_value_num": [0.5, 0.8, np.nan, 250.0, 50.0],
            "trigger_reason": ["volatility spike", None, "manual", "drawdown", ""],
        }
    )


def pnl_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ts_event": [T0, T0 + SECOND, T0 + 2 * SECOND, T0 + 3 * SECOND, T0 + 4 * SECOND],
            "event_type": ["trade.position_closed", "trade.signal", "trade.position_closed"] * 1
            + ["trade.position_closed"] * 2,
            "strategy_source": ["momentum", "momentum", "momentum", "meanrev", "meanrev"],
            "realized_pnl": [Decimal("0.1"), None, Decimal("0.2"), Decimal("-5.25"), Decimal("1.00")],
            "currency": ["USD"] * 5,
        }
    )


def many_events(n: int = 50_000) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    types = rng.choice(["param.change", "trade.signal", "trade.order_filled", "trade.position_closed"], n)
    return pd.DataFrame(
        {
            "ts_event": np.sort(T0 + rng.integers(0, 3600 * SECOND, n)),
            "event_type": types,
            "source": rng.choice(["controller", "sizer", "momentum", "meanrev"], n),
            "param_name": rng.choice(["risk_multiplier", "max_position"], n),
            "new_value_num": rng.normal(1.0, 0.1, n),
            "trigger_reason": rng.choice(["volatility spike", None], n),
            "strategy_source": rng.choice(["momentum", "meanrev"], n),
            "realized_pnl": [Decimal(int(x)) / 100 for x in rng.integers(-5000, 5000, n)],
            "currency": "USD",
        }
    )


def data_of(spec: dict, part: dict) -> list[dict]:
    return spec["datasets"][part.get("data", spec.get("data"))["name"]]  # one-layer charts hoist their data


def tooltip_fields(encoding: dict) -> set[str]:
    return {tip["field"] for tip in encoding["tooltip"]}


def embedded_rows(chart: alt.TopLevelMixin) -> int:
    return sum(len(rows) for rows in chart.to_dict()["datasets"].values())


class TestIncidentTimeline:
    def test_points_on_a_utc_time_axis_one_lane_per_type_in_family_order(self) -> None:
        spec = incident_timeline(events_frame(), at=T0).to_dict()
        points = spec["layer"][0]
        enc = points["encoding"]
        assert points["mark"]["type"] == "point"
        assert (enc["x"]["field"], enc["x"]["type"], enc["x"]["scale"]["type"]) == ("time", "temporal", "utc")
        assert (enc["y"]["field"], enc["y"]["type"]) == ("event_type", "nominal")
        lanes = enc["y"]["sort"]
        assert sorted(lanes) == sorted(set(events_frame().event_type))
        assert [event_family(t) for t in lanes] == sorted((event_family(t) for t in lanes),
                                                          key=list(EVENT_FAMILIES).index)  # grouped by family
        assert enc["color"]["field"] == "event_type" and enc["shape"]["field"] == "event_type"
        assert enc["color"]["legend"]["values"] == lanes  # the legend lists what is drawn
        assert spec["layer"][1]["encoding"]["x"]["axis"]["orient"] == "top"  # the time axis on top too
        assert {"time_utc", "event_type", "source", "description", "param_name", "old_value", "new_value",
                "trigger_reason"} <= tooltip_fields(enc)
        rows = data_of(spec, points)
        assert [row["time"] for row in rows] == [(T0 - 90 * SECOND) // 10**6, *sorted(r["time"] for r in rows[1:])]
        assert rows[2]["time_utc"] == "2026-01-05 14:31:30.000000001 UTC"  # exact to the nanosecond

    @pytest.mark.parametrize("at", [T0, "2026-01-05 14:32", datetime(2026, 1, 5, 14, 32, tzinfo=UTC),
                                    pd.Timestamp("2026-01-05 14:32")])
    def test_the_incident_instant_is_a_rule_whatever_form_at_takes(self, at: object) -> None:
        spec = incident_timeline(events_frame(), at=at).to_dict()
        rule = spec["layer"][2]
        assert rule["mark"]["type"] == "rule"
        assert rule["encoding"]["x"]["field"] == "time"
        [row] = data_of(spec, rule)
        assert {k: row[k] for k in ("time", "time_utc", "label")} == {
            "time": T0 // 10**6, "time_utc": "2026-01-05 14:32:00.000000000 UTC", "label": "incident"}

    def test_without_at_there_is_no_rule_and_time_alone_is_enough(self) -> None:
        frame = events_frame()
        frame["time"] = pd.to_datetime(frame.pop("ts_event"), unit="ns", utc=True)
        spec = incident_timeline(frame.drop(columns=["description"])).to_dict()
        assert [layer["mark"]["type"] for layer in spec["layer"]] == ["point", "point"]  # the points, the top axis
        assert data_of(spec, spec["layer"][0])[0]["description"] == ""  # blank in the tooltip, not "null"
        assert spec["layer"][0]["encoding"]["size"] == {"value": 60}

    def test_an_ibis_expression_is_executed_at_the_chart(self) -> None:
        chart = incident_timeline(ibis.memtable(events_frame()), at=T0)
        assert embedded_rows(chart) == len(events_frame()) + 1

    def test_missing_time_columns_are_named(self) -> None:
        with pytest.raises(ValueError, match="'ts_event' or 'time'"):
            incident_timeline(pd.DataFrame({"event_type": ["x"], "source": ["y"]}))

    def test_50000_events_are_counted_per_bucket_within_the_row_limit(self) -> None:
        chart = incident_timeline(many_events(), at=T0)
        spec = chart.to_dict()
        rows = data_of(spec, spec["layer"][0])
        assert embedded_rows(chart) <= MAX_ROWS
        assert sum(row["events"] for row in rows) == 50_000
        assert spec["layer"][0]["encoding"]["size"]["field"] == "events"
        assert "50,000 events counted" in spec["title"]["subtitle"][0]


def override_frame() -> pd.DataFrame:
    """meta_controller sets risk 1.0, ops_console overrides it to 8.0, the controller resets it 48 minutes later."""
    minute = 60 * SECOND
    return pd.DataFrame(
        {
            "ts_event": [T0, T0 + minute, T0 + 49 * minute, T0 + 2 * minute, T0 + 30 * minute, T0 + 40 * minute,
                         T0 + 90 * minute],
            "owner": ["meta_controller"] * 3 + ["sizer"] * 4,
            "source": ["meta_controller", "ops_console", "meta_controller", "sizer", "ops_console", "sizer", "sizer"],
            "param_name": ["risk_multiplier"] * 3 + ["max_position"] * 4,
            "new_value": ["1.0", "8.0", "0.5", "100", '"off"', "120", "150"],
            "new_value_num": [1.0, 8.0, 0.5, 100.0, np.nan, 120.0, 150.0],
            "trigger_reason": ["initial value", None, "override reverted", "initial value", "halt", "resume", "grow"],
            "stream": ["T.control", "T.ops", "T.control", "T.control", "T.ops", "T.control", "T.control"],
            "sequence": [0, 0, 3, 1, 1, 2, 4],
        }
    )


def line_points(spec: dict) -> dict[tuple[str, str], list[list[tuple[int, float]]]]:
    """(owner, parameter) -> its drawn paths, each a list of (time ms, value) in drawing order."""
    paths: dict[int, list[dict]] = {}
    for row in data_of(spec, spec):
        if row["line"]:
            paths.setdefault(row["path"], []).append(row)
    out: dict[tuple[str, str], list[list[tuple[int, float]]]] = {}
    for rows in paths.values():
        rows.sort(key=lambda row: row["ts_event"])
        out.setdefault((rows[0]["owner"], rows[0]["param_name"]), []).append(
            [(row["time"], row["new_value_num"]) for row in rows])
    return out


class TestParameterHistoryChart:
    def test_step_lines_per_owner_faceted_by_parameter_points_coloured_by_source(self) -> None:
        spec = parameter_history_chart(history_frame()).to_dict()
        line, points = spec["spec"]["layer"]
        assert spec["facet"]["row"]["field"] == "param_name"
        assert line["mark"] == {"type": "line", "interpolate": "step-after"}
        assert (line["encoding"]["x"]["field"], line["encoding"]["x"]["type"]) == ("time", "temporal")
        assert line["encoding"]["y"]["field"] == "new_value_num"
        assert line["encoding"]["color"]["field"] == "owner" and line["encoding"]["detail"]["field"] == "path"
        assert points["mark"]["type"] == "point" and points["encoding"]["color"]["field"] == "source"
        assert {"owner", "source", "old_value", "new_value", "trigger_reason"} <= tooltip_fields(points["encoding"])

    def test_the_line_is_the_value_in_force_whoever_set_it(self) -> None:
        ms = 60_000
        start = T0 // 10**6
        spec = parameter_history_chart(override_frame()).to_dict()
        paths = line_points(spec)
        # One line for the controller's parameter: 1.0, the override's 8.0, the reset's 0.5, to the end.
        assert paths[("meta_controller", "risk_multiplier")] == [
            [(start, 1.0), (start + ms, 8.0), (start + 49 * ms, 0.5), (start + 90 * ms, 0.5)]]
        assert not [key for key in paths if key[0] == "ops_console"]  # no line of its own for the operator
        changes = [row for row in data_of(spec, spec) if row["is_change"] and row["param_name"] == "risk_multiplier"]
        assert [(row["source"], row["change"]) for row in changes] == [
            ("meta_controller", "explained"), ("ops_console", "no reason given"), ("meta_controller", "explained")]

    def test_a_non_numeric_value_in_force_breaks_the_line(self) -> None:
        ms = 60_000
        start = T0 // 10**6
        paths = line_points(parameter_history_chart(override_frame()).to_dict())
        assert paths[("sizer", "max_position")] == [
            [(start + 2 * ms, 100.0), (start + 30 * ms, 100.0)],  # in force until "off"
            [(start + 40 * ms, 120.0), (start + 90 * ms, 150.0), (start + 90 * ms, 150.0)]]

    def test_without_an_owner_column_the_source_owns_the_line(self) -> None:
        paths = line_points(parameter_history_chart(override_frame().drop(columns=["owner"])).to_dict())
        assert ("ops_console", "risk_multiplier") in paths and ("meta_controller", "risk_multiplier") in paths
        null_owner = override_frame().assign(owner=[None] * 7)
        assert line_points(parameter_history_chart(null_owner).to_dict()).keys() == paths.keys()

    def test_ties_in_time_follow_stream_then_sequence(self) -> None:
        frame = override_frame()
        frame.loc[1, "ts_event"] = frame.loc[0, "ts_event"]  # the override at the nanosecond of the first set
        paths = line_points(parameter_history_chart(frame.iloc[::-1]).to_dict())  # rows given in reverse
        (path,) = paths[("meta_controller", "risk_multiplier")]
        assert [value for _, value in path] == [1.0, 8.0, 0.5, 0.5]  # T.control before T.ops

    def test_a_missing_reason_is_a_distinct_shape(self) -> None:
        spec = parameter_history_chart(history_frame()).to_dict()
        shape = spec["spec"]["layer"][1]["encoding"]["shape"]
        assert shape["field"] == "change"
        assert shape["scale"] == {"domain": ["explained", "no reason given"], "range": ["circle", "cross"]}
        changes = [row for row in data_of(spec, spec) if row["is_change"]]
        flagged = {(row["source"], row["new_value"]) for row in changes if row["change"] == "no reason given"}
        assert flagged == {("controller", "0.8"), ("sizer", "50")}  # None and "" both count as missing
        assert all(row["trigger_reason"] == "(no reason given)" for row in changes if row["change"] != "explained")

    def test_lines_end_when_a_non_numeric_value_takes_over_or_at_the_last_change(self) -> None:
        spec = parameter_history_chart(history_frame()).to_dict()
        rows = data_of(spec, spec)
        assert '"off"' not in {row["new_value"] for row in rows}
        ends = {row["source"]: row for row in rows if not row["is_change"]}
        assert {row["time"] for row in ends.values()} == {(T0 + 120 * SECOND) // 10**6}
        assert (ends["controller"]["new_value_num"], ends["sizer"]["new_value_num"]) == (0.8, 50.0)

    def test_50000_changes_stay_within_the_row_limit(self) -> None:
        chart = parameter_history_chart(many_events())
        assert embedded_rows(chart) <= MAX_ROWS
        assert "reduced to the last per series" in chart.to_dict()["title"]["subtitle"][0]


class TestConversionFunnel:
    def test_bars_per_strategy_in_funnel_order(self) -> None:
        counts = pd.DataFrame({"strategy_source": ["momentum", "meanrev"], "signals": [10, 4],
                               "acted_on": [6, 0], "orders": [5, 0], "fills": [4, 0]})
        spec = conversion_funnel(counts).to_dict()
        enc = spec["encoding"]
        assert spec["mark"]["type"] == "bar"
        assert (enc["x"]["field"], enc["x"]["type"]) == ("count", "quantitative")
        assert enc["y"]["field"] == "strategy_source"
        stages = ["signals", "acted_on", "orders", "fills"]
        assert enc["yOffset"] == {"field": "stage", "type": "nominal", "sort": stages}
        assert enc["color"]["field"] == "stage"
        assert tooltip_fields(enc) == {"strategy_source", "stage", "count", "of_signals"}
        rows = {(row["strategy_source"], row["stage"]): row for row in data_of(spec, spec)}
        assert rows["momentum", "fills"]["count"] == 4
        assert rows["momentum", "acted_on"]["of_signals"] == 0.6

    def test_column_names_are_parameters_and_ibis_input_works(self) -> None:
        counts = pd.DataFrame({"strategy": ["a", "a"], "n_signals": [3, 2], "acted": [2, 1], "n_orders": [2, 1],
                               "n_fills": [1, 1]})
        chart = conversion_funnel(ibis.memtable(counts), group="strategy", signals="n_signals", acted_on="acted",
                                  orders="n_orders", fills="n_fills")
        spec = chart.to_dict()
        assert spec["encoding"]["y"]["field"] == "strategy"
        assert [(row["stage"], row["count"]) for row in data_of(spec, spec)] == [
            ("n_signals", 5), ("acted", 3), ("n_orders", 3), ("n_fills", 2)]  # rows per group are summed


class TestPnlOverTime:
    def test_cumulative_pnl_per_strategy_is_exact(self) -> None:
        spec = pnl_over_time(pnl_frame()).to_dict()
        enc = spec["encoding"]
        assert spec["mark"]["type"] == "line" and spec["mark"]["interpolate"] == "step-after"
        assert (enc["x"]["field"], enc["x"]["type"]) == ("time", "temporal")
        assert enc["y"]["field"] == "cumulative_pnl"
        assert enc["color"]["field"] == "strategy_source"
        assert "strokeDash" not in enc  # one currency
        rows = [(r["strategy_source"], r["cumulative_exact"], r["cumulative_pnl"]) for r in data_of(spec, spec)]
        assert rows == [("momentum", "0.1", 0.1), ("momentum", "0.3", 0.3), ("meanrev", "-5.25", -5.25),
                        ("meanrev", "-4.25", -4.25)]

    def test_decimals_from_an_ibis_expression_stay_exact(self) -> None:
        spec = pnl_over_time(ibis.memtable(pnl_frame().dropna(subset=["realized_pnl"]))).to_dict()
        assert [r["cumulative_exact"] for r in data_of(spec, spec)] == ["0.10", "0.30", "-5.25", "-4.25"]

    def test_one_line_per_currency_when_there_are_several(self) -> None:
        frame = pnl_frame().assign(currency=["USD", "USD", "EUR", "USD", "USD"])
        spec = pnl_over_time(frame).to_dict()
        assert spec["encoding"]["strokeDash"]["field"] == "currency"
        momentum = [r["cumulative_exact"] for r in data_of(spec, spec) if r["strategy_source"] == "momentum"]
        assert momentum == ["0.1", "0.2"]
        assert "strokeDash" not in pnl_over_time(frame, per_currency=False).to_dict()["encoding"]

    def test_50000_events_stay_within_the_row_limit_and_end_exactly(self) -> None:
        events = many_events()
        chart = pnl_over_time(events, by="source")
        assert embedded_rows(chart) <= MAX_ROWS
        spec = chart.to_dict()
        last = {r["source"]: r["cumulative_exact"] for r in data_of(spec, spec)}
        # Only closed positions count (no trade.fill rows here): the other rows' P&L is noise to the rule.
        closed = events[events.event_type == "trade.position_closed"]
        expected = {source: str(sum(group, Decimal(0))) for source, group in closed.groupby("source")["realized_pnl"]}
        assert last == expected


@pytest.fixture
def charts() -> list[alt.TopLevelMixin]:
    return [incident_timeline(events_frame(), at=T0), parameter_history_chart(history_frame()),
            conversion_funnel(pd.DataFrame({"strategy_source": ["m"], "signals": [3], "acted_on": [2], "orders": [2],
                                            "fills": [1]})),
            pnl_over_time(pnl_frame())]


class TestSaveChart:
    def test_png_and_svg_are_rendered_offline(self, charts: list[alt.TopLevelMixin], tmp_path) -> None:
        for number, chart in enumerate(charts):
            png = save_chart(chart, tmp_path / f"chart{number}.png")
            assert png.read_bytes().startswith(PNG_MAGIC)
            svg = save_chart(chart, tmp_path / f"chart{number}.svg").read_text()
            assert svg.lstrip().startswith("<svg") and 'xmlns="http://www.w3.org/2000/svg"' in svg

    def test_html_is_self_contained(self, charts: list[alt.TopLevelMixin], tmp_path) -> None:
        html = save_chart(charts[0], tmp_path / "timeline.html").read_text()
        assert "<script src=" not in html and "cdn.jsdelivr" not in html
        assert "vegaEmbed(" in html and len(html) > 500_000  # the libraries are inlined

    def test_other_formats_are_refused_with_the_choices(self, charts: list[alt.TopLevelMixin], tmp_path) -> None:
        with pytest.raises(ValueError, match=r"cannot save a chart as \.pdf: expected \.png, \.svg or \.html"):
            save_chart(charts[0], tmp_path / "chart.pdf")


class TestOfflineRendering:
    @pytest.fixture(autouse=True)
    def restore_renderer(self):
        active = alt.renderers.active
        yield
        alt.renderers.enable(active)

    def test_charts_display_as_vega5_with_a_png_fallback(self, charts: list[alt.TopLevelMixin]) -> None:
        assert enable_offline_rendering() == "ledgerline"
        for chart in charts:
            bundle, metadata = chart._repr_mimebundle_()
            assert bundle[VEGA5_MIME]["$schema"] == "https://vega.github.io/schema/vega/v5.json"
            assert base64.b64decode(bundle["image/png"]).startswith(PNG_MAGIC)
            assert "vegalite" not in json.dumps(list(bundle))
            assert metadata == {VEGA5_MIME: {"embed_options": {}}}

    def test_the_png_fallback_can_be_left_out(self, charts: list[alt.TopLevelMixin]) -> None:
        enable_offline_rendering(png=False)
        bundle, _ = charts[0]._repr_mimebundle_()
        assert set(bundle) == {VEGA5_MIME, "text/plain"}
        tooltips = [m for m in bundle[VEGA5_MIME]["marks"] if "tooltip" in json.dumps(m.get("encode", {}))]
        assert tooltips  # the compiled spec keeps its tooltips


class TestSharedEncodings:
    def test_a_type_keeps_its_colour_and_shape_in_every_chart(self) -> None:
        day = incident_timeline(events_frame(), at=T0).to_dict()["layer"][0]["encoding"]
        only_two = events_frame()[events_frame().event_type.isin(["trade.fill", "param.risk_change"])]
        small = incident_timeline(only_two).to_dict()["layer"][0]["encoding"]
        explore = explore_timeline(events_frame(), at=T0).to_dict()["vconcat"][0]["layer"][0]["encoding"]
        def mapping(encoding: dict, channel: str) -> dict[str, str]:
            scale = encoding[channel]["scale"]
            return dict(zip(scale["domain"], scale["range"], strict=True))

        for channel in ("color", "shape"):
            # The known types keep theirs; a chart whose data has unknown types adds those after them.
            known = mapping(small, channel)
            assert {t: mapping(day, channel)[t] for t in known} == known == {
                t: mapping(explore, channel)[t] for t in known}
            assert mapping(day, channel) == mapping(explore, channel)
        pairs = {(mapping(day, "color")[t], mapping(day, "shape")[t]) for t in mapping(day, "color")}
        assert len(pairs) == len(mapping(day, "color"))  # every type drawn distinctly (colour and shape)

    def test_every_type_the_library_writes_has_its_own_colour_and_shape(self) -> None:
        from audit_core.events import AuditEventType
        from audit_core.integrations._fill_accounting import FILL_ACCOUNTING
        from audit_core.integrations.observer import _ORDER_EVENT_TYPES
        from workbench.chart_encoding import event_styles

        written = {*map(str, AuditEventType), *_ORDER_EVENT_TYPES.values(), FILL_ACCOUNTING,
                   "sys.checkpoint_failed", "sys.checkpoint_recovered"}
        unknown = {f"sys.custom_{n}" for n in range(12)} | {"custom.thing"}
        styles = event_styles(extra=written | unknown).set_index("event_type")
        assert written <= set(styles.index)
        pairs = list(zip(styles.color, styles["shape"], strict=True))
        assert len(set(pairs)) == len(pairs), styles[styles.duplicated(["color", "shape"], keep=False)]
        # Unknown types never take the encoding a known type has in other charts.
        assert event_styles().set_index("event_type").loc[sorted(written)].equals(styles.loc[sorted(written)])

    def test_simultaneous_events_are_stacked_and_the_window_is_centred(self) -> None:
        frame = pd.DataFrame({"ts_event": [T0, T0, T0 + SECOND], "event_type": ["trade.fill"] * 3,
                              "source": ["obs"] * 3, "sequence": [0, 1, 2]})
        spec = incident_timeline(frame, at=T0, window=pd.Timedelta(minutes=5)).to_dict()
        points = spec["layer"][0]
        assert [row["slot"] for row in data_of(spec, points)] == [0, 1, 0]
        assert points["encoding"]["x"]["scale"]["domain"] == [(T0 - 300 * SECOND) // 10**6,
                                                              (T0 + 300 * SECOND) // 10**6]

    def test_chartable_casts_decimals_and_aggregates_past_the_limit(self) -> None:
        frame = pd.DataFrame({"ts_event": range(0, 10_000 * SECOND, SECOND), "event_type": ["trade.fill"] * 10_000,
                              "size": [Decimal("0E-18")] * 10_000})
        small = chartable(frame.head(3))
        assert small["size"].dtype == float and small["size_exact"].tolist() == ["0"] * 3
        assert small.attrs["aggregated"] is False
        big = chartable(ibis.memtable(frame.drop(columns=["size"])))
        assert big.attrs["aggregated"] is True and "not linked" in big.attrs["note"]
        assert len(big) <= MAX_ROWS and big["events"].sum() == 10_000
        alt.Chart(big).mark_point().encode(x=utc_x(), color=event_color()).to_dict()  # no MaxRowsError


class TestExploreTimeline:
    def test_brush_legend_detail_and_table_are_linked(self) -> None:
        spec = explore_timeline(events_frame(), at=T0).to_dict()
        assert {p["name"] for p in spec["params"]} == {"brush", "types"}
        overview, detail, table = spec["vconcat"]
        assert detail["layer"][0]["encoding"]["x"]["scale"]["domain"] == {"param": "brush"}
        assert {"filter": {"param": "types"}} in detail["layer"][0]["transform"]
        rows = table["layer"][1]
        assert rows["mark"]["type"] == "text"
        assert {"filter": {"param": "brush"}} in rows["transform"]
        assert {"filter": {"param": "types"}} in rows["transform"]
        assert {"time_utc:N", "sequence:Q", "stream:N"} <= {
            f"{t['field']}:{t['type'][0].upper()}" for t in overview["layer"][0]["encoding"]["tooltip"]}

    def test_raw_rows_are_capped_nearest_the_incident_and_the_rest_counted(self) -> None:
        chart = explore_timeline(many_events(), at=T0, max_rows=500)
        spec = chart.to_dict()
        rows = data_of(spec, spec["vconcat"][0]["layer"][0])
        assert len(rows) == 500 and embedded_rows(chart) == 500 + 1 + 6  # + the incident rule, the table header
        nearest = sorted(abs(int(t) - T0) for t in many_events().ts_event)[:500]
        assert sorted(abs(row["ts_event"] - T0) for row in rows) == nearest
        assert "the 500 nearest the incident of 50,000" in spec["title"]["subtitle"][0]


class TestReadable:
    def test_tables_for_people(self) -> None:
        frame = pd.DataFrame({"realized_pnl": [Decimal("0E-18"), Decimal("-12.340000000000000000")],
                              "ts_event": [T0, T0 + 1], "since_previous_ns": [1.2e12, float("nan")]})
        shown = readable(frame)
        assert shown["realized_pnl"].tolist() == ["0", "-12.34"]
        assert shown["ts_event"].tolist() == ["2026-01-05T14:32:00.000000000Z", "2026-01-05T14:32:00.000000001Z"]
        assert shown["since_previous_ns"].tolist() == ["1,200,000,000,000", ""]
        assert frame["realized_pnl"][0] == Decimal(0)  # the caller's frame is untouched
