"""Verification on every core: ``verify`` and ``verify_cold`` at jobs=1 and jobs=all against a minimal chain verifier.

The trail is ``trail_gen``'s (three streams over 30 days, so 90 sealed daily hot files, converted
to a cold store), generated once and reused. Each case runs in its own fresh subprocess, and the
cases are interleaved round by round (``--rounds``, median reported), so the reference and ours
meet the same load:

- ``minimal``: a minimal single-process chain verifier written here: each line's SHA-256 against
  its checksum, gapless sequence and prev_hash per stream. No seals, no Merkle root, no file hash,
  no torn-line or retention handling: the floor of what checking a chain costs in CPython.
- ``verify_1`` / ``verify_all``: ``hot.verifier.verify`` of the hot files with jobs=1 / all cores,
  against the public key their seals are signed with (``signed_hot``: the same JSONL, each seal
  signed with Ed25519, as a writer with a signing key leaves it), so each file's Merkle root and
  SHA-256 are vouched for by its authenticated seal, not recomputed.
- ``deep_all``: the same with ``deep=True`` (every root and file hash recomputed), jobs=all cores.
- ``cold_1`` / ``cold_all``: ``verify_cold`` of the cold store with jobs=1 / all cores.

Target (issue 18): ``verify`` at jobs=all reaches >= 0.8x the minimal verifier's throughput per core
(ours_records_per_s / cores >= 0.8 x minimal_records_per_s).

Usage (from the repo root)::

    python -m benchmarks.bench_verify                    # 1M events, writes results/verify.*
    python -m benchmarks.bench_verify --events 200000 --rounds 1 --out /tmp/bench
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks._targets import make_target, target_line

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = Path(__file__).resolve().parent / "results"
PER_CORE_TARGET = 0.8
#: How the hot cases' seals are authenticated (``signed_hot``), said in every result.
SEALS = ("Ed25519-signed, verified against the public key (verify: roots and file hashes vouched for by the "
         "seals; deep_all: recomputed)")
CASES = ("minimal", "verify_1", "verify_all", "deep_all", "cold_1", "cold_all")
#: The cases each ratio compares (``--cases`` may leave some out: their ratios and targets are left out too).
_RATIO_CASES = {
    "verify_1_vs_minimal": ("verify_1",), "verify_all_vs_minimal": ("verify_all",),
    "verify_all_per_core_vs_minimal": ("verify_all",), "verify_speedup": ("verify_1", "verify_all"),
    "deep_all_per_core_vs_minimal": ("deep_all",), "cold_1_vs_minimal": ("cold_1",),
    "cold_all_per_core_vs_minimal": ("cold_all",), "cold_speedup": ("cold_1", "cold_all"),
}

_CASE_CODE = {
    "minimal": """
import hashlib
from collections import defaultdict
GENESIS = "0" * 64
streams = defaultdict(list)
for path in sorted(HOT.glob("*.jsonl")):
    streams[path.name.split(".")[2]].append(path)  # audit.<trader>.<stream>.<day>.<segment>.jsonl
rows = failures = 0
sha256 = hashlib.sha256
for files in streams.values():
    expected, prev = 0, GENESIS.encode()
    for path in sorted(files):
        with path.open("rb") as handle:
            for line in handle:
                # ... ,"sequence":N,"prev_hash":"<64 hex>", ... ,"checksum":"<64 hex>"}\\n
                stored = line[-67:-3]
                if sha256(line[:-80] + b"}").hexdigest().encode() != stored:
                    failures += 1
                at = line.index(b'"sequence":') + 11
                sequence = int(line[at:line.index(b",", at)])
                at = line.index(b'"prev_hash":"', at) + 13
                if sequence != expected or line[at:at + 64] != prev:
                    failures += 1
                expected, prev = sequence + 1, stored
                rows += 1
assert failures == 0, failures
out = {"rows": rows}
""",
    "verify_1": """
from audit_core.hot.verifier import verify
from audit_core.trust.signing import load_public_key
report = verify(HOT, jobs=1, public_key=load_public_key(PUBLIC_KEY))
assert report.ok and len(report.vouched) == report.sealed_files, report.to_text()
out = {"rows": report.records, "sealed": report.sealed_files, "vouched": len(report.vouched)}
""",
    "verify_all": """
