"""How long `make demo` and its notebook take: the targets are the whole demo under a minute and the notebook
in 15 s warm (its second run, with the trail's verification cached and the imports in the OS cache).

Usage::

    python -m benchmarks.bench_demo            # writes benchmarks/results/demo.json
    python -m benchmarks.bench_demo --runs 1   # quicker: one warm notebook run

Wall-clock times of a shared machine vary: the result records the load averages next to them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks._machine import load_average, machine

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="warm notebook runs (median reported)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)

    from examples import demo_session

    load_before = load_average()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            code = demo_session.main(["--out", str(root / "demo_trail"), "--reports", str(root / "reports")])
        demo_s = time.perf_counter() - started
        if code != 0:
            raise SystemExit(f"the demo failed (exit {code}): nothing to measure")
        warm = []
        for _ in range(args.runs):
            started = time.perf_counter()
            demo_session.run_notebook(root / "demo_trail", root / "warm")
            warm.append(time.perf_counter() - started)
    report = {
        "machine": machine(), "load_average_before": load_before, "load_average_after": load_average(),
        "demo_s": round(demo_s, 2), "notebook_warm_s": round(statistics.median(warm), 2),
        "notebook_warm_runs_s": [round(w, 2) for w in warm],
        "targets": {"demo_s": 60, "notebook_warm_s": 15},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "demo.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
