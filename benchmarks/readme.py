"""Write the README's benchmark tables from ``benchmarks/results/*.json``, so that no number in it is typed by hand.

Usage (from the repo root; ``make bench`` runs it after the benchmarks)::

    python -m benchmarks.readme          # rewrite the tables in README.md
    python -m benchmarks.readme --check  # exit 1 if README.md differs from the results

Each table sits between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->`` lines;
``TABLES`` says which results file and renderer fill it. ``tests/test_readme.py`` checks that the
README matches the results files.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._targets import target_line
from benchmarks.bench_bulk import readme_table as bulk_table
from benchmarks.bench_bundle import readme_table as bundle_table
from benchmarks.bench_observer import readme_table as observer_table
from benchmarks.bench_spark import readme_table as spark_table
from benchmarks.bench_verify import readme_table as verify_table
from benchmarks.bench_workbench import RESULTS_DIR, readme_table
from benchmarks.probe_observer_stages import readme_table as observer_stages_table

README = Path(__file__).resolve().parents[1] / "README.md"
_CONVERT_CASES = (
    ("verify", "our fast verification of the hot file (what the converter runs)"),
    ("verify_hot", "`verify` of the hot file (what `ledgerline verify` runs)"),
    ("verify_convert", "verify + convert to Parquet (ours)"),
    ("verify_cold", "`verify_cold` of the store it wrote (every record, chain and column)"),
    ("pyarrow", "baseline: pyarrow `read_json` + `write_table` (verifies nothing)"),
    ("pyarrow_sha256", "baseline: pyarrow `read_json` + `write_table` + SHA-256 of every line"),
    ("duckdb", "baseline: DuckDB `COPY ... read_json` (verifies nothing)"),
)


def convert_table(report: dict[str, Any]) -> str:
    """The converter's and verifiers' speed from ``convert.json``: a table, the ratios and the targets."""
    cases, ratios = report["cases"], report["ratios"]
    line_bytes = report["jsonl_bytes"] / report["events"]
    lines = [
        f"`{report['command']['python']}`, {report['date_utc'][:10]}, {report['events']:,} events of "
        f"{line_bytes:.0f} bytes, {report['machine']['cpus_usable']} CPUs, load average at start "
        f"{report['machine']['load_average_at_start'][0]}:",
        "",
        "| case | seconds | events/s | peak RSS MB | JSONL/Parquet |",
        "|---|--:|--:|--:|--:|",
    ]
    for name, label in _CONVERT_CASES:
        if name not in cases:  # a case added after the run that wrote the results
            continue
        case = cases[name]
        size = f"{case['size_ratio']:.2f}x" if "size_ratio" in case else "-"
        lines.append(f"| {label} | {case['seconds']:.2f} | {case['events_per_s']:,.0f} | "
                     f"{case['peak_rss_mb']:,.0f} | {size} |")
    lines += [
        "",
        f"Verify + convert takes {ratios['verify_convert_vs_pyarrow']:.2f}x the time of pyarrow and "
        f"{ratios['verify_convert_vs_duckdb']:.2f}x the time of DuckDB `COPY`; cold verification takes "
        f"{ratios['verify_cold_vs_verify_hot']:.2f}x the time of hot `verify` of the same records.",
        "",
    ]
    lines += ["- " + target_line(target) for target in report["targets"]]
    return "\n".join(lines) + "\n"


def group_commit_table(report: dict[str, Any]) -> str:
    """Durable emit throughput from ``group_commit.json``: per thread count against the raw sync, and batches."""
    cases = {case["name"]: case for case in report["cases"]}
    machine = report["machine"]
    vs_raw, vs_singles = report["ratio_vs_raw_same_threads"], report["batch_ratio_vs_single_durable_emits"]
    threads = list(vs_raw)
    lines = [
        f"`{report['command']['python']}`, {report['date_utc'][:10]}, {report['events_per_case']:,} durable "
        f"events per case, median of {report['rounds']} interleaved round(s), {machine['cpus_usable']} CPUs, "
        f"load average at start {machine['load_average_at_start'][0]}:",
        "",
        "| durable `emit_trade`, threads | " + " | ".join(threads) + " |",
        "|---|" + "--:|" * len(threads),
        "| events/s | "
        + " | ".join(f"{cases[f'emit_trade_durable_{t}t']['events_per_s']:,.0f}" for t in threads) + " |",
        "| raw write + `fdatasync` per event, same threads | "
        + " | ".join(f"{cases[f'raw_write_fdatasync_{t}t']['events_per_s']:,.0f}" for t in threads) + " |",
        "| ours / raw | " + " | ".join(f"{vs_raw[t]:.2f}x" for t in threads) + " |",
        "",
        "| `emit_many` of durable trades, batch size | events/s | / single durable `emit_trade` |",
        "|---|--:|--:|",
    ]
    lines += [f"| {b} | {cases[f'emit_many_durable_batch_{b}']['events_per_s']:,.0f} | {ratio:.2f}x |"
              for b, ratio in vs_singles.items()]
    lines.append("")
    lines += ["- " + target_line(target) for target in report["targets"]]
    return "\n".join(lines) + "\n"


_EMIT_CASES = (
    ("emit_param_change", "`emit_param_change` (validated, chained, hashed, appended)"),
    ("hand_floor", "hand-written floor (same checks, same bytes, chained, hashed, one `os.write`)"),
    ("pydantic_floor", "the pydantic floor (validate + serialize + hash + write, no chain)"),
    ("structlog_json", "structlog -> JSON file"),
    ("logging_json", "stdlib logging + JSON formatter"),
    ("raw_write", "raw `os.write` of the same line"),
    ("emit_trade_durable", "durable `emit_trade`"),
    ("raw_write_fdatasync", "raw `os.write` + `fdatasync`"),
)


def emit_latency_table(report: dict[str, Any]) -> str:
    """Per-event latency from ``emit_latency.json``: our emits beside every reference of the same run."""
    cases, ratios, events = report["cases"], report["ratios"], report["events"]
    lines = [
        f"`{report['command']['make'] or report['command']['python']}`, {report['date_utc'][:10]}, "
        f"{events['non_durable']:,} non-durable and {events['durable']:,} durable events per case, "
        f"{report['machine']['cpus_usable']} CPUs, {report['machine']['filesystem']}:",
        "",
        "| case | p50 | p99 | events/s |",
        "|---|--:|--:|--:|",
    ]
    for name, label in _EMIT_CASES:
        if name in cases:
            case = cases[name]
            lines.append(f"| {label} | {case['p50_us']:.1f} us | {case['p99_us']:.1f} us | "
                         f"{case['events_per_s']:,.0f} |")
    lines += ["", "| ratio | p50 | p99 |", "|---|--:|--:|"]
    lines += [f"| {pair.replace('/', ' / ')} | {values['p50']:.2f}x | {values['p99']:.2f}x |"
              for pair, values in ratios.items()]
    lines.append("")
    lines += ["- " + target_line(target) for target in report["targets"]]
    return "\n".join(lines) + "\n"


#: Table name -> (results file, renderer of its JSON report).
TABLES: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "workbench": ("workbench.json", readme_table),
    "convert": ("convert.json", convert_table),
    "group_commit": ("group_commit.json", group_commit_table),
    "emit_latency": ("emit_latency.json", emit_latency_table),
    "verify": ("verify.json", verify_table),
    "bundle": ("bundle.json", bundle_table),
    "bulk": ("bulk.json", bulk_table),
    "observer": ("observer_overhead.json", observer_table),
    "observer_stages": ("observer_stages.json", observer_stages_table),
    "spark": ("spark.json", spark_table),
}


def render(text: str, results: Path = RESULTS_DIR) -> str:
    """``text`` (the README) with every marked table rendered again from ``results``."""
    for name, (file, renderer) in TABLES.items():
        report = json.loads((results / file).read_text(encoding="utf-8"))
        pattern = re.compile(rf"^( *)(<!-- results:{name} -->\n).*?^( *<!-- /results:{name} -->)", re.S | re.M)
        if not pattern.search(text):
            raise SystemExit(f"README.md has no <!-- results:{name} --> ... <!-- /results:{name} --> block")

        def block(match: re.Match[str], report: dict[str, Any] = report,
                  renderer: Callable[[dict[str, Any]], str] = renderer) -> str:
            indent = match.group(1)  # the table sits in a list item: indented as its markers are
            table = "".join(indent + line if line.strip() else line for line in renderer(report).splitlines(True))
            return indent + match.group(2) + table + match.group(3)

        text = pattern.sub(block, text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.readme", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when README.md is stale")
    args = parser.parse_args(argv)
    text = README.read_text(encoding="utf-8")
    updated = render(text)
    if args.check:
        if updated != text:
            print("README.md's benchmark tables differ from benchmarks/results: run python -m benchmarks.readme",
                  file=sys.stderr)
            return 1
        return 0
    README.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