from audit_core.hot.verifier import verify
from audit_core.trust.signing import load_public_key
report = verify(HOT, jobs=JOBS, public_key=load_public_key(PUBLIC_KEY))
assert report.ok and len(report.vouched) == report.sealed_files, report.to_text()
out = {"rows": report.records, "sealed": report.sealed_files, "vouched": len(report.vouched)}
""",
    "deep_all": """
from audit_core.hot.verifier import verify
from audit_core.trust.signing import load_public_key
report = verify(HOT, jobs=JOBS, public_key=load_public_key(PUBLIC_KEY), deep=True)
assert report.ok and not report.vouched, report.to_text()
out = {"rows": report.records, "sealed": report.sealed_files, "vouched": len(report.vouched)}
""",
    "cold_1": """
from audit_core.cold.cold_verify import verify_cold
report = verify_cold(COLD, jobs=1)
assert report.ok, report.to_text()
out = {"rows": report.records}
""",
    "cold_all": """
from audit_core.cold.cold_verify import verify_cold
report = verify_cold(COLD, jobs=JOBS)
assert report.ok, report.to_text()
out = {"rows": report.records}
""",
}

_RUNNER = """
import json, sys, time
from pathlib import Path
HOT, COLD, JOBS, PUBLIC_KEY = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
started = time.perf_counter()
{code}
out["seconds"] = time.perf_counter() - started
print(json.dumps(out))
"""


def run_case(case: str, hot: Path, cold: Path, jobs: int, public_key: Path) -> dict[str, Any]:
    """One case in a fresh interpreter: wall time from its first import to its end, rows, and the CPU seconds
    (user + system) of the interpreter and its workers, start-up included: on a loaded machine the wall
    time says little, the CPU time still says what the work cost."""
    code = _RUNNER.replace("{code}", _CASE_CODE[case])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-c", code, str(hot), str(cold), str(jobs), str(public_key)], cwd=ROOT,
                          check=True,
                          capture_output=True, text=True, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["cpu_seconds"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result


def signed_hot(base: Path) -> tuple[Path, Path]:
    """The trail's hot directory with signed seals, and the public key: made once, beside the cached trail.

    The JSONL files are hard links to the cached trail's (copies where links fail); each seal is the
    trail's own, authenticated again with an Ed25519 key made here (``documents.authenticate``),
    with its C2SP checkpoint: what a writer with ``signing_key_path`` leaves.
    """
    from audit_core._layout import checkpoint_path, seal_path
    from audit_core.trust import checkpoint, documents
    from audit_core.trust.seals import SEAL_CHECKSUM, read_seal
    from audit_core.trust.signing import generate_keypair, load_private_key

    target = base.parent / f"{base.name}-signed"
    hot, public_key = target / "hot", target / "writer.pub"
    if (target / ".complete").exists():
        return hot, public_key
    shutil.rmtree(target, ignore_errors=True)
    hot.mkdir(parents=True)
    generate_keypair(target / "writer.key", public_key)
    signing_key = load_private_key(target / "writer.key")
    for path in sorted((base / "hot").glob("*.jsonl")):
        try:
            os.link(path, hot / path.name)
        except OSError:
            shutil.copy2(path, hot / path.name)
        seal = read_seal(path)
        if seal is not None:
            seal = documents.authenticate(seal, SEAL_CHECKSUM, None, signing_key)
            checkpoint_path(hot / path.name).write_text(checkpoint.sign_checkpoint(seal, signing_key))
            seal_path(hot / path.name).write_text(json.dumps(seal, indent=1) + "\n")
    (target / ".complete").write_text(f"signed seals of {base.name}, made by benchmarks.bench_verify\n")
    return hot, public_key


def run_verify_benchmark(events: int, rounds: int, jobs: int, cases_run: tuple[str, ...] = CASES) -> dict[str, Any]:
    from benchmarks.trail_gen import cached_trail

    base = cached_trail(events)
    cold = base / "cold"
    hot, public_key = signed_hot(base)
    hot_bytes = sum(p.stat().st_size for p in hot.glob("*.jsonl"))
    runs: dict[str, list[dict[str, Any]]] = {case: [] for case in CASES if case in cases_run}
    loads = []
    for round_no in range(rounds):
        for case in runs:  # interleaved: each round runs every case once, reference first
            loads.append(os.getloadavg()[0])
            print(f"  round {round_no + 1}/{rounds}: {case} ...", file=sys.stderr)
            runs[case].append(run_case(case, hot, cold, jobs, public_key))
    cases: dict[str, dict[str, Any]] = {}
    records = runs["minimal"][0]["rows"]
    for case, results in runs.items():
        if any(result["rows"] != records for result in results) and not case.startswith("cold"):
            raise AssertionError(f"{case} saw {[r['rows'] for r in results]} records, the minimal verifier {records}")
        seconds = statistics.median(result["seconds"] for result in results)
        cpu = statistics.median(result["cpu_seconds"] for result in results)
        cases[case] = {
            "seconds": round(seconds, 3),
            "seconds_each": [round(result["seconds"], 3) for result in results],
            "cpu_seconds": round(cpu, 3),
            "us_per_record": round(seconds / results[0]["rows"] * 1e6, 3),
            "cpu_us_per_record": round(cpu / results[0]["rows"] * 1e6, 3),
            "records": results[0]["rows"],
            "records_per_s": round(results[0]["rows"] / seconds, 1),
        }
    minimal = cases["minimal"]["records_per_s"]
    speed = {case: result["records_per_s"] for case, result in cases.items()}
    ratios = {name: round(value, 3) for name, value in {
        "verify_1_vs_minimal": speed.get("verify_1", 0) / minimal,
        "verify_all_vs_minimal": speed.get("verify_all", 0) / minimal,
        "verify_all_per_core_vs_minimal": speed.get("verify_all", 0) / jobs / minimal,
        "verify_speedup": speed.get("verify_all", 0) / speed.get("verify_1", float("inf")),
        "deep_all_per_core_vs_minimal": speed.get("deep_all", 0) / jobs / minimal,
        "cold_1_vs_minimal": speed.get("cold_1", 0) / minimal,
        "cold_all_per_core_vs_minimal": speed.get("cold_all", 0) / jobs / minimal,
        "cold_speedup": speed.get("cold_all", 0) / speed.get("cold_1", float("inf")),
    }.items() if all(case in cases for case in _RATIO_CASES[name])}
    targets = [
        make_target(name, f"`{label}` jobs={jobs}: records/s per core / minimal verifier's",
                    ratios[f"{case}_per_core_vs_minimal"], ">=", PER_CORE_TARGET, "x")
        for name, label, case in (("verify_per_core", "verify", "verify_all"),
                                  ("cold_per_core", "verify_cold", "cold_all"))
        if f"{case}_per_core_vs_minimal" in ratios]
    return {
        "benchmark": "verify",
        "command": {"python": "python -m benchmarks.bench_verify", "argv": []},
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": _machine(hot),
        "method": (
            f"benchmarks.trail_gen trail of {events:,} events ({records:,} hot records in "
            f"{len(list(hot.glob('*.jsonl')))} sealed files, {hot_bytes / 1e6:,.0f} MB of JSONL, and its cold "
            f"store); each case in a fresh subprocess, {rounds} interleaved round(s), median wall time from the "
            f"case's first import to its end; jobs=all is {jobs} worker processes. Hot seals: "
            f"{SEALS}; the cold store's seal copies and manifests are unkeyed and unsigned."
        ),
        "seals": SEALS,
        "vouched": {case: runs[case][0].get("vouched") for case in ("verify_1", "verify_all", "deep_all")
                    if case in runs},
        "events": events,
        "jobs": jobs,
        "rounds": rounds,
        "hot_bytes": hot_bytes,
        "load_average_during": [round(min(loads), 2), round(max(loads), 2)],
        "cases": cases,
        "ratios": ratios,
        "targets": targets,
    }


_LABELS = {
    "minimal": "reference: minimal single-process chain verifier (checksum, sequence, prev_hash only)",
    "verify_1": "`verify`, jobs=1",
    "verify_all": "`verify`, jobs=all",
    "deep_all": "`verify --deep`, jobs=all",
    "cold_1": "`verify_cold`, jobs=1",
    "cold_all": "`verify_cold`, jobs=all",
}


def readme_table(report: dict[str, Any]) -> str:
    """The table ``benchmarks.readme`` puts between the README's ``results:verify`` markers."""
    cases, ratios, jobs = report["cases"], report["ratios"], report["jobs"]
    lines = [
        f"`{_command(report)}`, {report['date_utc'][:10]}, {report['events']:,} events "
        f"({report['hot_bytes'] / 1e6:,.0f} MB of JSONL), jobs=all is {jobs}, {report['machine']['cpus_usable']} "
        f"CPUs, load average {report['load_average_during'][0]}-{report['load_average_during'][1]} during the run; "
        f"hot seals {report.get('seals', 'unkeyed')}:",
        "",
        "| case | seconds | records/s | per core / minimal |",
        "|---|--:|--:|--:|",
    ]
    for name, label in _LABELS.items():
        if name not in cases:  # (results written before the case existed)
            continue
        case = cases[name]
        per_core = case["records_per_s"] / (jobs if name.endswith("_all") else 1) / cases["minimal"]["records_per_s"]
        lines.append(f"| {label.replace('jobs=all', f'jobs={jobs}')} | {case['seconds']:.2f} | "
                     f"{case['records_per_s']:,.0f} | {per_core:.2f}x |")
    speedups = [f"`{name}` with {jobs} workers runs {ratios[key]:.2f}x as fast as with one"
                for name, key in (("verify", "verify_speedup"), ("verify_cold", "cold_speedup")) if key in ratios]
    lines += ["", "; ".join(speedups) + "." if speedups else "", ""]
    lines += ["- " + target_line(t) for t in report["targets"]]
    return "\n".join(lines) + "\n"


