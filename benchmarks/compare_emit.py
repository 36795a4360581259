"""Non-durable emit latency of two source trees, measured in one run: this tree against a baseline checkout.

A change to the emit path (``ts_recorded`` stamping, say) is judged by p50/p99/p99.9 of
``bench_emit.bench_emit_param_change`` run from each tree in its own subprocess
(``PYTHONPATH=<tree>``), alternating baseline and candidate ``--rounds`` times so that load drifts
hit both alike. Prints each round and the per-tree medians of the rounds' percentiles; with
``--output`` writes them as JSON (the lead's quiet-machine runs go to ``benchmarks/results/``).

    python -m benchmarks.compare_emit --baseline /path/to/main --events 20000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# The measuring code is this tree's bench_emit.py, loaded by path, for both trees: only the
# audit_core it imports (from PYTHONPATH) differs.
_CHILD = """
import importlib.util, json, sys, tempfile
from pathlib import Path
spec = importlib.util.spec_from_file_location("bench_emit", sys.argv[3])
bench_emit = sys.modules["bench_emit"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_emit)
import audit_core
assert Path(audit_core.__file__).resolve().is_relative_to(Path(sys.argv[4]).resolve()), audit_core.__file__
events = int(sys.argv[1])
with tempfile.TemporaryDirectory(dir=sys.argv[2]) as tmp:
    result, _ = bench_emit.bench_emit_param_change(Path(tmp), events, max(100, events // 100))
print(json.dumps({"p50_us": result.p50_us, "p99_us": result.p99_us, "p999_us": result.p999_us,
                  "bytes_per_event": result.bytes_per_event}))
"""

CANDIDATE = Path(__file__).resolve().parents[1]


def measure(tree: Path, events: int, scratch: Path) -> dict[str, float]:
    """One run of the non-durable emit case with ``tree``'s code, in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    bench = CANDIDATE / "benchmarks" / "bench_emit.py"
    out = subprocess.run([sys.executable, "-c", _CHILD, str(events), str(scratch), str(bench), str(tree)],
                         env=env, cwd=scratch, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _commit(tree: Path) -> str:
    """The git commit a source tree is at (``+dirty`` with uncommitted changes), or ``unknown``."""
    try:
        head = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare_emit", description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the other source tree (a checkout of main)")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", type=Path, help="write the rounds and medians as JSON here")
    args = parser.parse_args(argv)
    runs: dict[str, list[dict[str, float]]] = {"baseline": [], "candidate": []}
    with tempfile.TemporaryDirectory(dir=CANDIDATE) as scratch:  # the repo's disk, like run.py
        for round_no in range(args.rounds):
            for name, tree in (("baseline", args.baseline.resolve()), ("candidate", CANDIDATE)):
                result = measure(tree, args.events, Path(scratch))
                runs[name].append(result)
                print(f"round {round_no} {name:<9} p50 {result['p50_us']:7.2f} us  p99 {result['p99_us']:7.2f} us  "
                      f"p99.9 {result['p999_us']:8.2f} us  {result['bytes_per_event']:.0f} B/event", flush=True)
    medians = {name: {key: statistics.median(run[key] for run in rows) for key in rows[0]}
               for name, rows in runs.items()}
    delta = medians["candidate"]["p50_us"] - medians["baseline"]["p50_us"]
    print(f"median p50: baseline {medians['baseline']['p50_us']:.2f} us, candidate "
          f"{medians['candidate']['p50_us']:.2f} us, difference {delta:+.2f} us; load average {os.getloadavg()}")
    if args.output is not None:
        trees = {name: _commit(tree) for name, tree in (("baseline", args.baseline), ("candidate", CANDIDATE))}
        args.output.write_text(json.dumps({
            "command": "python -m benchmarks.compare_emit " + " ".join(argv if argv is not None else sys.argv[1:]),
            "commits": trees, "events": args.events, "rounds": runs, "medians": medians,
            "p50_difference_us": delta, "load_average": os.getloadavg()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
