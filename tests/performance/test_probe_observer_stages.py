"""probe_observer_stages: a tiny real run; the cut cases write nothing, and the stages add up.

No timing thresholds (machines are noisy): the shape of the report and its arithmetic only.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.probe_observer_stages import STAGES, main


def test_a_tiny_run_cuts_each_stage_and_its_figures_add_up(tmp_path: Path) -> None:
    assert main(["--fills", "100", "--rounds", "1", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "observer_stages.json").read_text(encoding="utf-8"))
    markdown = (tmp_path / "observer_stages.md").read_text(encoding="utf-8")
    assert markdown.startswith("# Ledgerline AuditObserver: where the backtest overhead goes")
    assert "python -m benchmarks.probe_observer_stages --fills 100 --rounds 1" in markdown

    stages = {stage["stage"]: stage for stage in report["stages"]}
    assert list(stages) == list(STAGES[1:])
    fills, records = report["fills"], report["records"]
    assert fills in (100, 101)  # plus on_stop's close-out fill when a position is open at the end
    # The cut cases dropped their batches: nothing reached the trail. The shipped observer wrote it all.
    assert stages["capture"]["records_written"] == stages["build"]["records_written"] == 0
    assert stages["observer"]["records_written"] == records > 3 * fills
    # Each stage's cost is its case's time less the case before it, so together they are the whole overhead.
    whole = (stages["observer"]["seconds"] - report["baseline_seconds"]) / records * 1e6
    rounding = len(stages) * 0.05  # each stage's figure is rounded to 0.1 us
    assert sum(stage["added_us_per_record"] for stage in stages.values()) == pytest.approx(whole, abs=rounding)
    for stage in stages.values():
        assert stage["ratio_to_baseline"] == round(stage["seconds"] / report["baseline_seconds"], 3)
    budget = (report["target_ratio"] - 1) * report["baseline_seconds"] / records * 1e6
    assert report["budget_us_per_record"] == pytest.approx(budget, abs=0.1)
