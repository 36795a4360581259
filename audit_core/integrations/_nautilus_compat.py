"""The differences between the NautilusTrader releases the observer supports (1.221 to 1.231), in one place.

Each difference is detected by what the installed release does, not by its version number, so a
release in between (or a backport) gets the behaviour it actually has.
"""

from __future__ import annotations

import functools

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
