"""When to ask for new strategies: the bridge to an AlphaEvolve-style strategy search.

It watches market harmony, drawdown and per-strategy performance and fires an evolution trigger
(DISSONANCE: harmony DISSONANT for too long; DRAWDOWN: drawdown beyond a limit; STAGNATION: the
best strategy has not improved for too long), naming the strategy that does worst. Each trigger
is recorded as ``sys.evolution_trigger``; the audited ``generation`` counts them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from audit_core import AuditedComponent, AuditedParameter, AuditEventEmitter, AuditEventType, reason


class EvolutionTrigger(enum.StrEnum):
    DISSONANCE = "DISSONANCE"
    DRAWDOWN = "DRAWDOWN"
    STAGNATION = "STAGNATION"


class AlphaEvolveBridge(AuditedComponent):
    """Decides when to evolve, and what.

    Args:
        audit: Where triggers and the generation counter are recorded.
        drawdown_limit: Drawdown (fraction) that triggers DRAWDOWN.
        dissonance_bars: Consecutive DISSONANT bars that trigger DISSONANCE.
        stagnation_bars: Bars without a new best cumulative return that trigger STAGNATION.
        cooldown_bars: Bars after a trigger during which no other fires.
    """

    generation = AuditedParameter()

    def __init__(
        self,
        audit: AuditEventEmitter,
        *,
        drawdown_limit: float = 0.02,
        dissonance_bars: int = 24,
        stagnation_bars: int = 600,
        cooldown_bars: int = 120,
        source: str = "alpha_evolve_bridge",
    ) -> None:
        super().__init__(audit, source)
        self.drawdown_limit = drawdown_limit
        self.dissonance_bars = dissonance_bars
        self.stagnation_bars = stagnation_bars
        self.cooldown_bars = cooldown_bars
        self.generation = 0
        self._dissonant_for = 0
        self._best = float("-inf")
        self._since_best = 0
        self._cooldown = 0
        self.triggers: list[tuple[EvolutionTrigger, str]] = []

    def check(self, *, harmony: str, drawdown: float, performance: Mapping[str, float]) -> EvolutionTrigger | None:
        """One bar: update the counters and fire at most one trigger. ``performance``: cumulative returns."""
        self._dissonant_for = self._dissonant_for + 1 if harmony == "DISSONANT" else 0
        best = max(performance.values())
        if best > self._best + 1e-9:
            self._best, self._since_best = best, 0
        else:
            self._since_best += 1
        if self._cooldown > 0:
            self._cooldown -= 1
            return None
        trigger = (
            EvolutionTrigger.DRAWDOWN if drawdown > self.drawdown_limit
            else EvolutionTrigger.DISSONANCE if self._dissonant_for >= self.dissonance_bars
            else EvolutionTrigger.STAGNATION if self._since_best >= self.stagnation_bars
            else None
        )
        if trigger is None:
            return None
        worst = min(performance, key=lambda name: performance[name])
        self._audit.emit_system(AuditEventType.SYS_EVOLUTION_TRIGGER, self.audit_source, {
            "trigger": trigger.value, "strategy": worst, "performance": round(performance[worst], 6),
            "drawdown": round(drawdown, 6), "generation": self.generation + 1,
        })
        with reason(f"evolution trigger {trigger.value}: evolve {worst}"):
            self.generation += 1
        self.triggers.append((trigger, worst))
        self._cooldown = self.cooldown_bars
        self._dissonant_for = 0
        self._since_best = 0
        return trigger
