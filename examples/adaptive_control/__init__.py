"""Reference adaptive-control components, each audited through ``audit_core.integrations.audited``.

Small, deterministic stand-ins for the components our users run, faithful enough that their
audit trails look like the real thing: a meta-controller (system state, market harmony, risk
multiplier, strategy weights), a SOPS/Giller position sizer, a particle-filter portfolio and an
AlphaEvolve bridge that decides when strategies should be re-evolved.
"""

from examples.adaptive_control.alpha_evolve_bridge import AlphaEvolveBridge, EvolutionTrigger
from examples.adaptive_control.meta_controller import MarketHarmony, MetaController, SystemState
from examples.adaptive_control.particle_portfolio import Consensus, ParticlePortfolio
from examples.adaptive_control.sops_giller_sizer import SOPSGillerSizer, TapeRegime

__all__ = [
    "AlphaEvolveBridge",
    "Consensus",
    "EvolutionTrigger",
    "MarketHarmony",
    "MetaController",
    "ParticlePortfolio",
    "SOPSGillerSizer",
    "SystemState",
    "TapeRegime",
]
