"""Where the AuditObserver's backtest overhead goes: the run cut after each stage of its pipeline.

``bench_observer`` measures the whole overhead; this probe runs the same backtest (its scenario, its
``_run_case``, each run in a new process) with the observer's deferred batches cut short, so each
case adds one stage to the one before:

- ``baseline``: no observer.
- ``capture``: the observer's handlers run on the event loop (read NautilusTrader's objects, keep
  each record's fields for the batch); each batch is then dropped: nothing built or written.
- ``build``: each batch's records are also built (validated by the event models, as every record
  is); then dropped.
- ``observer``: the observer as shipped (also stamped, chained, serialized, hashed and written).

Each case's median ``engine.run()`` time over the rounds (interleaved) gives each stage's cost per
record as the difference from the case before, and, against ``bench_observer``'s target (1.3x the
baseline), how many microseconds a record may cost in all. These runs are not the trail's: the cut
cases write no records, so their trails are not verified.

Usage (from the repo root)::

    python -m benchmarks.probe_observer_stages              # 10,000 fills, 3 rounds
    python -m benchmarks.probe_observer_stages --fills 3000 --rounds 5
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

from benchmarks._machine import load_average
from benchmarks._scratch import scratch_dir
from benchmarks.bench_observer import OVERHEAD_TARGET, RESULTS_DIR, _run_in_new_process, ticks_for

STAGES = ("baseline", "capture", "build", "observer")

#: Code run first in a cut stage's new process (``bench_observer._run_in_new_process``): its cut of
#: ``DeferredRecords.run``, which takes the waiting records and drops them (``build``: built first).
_CUT = """from audit_core.integrations._recording import DeferredRecords
def run(self):
    builds, arguments = self._builds, self._args
    self._whats, self._builds, self._args, self._readings = [], [], [], []
    if {build}:
        for make, args in zip(builds, arguments):
            make(*args)
DeferredRecords.run = run
"""


def _run_stage(stage: str, base: Path, ticks: int) -> dict[str, Any]:
    if stage == "baseline":
        return _run_in_new_process("baseline", base, ticks)
    cut = "" if stage == "observer" else _CUT.format(build=stage == "build")
    return _run_in_new_process("observer", base, ticks, cut)


def probe(tmp: Path, fills: int, rounds: int) -> dict[str, Any]:
    load_at_start = load_average()
    ticks = ticks_for(fills)
    runs: dict[str, list[dict[str, Any]]] = {stage: [] for stage in STAGES}
    for round_number in range(rounds):
        for stage in STAGES:
            base = tmp / f"{stage}-{round_number}"
            runs[stage].append(_run_stage(stage, base, ticks))
            shutil.rmtree(base, ignore_errors=True)
    records = runs["observer"][0]["records"]
    # Rounded to the millisecond first: every figure below derives from the seconds the report shows.
    median = {stage: round(statistics.median(r["seconds"] for r in results), 3) for stage, results in runs.items()}
    cpu = {stage: statistics.median(r["cpu_seconds"] for r in results) for stage, results in runs.items()}
    baseline = median["baseline"]
    stages = []
    for before, stage in itertools.pairwise(STAGES):
        stages.append({"stage": stage, "seconds": median[stage],
                       "every_round": [round(r["seconds"], 3) for r in runs[stage]],
                       "ratio_to_baseline": round(median[stage] / baseline, 3),
                       "added_us_per_record": round((median[stage] - median[before]) / records * 1e6, 1),
                       "added_cpu_us_per_record": round((cpu[stage] - cpu[before]) / records * 1e6, 1),
                       # Records in the trail: none where the batches were dropped.
                       "records_written": runs[stage][0]["records"]})
    return {
        "benchmark": "observer_stages",
        "command": {"python": "python -m benchmarks.probe_observer_stages", "argv": []},
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "load_average": {"start": load_at_start, "end": load_average()},
        "fills": runs["baseline"][0]["fills"], "records": records, "rounds": rounds,
        "baseline_seconds": baseline,
        "baseline_every_round": [round(r["seconds"], 3) for r in runs["baseline"]],
        "stages": stages,
        "target_ratio": OVERHEAD_TARGET,
        "budget_us_per_record": round((OVERHEAD_TARGET - 1) * baseline / records * 1e6, 1),
    }


def readme_table(report: dict[str, Any]) -> str:
    """The stages and the budget: the README's ``results:observer_stages`` block and the heart of the .md file."""
    lines = [
        "`" + " ".join([report["command"]["python"], *report["command"]["argv"]]) + "`, "
        f"{report['date_utc'][:10]}, load average {report['load_average']['start'][0]} at start, "
        f"{report['load_average']['end'][0]} at end; {report['fills']:,} fills, {report['records']:,} records, "
        f"medians of {report['rounds']} interleaved rounds; baseline (no observer) {report['baseline_seconds']} s "
        f"({', '.join(map(str, report['baseline_every_round']))}):", "",
        "| case (adds) | engine.run() s | every round | / baseline | added us per record | added CPU us per record |",
        "|---|--:|---|--:|--:|--:|",
    ]
    for stage in report["stages"]:
        lines.append(f"| {stage['stage']} | {stage['seconds']} | {', '.join(map(str, stage['every_round']))} | "
                     f"{stage['ratio_to_baseline']:.2f}x | {stage['added_us_per_record']} | "
                     f"{stage['added_cpu_us_per_record']} |")
    lines += ["", f"At {report['target_ratio']}x the baseline, a record may cost "
              f"{report['budget_us_per_record']} us in all (capture, build and write together)."]
    return "\n".join(lines) + "\n"


def render_markdown(report: dict[str, Any]) -> str:
    return "\n".join([
        "# Ledgerline AuditObserver: where the backtest overhead goes", "",
        "The bench_observer scenario, each run in a new process; each case adds one stage of the observer's "
        "pipeline to the case before it (capture: the handlers on the event loop, batches dropped; build: "
        "the records also validated, then dropped; observer: as shipped). See the module docstring.", "", "",
    ]) + readme_table(report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.probe_observer_stages",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--fills", type=int, default=10_000, help="fills per backtest (default 10,000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds, medians count (default 3)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help=f"results directory (default {RESULTS_DIR})")
    args = parser.parse_args(argv)
    with scratch_dir("observer-stages-") as tmp:
        report = probe(tmp, args.fills, args.rounds)
    report["command"]["argv"] = sys.argv[1:] if argv is None else list(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "observer_stages.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (args.out / "observer_stages.md").write_text(render_markdown(report), encoding="utf-8")
    print(render_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
