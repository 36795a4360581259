"""Altair charts of an audit trail: incident timeline, parameter history, conversion funnel, P&L.

Every chart takes a pandas DataFrame or an Ibis table expression with the event columns of the
cold store (``ts_event``, ``event_type``, ``source``, ...). Expressions are executed here, with
``to_pandas()``: a chart is an eager edge. Each chart embeds at most ``max_rows`` rows (Altair's
own limit, 5,000, by default): larger inputs are reduced in pandas before embedding, into time
buckets per series (the timeline counts events per bucket; step lines keep the last value per
bucket, which is exact at every kept point). A reduction is stated in the chart's subtitle, never
silent. VegaFusion was not chosen: it is not installed, and reducing here keeps saved specs small.

Times are plotted on a UTC scale; tooltips show the exact ``ts_event`` as UTC text (nanoseconds).

Offline rendering in Jupyter: Altair 6 emits Vega-Lite v6, JupyterLab 4.6 renders only Vega 5 /
Vega-Lite <= 5 natively, and Altair's default HTML renderer loads Vega from a CDN. The "jupyter"
renderer needs anywidget (not installed) and "png"/"svg" lose the tooltips. So
:func:`enable_offline_rendering` registers a renderer that compiles the Vega-Lite v6 spec to Vega
with vl-convert (offline) and emits it as ``application/vnd.vega.v5+json``, which JupyterLab's
bundled Vega 5 renderer draws interactively, tooltips included, even in untrusted notebooks; a
PNG from vl-convert rides along for viewers without a Vega renderer (nbconvert, GitHub). Checked
in JupyterLab 4.6.6 (its Vega 5.33) in headless Chromium with all outside requests blocked: every
chart drawn, tooltips shown, no console errors.
"""

from __future__ import annotations

import base64
import numbers
from collections.abc import Sequence
from decimal import Decimal
from itertools import accumulate
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import vl_convert

from workbench.chart_encoding import (
    MAX_ROWS,
    _instant_ns,
    chartable,
    event_color,
    event_family,
    event_shape,
    event_styles,
    utc_text,
    utc_x,
)
from workbench.explore import LINKED_ROWS, explore_timeline

VEGA5_MIME = "application/vnd.vega.v5+json"
_MS, _S, _MIN, _H = 10**6, 10**9, 60 * 10**9, 3600 * 10**9
#: Bucket widths (ns) a reduced chart may use, smallest first: round durations read better on an axis.
_BUCKET_WIDTHS = [_MS, 10 * _MS, 100 * _MS, _S, 5 * _S, 15 * _S, 30 * _S, _MIN, 5 * _MIN, 15 * _MIN, 30 * _MIN,
                  _H, 6 * _H, 12 * _H, 24 * _H, 7 * 24 * _H]
__all__ = [
    "LINKED_ROWS",
    "MAX_ROWS",
    "chartable",
    "conversion_funnel",
    "enable_offline_rendering",
    "event_color",
    "event_family",
    "event_shape",
    "event_styles",
    "explore_timeline",
    "incident_timeline",
    "parameter_history_chart",
    "pnl_over_time",
    "save_chart",
    "utc_text",
    "utc_x",
]
_NO_REASON = "(no reason given)"


def _frame(data: Any, columns: Sequence[str]) -> pd.DataFrame:
    """The wanted columns as pandas (executing an Ibis expression), with ``time``/ns columns added."""
    present = [c for c in columns if c in data.columns]
    frame = data.select(present).to_pandas() if not isinstance(data, pd.DataFrame) else data[present].copy()
    for column in columns:
        if column not in frame.columns:
            frame[column] = None
    if "ts_event" in present:
        ns = frame["ts_event"].astype("int64")
    elif "time" in present:
        ns = pd.to_datetime(frame["time"], utc=True).astype("int64")
    else:
        raise ValueError(f"events need a 'ts_event' or 'time' column: expected one of them, got {list(data.columns)}")
    frame["ts_event"] = ns
    frame["time"] = ns // _MS  # epoch ms: what Vega reads as a timestamp
    frame["time_utc"] = utc_text(ns)
    return frame.sort_values(["ts_event", "sequence"], kind="stable").reset_index(drop=True)


