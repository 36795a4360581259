"""A benchmark's goal and its verdict line: one shape for every results file and README block.

A target is a dict (``make_target``): what was measured, the limit, which way it must go, its unit.
Reports written before the unit was recorded have none; ``target_line`` renders them too.
"""

from __future__ import annotations

from typing import Any


def make_target(key: str, label: str, measured: float, op: str, limit: float, unit: str = "") -> dict[str, Any]:
    """A goal and how the measurement stands against it (``op`` is ``"<="`` or ``">="``)."""
    if op not in ("<=", ">="):
        raise ValueError(f"target {key!r}: op must be '<=' or '>=', not {op!r}")
    passed = measured <= limit if op == "<=" else measured >= limit
    headroom = limit - measured if op == "<=" else measured - limit  # negative: missed by this much
    return {
        "id": key,
        "label": label,
        "measured": round(measured, 3),
        "op": op,
        "limit": round(limit, 3),
        "unit": unit,
        "passed": passed,
        "ratio_to_limit": round(measured / limit, 3) if limit else None,
        "headroom": round(headroom, 3),
        "headroom_pct": round(100 * headroom / limit, 1) if limit else None,
    }


def _number(value: float, unit: str) -> str:
    digits = 0 if unit in ("events/s", "records/s", "MB") else 2
    text = f"{value:,.{digits}f}"
    if not unit:
        return text
    return text + unit if unit == "x" else f"{text} {unit}"


def target_line(t: dict[str, Any]) -> str:
    """``**PASS** label: measured (target op limit; over by / short by ...)``, from the target's own fields."""
    unit = t.get("unit") or ""
    measured, limit = float(t["measured"]), float(t["limit"])
    passed = measured <= limit if t["op"] == "<=" else measured >= limit
    if passed != bool(t["passed"]):  # a report whose verdict disagrees with its numbers is a bug, not a render
        raise ValueError(f"target {t.get('id', t['label'])!r}: passed={t['passed']} but {measured} {t['op']} {limit}")
    gap = abs(limit - measured)
    margin = "headroom" if passed else ("over by" if t["op"] == "<=" else "short by")
    share = f", {100 * gap / limit:.0f}%" if limit else ""
    return (f"**{'PASS' if passed else 'MISS'}** {t['label']}: {_number(measured, unit)} "
            f"(target {t['op']} {_number(limit, unit)}; {margin} {_number(gap, unit)}{share})")
