"""An explorable timeline: overview with a brush, linked detail view and events table, legend filter.

The three views share one data set, so they can filter each other in the browser (Vega
selections, no kernel needed: the offline HTML report stays interactive). Linking needs the raw
rows, so they are embedded, at most ``max_rows`` of them (default :data:`LINKED_ROWS`): the rows
nearest the incident instant when there are more. What is left out is counted in the subtitle.

From a point to its raw record: the tooltip and the table give the record's ``stream`` and
``sequence`` and its exact ``ts_event``; ``trail.filter(...)`` or ``ledgerline tail --stream S
--since T`` shows it, and ``ledgerline prove FILE --sequence N`` proves it is in the sealed file
(the file is the stream's file of that UTC day: ``hot/audit.<stream>.<YYYY-MM-DD>.*.jsonl``).
"""

from __future__ import annotations

import numbers
from typing import Any

import altair as alt
import pandas as pd

from workbench.chart_encoding import _instant_ns, chartable, event_color, event_shape, event_styles, utc_text, utc_x

#: How many raw rows a linked view embeds at most (Altair's own limit is 5,000 per chart; the three
#: views share one data set, and a table needs rows, not buckets).
LINKED_ROWS = 3_000
_COLUMNS = ["ts_event", "time", "event_type", "source", "stream", "sequence", "description", "param_name",
            "old_value", "new_value", "trigger_reason", "instrument_id", "side", "size", "price", "realized_pnl"]
#: The events table's columns and their x offsets (px).
_TABLE = {"time_utc": 0, "event_type": 232, "source": 380, "stream": 500, "sequence": 665, "description": 728}


