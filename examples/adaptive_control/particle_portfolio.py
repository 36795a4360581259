"""Strategy weights from a particle filter, resampled when the effective sample size collapses.

Each particle is a candidate weight vector over the strategies. Each update re-weights particles
by how well their blend would have done (a softmax likelihood of the blended return); when the
effective sample size falls below a threshold the particles are resampled (systematic
resampling, then a small jitter), recorded as ``sys.resampling``. The posterior mean is the
audited ``strategy_weights``; ``consensus`` blends the strategies' signals with it and records the
result as a ``trade.signal`` with the regime and a confidence.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from audit_core import AuditedComponent, AuditedParameter, AuditEventEmitter, AuditEventType, reason
from audit_core.events import SignalEvent


@dataclass(frozen=True)
class Consensus:
    value: float  # blended signal
    confidence: float  # 1 - dispersion of the strategies' signals around it, in [0, 1]


class ParticlePortfolio(AuditedComponent):
    """Particle-filter weights over strategies.

    Args:
        audit: Where weight changes, resamplings and consensus signals are recorded.
        strategies: Strategy names.
        particles: Number of particles.
        seed: Seeds the filter's own random numbers (deterministic runs).
        ess_threshold: Resample when ESS < threshold * particles.
        sharpness: How strongly a blended return moves a particle's weight.
    """

    strategy_weights = AuditedParameter(event_type=AuditEventType.PARAM_WEIGHT_CHANGE)

    def __init__(
        self,
        audit: AuditEventEmitter,
        strategies: Sequence[str],
        *,
        particles: int = 200,
        seed: int = 7,
        ess_threshold: float = 0.5,
        sharpness: float = 400.0,
        source: str = "particle_portfolio",
    ) -> None:
        super().__init__(audit, source)
        self.strategies = list(strategies)
        self.rng = random.Random(seed)
        self.ess_threshold = ess_threshold
        self.sharpness = sharpness
        self.particles = [self._dirichlet() for _ in range(particles)]
        self.log_weights = [0.0] * particles
        self.resamplings = 0
        self.strategy_weights = self._posterior_mean()

    def update(self, returns: Mapping[str, float]) -> float:
        """Re-weight particles by one bar of per-strategy returns; returns the ESS after it."""
        r = [returns[name] for name in self.strategies]
        self.log_weights = [
            lw + self.sharpness * sum(w * x for w, x in zip(p, r, strict=True))
            for lw, p in zip(self.log_weights, self.particles, strict=True)
        ]
        top = max(self.log_weights)
        self.log_weights = [lw - top for lw in self.log_weights]
        ess = self.effective_sample_size()
        if ess < self.ess_threshold * len(self.particles):
            self._resample(ess)
        weights = self._posterior_mean()
        if weights != dict(self.strategy_weights):
            with reason(f"particle filter posterior (ESS {ess:.0f}/{len(self.particles)})"):
                self.strategy_weights = weights
        return ess

    def effective_sample_size(self) -> float:
        normalized = self._normalized()
        return 1.0 / sum(w * w for w in normalized)

    def consensus(self, signals: Mapping[str, float]) -> Consensus:
        weights = self.strategy_weights
        value = sum(weights[name] * signals[name] for name in self.strategies)
        spread = math.sqrt(sum(weights[name] * (signals[name] - value) ** 2 for name in self.strategies))
        return Consensus(round(value, 6), round(max(0.0, min(1.0, 1.0 - spread)), 4))

    def record_signal(
        self,
        consensus: Consensus,
        *,
        regime: str,
        instrument_id: str,
        correlation_id: str,
        acted_on: bool,
        filter_reason: str | None = None,
        strategy_source: str = "consensus",
    ) -> SignalEvent:
        """Record the consensus as a ``trade.signal``, traded or not (and why not).

        ``strategy_source`` names the strategy the signal is attributed to (default: the blend).
        """
        return self._audit.emit_signal(
            self.audit_source, strategy_source, consensus.value, consensus.confidence, regime=regime,
            instrument_id=instrument_id, acted_on=acted_on, filter_reason=filter_reason,
            correlation_id=correlation_id,
        )

    def _dirichlet(self) -> list[float]:
        draws = [self.rng.gammavariate(1.0, 1.0) for _ in self.strategies]
        total = sum(draws)
        return [d / total for d in draws]

    def _normalized(self) -> list[float]:
        exp = [math.exp(lw) for lw in self.log_weights]
        total = sum(exp)
        return [e / total for e in exp]

    def _posterior_mean(self) -> dict[str, float]:
        normalized = self._normalized()
        return {
            name: round(sum(w * p[i] for w, p in zip(normalized, self.particles, strict=True)), 2)
            for i, name in enumerate(self.strategies)
        }

    def _resample(self, ess: float) -> None:
        normalized, n = self._normalized(), len(self.particles)
        start, cumulative, index, chosen = self.rng.random() / n, normalized[0], 0, []
        for i in range(n):
            target = start + i / n
            while target > cumulative and index < n - 1:
                index += 1
                cumulative += normalized[index]
            chosen.append(self.particles[index])
        self.particles = [self._jitter(p) for p in chosen]
        self.log_weights = [0.0] * n
        self.resamplings += 1
        self._audit.emit_system(
            AuditEventType.SYS_RESAMPLING, self.audit_source,
            {"ess": round(ess, 2), "particles": n, "threshold": self.ess_threshold, "resampling": self.resamplings},
        )

    def _jitter(self, particle: list[float]) -> list[float]:
        moved = [max(1e-6, w + self.rng.gauss(0, 0.02)) for w in particle]
        total = sum(moved)
        return [w / total for w in moved]
