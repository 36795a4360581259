"""Position sizing: signal -> SOPS (tanh with adaptive k) -> Giller power-law damping -> tape weight.

SOPS squashes a raw signal into (-1, 1) with ``tanh(k * signal)``; ``k`` adapts to volatility
(calmer markets get a steeper curve). Giller damping ``sign(x) * |x| ** exponent`` shrinks large
convictions sub-linearly. The tape-speed regime (how fast quotes arrive) scales the result. ``k``
and the tape regime are audited; ``k`` moves in steps so that noise does not rewrite it every bar.
"""

from __future__ import annotations

import enum
import math
from decimal import Decimal

from audit_core import AuditedComponent, AuditedParameter, AuditEventEmitter, reason


class TapeRegime(enum.StrEnum):
    SLOW = "SLOW"
    NORMAL = "NORMAL"
    FAST = "FAST"


TAPE_WEIGHT = {TapeRegime.SLOW: 0.5, TapeRegime.NORMAL: 1.0, TapeRegime.FAST: 0.75}


class SOPSGillerSizer(AuditedComponent):
    """Sizes orders from signals.

    Args:
        audit: Where changes of ``k`` and of the tape regime are recorded.
        base_size: Units at full conviction and risk multiplier 1.
        k0: ``k`` at the target volatility.
        target_volatility: Per-bar volatility at which ``k == k0``.
        giller_exponent: Damping exponent in (0, 1]; 1 means no damping.
        lot: Sizes are rounded down to a multiple of this.
    """

    k = AuditedParameter(bounds=(0.5, 4.0))
    tape_regime = AuditedParameter()

    def __init__(
        self,
        audit: AuditEventEmitter,
        *,
        base_size: int = 200_000,
        k0: float = 1.5,
        target_volatility: float = 0.0008,
        giller_exponent: float = 0.5,
        lot: int = 1_000,
        source: str = "sops_giller_sizer",
    ) -> None:
        super().__init__(audit, source)
        self.base_size = base_size
        self.k0 = k0
        self.target_volatility = target_volatility
        self.giller_exponent = giller_exponent
        self.lot = lot
        self.k = k0
        self.tape_regime = TapeRegime.NORMAL

    def adapt(self, volatility: float, quotes_per_minute: float) -> None:
        """Re-tune ``k`` to volatility (in 0.25 steps, clamped to 0.5..4) and classify the tape speed."""
        ratio = self.target_volatility / max(volatility, 1e-9)
        k = round(min(4.0, max(0.5, self.k0 * ratio)) * 4) / 4
        if k != self.k:
            with reason(f"volatility {volatility:.3%} per bar (target {self.target_volatility:.3%})"):
                self.k = k
        tape = (
            TapeRegime.SLOW if quotes_per_minute < 0.5
            else TapeRegime.FAST if quotes_per_minute > 3.0
            else TapeRegime.NORMAL
        )
        if tape != self.tape_regime:
            with reason(f"tape speed {quotes_per_minute:.1f} quotes/min"):
                self.tape_regime = tape

    def sops(self, signal: float) -> float:
        return math.tanh(self.k * signal)

    def giller(self, value: float) -> float:
        return math.copysign(abs(value) ** self.giller_exponent, value)

    def size(self, signal: float, risk_multiplier: float) -> Decimal:
        """Units to trade for ``signal`` (sign ignored: the side comes from the signal's sign)."""
        conviction = abs(self.giller(self.sops(signal)))
        units = self.base_size * conviction * TAPE_WEIGHT[self.tape_regime] * risk_multiplier
        return Decimal(int(units // self.lot) * self.lot)