def explore_timeline(events: Any, at: Any = None, window: Any = None, *, max_rows: int = LINKED_ROWS,
                     table_rows: int = 20, title: str = "Explore: drag on the overview to zoom") -> alt.VConcatChart:
    """Overview (brush to zoom), linked detail view and events table; click the legend to filter types.

    Parameters
    ----------
    events : pandas.DataFrame or ibis.expr.types.Table
        Trail rows (``trail.events``, a ``trail.filter(...)``, ``reconstruct_incident(...)``).
    at : datetime, str, int or None
        The incident instant: marked on every view; with ``window``, the rows kept are those
        within ``at - window .. at + window``.
    window : int, pandas.Timedelta or None
        Half-width of the window (ns or a timedelta).
    max_rows : int
        The most raw rows embedded (the rows nearest ``at``, else the latest); the subtitle says how many were left out.
    table_rows : int
        Rows the events table shows (the first in the brushed range).

    Returns
    -------
    altair.VConcatChart

    Examples
    --------
    >>> import pandas as pd
    >>> events = pd.DataFrame({"ts_event": [0, 10**9, 2 * 10**9], "sequence": [0, 1, 2],
    ...                        "event_type": ["param.risk_change", "trade.fill", "trade.signal"],
    ...                        "source": ["ops", "obs", "strategy"]})
    >>> spec = explore_timeline(events, at=10**9).to_dict()
    >>> sorted(p["name"] for p in spec["params"])
    ['brush', 'types']
    """
    if not isinstance(events, pd.DataFrame) and "description" not in events.columns and "event_type" in events.columns:
        from workbench.describe import with_description

        events = with_description(events)
    if not isinstance(events, pd.DataFrame) and at is not None and window is not None:
        half = _half_width(window)
        centre = _instant_ns(at)
        events = events.filter((events.ts_event >= centre - half) & (events.ts_event <= centre + half))
    frame = chartable(events, _COLUMNS, max_rows=10**9)  # raw rows: a linked view cannot use buckets
    if at is not None and window is not None:
        half = _half_width(window)
        frame = frame[(frame.ts_event - _instant_ns(at)).abs() <= half]
    total = len(frame)
    if total > max_rows:
        centre = _instant_ns(at) if at is not None else int(frame.ts_event.max())
        frame = frame.loc[(frame.ts_event - centre).abs().sort_values(kind="stable").index[:max_rows]]
    for column in _COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    frame = frame.sort_values(["ts_event", "stream", "sequence"], kind="stable").reset_index(drop=True)
    text = [c for c in _COLUMNS if c not in ("ts_event", "time", "sequence")]
    frame[text] = frame[text].astype(object).where(frame[text].notna(), "")
    frame["slot"] = frame.groupby(["event_type", "ts_event"], sort=False).cumcount() % 4
    lanes = [t for t in event_styles(frame.event_type.unique()).event_type if t in set(frame.event_type)]
    subtitle = [f"{len(frame):,} raw events linked" + (f" (the {max_rows:,} nearest the incident of {total:,}; "
                                                        f"the rest left out)" if total > max_rows else "")]

    types = alt.selection_point(fields=["event_type"], bind="legend", name="types")
    brush = alt.selection_interval(encodings=["x"], name="brush")
    tooltip = ["time_utc:N", "event_type:N", "source:N", "stream:N", "sequence:Q", "description:N",
               "instrument_id:N", "size:N", "price:N", "realized_pnl:N", "trigger_reason:N"]
    lane_y = alt.Y("event_type:N", title=None, sort=lanes, axis=alt.Axis(grid=True))
    visible = alt.condition(types, alt.value(0.9), alt.value(0.08))
    base = alt.Chart(frame)
    overview = base.mark_point(filled=True, size=30).encode(
        x=utc_x(), y=lane_y, color=event_color(extra=lanes, legend=alt.Legend(values=lanes)),
        shape=event_shape(extra=lanes), opacity=visible,
        tooltip=tooltip,
    ).add_params(brush, types).properties(width=820, height=12 * len(lanes) + 10, name="overview",
                                          title=alt.Title("Overview: drag to select a time range", fontSize=12))
    detail = base.mark_point(filled=True, size=80, clip=True).encode(
        x=_zoomed(brush),
        y=lane_y, yOffset=alt.YOffset("slot:O"), color=event_color(extra=lanes),
        shape=event_shape(extra=lanes), tooltip=tooltip,
    ).transform_filter(types).properties(width=820, height=24 * len(lanes), name="detail",
                                         title=alt.Title("Detail: the selected range", fontSize=12))
    # Text marks, so the table filters with the brush in any Vega viewer (the offline report too).
    offsets = "{" + ", ".join(f"'{column}': {x}" for column, x in _TABLE.items()) + "}"
    rows = base.transform_filter(brush).transform_filter(types).transform_window(
        row="row_number()", sort=[alt.SortField("ts_event")],
    ).transform_filter(f"datum.row <= {int(table_rows)}").transform_calculate(
        sequence_text="'' + datum.sequence").transform_fold(
        [column if column != "sequence" else "sequence_text" for column in _TABLE], as_=["column", "value"],
    ).transform_calculate(x=f"{offsets}[replace(datum.column, '_text', '')]").mark_text(
        align="left", fontSize=11, limit=300, color="#222",
    ).encode(x=alt.X("x:Q", scale=None, axis=None), y=alt.Y("row:O", title=None, axis=None), text="value:N")
    header = alt.Chart(pd.DataFrame({"column": list(_TABLE), "x": list(_TABLE.values())})).mark_text(
        align="left", fontWeight="bold", fontSize=11, dy=-14).encode(
        x=alt.X("x:Q", scale=None, axis=None), y=alt.value(0), text="column:N")
    table = alt.layer(header, rows).properties(
        width=820, height=16 * table_rows, name="events_table",
        title=alt.Title(f"Events in the selected range (first {table_rows}; stream + sequence name the raw record "
                        "for `ledgerline prove`)", fontSize=12, offset=18))
    layers_over, layers_detail = [overview], [detail]
    if at is not None:
        at_ns = pd.Series([_instant_ns(at)])
        mark = pd.DataFrame({"time": at_ns // 10**6, "time_utc": utc_text(at_ns), "label": ["incident"]})
        rule = alt.Chart(mark).mark_rule(color="firebrick", strokeWidth=2).encode(
            x=alt.X("time:T", axis=None), tooltip=["label:N", "time_utc:N"])
        layers_over.append(rule)
        layers_detail.append(rule.encode(x=_zoomed(brush)))
    chart = alt.vconcat(alt.layer(*layers_over), alt.layer(*layers_detail), table)
    return chart.resolve_scale(color="shared", shape="shared").properties(title=alt.Title(title, subtitle=subtitle))


def _zoomed(brush: Any) -> alt.X:
    """The UTC axis whose domain follows the brush (the whole range while nothing is brushed)."""
    x = utc_x()
    x.scale = alt.Scale(type="utc", domain=brush)
    return x


def _half_width(window: Any) -> int:
    return int(window) if isinstance(window, numbers.Integral) else int(pd.Timedelta(window).value)