def render_markdown(report: dict[str, Any]) -> str:
    lines = ["# Ledgerline verification on every core", "", report["method"], "", readme_table(report).rstrip(), ""]
    lines += ["| case | each round (s) | us per record (wall) | CPU s (all processes, start-up included) | "
              "CPU us per record | CPU / minimal's |", "|---|---|--:|--:|--:|--:|"]
    minimal_cpu = report["cases"]["minimal"].get("cpu_seconds")
    for name, case in report["cases"].items():
        rounds = ", ".join(f"{s:.2f}" for s in case["seconds_each"])
        cells = [rounds, f"{case['seconds'] / case['records'] * 1e6:.2f}", "", "", ""]
        cpu = case.get("cpu_seconds")  # (results written before CPU time was measured have none)
        if cpu and minimal_cpu:
            cells[2:] = [f"{cpu:.2f}", f"{cpu / case['records'] * 1e6:.2f}", f"{cpu / minimal_cpu:.2f}x"]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def _command(report: dict[str, Any]) -> str:
    argv = " ".join(report["command"]["argv"])
    return report["command"]["python"] + (f" {argv}" if argv else "")


def _machine(where: Path) -> dict[str, Any]:
    from benchmarks.run import _filesystem_of, _machine_info

    info = _machine_info(_filesystem_of(where))
    info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    return info


