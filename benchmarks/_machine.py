"""What a benchmark result records about the machine it ran on: load averages and usable CPUs."""

from __future__ import annotations

import os


def load_average() -> list[float]:
    """1, 5 and 15-minute load averages: other work on the machine skews every number."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else []


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity), else the machine's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def machine() -> str:
    """One line naming the machine: architecture, usable CPUs, Python, OS."""
    import platform

    return f"{platform.machine()}, {usable_cpus()} CPU(s), Python {platform.python_version()}, {platform.system()}"
