"""Shared chart encodings: one colour and shape per event type, the UTC time axis, chartable data.

Every chart of the workbench draws an event type the same way: its **family** (parameter, signal,
order/fill, position, system) picks the hue, the type picks the shade and the shape within it.
The scales are explicit (domain and range), so a type keeps its encoding whichever types a chart
happens to show. Use these in your own Altair charts to match the built-in ones:

>>> import altair as alt, pandas as pd
>>> from workbench.chart_encoding import event_color, event_shape, utc_x, chartable
>>> frame = chartable(pd.DataFrame({"ts_event": [0, 10**9], "event_type": ["param.risk_change", "trade.fill"]}))
>>> chart = alt.Chart(frame).mark_point().encode(x=utc_x(), color=event_color(), shape=event_shape())
>>> chart.to_dict()["encoding"]["color"]["scale"]["domain"][:2]
['param.state_change', 'param.weight_change']
"""

from __future__ import annotations

import numbers
from decimal import Decimal
from typing import Any

import altair as alt
import pandas as pd

__all__ = [
    "EVENT_FAMILIES",
    "EVENT_STYLES",
    "MAX_ROWS",
    "chartable",
    "event_color",
    "event_family",
    "event_shape",
    "event_styles",
    "utc_text",
    "utc_x",
]

#: Altair's default embedding limit; ``chartable`` keeps every chart within it.
MAX_ROWS = 5_000
_MS = 10**6

#: Family of an event type by its prefix, in lane order; the hue each family is drawn in.
EVENT_FAMILIES: dict[str, tuple[tuple[str, ...], str]] = {
    "parameter": (("param.",), "purple"),
    "signal": (("trade.signal",), "blue"),
    "order/fill": (("trade.order", "trade.fill", "trade.rejected", "trade.canceled", "trade.accepted",
                    "trade.submitted", "trade.expired"), "green"),
    "position": (("trade.position",), "orange"),
    "system": (("sys.",), "grey"),
}
_SHADES = {  # dark to light per hue: ColorBrewer sequential schemes, readable on white
    "purple": ["#3f007d", "#6a51a3", "#9e9ac8", "#54278f", "#807dba"],
    "blue": ["#08519c", "#3182bd", "#6baed6"],
    "green": ["#00441b", "#238b45", "#74c476", "#a50f15", "#fb6a4a", "#41ab5d", "#006d2c"],
    "orange": ["#a63603", "#e6550d", "#fd8d3c"],
    "grey": ["#252525", "#525252", "#737373", "#969696", "#bdbdbd", "#d62728", "#2ca02c", "#8c564b"],
    "teal": ["#01665e", "#35978f", "#80cdc1", "#8c510a", "#bf812d"],  # types of no known family
}
_SHAPES = ["circle", "square", "triangle-up", "diamond", "cross", "triangle-down", "triangle-right", "triangle-left"]
#: The known event types, family by family: each gets (family, colour, shape), fixed for every chart.
_KNOWN = [
    "param.state_change", "param.weight_change", "param.risk_change", "param.k_change",
    "trade.signal",
    "trade.order", "trade.fill", "trade.order.accepted", "trade.rejected", "trade.canceled",
    "trade.order.updated", "trade.order.triggered", "trade.order.pending_update", "trade.order.pending_cancel",
    "trade.order.modify_rejected", "trade.order.cancel_rejected", "trade.order.emulated", "trade.order.released",
    "trade.position_opened", "trade.position_changed", "trade.position_closed",
    "sys.regime_change", "sys.evolution_trigger", "sys.resampling", "sys.account_state", "sys.recovery",
    "sys.degraded", "sys.recovered", "sys.retention",
    "sys.fill_accounting", "sys.session_start", "sys.session_end", "sys.checkpoint_failed", "sys.checkpoint_recovered",
]


def event_family(event_type: str) -> str:
    """The family of an event type (``"parameter"``, ``"signal"``, ``"order/fill"``, ``"position"``, ``"system"``).

    >>> event_family("trade.position_closed"), event_family("custom.thing")
    ('position', 'other')
    """
    for family, (prefixes, _) in EVENT_FAMILIES.items():
        if event_type.startswith(prefixes):
            return family
    return "other"