def main(argv: list[str] | None = None) -> int:
    from audit_core.trust.jobs import default_jobs

    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_verify", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the trail (default 1,000,000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported (default 3)")
    parser.add_argument("--jobs", type=int, default=default_jobs(),
                        help="jobs=all: worker processes (default: all cores)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help=f"results directory (default {RESULTS_DIR})")
    parser.add_argument("--cases", default=",".join(CASES),
                        help=f"comma-separated cases to run, minimal always included (default all: {','.join(CASES)}); "
                             "a partial run is for a quick look: pass --out elsewhere than the results directory")
    args = parser.parse_args(argv)
    cases = tuple(case for case in CASES if case == "minimal" or case in args.cases.split(","))
    if unknown := set(args.cases.split(",")) - set(CASES):
        parser.error(f"unknown case(s) {', '.join(sorted(unknown))}: choose from {', '.join(CASES)}")
    print(f"verify benchmark: {args.events:,} events, jobs 1 and {args.jobs}, {args.rounds} round(s)", file=sys.stderr)
    report = run_verify_benchmark(args.events, args.rounds, args.jobs, cases)
    report["command"]["argv"] = sys.argv[1:] if argv is None else list(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "verify.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (args.out / "verify.md").write_text(render_markdown(report), encoding="utf-8")
    print(render_markdown(report), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