def _bucket(frame: pd.DataFrame, series: Sequence[str], max_rows: int) -> pd.Series:
    """Bucket start (ns) per row: round widths chosen so that series x buckets stays <= max_rows."""
    groups = max(1, len(frame.drop_duplicates(list(series))))
    buckets = max(1, max_rows // groups - 2)  # - 2: an aligned edge, and a closing row per series
    span = int(frame["ts_event"].max() - frame["ts_event"].min()) + 1
    width = next((w for w in _BUCKET_WIDTHS if span / w <= buckets), -(-span // buckets))
    return frame["ts_event"] // width * width


def _keep_last_per_bucket(frame: pd.DataFrame, series: list[str], max_rows: int, flag: str | None = None):
    """Rows reduced to the last per (series, bucket), with the count (and flagged count) they stand for."""
    if len(frame) <= max_rows:
        return frame.assign(changes=1), None
    work = frame.assign(bucket=_bucket(frame, series, max_rows), row=frame.index)
    extra = {flag: (flag, "any")} if flag else {}
    summary = work.groupby([*series, "bucket"], sort=False, dropna=False).agg(
        row=("row", "max"), changes=("row", "size"), **extra)  # rows are in time order: max = last
    kept = frame.loc[summary["row"]].assign(changes=summary["changes"].to_numpy())
    if flag:
        kept[flag] = summary[flag].to_numpy()
    note = f"{len(frame):,} rows reduced to the last per series and time bucket ({len(kept):,} shown)"
    return kept.sort_values("ts_event", kind="stable"), note


def incident_timeline(events: Any, at: Any = None, title: str = "Incident timeline",
                      max_rows: int = MAX_ROWS, window: Any = None, annotations: Any = None) -> alt.LayerChart:
    """Events on a UTC time axis, one lane per event type, coloured and shaped by type.

    Lanes are grouped by family (parameter, signal, order/fill, position, system) and each type
    keeps its colour and shape in every chart (``workbench.chart_encoding``). Events at the same
    instant in one lane are stacked within the lane, not drawn on top of each other. The time axis
    is drawn at the top and the bottom, so it stays in view.

    Parameters
    ----------
    events : pandas.DataFrame or ibis.expr.types.Table
        Trail rows (``ts_event`` or ``time``, ``event_type``, ``source``; optional
        ``description``, ``param_name``, old/new values, ``trigger_reason``, ``filter_reason``,
        ``stream``, ``sequence``).
    at : datetime, str, int or None
        The incident instant (int = ns since the epoch; naive = UTC), drawn as a red rule.
    title : str
        Chart title.
    max_rows : int
        Above this many events, events are counted per (event type, time bucket), and the subtitle says so.
    window : int, pandas.Timedelta or None
        With ``at``: show ``at - window .. at + window`` (ns or a timedelta), the incident centred.
    annotations : mapping of label to instant, optional
        More instants to mark and label (``{"DORSAL": ts}``), as grey rules.

    Returns
    -------
    altair.LayerChart

    Examples
    --------
    >>> import pandas as pd
    >>> events = pd.DataFrame({"ts_event": [0, 0, 10**9], "event_type": ["trade.fill", "trade.fill", "trade.signal"],
    ...                        "source": ["obs", "obs", "strategy"]})
    >>> spec = incident_timeline(events, at=10**9, window=10**9).to_dict()
    >>> spec["layer"][0]["encoding"]["x"]["scale"]["domain"], spec["layer"][0]["encoding"]["yOffset"]["field"]
    ([0, 2000], 'slot')
    """
    columns = ["ts_event", "time", "event_type", "source", "description", "param_name", "old_value",
               "new_value", "trigger_reason", "filter_reason", "stream", "sequence"]
    if not isinstance(events, pd.DataFrame) and "description" not in events.columns and "event_type" in events.columns:
        from workbench.describe import with_description

        events = with_description(events)  # trail.events has none: the tooltip's readable line
    frame = _frame(events, columns)
    frame["events"] = 1
    subtitle = []
    if len(frame) > max_rows:
        frame["bucket"] = _bucket(frame, ["event_type"], max_rows)
        grouped = frame.groupby(["event_type", "bucket"], dropna=False)
        frame = grouped.agg(ts_event=("ts_event", "min"), last=("time_utc", "max"), events=("events", "sum"),
                            first=("time_utc", "min"), source=("source", "first")).reset_index()
        frame["time"] = frame["ts_event"] // _MS
        frame["time_utc"] = frame["first"]
        frame["description"] = frame["events"].astype(str) + " events up to " + frame["last"]
        frame = frame.drop(columns=["bucket", "first", "last"]).reindex(columns=[*columns, "time_utc", "events"])
        subtitle.append(f"{int(frame['events'].sum()):,} events counted per type and time bucket")
    text = ["description", "param_name", "old_value", "new_value", "trigger_reason", "filter_reason"]
    frame[text] = frame[text].astype(object).where(frame[text].notna(), "")  # a blank, not "null", in tooltips
    # Simultaneous events in one lane: stacked into slots within the lane (up to 4, then they share).
    frame["slot"] = frame.groupby(["event_type", "ts_event"], sort=False).cumcount() % 4
    styles = event_styles(frame["event_type"].dropna().unique())
    lanes = [t for t in styles.event_type if t in set(frame["event_type"])]
    domain = None
    if at is not None and window is not None:
        half = window if isinstance(window, numbers.Integral) else pd.Timedelta(window).value
        domain = [_instant_ns(at) - int(half), _instant_ns(at) + int(half)]
        frame = frame[(frame.ts_event >= domain[0]) & (frame.ts_event <= domain[1])]
    size = alt.Size("events:Q", legend=None, scale=alt.Scale(range=[40, 400])) if subtitle else alt.value(60)
    points = alt.Chart(frame).mark_point(filled=True, opacity=0.85).encode(
        x=utc_x(domain=domain), y=alt.Y("event_type:N", title=None, sort=lanes, axis=alt.Axis(grid=True)),
        yOffset=alt.YOffset("slot:O"), color=event_color(extra=lanes, legend=alt.Legend(values=lanes)),
        shape=event_shape(extra=lanes), size=size,
        tooltip=["time_utc:N", "event_type:N", "source:N", "stream:N", "sequence:Q", *(f"{c}:N" for c in text),
                 "events:Q"],
    )
    # The same axis on top: a day view is taller than a screen's bottom edge on small displays.
    top_axis = alt.Chart(frame).mark_point(opacity=0).encode(x=utc_x(domain=domain, orient="top", title=None))
    layers: list[alt.Chart] = [points, top_axis]
    marks = {"incident": at} if at is not None else {}
    marks.update(annotations or {})
    if marks:
        at_ns = pd.Series([_instant_ns(v) for v in marks.values()])
        instant = pd.DataFrame({"time": at_ns // _MS, "time_utc": utc_text(at_ns), "label": list(marks),
                                "incident": [label == "incident" and at is not None for label in marks]})
        color = alt.condition("datum.incident", alt.value("firebrick"), alt.value("#555"))
        instant["label_y"] = [4 + 14 * i for i in range(len(instant))]  # staggered: close instants stay legible
        rule = alt.Chart(instant).mark_rule(strokeWidth=2).encode(x=alt.X("time:T", axis=None), color=color,
                                                                  tooltip=["label:N", "time_utc:N"])
        layers += [rule, rule.mark_text(align="left", dx=4, baseline="top", fontWeight="bold").encode(
            text="label:N", y=alt.Y("label_y:Q", scale=None, axis=None))]
    height = min(780, 26 * max(1, len(lanes)) * (2 if len(frame) and frame["slot"].max() > 0 else 1))
    chart = alt.layer(*layers).resolve_axis(x="independent")
    return chart.properties(title=alt.Title(title, subtitle=subtitle), width=820, height=height)


def parameter_history_chart(history: Any, max_rows: int = MAX_ROWS) -> alt.FacetChart:
    """The value in force of each parameter over time: one step line per (owner, parameter).

    A parameter's line follows its every change, whoever made it: when ``meta_controller`` sets
    ``risk_multiplier`` to 1.0, ``ops_console`` overrides it to 8.0 and the controller resets it
    48 minutes later, the line goes 1.0, 8.0, then the reset value. Lines are coloured by
    ``owner``; a point marks every change, coloured by its ``source`` (who made it; one colour
    per component, so an override stands out on its owner's line), and a change without a
    ``trigger_reason`` is a red-edged cross. While a non-numeric value (``new_value_num`` NaN) is
    in force the line is broken; such changes have no point. Each line runs to the last change
    in ``history``.

    Parameters
    ----------
    history : pandas.DataFrame or ibis.expr.types.Table
        ``param.*`` rows (``parameter_history``): ``ts_event`` or ``time``, ``source``,
        ``param_name``, ``new_value_num``; optional ``owner`` (missing or NULL means the source),
        ``old_value``, ``new_value``, ``trigger_reason``, ``stream``, ``sequence``.
    max_rows : int
        Above this many changes, the last change per (owner, parameter, time bucket) is kept.

    Returns
    -------
    altair.FacetChart

    Examples
    --------
    >>> import pandas as pd
    >>> history = pd.DataFrame({"ts_event": [0, 10**9, 2 * 10**9], "source": ["meta", "ops", "meta"],
    ...                         "owner": ["meta"] * 3, "param_name": ["risk"] * 3,
    ...                         "new_value_num": [1.0, 8.0, 0.5], "trigger_reason": ["vol", None, "reset"]})
    >>> spec = parameter_history_chart(history).to_dict()
    >>> spec["spec"]["layer"][0]["mark"]["interpolate"], spec["spec"]["layer"][0]["encoding"]["color"]["field"]
    ('step-after', 'owner')
    >>> [row["new_value_num"] for row in spec["datasets"][spec["data"]["name"]] if row["line"]]
    [1.0, 8.0, 0.5, 0.5]
    """
    frame = _frame(history, ["ts_event", "time", "owner", "source", "param_name", "old_value", "new_value",
                             "new_value_num", "trigger_reason", "stream", "sequence"])
    # One order for ties within a nanosecond, the analyses' own: (ts_event, stream, sequence).
    frame = frame.sort_values(["ts_event", "stream", "sequence"], kind="stable", na_position="first")
    frame = frame.reset_index(drop=True)
    frame["owner"] = frame["owner"].astype(object).where(frame["owner"].notna(), frame["source"])
    reason = frame["trigger_reason"].astype("string").str.strip()
    frame["unexplained"] = reason.isna() | (reason == "")
    frame["trigger_reason"] = reason.mask(frame["unexplained"], _NO_REASON).astype(object)
    series = ["owner", "param_name"]
    frame, note = _keep_last_per_bucket(frame, series, max_rows, flag="unexplained")
    frame["change"] = frame["unexplained"].map({True: "no reason given", False: "explained"})
    numeric = frame["new_value_num"].notna()
    # A run of numeric values in force is one path; a non-numeric change ends the run before it.
    frame["segment"] = (~numeric).astype(int).groupby([frame[c] for c in series], sort=False).cumsum()
    changes = frame[numeric]
    end_ns = int(frame["ts_event"].max()) if len(frame) else 0
    breaks = frame.loc[~numeric, [*series, "segment", "ts_event"]].assign(segment=lambda f: f["segment"] - 1)
    closing = changes.groupby([*series, "segment"], sort=False).tail(1).drop(columns=["ts_event"]).merge(
        breaks, on=[*series, "segment"], how="left")
    closing["ts_event"] = closing["ts_event"].fillna(end_ns).astype("int64")
    closing = closing.assign(time=closing["ts_event"] // _MS, change=None)
    data = pd.concat([changes.assign(line=True, is_change=True), closing.assign(line=True, is_change=False)],
                     ignore_index=True)
    data["path"] = data.groupby([*series, "segment"], sort=False).ngroup()  # one id per drawn path
    data = data.drop(columns=["unexplained", "stream"]).sort_values(["path", "ts_event", "is_change"],
                                                                    ascending=[True, True, False], kind="stable")
    component = alt.Legend(title=["component", "line: owner", "point: changed by"])
    base = alt.Chart().encode(x=utc_x(), y=alt.Y("new_value_num:Q", title="value in force"))
    line = base.mark_line(interpolate="step-after").encode(
        color=alt.Color("owner:N", legend=component), detail="path:N", order=alt.Order("ts_event:Q"))
    points = base.mark_point(filled=True, size=70).encode(
        color=alt.Color("source:N", legend=component),
        shape=alt.Shape("change:N", scale=alt.Scale(domain=["explained", "no reason given"],
                                                    range=["circle", "cross"]), title="change"),
        stroke=alt.condition("datum.change === 'no reason given'", alt.value("red"), alt.value(None)),
        tooltip=["time_utc:N", "owner:N", "source:N", "param_name:N", "old_value:N", "new_value:N",
                 "trigger_reason:N", "changes:Q"],
    ).transform_filter("datum.is_change")
    chart = alt.layer(line, points, data=data).properties(width=800, height=120)
    return chart.facet(row=alt.Row("param_name:N", title=None)).resolve_scale(y="independent").properties(
        title=alt.Title("Parameter history: the value in force", subtitle=[note] if note else []))


def conversion_funnel(conversion: Any, group: str = "strategy_source", signals: str = "signals",
                      acted_on: str = "acted_on", orders: str = "orders", fills: str = "fills") -> alt.Chart:
    """Funnel bars per group: signals, signals acted on, orders, fills.

    Parameters
    ----------
    conversion : pandas.DataFrame or ibis.expr.types.Table
        One row per group (several rows per group are summed) with the four count columns.
    group : str
        The column that names a bar group (a strategy by default).
    signals, acted_on, orders, fills : str
        The count columns, in funnel order.

    Returns
    -------
    altair.Chart

    Examples
    --------
    >>> import pandas as pd
    >>> counts = pd.DataFrame({"strategy_source": ["momentum"], "signals": [10], "acted_on": [6],
    ...                        "orders": [5], "fills": [5]})
    >>> conversion_funnel(counts).to_dict()["encoding"]["x"]["field"]
    'count'
    """
    stages = [signals, acted_on, orders, fills]
    frame = conversion.select([group, *stages]).to_pandas() if not isinstance(conversion, pd.DataFrame) \
        else conversion[[group, *stages]]
    totals = frame.groupby(group, dropna=False)[stages].sum().reset_index()
    long = totals.melt(id_vars=[group], value_vars=stages, var_name="stage", value_name="count")
    first = long[group].map(totals.set_index(group)[signals])
    long["of_signals"] = (long["count"] / first.where(first > 0)).astype(float)
    return alt.Chart(long).mark_bar().encode(
        x=alt.X("count:Q", title="count"),
        y=alt.Y(f"{group}:N", title=group),
        yOffset=alt.YOffset("stage:N", sort=stages),
        color=alt.Color("stage:N", sort=stages, title="stage"),
        tooltip=[f"{group}:N", "stage:N", "count:Q", alt.Tooltip("of_signals:Q", format=".1%", title="of signals")],
    ).properties(title="Signal-to-trade conversion", width=600)


def pnl_over_time(events: Any, by: str = "strategy_source", per_currency: bool | None = None,
                  max_rows: int = MAX_ROWS) -> alt.Chart:
    """Cumulative realized P&L over time, one step line per ``by`` value (and currency).

    Which rows count: with an ``event_type`` column (``trail.events``, a filter of it, a frame of
    trail rows) or a ``Trail``, exactly the records of ``workbench.pnl.realized_pnl_events`` (closed
    positions, and fills carrying ``realized_pnl`` that no closing record covers; never opened or
    changed positions, whose P&L the closing record repeats). Pass the whole trail (or
    ``trail.events``) rather than a time-filtered table: a fill is known to be covered only when
    its closing record is in what is given. Without ``event_type`` every row with a
    ``realized_pnl`` counts: the caller chose the rows. Sums are exact (``Decimal``); they become
    floats only for plotting, and the tooltip shows the exact cumulative value.

    Parameters
    ----------
    events : workbench.Trail, pandas.DataFrame or ibis.expr.types.Table
        Trail rows with ``ts_event`` or ``time``, ``by``, ``realized_pnl`` and ``currency``
        (``event_type``, ``position_id``, ``trader_id`` for the rule).
    by : str
        The column that names a line.
    per_currency : bool or None
        One line per currency too (dashes differ). None: when more than one currency is present.
    max_rows : int
        Above this many rows, the last cumulative value per (line, time bucket) is kept.

    Returns
    -------
    altair.Chart

    Examples
    --------
    >>> import pandas as pd
    >>> from decimal import Decimal
    >>> events = pd.DataFrame({"ts_event": [0, 10**9, 10**9], "strategy_source": ["momentum"] * 3,
    ...                        "event_type": ["trade.position_opened", "trade.position_closed", "trade.fill"],
    ...                        "position_id": ["P-1", "P-1", "P-2"],
    ...                        "realized_pnl": [Decimal("-0.5"), Decimal("1.5"), Decimal("-0.25")],
    ...                        "currency": ["USD"] * 3})
    >>> spec = pnl_over_time(events).to_dict()
    >>> spec["encoding"]["y"]["field"]
    'cumulative_pnl'
    >>> [row["cumulative_exact"] for row in spec["datasets"][spec["data"]["name"]]]
    ['1.5', '1.25']
    """
    frame = _frame(_realized_pnl_rows(events), ["ts_event", "time", "sequence", by, "realized_pnl", "currency"])
    frame = frame[frame["realized_pnl"].notna()]
    if per_currency is None:
        per_currency = frame["currency"].nunique(dropna=False) > 1
    series = [by, "currency"] if per_currency else [by]
    exact = frame.groupby(series, sort=False, dropna=False)["realized_pnl"].transform(
        lambda values: list(accumulate(Decimal(str(v)) for v in values)))
    frame["cumulative_exact"] = exact.astype(str)
    frame["cumulative_pnl"] = exact.astype(float)
    frame, note = _keep_last_per_bucket(frame, series, max_rows)
    frame["realized_pnl"] = frame["realized_pnl"].astype(str)
    encoding: dict[str, Any] = {"strokeDash": alt.StrokeDash("currency:N")} if per_currency else {}
    return alt.Chart(frame).mark_line(interpolate="step-after", point=alt.OverlayMarkDef(size=12)).encode(
        x=utc_x(), y=alt.Y("cumulative_pnl:Q", title="cumulative realized P&L"),
        color=alt.Color(f"{by}:N", title=by),
        tooltip=["time_utc:N", f"{by}:N", "currency:N", "realized_pnl:N",
                 alt.Tooltip("cumulative_exact:N", title="cumulative P&L")],
        **encoding,
    ).properties(title=alt.Title("Realized P&L", subtitle=[note] if note else []), width=800)


def _realized_pnl_rows(events: Any) -> Any:
    """The rows of ``events`` that ``workbench.pnl.realized_pnl_events`` counts, when it can tell (``event_type``).

    A pandas frame is not handed to the engine whole: the rule only asks which rows carry a P&L
    value, so a table of row numbers, the columns the rule reads and a flag in place of
    ``realized_pnl`` goes through it, and the values themselves never leave pandas (no float or
    decimal-precision conversion of the caller's column).
    """
    import ibis

    from workbench.pnl import realized_pnl_events
    from workbench.trail import Trail

    if isinstance(events, Trail):
        return realized_pnl_events(events)
    if "event_type" not in events.columns or "realized_pnl" not in events.columns:
        return events  # the caller chose the rows (or none carries P&L: an empty chart)
    if not isinstance(events, pd.DataFrame):
        return realized_pnl_events(events)
    keys = [column for column in ("event_type", "trader_id", "position_id") if column in events.columns]
    carries = events["realized_pnl"].notna().to_numpy()
    flags = pd.DataFrame({"row": range(len(events)), **{column: events[column].astype("string") for column in keys},
                          "realized_pnl": pd.array([1 if flag else None for flag in carries], dtype="Int8")})
    counted = realized_pnl_events(ibis.memtable(flags)).select("row").to_pyarrow().column("row").to_pylist()
    return events.iloc[sorted(counted)]


def save_chart(chart: alt.TopLevelMixin, path: str | Path, scale_factor: float = 2.0) -> Path:
    """Write a chart to .png or .svg (vl-convert) or self-contained .html, all offline.

    Parameters
    ----------
    chart : altair chart
        Any chart of this module (or any Altair chart).
    path : str or pathlib.Path
        The file to write; its suffix (.png, .svg, .html) picks the format.
    scale_factor : float
        Pixel density of a PNG.

    Returns
    -------
    pathlib.Path
        The written file.

    Examples
    --------
    >>> import pandas as pd, tempfile, pathlib
    >>> chart = conversion_funnel(pd.DataFrame({"strategy_source": ["m"], "signals": [2], "acted_on": [1],
    ...                                         "orders": [1], "fills": [1]}))
    >>> save_chart(chart, pathlib.Path(tempfile.mkdtemp()) / "funnel.svg").suffix
    '.svg'
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".png", ".svg"):
        chart.save(str(path), format=suffix[1:], scale_factor=scale_factor if suffix == ".png" else 1)
    elif suffix == ".html":
        chart.save(str(path), format="html", inline=True)  # Vega, Vega-Lite, Vega-Embed inlined: no CDN
    else:
        raise ValueError(f"cannot save a chart as {suffix or 'a file without suffix'}: expected .png, .svg or .html")
    return path


def _vega5_renderer(spec: dict[str, Any], **metadata: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Compile Vega-Lite v6 to Vega with vl-convert; emit it for JupyterLab's built-in Vega 5 renderer."""
    versions = vl_convert.get_vegalite_versions()
    wanted = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    vega = vl_convert.vegalite_to_vega(spec, vl_version=wanted if wanted in versions else None)
    vega["$schema"] = "https://vega.github.io/schema/vega/v5.json"
    bundle: dict[str, Any] = {VEGA5_MIME: vega, "text/plain": "<Ledgerline chart (Vega 5 renderer)>"}
    if metadata.get("png", True):
        bundle["image/png"] = base64.b64encode(vl_convert.vega_to_png(vega, scale=2)).decode("ascii")
    return bundle, {VEGA5_MIME: {"embed_options": metadata.get("embed_options") or {}}}


def enable_offline_rendering(png: bool = True) -> str:
    """Display charts in JupyterLab offline, interactive (tooltips), with no CDN and no extension.

    Parameters
    ----------
    png : bool
        Also attach a static PNG for frontends that cannot run Vega (nbconvert HTML, GitHub).

    Returns
    -------
    str
        The name of the enabled Altair renderer.

    Examples
    --------
    >>> enable_offline_rendering()
    'ledgerline'
    """
    alt.renderers.register("ledgerline", _vega5_renderer)
    alt.renderers.enable("ledgerline", png=png)
    return "ledgerline"