def event_styles(extra: Any = ()) -> pd.DataFrame:
    """One row per event type: ``event_type``, ``family``, ``color``, ``shape``, ``lane`` (order to draw lanes in).

    The known types come first, in a fixed order; ``extra`` types (seen in the data, not known here)
    follow, shaded within their family. The same type gets the same row in every call.
    """
    types = list(_KNOWN) + sorted({str(t) for t in extra if isinstance(t, str)} - set(_KNOWN))
    rows, used = [], dict.fromkeys([*EVENT_FAMILIES, "other"], 0)
    order = [*EVENT_FAMILIES, "other"]
    for event_type in types:
        family = event_family(event_type)
        hue = EVENT_FAMILIES[family][1] if family in EVENT_FAMILIES else "teal"
        shades = _SHADES[hue]
        rank = used[family]
        used[family] += 1
        # Past the shades of a hue, each round shifts the shapes by one: (colour, shape) stays unique
        # for len(shades) * len(_SHAPES) types of one family (rank % len(_SHAPES) repeated both).
        shape = _SHAPES[(rank % len(shades) + rank // len(shades)) % len(_SHAPES)]
        rows.append({"event_type": event_type, "family": family, "color": shades[rank % len(shades)],
                     "shape": shape, "family_rank": order.index(family), "rank": rank})
    styles = pd.DataFrame(rows).sort_values(["family_rank", "rank"], kind="stable").reset_index(drop=True)
    styles["lane"] = range(len(styles))
    return styles.drop(columns=["family_rank", "rank"])


#: The styles of the known types (what ``event_styles()`` returns with no extra types).
EVENT_STYLES = event_styles()


def event_color(field: str = "event_type", extra: Any = (), legend: Any = None, **options: Any) -> alt.Color:
    """Colour by event type on the shared explicit scale (``extra``: types the data has beyond the known ones)."""
    styles = event_styles(extra)
    return alt.Color(f"{field}:N", title="event type", legend=legend if legend is not None else alt.Legend(),
                     scale=alt.Scale(domain=list(styles["event_type"]), range=list(styles["color"])), **options)


def event_shape(field: str = "event_type", extra: Any = (), **options: Any) -> alt.Shape:
    """Shape by event type on the shared explicit scale (one legend with ``event_color``: same title)."""
    styles = event_styles(extra)
    return alt.Shape(f"{field}:N", title="event type",
                     scale=alt.Scale(domain=list(styles["event_type"]), range=list(styles["shape"])), **options)


def utc_x(field: str = "time", title: str = "time (UTC)", domain: Any = None, orient: str = "bottom",
          **options: Any) -> alt.X:
    """The x channel of a UTC time axis with 24-hour labels (Vega's default uses a 12-hour clock with no AM/PM).

    ``field`` holds epoch milliseconds or datetimes (``chartable`` adds ``time``); ``domain`` (two
    instants, as anything ``pandas.Timestamp`` reads or int ns) fixes the visible window.
    """
    scale = alt.Scale(type="utc", **({"domain": [_instant_ns(d) // _MS for d in domain]} if domain else {}))
    axis = alt.Axis(orient=orient, format={
        "milliseconds": ".%L", "seconds": ":%S", "minutes": "%H:%M", "hours": "%H:%M", "date": "%b %d",
        "week": "%b %d", "month": "%b %Y", "quarter": "%b %Y", "year": "%Y"})
    return alt.X(f"{field}:T", title=title, scale=scale, axis=axis, **options)


def utc_text(ns: pd.Series) -> pd.Series:
    """Exact UTC text of ns timestamps, e.g. ``2026-01-05 14:32:00.000000001 UTC``."""
    ns = ns.astype("int64")
    whole = pd.to_datetime(ns, unit="ns", utc=True).dt.strftime("%Y-%m-%d %H:%M:%S")
    return whole + "." + (ns % 1_000_000_000).astype(str).str.zfill(9) + " UTC"


def _instant_ns(at: Any) -> int:
    """``at`` (datetime, string, pandas Timestamp or int ns) as int ns since the epoch, naive = UTC."""
    if isinstance(at, numbers.Integral) and not isinstance(at, bool):
        return int(at)
    stamp = pd.Timestamp(at)
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).value


def chartable(data: Any, columns: Any = None, max_rows: int = MAX_ROWS, by: Any = ("event_type",)) -> pd.DataFrame:
    """Any Ibis expression or DataFrame as rows Altair can embed: decimals as floats, ns times, <= ``max_rows``.

    Parameters
    ----------
    data : ibis.expr.types.Table or pandas.DataFrame
        Rows with ``ts_event`` (int ns) or ``time``. An expression is executed here (an eager edge).
    columns : list of str, optional
        The columns to keep (fewer columns, smaller charts).
    max_rows : int
        Above this many rows the result is **aggregated**: counted per ``by`` and time bucket (the
        ``events`` column; ``first_time_utc`` names the bucket's first instant) and ``attrs["aggregated"]``
        says so, since such rows can no longer be linked to single records.
    by : sequence of str
        The columns that name a series when aggregating.

    Returns
    -------
    pandas.DataFrame
        With ``time`` (epoch ms, what Vega reads), ``time_utc`` (exact UTC text to the nanosecond),
        Decimal columns as float (their exact text kept in ``<column>_exact``).

    Examples
    --------
    >>> import pandas as pd
    >>> from decimal import Decimal
    >>> frame = chartable(pd.DataFrame({"ts_event": [1], "size": [Decimal("1.50")]}))
    >>> frame["time_utc"][0], float(frame["size"][0]), frame["size_exact"][0]
    ('1970-01-01 00:00:00.000000001 UTC', 1.5, '1.5')
    >>> big = chartable(pd.DataFrame({"ts_event": range(10), "event_type": ["a"] * 10}), max_rows=4)
    >>> big.attrs["aggregated"], int(big["events"].sum())
    (True, 10)
    """
    if not isinstance(data, pd.DataFrame):
        wanted = [c for c in (columns or data.columns) if c in data.columns]
        frame = data.select(wanted).to_pandas()
    else:
        frame = (data[[c for c in columns if c in data.columns]] if columns else data).copy()
    if "ts_event" in frame.columns:
        ns = frame["ts_event"].astype("int64")
    elif "time" in frame.columns:
        ns = pd.to_datetime(frame["time"], utc=True).astype("int64")
    else:
        raise ValueError(f"chart data needs a 'ts_event' or 'time' column: got {list(frame.columns)}")
    frame["ts_event"], frame["time"], frame["time_utc"] = ns, ns // _MS, utc_text(ns)
    for column in list(frame.columns):
        values = frame[column].dropna()
        if len(values) and isinstance(values.iloc[0], Decimal):
            frame[f"{column}_exact"] = frame[column].map(lambda v: "" if pd.isna(v) else f"{v.normalize():f}")
            frame[column] = frame[column].astype(float)
    frame.attrs["aggregated"] = False
    if len(frame) <= max_rows:
        return frame
    series = [c for c in by if c in frame.columns]
    groups = max(1, len(frame.drop_duplicates(series)) if series else 1)
    span = int(ns.max() - ns.min()) + 1
    width = max(1, -(-span // max(1, max_rows // groups - 1)))
    frame["bucket"] = frame["ts_event"] // width * width
    grouped = frame.groupby([*series, "bucket"], dropna=False)
    reduced = grouped.agg(ts_event=("ts_event", "min"), events=("ts_event", "size"),
                          first_time_utc=("time_utc", "min")).reset_index().drop(columns=["bucket"])
    reduced["time"] = reduced["ts_event"] // _MS
    reduced["time_utc"] = reduced["first_time_utc"]
    reduced.attrs["aggregated"] = True
    reduced.attrs["note"] = (f"{len(frame):,} rows counted per {', '.join(series) or 'time'} and "
                             f"{width / 1e9:g} s bucket: aggregated, not linked to single records")
    return reduced
