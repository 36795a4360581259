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
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    trail, reports, notebooks, settings = root / "trail", root / "reports", root / "notebooks", root / "settings"
    (trail / "keys").mkdir(parents=True)
    generate_keypair(trail / "keys" / "ledgerline.key", trail / "keys" / "ledgerline.pub")
    run_backtest(trail, signing_key_path=trail / "keys" / "ledgerline.key")
    # Signed as `make demo` signs it, so that the notebook's open_trail(public_key=) verifies the cold side too.
    ParquetConverter(trail / "hot", trail / "cold", public_key=load_public_key(trail / "keys" / "ledgerline.pub"),
                     signing_key=load_private_key(trail / "keys" / "ledgerline.key")).convert_all()
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
