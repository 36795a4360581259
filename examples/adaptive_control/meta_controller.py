"""The meta-controller: system state from a health score, market harmony, risk multiplier, weights.

System state follows a polyvagal metaphor our users' controllers use: VENTRAL (healthy, full
risk), SYMPATHETIC (stressed, reduced risk), DORSAL (shut down, minimal risk). The health score
falls with drawdown and volatility; thresholds have hysteresis so the state does not flap.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence

from audit_core import AuditedComponent, AuditedParameter, AuditEventEmitter, AuditEventType, reason


class SystemState(enum.StrEnum):
    VENTRAL = "VENTRAL"
    SYMPATHETIC = "SYMPATHETIC"
    DORSAL = "DORSAL"


class MarketHarmony(enum.StrEnum):
    CONSONANT = "CONSONANT"
    DISSONANT = "DISSONANT"
    RESOLVING = "RESOLVING"


#: Risk the controller itself sets in each state; anything else came from somewhere else.
RISK_BY_STATE = {SystemState.VENTRAL: 1.0, SystemState.SYMPATHETIC: 0.6, SystemState.DORSAL: 0.25}
_HYSTERESIS = 0.05


class MetaController(AuditedComponent):
    """Turns drawdown, volatility and cross-strategy agreement into the risk the strategies may take.

    Args:
        audit: Where parameter changes are recorded.
        strategies: Names of the strategies it weights.
        drawdown_scale: Drawdown at which drawdown alone takes the health score to its floor.
        volatility_scale: Volatility (per bar, as a fraction) at which volatility alone does.
    """

    system_state = AuditedParameter(event_type=AuditEventType.PARAM_STATE_CHANGE)
    market_harmony = AuditedParameter(event_type=AuditEventType.PARAM_STATE_CHANGE)
    risk_multiplier = AuditedParameter(event_type=AuditEventType.PARAM_RISK_CHANGE, bounds=(0.25, 1.0))
    strategy_weights = AuditedParameter(event_type=AuditEventType.PARAM_WEIGHT_CHANGE)

    def __init__(
        self,
        audit: AuditEventEmitter,
        strategies: Sequence[str],
        *,
        drawdown_scale: float = 0.04,
        volatility_scale: float = 0.003,
        source: str = "meta_controller",
    ) -> None:
        super().__init__(audit, source)
        self.drawdown_scale = drawdown_scale
        self.volatility_scale = volatility_scale
        self.health = 1.0
        self.system_state = SystemState.VENTRAL
        self.market_harmony = MarketHarmony.CONSONANT
        self.risk_multiplier = RISK_BY_STATE[SystemState.VENTRAL]
        self.strategy_weights = {name: round(1 / len(strategies), 4) for name in strategies}

    def health_score(self, drawdown: float, volatility: float) -> float:
        """1.0 when calm and flat, 0.0 at or beyond the scales; 60% drawdown, 40% volatility."""
        dd = min(1.0, max(0.0, drawdown) / self.drawdown_scale)
        vol = min(1.0, max(0.0, volatility) / self.volatility_scale)
        return round(1.0 - 0.6 * dd - 0.4 * vol, 4)

    def update(self, drawdown: float, volatility: float, harmony_score: float) -> SystemState:
        """One control step: new health, maybe a new state (and its risk), a new harmony reading."""
        self.health = self.health_score(drawdown, volatility)
        state = self._state_for(self.health)
        if state != self.system_state:
            with reason(f"health {self.health:.2f} (drawdown {drawdown:.2%}, volatility {volatility:.3%})"):
                self.system_state = state
                self.risk_multiplier = RISK_BY_STATE[state]
            self._audit.emit_system(
                AuditEventType.SYS_REGIME_CHANGE, self.audit_source,
                {"to": state.value, "health": self.health, "drawdown": round(drawdown, 6)},
            )
        harmony = self._harmony_for(harmony_score)
        if harmony != self.market_harmony:
            with reason(f"harmony score {harmony_score:+.2f}"):
                self.market_harmony = harmony
        return state

    def reweight(self, performance: Mapping[str, float], temperature: float = 0.002) -> None:
        """Softmax of recent per-strategy returns, rounded so noise does not rewrite the weights."""
        top = max(performance.values())
        exp = {name: math.exp((value - top) / temperature) for name, value in performance.items()}
        total = sum(exp.values())
        weights = {name: round(value / total, 2) for name, value in exp.items()}
        if weights != dict(self.strategy_weights):
            best = max(performance, key=lambda name: performance[name])
            with reason(f"performance reweight: {best} leads ({performance[best]:+.4%})"):
                self.strategy_weights = weights

    def _state_for(self, health: float) -> SystemState:
        current = self.system_state
        up = _HYSTERESIS if current != SystemState.VENTRAL else 0.0
        if health >= 0.6 + up:
            return SystemState.VENTRAL
        if current == SystemState.VENTRAL and health >= 0.6 - _HYSTERESIS:
            return SystemState.VENTRAL
        if health >= 0.3 + (_HYSTERESIS if current == SystemState.DORSAL else 0.0):
            return SystemState.SYMPATHETIC
        if current == SystemState.SYMPATHETIC and health >= 0.3 - _HYSTERESIS:
            return SystemState.SYMPATHETIC
        return SystemState.DORSAL

    def _harmony_for(self, score: float) -> MarketHarmony:
        if score >= 0.3:
            return MarketHarmony.CONSONANT
        if score <= -0.3:
            return MarketHarmony.DISSONANT
        if self.market_harmony == MarketHarmony.DISSONANT:
            return MarketHarmony.RESOLVING
        return self.market_harmony
