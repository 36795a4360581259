"""Reports for people: readable tables, and a notebook as one offline, interactive HTML file.

``readable(frame)`` formats a result for reading (decimals normalised, ``0`` not ``0E-18``;
nanosecond times as ISO text; JSON payloads compact; missing values blank), and
``enable_readable_tables()`` makes every DataFrame a notebook shows render that way, in a box
that scrolls sideways instead of cutting wide tables off. ``notebook_html(notebook)`` exports an
executed notebook to HTML with every chart as a live Vega view (tooltips, brushes, legend filters)
and the Vega, Vega-Lite and vega-embed JavaScript inlined from vl-convert: nothing is loaded from
a network (no MathJax, require.js or mermaid from a CDN either).
"""

from __future__ import annotations

import html
import json
import re
from decimal import Decimal
from typing import Any

import pandas as pd

__all__ = ["enable_readable_tables", "notebook_html", "readable"]

VEGA5_MIME = "application/vnd.vega.v5+json"
_SCROLL_CSS = (".ll-table{overflow-x:auto;max-width:100%}"
               ".ll-table th,.ll-table td{white-space:nowrap !important;text-align:left !important}")


def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` formatted for reading; the values of the original are untouched.

    Examples
    --------
    >>> import pandas as pd
    >>> from decimal import Decimal
    >>> shown = readable(pd.DataFrame({"pnl": [Decimal("0E-18"), Decimal("12.500000")], "ts_event": [1, None],
    ...                                "since_previous_ns": [1.2e12, None]}))
    >>> shown["pnl"].tolist(), shown["ts_event"].tolist()
    (['0', '12.5'], ['1970-01-01T00:00:00.000000001Z', ''])
    >>> shown["since_previous_ns"].tolist()
    ['1,200,000,000,000', '']
    """
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        sample = values.dropna()
        first = sample.iloc[0] if len(sample) else None
        if isinstance(first, Decimal):
            out[column] = values.map(lambda v: "" if pd.isna(v) else f"{v.normalize():f}")
        elif str(column).startswith("ts_") and pd.api.types.is_numeric_dtype(values):
            out[column] = values.map(lambda v: "" if pd.isna(v) else _iso_ns(int(v)))
        elif str(column).endswith("_ns") and pd.api.types.is_numeric_dtype(values):
            out[column] = values.map(lambda v: "" if pd.isna(v) else f"{int(v):,}")
        elif isinstance(first, (dict, list)):
            out[column] = values.map(lambda v: "" if v is None else json.dumps(v, separators=(", ", ": ")))
        elif isinstance(first, pd.Timestamp):
            out[column] = values.map(lambda v: "" if pd.isna(v) else v.isoformat().replace("+00:00", "Z"))
        else:
            out[column] = values.astype(object).where(values.notna(), "")
    return out


def _iso_ns(ns: int) -> str:
    whole = pd.Timestamp(ns - ns % 1_000_000_000, unit="ns", tz="UTC")
    return f"{whole:%Y-%m-%dT%H:%M:%S}.{ns % 1_000_000_000:09d}Z"


def _frame_html(frame: pd.DataFrame) -> str:
    shown = frame if len(frame) <= 60 else pd.concat([frame.head(30), frame.tail(30)])
    note = f"<p><small>{len(frame):,} rows; first and last 30 shown</small></p>" if len(frame) > 60 else ""
    # The style travels with the table: JupyterLab and the exported report both keep cells on one line.
    return (f"<style>{_SCROLL_CSS}</style>"
            f'<div class="ll-table">{readable(shown).to_html(index=False, escape=True)}</div>{note}')


def enable_readable_tables() -> None:
    """Render every pandas DataFrame in this IPython session through ``readable``, scrolling when wide."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return
    shell.display_formatter.formatters["text/html"].for_type(pd.DataFrame, _frame_html)


def notebook_html(notebook: Any, title: str | None = None) -> str:
    """An executed notebook as one self-contained HTML page with live charts; nothing loaded from a network.

    Parameters
    ----------
    notebook : nbformat.NotebookNode
        Executed; its charts carry ``application/vnd.vega.v5+json`` outputs
        (``workbench.charts.enable_offline_rendering``). The notebook is not changed.
    title : str, optional
        The page title.

    Returns
    -------
    str
        The page. Every chart output becomes a Vega view (its PNG stays as the fallback inside
        a ``<noscript>``); any ``<script src=http...>`` or ``<link href=http...>`` of the template is removed.
    """
    import copy

    import vl_convert
    from nbconvert import HTMLExporter

    notebook = copy.deepcopy(notebook)
    # The cell tagged "report-summary" (the findings) is shown first too: a reader starts with the answer.
    summary = [cell for cell in notebook.cells if "report-summary" in cell.get("metadata", {}).get("tags", [])]
    texts = [output["data"]["text/markdown"] for cell in summary for output in cell.get("outputs", [])
             if "text/markdown" in output.get("data", {})]
    if texts:
        from nbformat.v4 import new_markdown_cell

        first = 1 if notebook.cells and notebook.cells[0].cell_type == "markdown" else 0
        notebook.cells.insert(first, new_markdown_cell("## Summary\n\n*Computed from the trail when this report was "
                                                       "made; the details follow.*\n\n" + "\n\n".join(texts)))
    number = 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if VEGA5_MIME not in data:
                continue
            number += 1
            spec = json.dumps(data[VEGA5_MIME]).replace("</", "<\\/")
            fallback = (f'<noscript><img src="data:image/png;base64,{data["image/png"]}"></noscript>'
                        if "image/png" in data else "")
            data["text/html"] = (f'<div class="ll-chart" id="ll-chart-{number}"></div>'
                                 f'<script type="application/json" id="ll-spec-{number}">{spec}</script>{fallback}')
            data.pop("image/png", None)
    exporter = HTMLExporter(template_name="lab", mathjax_url="", require_js_url="", mermaid_js_url="")
    page, _ = exporter.from_notebook_node(notebook)
    page = re.sub(r'<script[^>]*\bsrc="https?://[^"]*"[^>]*>\s*</script>', "", page)
    page = re.sub(r'<link[^>]*\bhref="https?://[^"]*"[^>]*>', "", page)
    bundle = vl_convert.javascript_bundle().replace("</script", "<\\/script")
    embed = ("document.querySelectorAll('.ll-chart').forEach(function (div) {"
             " var spec = JSON.parse(document.getElementById(div.id.replace('chart', 'spec')).textContent);"
             " vegaEmbed(div, spec, {mode: 'vega', actions: false}).then(function (r) { div.vegaView = r.view; }); });")
    head = f"<style>{_SCROLL_CSS}</style>" + (f"<title>{html.escape(title)}</title>" if title else "")
    page = page.replace("</head>", head + "</head>", 1)
    return page.replace("</body>", f"<script>{bundle}</script><script>{embed}</script></body>", 1)
