"""Every state change of the reference components reaches the trail exactly once, with old and new.

The test watches each component's audited attributes itself (a shadow copy compared after every
step) and checks the trail against what it saw, so a change the component made without a record,
or a record without a change, fails.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest

from audit_core import AuditConfig, AuditEventEmitter, verify
from audit_core.integrations.audited import AuditedComponent, to_json_value
from examples.adaptive_control import (
    AlphaEvolveBridge,
    EvolutionTrigger,
    MarketHarmony,
    MetaController,
    ParticlePortfolio,
    SOPSGillerSizer,
    SystemState,
    TapeRegime,
)

STRATEGIES = ["momentum", "mean_reversion", "breakout"]


class Shadow:
    """The test's own record of every change it observes on a component's audited attributes."""

    def __init__(self, component: AuditedComponent) -> None:
        self.component = component
        self.state = self._snapshot()
        self.changes: list[tuple[str, Any, Any]] = [(n, None, v) for n, v in self.state.items()]

    def _snapshot(self) -> dict[str, Any]:
        return {name: to_json_value(value) for name, value in self.component.audited_parameters().items()}

    def observe(self) -> None:
        now = self._snapshot()
        for name, value in now.items():
            if self.state.get(name, object()) != value or name not in self.state:
                self.changes.append((name, self.state.get(name), value))
        self.state = now


def by_parameter(changes: list[tuple[str, Any, Any]]) -> dict[str, list[tuple[Any, Any]]]:
    """Changes per parameter, in order (one step may change several parameters in any order)."""
    grouped: dict[str, list[tuple[Any, Any]]] = {}
    for name, old, new in changes:
        grouped.setdefault(name, []).append((old, new))
    return grouped


def trail_changes(base: Path, source: str) -> list[tuple[str, Any, Any]]:
    out = []
    for path in sorted((base / "hot").glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            record = json.loads(line)
            if record["event_type"].startswith("param.") and record["source"] == source:
                out.append((record["param_name"], record["old_value"], record["new_value"]))
    return out


def trail_events(base: Path, event_type: str) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted((base / "hot").glob("*.jsonl"))
        for line in path.read_bytes().splitlines()
        if json.loads(line)["event_type"] == event_type
    ]


@pytest.fixture
def audit(tmp_path):
    with AuditEventEmitter(AuditConfig(base_path=tmp_path, sync_writes=False)) as emitter:
        yield emitter


def test_meta_controller(audit, tmp_path):
    controller = MetaController(audit, STRATEGIES)
    shadow = Shadow(controller)
    rng = random.Random(3)
    script = [(0.0, 0.0005, 0.8)] * 5 + [(0.02, 0.002, -0.5)] * 5 + [(0.05, 0.004, -0.9)] * 5
    script += [(0.01, 0.001, 0.0)] * 5 + [(0.0, 0.0002, 0.6)] * 5
    script += [(rng.uniform(0, 0.05), rng.uniform(0, 0.004), rng.uniform(-1, 1)) for _ in range(200)]
    states = set()
    for i, (drawdown, volatility, harmony) in enumerate(script):
        states.add(controller.update(drawdown, volatility, harmony))
        shadow.observe()
        if i % 7 == 0:
            controller.reweight({name: rng.gauss(0, 0.002) for name in STRATEGIES})
            shadow.observe()
    controller.set_parameter("risk_multiplier", 4.0, source="ops_console")  # the incident: no reason
    audit.flush()
    assert states == set(SystemState)
    assert {c[2] for c in shadow.changes if c[0] == "market_harmony"} == {h.value for h in MarketHarmony}
    assert by_parameter(trail_changes(tmp_path, "meta_controller")) == by_parameter(shadow.changes)
    [incident] = [r for r in trail_events(tmp_path, "param.risk_change") if r["source"] == "ops_console"]
    assert incident["new_value"] == 4.0 and incident["trigger_reason"] is None
    assert len(trail_events(tmp_path, "sys.regime_change")) == sum(
        1 for name, _, _ in shadow.changes[4:] if name == "system_state"
    )


def test_sops_giller_sizer(audit, tmp_path):
    sizer = SOPSGillerSizer(audit)
    shadow = Shadow(sizer)
    rng = random.Random(5)
    for step in range(300):
        volatility = 0.0008 * math.exp(math.sin(step / 20) * 1.5) * rng.uniform(0.9, 1.1)
        tape = [0.2, 1.0, 5.0][(step // 40) % 3]
        sizer.adapt(volatility, tape)
        shadow.observe()
    audit.flush()
    assert {c[2] for c in shadow.changes if c[0] == "tape_regime"} == {t.value for t in TapeRegime}
    assert len([c for c in shadow.changes if c[0] == "k"]) > 5
    assert by_parameter(trail_changes(tmp_path, "sops_giller_sizer")) == by_parameter(shadow.changes)
    # Sizing itself: monotone in |signal|, damped (sub-linear), scaled by the risk multiplier.
    sizes = [sizer.size(s, 1.0) for s in (0.1, 0.5, 1.0, 3.0)]
    assert sizes == sorted(sizes) and sizes[-1] <= sizer.base_size
    assert sizer.size(0.5, 0.25) <= sizer.size(0.5, 1.0) / 3


def test_particle_portfolio(audit, tmp_path):
    portfolio = ParticlePortfolio(audit, STRATEGIES, particles=100, seed=11)
    shadow = Shadow(portfolio)
    rng = random.Random(9)
    for step in range(400):
        leader = STRATEGIES[(step // 100) % 3]  # the best strategy changes every 100 bars
        portfolio.update({name: rng.gauss(0.0004 if name == leader else -0.0002, 0.001) for name in STRATEGIES})
        shadow.observe()
        if step % 10 == 0:
            consensus = portfolio.consensus({name: rng.uniform(-1, 1) for name in STRATEGIES})
            portfolio.record_signal(consensus, regime="VENTRAL", instrument_id="EUR/USD.SIM",
                                    correlation_id=f"SIG-{step}", acted_on=consensus.confidence > 0.5,
                                    filter_reason=None if consensus.confidence > 0.5 else "low_confidence")
    audit.flush()
    assert portfolio.resamplings > 0
    assert len(trail_events(tmp_path, "sys.resampling")) == portfolio.resamplings
    assert len(trail_events(tmp_path, "trade.signal")) == 40
    assert by_parameter(trail_changes(tmp_path, "particle_portfolio")) == by_parameter(shadow.changes)
    assert len(shadow.changes) > 10


def test_alpha_evolve_bridge(audit, tmp_path):
    bridge = AlphaEvolveBridge(audit, dissonance_bars=5, stagnation_bars=50, cooldown_bars=10)
    shadow = Shadow(bridge)
    performance = dict.fromkeys(STRATEGIES, 0.0)
    for step in range(300):
        harmony = "DISSONANT" if 20 <= step < 40 else "CONSONANT"
        drawdown = 0.03 if 100 <= step < 105 else 0.0
        if step < 150:
            performance["momentum"] += 0.001
        performance["breakout"] -= 0.0005
        bridge.check(harmony=harmony, drawdown=drawdown, performance=performance)
        shadow.observe()
    audit.flush()
    kinds = {trigger for trigger, _ in bridge.triggers}
    assert kinds == set(EvolutionTrigger)
    assert all(worst == "breakout" for _, worst in bridge.triggers)
    records = trail_events(tmp_path, "sys.evolution_trigger")
    assert [(r["payload"]["trigger"], r["payload"]["strategy"]) for r in records] == [
        (t.value, w) for t, w in bridge.triggers
    ]
    assert by_parameter(trail_changes(tmp_path, "alpha_evolve_bridge")) == by_parameter(shadow.changes)
    assert verify(tmp_path).ok
