"""`make demo` end to end: a real backtest, the incident in the trail, signed seals, the notebook report.

The demo runs once per test session (about half a minute) and the tests read what it left.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from audit_core import verify
from audit_core.cold.cold_verify import verify_cold
from audit_core.trust.signing import load_public_key
from examples import demo_session
from examples.adaptive_backtest import (
    DAY_NS,
    DAYS,
    INCIDENT_NS,
    INCIDENT_RISK_MULTIPLIER,
    INCIDENT_SOURCE,
    START_NS,
    run_backtest,
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    out, reports = root / "demo_trail", root / "reports"
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = demo_session.main(["--out", str(out), "--reports", str(reports)])
    return code, out, reports, printed.getvalue()


def records(hot: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(hot.glob("*.jsonl")) for line in path.read_bytes().splitlines()]


def test_the_demo_succeeds_and_prints_the_summary(demo):
    code, _, reports, printed = demo
    assert code == 0, printed
    assert "integrity: OK" in printed
    assert re.search(r"workbench: verified: ([\d,]+) hot records in \d+ files \+ \1 cold rows in \d+ Parquet files; "
                     r"SHA-256 chains \+ Ed25519 key id [0-9a-f]{16}; checked ", printed), printed
    assert ("incident found: 2026-01-07 14:32:00 UTC  risk_multiplier 1.0 -> 4.0 by ops_console, reason: NONE "
            "(missing_reason, out_of_bounds, unexpected_source)") in printed
    assert "difference 0 (reconciled)" in printed
    assert f"report: {reports / 'audit_forensics_example.html'}" in printed
    assert "make lab" in printed


def test_the_trail_is_a_real_backtest_of_the_promised_size(demo):
    _, out, _, _ = demo
    rows = records(out / "hot")
    kinds = {}
    for row in rows:
        kinds[row["event_type"]] = kinds.get(row["event_type"], 0) + 1
    assert kinds["trade.signal"] >= 3000 and kinds["trade.fill"] >= 200
    days = {path.name.split(".")[3] for path in (out / "hot").glob("*.jsonl")}
    assert {row["trader_id"] for row in rows} == {"BACKTESTER-001"}
    assert days == {"2026-01-05", "2026-01-06", "2026-01-07", "2026-01-08"}  # three UTC midnights crossed
    # Fills link back to the signal that caused them.
    signals = {row["correlation_id"] for row in rows if row["event_type"] == "trade.signal" and row["acted_on"]}
    fills = [row for row in rows if row["event_type"] == "trade.fill"]
    unlinked = [fill for fill in fills if fill["correlation_id"] not in signals]
    # Only the flattening at the end of the backtest (on_stop) trades without a signal.
    assert all(fill["ts_event"] >= START_NS + DAYS * DAY_NS - 10**9 for fill in unlinked)
    assert len(unlinked) <= 3 < len(fills)


def test_the_incident_and_what_followed_are_in_the_trail(demo):
    _, out, _, _ = demo
    rows = records(out / "hot")
    [override] = [r for r in rows if r.get("param_name") == "risk_multiplier" and r["source"] == INCIDENT_SOURCE]
    assert (override["ts_event"], override["new_value"], override["trigger_reason"]) == (
        INCIDENT_NS, INCIDENT_RISK_MULTIPLIER, None)
    after = [r for r in rows if r["ts_event"] > INCIDENT_NS]
    dorsal = [r for r in after if r.get("param_name") == "system_state" and r["new_value"] == "DORSAL"]
    triggers = [r for r in after if r["event_type"] == "sys.evolution_trigger"]
    assert dorsal and triggers
    assert triggers[0]["payload"]["trigger"] == "DRAWDOWN"
    assert dorsal[0]["ts_event"] - INCIDENT_NS < 3 * 3600 * 10**9  # within the storm that followed


def test_seals_are_signed_and_both_sides_verify(demo):
    _, out, _, _ = demo
    public_key = load_public_key(out / "keys" / "ledgerline.pub")
    report = verify(out / "hot", public_key=public_key)
    assert report.ok and report.sealed_files == len(report.files) >= 8
    assert verify_cold(out / "cold").ok
    assert not any("PRIVATE" in path.read_text(errors="ignore") for path in (out / "hot").iterdir())


def test_the_whole_trail_verifies_with_the_one_public_key(demo):
    """What the demo tells the user to run: hot seals, manifest entries and the cold root, one key."""
    from audit_core import verify_trail
    from workbench import open_trail

    _, out, _, _ = demo
    public_key = load_public_key(out / "keys" / "ledgerline.pub")
    assert verify_trail(out, public_key=public_key).ok
    status = open_trail(out, public_key=public_key).verification
    assert status.state == "verified" and status.mode == "signature" and status.key_id



def test_the_notebook_ran_top_to_bottom_into_the_report(demo):
    _, _, reports, _ = demo
    executed = nbformat.read(reports / "audit_forensics_example.ipynb", as_version=4)
    code_cells = [cell for cell in executed.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code_cells)
    assert not [o for cell in code_cells for o in cell.outputs if o.output_type == "error"]
    (status,) = [cell for cell in code_cells if cell.source.startswith("trail.verification")]
    assert code_cells.index(status) == 1  # right after opening the trail, computed
    shown = status.outputs[0]["data"]
    assert "VERIFIED" in shown["text/html"] and "Ed25519" in shown["text/html"] and "state='verified'" in shown[
        "text/plain"]
    assert not [o for cell in code_cells for o in cell.outputs if o.get("name") == "stderr"
                and "TrailNotVerifiedWarning" in o.get("text", "")]
    charts = [o for cell in code_cells for o in cell.outputs if "application/vnd.vega.v5+json" in o.get("data", {})]
    assert len(charts) >= 5
    html = (reports / "audit_forensics_example.html").read_text()
    assert "risk_multiplier" in html and "ops_console" in html
    for name in ("incident_day", "risk_multiplier_history", "signal_conversion", "pnl"):
        assert (reports / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_seed_same_payloads(tmp_path):
    """Two runs with one seed write byte-identical records (there are no wall-clock fields in them)."""
    first, second = tmp_path / "a", tmp_path / "b"
    run_backtest(first, seed=3)
    run_backtest(second, seed=3)
    names = sorted(p.name for p in (first / "hot").glob("*.jsonl"))
    assert names == sorted(p.name for p in (second / "hot").glob("*.jsonl"))
    for name in names:
        assert (first / "hot" / name).read_bytes() == (second / "hot" / name).read_bytes(), name


def test_every_rendered_finding_matches_an_independent_computation(demo):
    """The notebook's narrative is computed: each claim against the raw hot records, computed here again."""
    from decimal import Decimal

    _, out, reports, _ = demo
    found = json.loads((reports / "findings.json").read_text())
    executed = nbformat.read(reports / "audit_forensics_example.ipynb", as_version=4)
    rendered = "\n".join(o["data"]["text/markdown"] for cell in executed.cells if cell.cell_type == "code"
                         for o in cell.outputs if "text/markdown" in o.get("data", {}))
    rows = sorted(records(out / "hot"), key=lambda r: (r["ts_event"], r["source"], r["sequence"]))
    hour, minute = 3_600 * 10**9, 60 * 10**9

    assert found["incident"]["ts_event"] == INCIDENT_NS and found["incident"]["source"] == INCIDENT_SOURCE
    assert "At 2026-01-07 14:32:00 UTC, `ops_console` set `risk_multiplier` from 1.0 to 4.0" in rendered

    risk = [r for r in rows if r.get("param_name") == "risk_multiplier" and r["ts_event"] > INCIDENT_NS]
    assert found["in_force_ns"] == risk[0]["ts_event"] - INCIDENT_NS
    assert f"stayed in force for {found['in_force_ns'] / minute:.0f} min" in rendered

    def sizes(start: int, end: int) -> list[Decimal]:
        return [abs(Decimal(r["size"])) for r in rows
                if r["event_type"] == "trade.order" and start <= r["ts_event"] < end]

    before, after = sizes(INCIDENT_NS - 4 * hour, INCIDENT_NS), sizes(INCIDENT_NS, INCIDENT_NS + hour)
    before_mean, after_mean = float(sum(before) / len(before)), float(sum(after) / len(after))
    orders = found["orders"]
    assert (orders["before_count"], orders["after_count"]) == (len(before), len(after))
    assert orders["before_mean"] == pytest.approx(before_mean) and orders["after_mean"] == pytest.approx(after_mean)
    ratio = after_mean / before_mean
    verb = "were larger" if ratio >= 1.5 else "were not clearly larger"
    assert (f"Orders {verb} after it: {len(after)} orders in the hour after averaged {after_mean:,.0f} units, "
            f"{ratio:.1f}x the {before_mean:,.0f} of the {len(before)} orders") in rendered

    closed = [r for r in rows if r["event_type"] == "trade.position_closed"
              and INCIDENT_NS <= r["ts_event"] < INCIDENT_NS + 2 * hour]
    total = sum((Decimal(r["realized_pnl"]) for r in closed), Decimal(0))
    assert Decimal(found["realized_2h"]["total"]) == total and found["realized_2h"]["trades"] == len(closed)
    sign = "-" if total < 0 else "+"
    assert (f"realized {sign}${abs(float(total)):,.2f} over {len(closed)} closed trades"
            + (" (a loss)." if total < 0 else " (no loss).")) in rendered

    flip = next(r for r in rows if r["event_type"] == "sys.regime_change" and r["ts_event"] >= INCIDENT_NS)
    trigger = next(r for r in rows if r["event_type"] == "sys.evolution_trigger" and r["ts_event"] >= INCIDENT_NS)
    assert found["first_flip"] == {"ts_event": flip["ts_event"], "to": flip["payload"]["to"],
                                   "drawdown": flip["payload"]["drawdown"]}
    assert (f"{(flip['ts_event'] - INCIDENT_NS) / minute:.0f} min after the override the meta-controller went to "
            f"{flip['payload']['to']} at a drawdown of {flip['payload']['drawdown']:.2%}") in rendered
    assert found["first_trigger"] == {"ts_event": trigger["ts_event"], "trigger": trigger["payload"]["trigger"]}
    assert f"fired a {trigger['payload']['trigger']} evolution trigger" in rendered

    losers = sorted((r for r in closed if Decimal(r["realized_pnl"]) < 0), key=lambda r: Decimal(r["realized_pnl"]))
    assert [(w["position_id"], Decimal(w["realized_pnl"])) for w in found["worst"]] == [
        (r["position_id"], Decimal(r["realized_pnl"])) for r in losers[:3]]
    if losers:
        worst = losers[0]
        opened = worst["ts_event"] - worst["duration_ns"]
        assert found["worst_opened_ns"] == opened
        when = "after the override." if opened >= INCIDENT_NS else "before the override and held through it"
        assert f"lost ${abs(float(Decimal(worst['realized_pnl']))):,.2f}" in rendered and when in rendered
    assert found["verified"] is True and "The record verifies end to end" in rendered
    assert found["pnl_reconciled"] is True and "reconciles exactly" in rendered


def test_the_signing_key_is_kept_outside_the_trail(demo):
    """Whoever can write the trail's disk must not also hold the key that signs it."""
    _, out, _, _ = demo
    private = [path for path in out.rglob("*") if path.is_file() and b"PRIVATE KEY" in path.read_bytes()[:64]]
    assert private == []
    kept = out.with_name(out.name + "_signing") / "ledgerline.key"
    assert kept.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert kept.stat().st_mode & 0o077 == 0  # readable by its owner only
