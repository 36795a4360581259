"""Trails for the workbench tests: a tiny hand-built one with known answers, and a generated one."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from audit_core import AuditConfig, AuditEventEmitter
from audit_core.cold.converter import ParquetConverter
from audit_core.cold.manifest import MANIFEST_DIR
from benchmarks.trail_gen import FakeClock, GeneratedTrail, generate_trail

S = 1_000_000_000
T0 = 1_767_657_480 * S  # 2026-01-05 23:58:00 UTC
MIDNIGHT = T0 + 120 * S  # 2026-01-06 00:00:00 UTC
CONTROL, EXEC = "TRADER-001.control", "TRADER-001.exec"


@dataclass
class HandTrail:
    base: Path
    events: int  # records written, all streams
    jan5: int  # records dated 2026-01-05

    def convert(self, *, only_jan5: bool = False) -> None:
        converter = ParquetConverter(self.base / "hot", self.base / "cold")
        for path in sorted((self.base / "hot").glob("*.jsonl")):
            if not only_jan5 or ".2026-01-05." in path.name:
                assert converter.convert_file(path).converted, path

    def forget_conversion_of(self, day: str) -> None:
        """Delete the manifest entries of one day's files: their hot files look unconverted again."""
        for manifest in (self.base / "cold" / MANIFEST_DIR).glob(f"*.{day}.*.json"):
            assert json.loads(manifest.read_text())["source"]
            manifest.unlink()


def write_hand_trail(base: Path) -> HandTrail:
    """Two streams across midnight, every time known.

    control: T0 risk_multiplier 1.0 -> 0.5 (meta_controller, "drawdown > 10%"); T0+30s kelly_fraction
    0.25 -> 0.3 (kelly_sizer, no reason); T0+60s sys.regime_change; MIDNIGHT risk_multiplier 0.5 -> 3.5
    (manual_override, "manual"); T0+180s k 16 -> 8 (particle_portfolio, "volatility spike").
    exec: T0-10s account state USD 1000000.00; T0+60s (a tie with control) signal SIG-1 momentum acted
    and order O-1 BUY 100000 EURUSD.SIM; T0+60.5s fill @ 1.10012 (commission 2.20) and position P-1
    opened (P&L -2.20); T0+90s signal SIG-2 momentum filtered (below_threshold); T0+150s signal SIG-3
    mean_reversion acted; T0+150.1s order O-2 SELL; T0+150.2s fill @ 1.10112 (2.20), P-1 closed with
    P&L 95.60 (correlation SIG-1, as the observer writes it) and account state USD 1000095.60.
    """
    clock = FakeClock(T0 - 10 * S)
    make = lambda stream: AuditEventEmitter(AuditConfig(  # noqa: E731
        base_path=base, trader_id="TRADER-001", stream_id=stream, sync_writes=False), clock=clock)
    control, execution = make("control"), make("exec")

    def at(ts: int) -> int:
        clock.now = ts
        return ts

    usd = lambda total: {"account_id": "SIM-001", "balances": {"USD": {"total": total, "free": total}}}  # noqa: E731
    fill = {"instrument_id": "EURUSD.SIM", "strategy_source": "momentum", "currency": "USD", "position_id": "P-1"}
    execution.emit_system("sys.account_state", "AuditObserver", usd("1000000.00"), ts_event=at(T0 - 10 * S))
    control.emit_param_change("meta_controller", "risk_multiplier", 1.0, 0.5, "drawdown > 10%",
                              event_type="param.risk_change", ts_event=at(T0))
    control.emit_param_change("kelly_sizer", "kelly_fraction", 0.25, 0.3, None,
                              event_type="param.risk_change", ts_event=at(T0 + 30 * S))
    control.emit_system("sys.regime_change", "meta_controller", {"from": "VENTRAL", "to": "DORSAL"},
                        ts_event=at(T0 + 60 * S))
    execution.emit_signal("signal_engine", "momentum", 0.82, 0.91, instrument_id="EURUSD.SIM",
                          correlation_id="SIG-1", ts_event=at(T0 + 60 * S))
    execution.emit_trade("trade.order", "AuditObserver", "EURUSD.SIM", correlation_id="SIG-1", order_id="O-1",
                         side="BUY", size="100000", strategy_source="momentum", ts_event=at(T0 + 60 * S))
    execution.emit_trade("trade.fill", "AuditObserver", correlation_id="SIG-1", order_id="O-1", side="BUY",
                         size="100000", price="1.10012", commission="2.20", ts_event=at(T0 + 60_500_000_000), **fill)
    execution.emit_trade("trade.position_opened", "AuditObserver", correlation_id="SIG-1", order_id="O-1",
                         side="BUY", size="100000", price="1.10012", realized_pnl="-2.20",
                         ts_event=at(T0 + 60_500_000_000), **fill)
    execution.emit_signal("signal_engine", "momentum", 0.12, 0.30, acted_on=False, filter_reason="below_threshold",
                          instrument_id="EURUSD.SIM", correlation_id="SIG-2", ts_event=at(T0 + 90 * S))
    control.emit_param_change("manual_override", "risk_multiplier", 0.5, 3.5, "manual",
                              event_type="param.risk_change", ts_event=at(MIDNIGHT))
    execution.emit_signal("signal_engine", "mean_reversion", -0.7, 0.8, instrument_id="EURUSD.SIM",
                          correlation_id="SIG-3", ts_event=at(T0 + 150 * S))
    execution.emit_trade("trade.order", "AuditObserver", "EURUSD.SIM", correlation_id="SIG-3", order_id="O-2",
                         side="SELL", size="100000", strategy_source="mean_reversion",
                         ts_event=at(T0 + 150_100_000_000))
    execution.emit_trade("trade.fill", "AuditObserver", correlation_id="SIG-3", order_id="O-2", side="SELL",
                         size="100000", price="1.10112", commission="2.20", ts_event=at(T0 + 150_200_000_000),
                         **{**fill, "strategy_source": "mean_reversion"})
    execution.emit_trade("trade.position_closed", "AuditObserver", correlation_id="SIG-1", order_id="O-2",
                         side="BUY", size="100000", price="1.10112", realized_pnl="95.60",
                         ts_event=at(T0 + 150_200_000_000), **fill)
    execution.emit_system("sys.account_state", "AuditObserver", usd("1000095.60"), ts_event=at(T0 + 150_200_000_000))
    control.emit_param_change("particle_portfolio", "k", 16, 8, "volatility spike",
                              event_type="param.k_change", ts_event=at(T0 + 180 * S))
    control.close()
    execution.close()
    return HandTrail(base, events=16, jan5=9)


@pytest.fixture
def hand_trail(tmp_path: Path) -> HandTrail:
    """The hand-built trail, hot only (nothing converted yet)."""
    return write_hand_trail(tmp_path / "trail")


@pytest.fixture(scope="session")
def _generated(tmp_path_factory: pytest.TempPathFactory) -> GeneratedTrail:
    return generate_trail(tmp_path_factory.mktemp("generated") / "trail", events=1_500, days=3, seed=11,
                          keep_events=True)


@pytest.fixture
def generated_trail(_generated: GeneratedTrail, tmp_path: Path) -> GeneratedTrail:
    """A converted 1,500-record trail over 3 days (a private copy: tests may tamper with it)."""
    copy = tmp_path / "generated"
    shutil.copytree(_generated.base_path, copy)
    return GeneratedTrail(copy, _generated.events, _generated.first_ts, _generated.last_ts, _generated.emitted)
