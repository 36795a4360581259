"""What an audited parameter costs: an audited assignment against a plain attribute assignment.

Cases (each timed per assignment over ``n`` assignments, interleaved ``repeats`` times, best run):

- ``plain``: ``obj.k = value`` on an ordinary attribute (the baseline).
- ``audited_unchanged``: assigning an audited parameter its current value (compare only, no record).
- ``audited_change``: an audited assignment that changes the value: one ``param.*`` record through
  the emitter (non-durable, as parameter changes are by default).
- ``audited_change_in_reason``: the same inside ``with reason(...)``.
- ``emit_param_change``: the emitter call alone, what the audited change costs at least.

Usage (from the repo root)::

    python -m benchmarks.bench_audited            # writes results/audited.{json,md}
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from audit_core import AuditConfig, AuditedComponent, AuditedParameter, AuditEventEmitter, reason

RESULTS_DIR = Path(__file__).resolve().parent / "results"


class Plain:
    def __init__(self) -> None:
        self.k = 0.0


class Audited(AuditedComponent):
    k = AuditedParameter()

    def __init__(self, audit: AuditEventEmitter) -> None:
        super().__init__(audit, "bench")
        self.k = 0.0


def _time(fn: Any, n: int) -> float:
    start = time.perf_counter_ns()
    fn(n)
    return (time.perf_counter_ns() - start) / n / 1000  # us per assignment


def run(n: int, repeats: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        config = AuditConfig(base_path=tmp, sync_writes=False)
        with AuditEventEmitter(config) as audit:
            plain, audited = Plain(), Audited(audit)

            def plain_case(count: int) -> None:
                for i in range(count):
                    plain.k = float(i)

            def unchanged_case(count: int) -> None:
                value = audited.k
                for _ in range(count):
                    audited.k = value

            def change_case(count: int) -> None:
                for i in range(count):
                    audited.k = float(i) + 0.5

            def change_in_reason_case(count: int) -> None:
                with reason("volatility regime"):
                    for i in range(count):
                        audited.k = float(i) + 0.25

            def emit_case(count: int) -> None:
                for i in range(count):
                    audit.emit_param_change("bench", "k", float(i), float(i) + 1.0)

            cases = {
                "plain": plain_case, "audited_unchanged": unchanged_case, "audited_change": change_case,
                "audited_change_in_reason": change_in_reason_case, "emit_param_change": emit_case,
            }
            runs: dict[str, list[float]] = {name: [] for name in cases}
            for _ in range(repeats):
                for name, fn in cases.items():
                    runs[name].append(_time(fn, n))
    best = {name: min(values) for name, values in runs.items()}
    return {
        "n": n, "repeats": repeats, "us_per_assignment_best": best,
        "us_per_assignment_median": {name: statistics.median(values) for name, values in runs.items()},
        "ratio_vs_plain": {name: best[name] / best["plain"] for name in best},
        "audited_change_over_emit": best["audited_change"] / best["emit_param_change"],
    }


def render(report: dict[str, Any]) -> str:
    lines = [
        "# Audited parameters: cost per assignment",
        "",
        f"`python -m benchmarks.bench_audited`, {report['date']}, Python {report['python']}, "
        f"{report['n']:,} assignments per case, best of {report['repeats']} interleaved runs.",
        "",
        "| case | µs per assignment (best) | median | x plain |",
        "|---|--:|--:|--:|",
    ]
    for name, value in report["us_per_assignment_best"].items():
        lines.append(f"| {name} | {value:.3f} | {report['us_per_assignment_median'][name]:.3f} | "
                     f"{report['ratio_vs_plain'][name]:.1f} |")
    lines += [
        "",
        f"- An audited change costs {report['audited_change_over_emit']:.2f}x the emitter call it makes "
        "(`emit_param_change`): the descriptor, freezing and comparison add little; the record is the cost.",
        "- An assignment that does not change the value only compares, and records nothing.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    report = run(args.n, args.repeats)
    report["date"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    report["python"] = platform.python_version()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "audited.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "audited.md").write_text(render(report))
    print(render(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
