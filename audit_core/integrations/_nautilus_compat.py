"""The differences between the NautilusTrader releases the observer supports (1.221 to 1.231), in one place.

Each difference is detected by what the installed release does, not by its version number, so a
release in between (or a backport) gets the behaviour it actually has.
"""

from __future__ import annotations

import functools
from typing import Any

import nautilus_trader
from nautilus_trader.common.component import MessageBus, TestClock
from nautilus_trader.model.identifiers import TraderId

#: The installed release, as recorded in ``sys.session_start``.
NAUTILUS_VERSION: str = nautilus_trader.__version__


@functools.cache
def wildcards_reach_existing_topics() -> bool:
    """Whether a new wildcard subscription also receives topics that were published before it.

    NautilusTrader 1.221 matched the cached topics against a new pattern with the arguments swapped
    (``is_matching(topic, pattern)``), so ``events.account.*`` subscribed after the venue's first
    account state never received that account's later states; 1.231 fixed it. The observer
    subscribes to such topics by name only where the wildcard does not reach them, so each event
    arrives once on both. Probed on a private bus, once per process.
    """
    bus = MessageBus(TraderId("PROBE-001"), TestClock())
    received: list[object] = []
    bus.subscribe("probe.a", _ignore)
    bus.publish("probe.a", 1)
    bus.subscribe("probe.*", received.append)
    bus.publish("probe.a", 2)
    bus.dispose()
    return received == [2]


def _ignore(_message: object) -> None:
    pass


def cycle_realized_pnl(cache: Any, instrument_id: Any) -> float:
    """Realized P&L of the instrument's positions in ``cache``, as ``Portfolio.realized_pnl`` gave it in 1.221.

    A netting position's realized P&L starts again from zero each time it reopens. 1.221's
    ``Portfolio.realized_pnl(instrument_id)`` summed the positions as they stand (so only the current
    cycle of a netting position); 1.231 also adds the closed cycles' snapshots, a cumulative figure.
    Code that reasons about P&L the 1.221 way (the demo strategy's equity) calls this on both.
    """
    return sum(float(p.realized_pnl) for p in cache.positions(instrument_id=instrument_id)
               if p.realized_pnl is not None)
