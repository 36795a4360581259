"""Prints the tamper battery's table (test_tamper_battery.RESULTS) at the end of a session that ran it."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any


def _cell(expected: object, outcome: object) -> str:
    if isinstance(outcome, str):
        return "n/a" if outcome == "not applicable" else outcome
    if outcome:
        return ", ".join(outcome)  # type: ignore[arg-type]
    return {"clean": "verifies", "not protected": "NOT PROTECTED (passes)"}.get(expected, "UNDETECTED")  # type: ignore[call-overload]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    battery = sys.modules.get("test_tamper_battery")
    results = getattr(battery, "RESULTS", None)
    if not results:
        return
    modes = list(dict.fromkeys(mode for _, mode, _, _ in results))
    table: dict[str, dict[str, str]] = {}
    tried: Counter[str] = Counter()
    detected: Counter[str] = Counter()
    by_kind: Counter[tuple[str, str]] = Counter()
    unexpected = []
    for name, mode, expected, outcome in results:
        table.setdefault(name, {})[mode] = _cell(expected, outcome)
        if expected == "clean":
            if outcome:
                unexpected.append(f"{name}/{mode}: false alarm {outcome}")
            continue
        if outcome == "not applicable":
            continue
        tried[mode] += 1
        if outcome:
            detected[mode] += 1
            by_kind.update((kind, mode) for kind in outcome)  # type: ignore[union-attr]
        if expected == "not protected":
            if outcome:
                unexpected.append(f"{name}/{mode}: documented gap now detected {outcome}")
        elif not set(outcome) & set(expected):  # type: ignore[arg-type]
            unexpected.append(f"{name}/{mode}: expected one of {expected}, got {outcome or 'OK'}")
    write = terminalreporter.write_line
    terminalreporter.section("tamper battery: attack x mode -> failure kinds reported by verify_trail")
    width = max(len(name) for name in table)
    write(f"{'attack':<{width}} | " + " | ".join(modes))
    for name in sorted(table, key=lambda n: (n.startswith("clean_"), n)):
        write(f"{name:<{width}} | " + " | ".join(table[name].get(mode, "-") for mode in modes))
    write("")
    write("attacks tried / detected: " + ", ".join(f"{m} {detected[m]}/{tried[m]}" for m in modes))
    kinds = sorted({kind for kind, _ in by_kind})
    write("detections by kind: " + "; ".join(
        f"{kind} " + "/".join(str(by_kind[kind, m]) for m in modes) for kind in kinds) + f"  ({'/'.join(modes)})")
    write(f"unexpected outcomes: {len(unexpected)}")
    for line in unexpected:
        write(f"  {line}")
