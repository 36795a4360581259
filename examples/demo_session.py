"""`make demo`: a real NautilusTrader backtest with an incident in it, audited, converted, verified, analysed.

1. Creates an Ed25519 key pair for signing seals (public key in ``demo_trail/keys/``, private key
   outside the trail in ``demo_trail_signing/``).
2. Runs ``examples.adaptive_backtest``: four days of three FX pairs, an adaptive strategy built
   on the reference components, the ``AuditObserver`` recording every order, fill and position.
   On day 3 at 14:32 UTC an operator sets ``risk_multiplier`` to 4.0 with no reason.
3. Converts the sealed hot files to Parquet and verifies both sides against the signing key.
4. Executes ``notebooks/audit_forensics_example.ipynb`` against the trail into an HTML report
   under ``reports/``.
5. Prints what an analyst would want first: events by type, integrity, the incident, P&L
   reconciliation, signal conversion per strategy, where the report is.

Deterministic: the same seed gives the same event payloads (only seal timestamps are wall-clock).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from audit_core import verify
from audit_core.cold import ParquetConverter, verify_cold
from audit_core.trust.signing import generate_keypair, load_private_key, load_public_key

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "audit_forensics_example.ipynb"


class Steps:
    """Numbered progress lines with the time each step took."""

    def __init__(self, total: int) -> None:
        self.total, self.number, self.started = total, 0, time.perf_counter()

    def __call__(self, text: str) -> None:
        self.number += 1
        print(f"[{self.number}/{self.total}] {text} (t+{time.perf_counter() - self.started:.1f}s)", flush=True)


def fresh_directory(out: Path) -> None:
    if out.exists():
        print(f"replacing the previous demo output in {out}/")
        # The demo's own output only; a real trail is never deleted like this.
        for path in out.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        shutil.rmtree(out)
    out.mkdir(parents=True)


def run_notebook(trail: Path, reports: Path) -> Path:
    """Execute the forensics notebook against ``trail`` and write it as HTML under ``reports``."""
    import os

    import nbformat
    from nbclient import NotebookClient
    from traitlets.config import Config

    from workbench.report import notebook_html

    reports.mkdir(parents=True, exist_ok=True)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    os.environ["LEDGERLINE_TRAIL"] = str(trail.resolve())
    os.environ["LEDGERLINE_REPORTS"] = str(reports.resolve())

    # IPC sockets: the kernel's local channels need no TCP port, and ipykernel then has no reason to warn
    # that TCP is unencrypted (a warning the demo's user could do nothing about).
    with tempfile.TemporaryDirectory(prefix="ledgerline-kernel-") as sockets:
        ipc = Config({"KernelManager": {"transport": "ipc", "ip": str(Path(sockets) / "kernel")}})
        NotebookClient(notebook, timeout=600, kernel_name="python3", config=ipc,
                       resources={"metadata": {"path": str(ROOT)}}).execute()
    nbformat.write(notebook, reports / "audit_forensics_example.ipynb")  # executed, with its outputs
    target = reports / "audit_forensics_example.html"
    # Live charts (Vega inlined), readable tables, nothing loaded from a network: it opens offline from file://.
    target.write_text(notebook_html(notebook, title="Ledgerline audit forensics"))
    return target


def summarize(trail: Path, report_path: Path | None, public_key: object = None) -> dict[str, object]:
    """The summary the demo prints, computed with the workbench from the trail alone (verified with ``public_key``)."""
    from examples.adaptive_backtest import INCIDENT_SOURCE
    from examples.adaptive_control import MetaController
    from workbench import AuditQuery, detect_unexplained_changes, open_trail, pnl_reconciliation, signal_conversion

    opened = open_trail(trail, public_key=public_key)
    counts = AuditQuery(opened).count_by_type()
    findings = detect_unexplained_changes(
        opened, bounds=MetaController.parameter_bounds(),
        allowed_sources={"risk_multiplier": ["meta_controller"]}, integrity=False,
    ).findings.to_pandas()
    suspicious = findings[(findings.param_name == "risk_multiplier") & (findings.source == INCIDENT_SOURCE)]
    pnl = pnl_reconciliation(opened)
    conversion = signal_conversion(opened).to_pandas()
    return {"counts": counts, "incident": suspicious, "pnl": pnl, "conversion": conversion, "report": report_path,
            "verification": opened.verification}


def _money(value: object) -> str:
    from decimal import Decimal

    return f"{value.normalize():f}" if isinstance(value, Decimal) else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo_trail"), help="trail directory (replaced)")
    parser.add_argument("--reports", type=Path, default=Path("reports"), help="where the HTML report goes")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-notebook", action="store_true", help="skip executing the notebook")
    args = parser.parse_args(argv)
    out: Path = args.out

    steps = Steps(5)
    fresh_directory(out)
    steps("signing key pair")
    keys = out / "keys"
    keys.mkdir()
    # The private key lives outside the trail: whoever can write the trail's disk must not also
    # hold the key that signs it.
    signing = out.with_name(out.name + "_signing")
    fresh_directory(signing)
    private_key_path = signing / "ledgerline.key"
    key_id = generate_keypair(private_key_path, keys / "ledgerline.pub")
    public_key = load_public_key(keys / "ledgerline.pub")

    steps("backtest: 4 days, 3 FX pairs, adaptive strategy, AuditObserver attached")
    from examples.adaptive_backtest import run_backtest

    strategy = run_backtest(out, seed=args.seed, signing_key_path=private_key_path)
    print(f"      {strategy.signal_no} signals; trail in {out / 'hot'}/")

    steps("convert to Parquet (verified first)")
    # The cold side (manifest entries, the cold root) is signed with the same key, so that the whole trail
    # verifies against the one public key (`ledgerline verify --public-key`, `open_trail(public_key=)`).
    results = ParquetConverter(out / "hot", out / "cold", public_key=public_key,
                               signing_key=load_private_key(private_key_path)).convert_all()
    unconverted = [r for r in results if not r.converted]
    print(f"      {sum(r.rows for r in results)} rows from {len(results)} files -> {out / 'cold'}/")

    steps(f"verify hot and cold, seals signed by key {key_id}")
    hot_report = verify(out / "hot", public_key=public_key)
    cold_report = verify_cold(out / "cold")
    integrity_ok = hot_report.ok and cold_report.ok and not unconverted

    report_path = None
    if args.no_notebook:
        steps("notebook skipped (--no-notebook)")
    else:
        steps(f"execute {NOTEBOOK.relative_to(ROOT)} into {args.reports}/")
        report_path = run_notebook(out, args.reports)

    summary = summarize(out, report_path, public_key)
    import pandas as pd  # NULLs in result frames are pd.NA: test them with pd.isna, not truthiness

    print("\n=== Ledgerline demo summary ===")
    print("events by type:")
    for row in summary["counts"].itertuples():  # type: ignore[attr-defined]
        print(f"  {row.event_type:<26} {row.count:>6}")
    print(f"integrity: {'OK' if integrity_ok else 'FAILED'} ({hot_report.records} hot records in "
          f"{len(hot_report.files)} files, {hot_report.sealed_files} signed seals; cold: {cold_report.records} rows)")
    if not integrity_ok:
        print(hot_report.to_text(10))
        print(cold_report.to_text(10))
    print(f"workbench: {summary['verification']}")
    incident = summary["incident"]
    for _, rows in incident.groupby(["ts_event", "sequence"]):  # type: ignore[attr-defined]
        row = rows.iloc[0]
        reason = "NONE" if pd.isna(row.trigger_reason) else row.trigger_reason
        print(f"incident found: {row.time:%Y-%m-%d %H:%M:%S} UTC  {row.param_name} {row.old_value} -> "
              f"{row.new_value} by {row.source}, reason: {reason} "
              f"({', '.join(rows.kind)})")
    pnl = summary["pnl"]
    frame = pnl.to_pandas()  # type: ignore[attr-defined]
    if pnl.ok is None:  # type: ignore[attr-defined]
        print(pnl.to_text())  # type: ignore[attr-defined]  # says why there was nothing to reconcile
    for row in frame.itertuples():  # booked by account type (workbench.pnl), status as reconciled
        print(f"P&L {row.currency}: realized {_money(row.realized_pnl)}, expected balance change "
              f"{_money(row.expected_change)} vs recorded {_money(row.balance_change)}: difference "
              f"{_money(row.difference)} ({row.status})")
    print("signal conversion per strategy:")
    for row in summary["conversion"].itertuples():  # type: ignore[attr-defined]
        print(f"  {row.strategy_source:<16} {row.signals:>5} signals, {row.acted_on:>4} acted on, "
              f"{row.fills:>4} fills, conversion "
              f"{'-' if pd.isna(row.conversion_rate) else format(row.conversion_rate, '.1%')}")
    if report_path is not None:
        print(f"report: {report_path}")
    print("next: `make lab` opens the notebooks; `ledgerline verify demo_trail/ --public-key "
          "demo_trail/keys/ledgerline.pub` checks the trail yourself")
    # Nothing to reconcile (ok is None) fails the demo too: its backtest always records P&L and balances.
    return 0 if integrity_ok and len(incident) and pnl.ok is True else 1  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main())
