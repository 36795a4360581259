"""The forensics notebook in a real JupyterLab, in headless Chromium: every cell runs, every chart draws.

JupyterLab is started on a free localhost port with the notebook copied into a temporary
directory; Debian's ``chromium`` (``make test`` installs it when missing) is driven by the
``playwright`` package with ``executable_path`` (``playwright install`` is never used). All cells
are run through JupyterLab's own "run all cells" command; then the notebook model must have no
error output, and each chart must have drawn (a Vega view with its canvas or SVG). A screenshot
goes to ``reports/notebook_browser.png``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from audit_core.cold.converter import ParquetConverter
from audit_core.trust.signing import generate_keypair, load_private_key, load_public_key
from examples.adaptive_backtest import run_backtest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "audit_forensics_example.ipynb"
CHROMIUM = Path("/usr/bin/chromium")
CHART_CELLS = 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def demo_trail(tmp_path_factory):
    trail = tmp_path_factory.mktemp("trail")
    (trail / "keys").mkdir(parents=True)
    generate_keypair(trail / "keys" / "ledgerline.key", trail / "keys" / "ledgerline.pub")
    run_backtest(trail, signing_key_path=trail / "keys" / "ledgerline.key")
    # Signed as `make demo` signs it, so that the notebook's open_trail(public_key=) verifies the cold side too.
    ParquetConverter(trail / "hot", trail / "cold", public_key=load_public_key(trail / "keys" / "ledgerline.pub"),
                     signing_key=load_private_key(trail / "keys" / "ledgerline.key")).convert_all()
    return trail


@pytest.fixture(scope="module")
def lab(tmp_path_factory, demo_trail):
    root = tmp_path_factory.mktemp("lab")
    trail, reports, notebooks, settings = demo_trail, root / "reports", root / "notebooks", root / "settings"
    notebooks.mkdir()
    shutil.copy(NOTEBOOK, notebooks / NOTEBOOK.name)
    # Render every cell (JupyterLab 4 only renders cells near the viewport by default).
    tracker = settings / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "LEDGERLINE_TRAIL": str(trail), "LEDGERLINE_REPORTS": str(reports),
           "JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTER_RUNTIME_DIR": str(root / "runtime")}
    log = (root / "lab.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={notebooks}",
         "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=", "--ServerApp.disable_check_xsrf=True"],
        env=env, stdout=subprocess.DEVNULL, stderr=log,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"JupyterLab did not start:\n{(root / 'lab.log').read_text()}") from None
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK.name}?token={token}", reports
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_notebook_runs_in_jupyterlab_and_charts_render(lab):
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "Debian's chromium is missing: `make test` installs it (apt-get install chromium)"
    url, _ = lab
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            console_errors: list[str] = []
            page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
            page.goto(url)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            page.wait_for_function(
                "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'",
                timeout=120_000,
            )
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.wait_for_function(
                """() => {
                    const panel = window.jupyterapp.shell.currentWidget;
                    const cells = Array.from(panel.content.model.cells).filter(c => c.type === 'code');
                    return panel.sessionContext.session.kernel.status === 'idle'
                        && cells.every(c => c.executionCount !== null);
                }""",
                timeout=300_000,
                polling=500,
            )
            outputs = page.evaluate(
                """() => Array.from(window.jupyterapp.shell.currentWidget.content.model.cells)
                    .filter(c => c.type === 'code')
                    .map(c => ({count: c.executionCount, outputs: c.outputs.toJSON()}))"""
            )
            errors = [o for cell in outputs for o in cell["outputs"] if o["output_type"] == "error"]
            assert not errors, [f"{e['ename']}: {e['evalue']}" for e in errors]
            assert all(cell["count"] for cell in outputs)
            page.wait_for_function(
                f"() => document.querySelectorAll('.vega-embed canvas, .vega-embed svg.marks').length >= {CHART_CELLS}",
                timeout=60_000,
            )
            drawn = page.eval_on_selector_all(
                ".vega-embed canvas, .vega-embed svg.marks",
                "nodes => nodes.filter(n => n.getBoundingClientRect().width > 100).length",
            )
            assert drawn >= CHART_CELLS
            (ROOT / "reports").mkdir(exist_ok=True)
            page.screenshot(path=str(ROOT / "reports" / "notebook_browser.png"), full_page=True)
            assert not [e for e in console_errors if "vega" in e.lower()], console_errors
        finally:
            browser.close()


# Absolute page position of the items of a named Vega mark: (x, y, width, height) per item, nested groups added up.
_ITEMS = """([div, name]) => {
    const view = div.vegaView, [ox, oy] = view.origin(), box = view.container().querySelector('canvas, svg')
        .getBoundingClientRect();
    const found = [];
    const walk = (scene, dx, dy) => (scene.items || []).forEach(item => {
        if (scene.name === name) {
            const b = item.bounds, group = scene.marktype === 'group';  // a group: its plot area, not its axes
            found.push(group ? [box.left + ox + dx + item.x, box.top + oy + dy + item.y, item.width, item.height, null]
                : [box.left + ox + dx + b.x1, box.top + oy + dy + b.y1, b.x2 - b.x1, b.y2 - b.y1, item.datum]);
        }
        (item.items || []).forEach(child => walk(child, dx + (item.x || 0), dy + (item.y || 0)));
    });
    walk(view.scenegraph().root, 0, 0);
    return found;
}"""


@pytest.fixture(scope="module")
def offline_report(tmp_path_factory, demo_trail):
    from examples.demo_session import run_notebook

    return run_notebook(demo_trail, tmp_path_factory.mktemp("report"))


def test_the_report_is_interactive_offline(offline_report):
    """The HTML report from file:// with the network off: charts draw; the brush and legend filter the linked views."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000}, offline=True)
            requested: list[str] = []
            context.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file://")
                          else (requested.append(route.request.url), route.abort()))
            page = context.new_page()
            console_errors: list[str] = []
            page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
            page.goto(offline_report.as_uri())
            page.wait_for_function("() => document.querySelectorAll('.ll-chart').length > 0 && Array.from("
                                   "document.querySelectorAll('.ll-chart')).every(d => d.vegaView)", timeout=60_000)
            drawn = page.eval_on_selector_all(
                ".ll-chart canvas, .ll-chart svg.marks",
                "nodes => nodes.filter(n => n.getBoundingClientRect().width > 100).length")
            assert drawn >= CHART_CELLS + 1  # the five charts and the explorer
            assert not requested and not console_errors, (requested, console_errors)
            assert "Summary" in page.inner_text("body") and "ops_console" in page.inner_text("body")

            explorer = page.evaluate_handle("() => Array.from(document.querySelectorAll('.ll-chart'))"
                                            ".find(d => d.vegaView.getState().signals.brush !== undefined)")
            items = lambda name: page.evaluate(_ITEMS, [explorer, name])  # noqa: E731
            rows_before, detail_before = len(items("events_table_layer_1_marks")), len(items("detail_1_marks"))
            assert rows_before > 0 and detail_before > 0
            explorer.scroll_into_view_if_needed()
            [(x, y, width, height, _)] = items("concat_0_group")  # the overview's plot area
            page.mouse.move(x + 0.50 * width, y + height / 2)
            page.mouse.down()
            page.mouse.move(x + 0.52 * width, y + height / 2, steps=5)
            page.mouse.up()
            page.wait_for_timeout(300)
            rows_after = len(items("events_table_layer_1_marks"))
            assert rows_after != rows_before, "brushing the overview did not change the events table"
            page.screenshot(path=str(ROOT / "reports" / "report_brushed.png"), full_page=False)

            labels = items("event_type_legend_labels")
            [(lx, ly, lw, lh, _)] = [label for label in labels if label[4]["value"] == "trade.signal"]
            page.mouse.click(lx + lw / 2, ly + lh / 2)
            page.wait_for_timeout(300)
            detail_after = items("detail_1_marks")
            assert 0 < len(detail_after) < detail_before, "the legend filter did not hide the other types"
            assert {item[4]["event_type"] for item in detail_after} == {"trade.signal"}
            (ROOT / "reports").mkdir(exist_ok=True)
            page.screenshot(path=str(ROOT / "reports" / "report_offline.png"), full_page=True)
        finally:
            browser.close()
