"""``verify(jobs=N)`` and ``verify_cold(jobs=N)``: the same report as one process, clean or tampered.

Files are verified in worker processes and stitched at their boundaries in the parent (issue 18).
Every case here compares the whole report (failures in order, streams, recovered torn lines,
retired files) of ``jobs=1`` with ``jobs=3`` forced onto the worker path (the size threshold set
to 0), and checks that the worker path was really taken.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from test_cold_attacks import DAYS, HOUR, JAN_5, MODES, Trail, make_trail, write_days
from test_tamper import read_lines, rewrite
from test_tamper_battery import ATTACKS, clone, damage, templates  # noqa: F401

import audit_core.cold.cold_verify as cold_verify
import audit_core.hot._verify_jobs as verify_jobs
import audit_core.hot.verifier as verifier
from audit_core.cli import main
from audit_core.hot.verifier import verify
from audit_core.trust import jobs as jobs_module
from audit_core.trust.report import FailureKind
from audit_core.verification import verify_trail

HOT_ATTACKS = sorted(name for name in ATTACKS if name.startswith("hot_"))


@pytest.fixture
def workers_always(monkeypatch) -> list[int]:
    """Force the worker path for any trail; the list counts the times it was taken (hot and cold)."""
    monkeypatch.setattr(jobs_module, "PARALLEL_MIN_BYTES", 0)
    taken: list[int] = []
    original = verifier.verify_streams

    def spy(*args, **kwargs):
        taken.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(verifier, "verify_streams", spy)
    run_tasks = cold_verify.run_tasks

    def counted_run(*args, **kwargs):
        taken.append(2)
        return run_tasks(*args, **kwargs)

    monkeypatch.setattr(cold_verify, "run_tasks", counted_run)
    verify_file = verify_jobs.verify_file

    def again(*args, **kwargs):  # a file whose boundary did not stitch, verified again in the parent
        taken.append(3)
        return verify_file(*args, **kwargs)

    monkeypatch.setattr(verify_jobs, "verify_file", again)
    return taken


def both(trail: Trail) -> tuple[dict, dict]:
    one = verify_trail(trail.base, hmac_key=trail.hmac_key, public_key=trail.public_key, jobs=1).to_dict()
    many = verify_trail(trail.base, hmac_key=trail.hmac_key, public_key=trail.public_key, jobs=3).to_dict()
    return one, many


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("attack", [*HOT_ATTACKS, "clean_recovered_torn_line", "clean_as_built"])
def test_tamper_battery_reports_the_same_with_workers(
    attack, mode, templates, tmp_path, workers_always, crash  # noqa: F811
):
    trail = clone(templates[mode], tmp_path / "trail")
    if not damage(trail, attack, crash):
        return
    one, many = both(trail)
    if len(trail.hot_files()) > 1:  # one file alone is never worth a pool
        assert 1 in workers_always, "the hot worker path was not taken"
    assert many == one
    if attack.startswith("clean"):
        assert one["ok"], one


def test_cold_entries_are_checked_in_workers_with_the_same_report(templates, tmp_path, workers_always):  # noqa: F811
    trail = clone(templates["signed"], tmp_path / "trail")
    trail.convert()
    one, many = both(trail)
    assert 2 in workers_always, "the cold worker path was not taken"
    assert one["ok"] and many == one


# --- boundaries between files: a stream of six days, damaged where files meet ----------------------


@pytest.fixture(scope="module")
def six_days(tmp_path_factory) -> Trail:
    trail = make_trail(tmp_path_factory.mktemp("six-days"), "hmac")
    write_days(trail.config, start=JAN_5 + DAYS * 24 * HOUR)  # a second process carries the stream on
    assert len(trail.hot_files()) == 2 * DAYS
    return trail


def first_lines_dropped(files: list[Path]) -> None:
    rewrite(files[2], read_lines(files[2])[1:])


def last_line_dropped(files: list[Path]) -> None:
    rewrite(files[1], read_lines(files[1])[:-1])


def middle_file_deleted(files: list[Path]) -> None:
    files[2].unlink()
    files[2].with_name(files[2].name + ".seal").unlink(missing_ok=True)


def files_swapped(files: list[Path]) -> None:
    one, two = files[1].read_bytes(), files[2].read_bytes()
    files[1].write_bytes(two)
    files[2].write_bytes(one)


def torn_end_of_a_middle_file(files: list[Path]) -> None:
    lines = read_lines(files[1])
    rewrite(files[1], [*lines[:-1], lines[-1][:30]])


def first_line_garbage(files: list[Path]) -> None:
    rewrite(files[3], [b"not json\n", *read_lines(files[3])[1:]])


def ts_recorded_backwards_at_a_boundary(files: list[Path]) -> None:
    """The next file's first record recorded long before the previous file's last (checksum not fixed)."""
    lines = read_lines(files[2])
    first = lines[0]
    start = first.index(b'"ts_recorded":') + len(b'"ts_recorded":')
    end = first.index(b",", start)
    rewrite(files[2], [first[:start] + b"1" + first[end:], *lines[1:]])


BOUNDARY_DAMAGE: list[Callable[[list[Path]], None]] = [
    first_lines_dropped, last_line_dropped, middle_file_deleted, files_swapped, torn_end_of_a_middle_file,
    first_line_garbage, ts_recorded_backwards_at_a_boundary,
]


def _main_stream(trail: Trail) -> list[Path]:
    return trail.hot_files()


@pytest.mark.parametrize("damage", BOUNDARY_DAMAGE, ids=lambda f: f.__name__)
def test_damage_at_file_boundaries_reports_the_same_with_workers(damage, six_days, tmp_path, workers_always):
    shutil.copytree(six_days.base, tmp_path / "trail")
    trail = Trail(tmp_path / "trail", "hmac", six_days.config, six_days.hmac_key, None, None)
    files = _main_stream(trail)
    for path in files:
        path.chmod(0o644)
    damage(files)
    one = verify(trail.base, trail.hmac_key, jobs=1)
    many = verify(trail.base, trail.hmac_key, jobs=3)
    assert 1 in workers_always
    assert 3 in workers_always, "a damaged boundary must be verified again from the real state"
    assert not one.ok, "the damage must be detected"
    assert many.to_dict() == one.to_dict()


def test_clean_six_days_verify_in_workers(six_days, workers_always):
    one = verify(six_days.base, six_days.hmac_key, jobs=1)
    many = verify(six_days.base, six_days.hmac_key, jobs=2)
    assert 1 in workers_always and one.ok and one.records > 0
    assert 3 not in workers_always, "every boundary of a clean trail stitches"
    assert many.to_dict() == one.to_dict()


def test_the_ts_recorded_boundary_case_is_reported_as_backwards(six_days, tmp_path, workers_always):
    """The stitch must not accept a first record recorded before the previous file's last."""
    shutil.copytree(six_days.base, tmp_path / "trail")
    files = _main_stream(Trail(tmp_path / "trail", "hmac", six_days.config, six_days.hmac_key, None, None))
    files[2].chmod(0o644)
    ts_recorded_backwards_at_a_boundary(files)
    many = verify(tmp_path / "trail", six_days.hmac_key, jobs=3)
    kinds = {(Path(f.file).name, f.line, f.kind) for f in many.failures}
    assert (files[2].name, 1, FailureKind.TS_RECORDED_BACKWARDS) in kinds


# --- the size threshold and the argument ---------------------------------------------------------


def test_a_small_trail_starts_no_workers(six_days, monkeypatch):
    called: list[int] = []
    monkeypatch.setattr(verifier, "verify_streams", lambda *a, **k: called.append(1))
    assert verify(six_days.base, six_days.hmac_key, jobs=4).ok
    assert not called


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "2"])
def test_jobs_must_be_a_positive_whole_number(bad, six_days):
    with pytest.raises(ValueError, match="jobs must be a positive whole number"):
        verify(six_days.base, six_days.hmac_key, jobs=bad)
    with pytest.raises(ValueError, match="jobs must be a positive whole number"):
        verify_trail(six_days.base, six_days.hmac_key, jobs=bad)


def test_cli_takes_jobs(six_days, capsys, monkeypatch, workers_always):
    monkeypatch.setenv("SIX_DAYS_KEY", six_days.hmac_key.decode())
    assert main(["verify", str(six_days.base), "--hmac-key-env", "SIX_DAYS_KEY", "--jobs", "2"]) == 0
    assert workers_always
    with pytest.raises(SystemExit) as usage:
        main(["verify", str(six_days.base), "--jobs", "0"])
    assert usage.value.code == 2
    assert "expected an integer from 1" in capsys.readouterr().err


def test_a_single_threaded_process_forks_its_workers_and_gets_the_same_report(six_days):
    """In pytest DuckDB's threads make the workers fresh interpreters; a plain script forks them."""
    code = """
import sys
from pathlib import Path
from audit_core.trust import jobs
jobs.PARALLEL_MIN_BYTES = 0
assert jobs._single_threaded()  # so its workers are forked
from audit_core.hot.verifier import verify
key = sys.argv[2].encode()
one, many = verify(Path(sys.argv[1]), key, jobs=1), verify(Path(sys.argv[1]), key, jobs=2)
assert one.ok and len(one.files) > 1, one.to_text()
print("same" if many.to_dict() == one.to_dict() else "different")
"""
    done = subprocess.run([sys.executable, "-c", code, str(six_days.base), six_days.hmac_key.decode()],
                          capture_output=True, text=True, check=False)
    assert done.stdout.strip() == "same", done.stderr


@pytest.mark.parametrize("forked", [True, False])
def test_run_tasks_keeps_task_order_and_reports_a_failing_worker(forked, monkeypatch):
    monkeypatch.setattr(jobs_module, "_single_threaded", lambda: forked)
    assert jobs_module.run_tasks(int, ["3", "10", "7", "1"], 2, [1, 9, 5, 2]) == [3, 10, 7, 1]
    assert jobs_module.run_tasks(int, [], 2, []) == []
    with pytest.raises((ValueError, RuntimeError)):
        jobs_module.run_tasks(int, ["1", "not a number"], 2, [1, 1])


def _pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def _fails_in(where: tuple[int, bool]) -> int:
    """Sleeps a little (so every worker takes a task), then fails in (True) or outside (False) process ``where[0]``."""
    parent, in_parent = where
    time.sleep(0.05)
    if (os.getpid() == parent) == in_parent:
        raise ValueError(f"failed in {os.getpid()}")
    return 0


def test_a_forking_process_deals_each_task_to_the_next_free_worker(monkeypatch):
    """With fork, each process (this one among them) takes the next task, heaviest first, when it ends one: the
    worker held by a long task takes no other, whatever the weights said (dealt by weight beforehand, it would)."""
    monkeypatch.setattr(jobs_module, "_single_threaded", lambda: True)
    pids = jobs_module.run_tasks(_pid_after, [1.0, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01], 2, [7, 6, 5, 4, 3, 2, 1])
    assert set(pids) == {os.getpid(), *pids} and len(set(pids)) == 2, pids
    assert pids[0] not in pids[1:], pids  # the long task's worker was busy while the other took the rest


def test_a_forking_process_reports_its_own_error_and_its_childrens(monkeypatch):
    monkeypatch.setattr(jobs_module, "_single_threaded", lambda: True)
    # Twelve tasks of 50 ms for three workers: each worker takes some before the others could end them all.
    tasks = [(os.getpid(), True)] * 12
    with pytest.raises(ValueError):  # the parent's own task failed: its error, the children killed and reaped
        jobs_module.run_tasks(_fails_in, tasks, 3, [1] * 12)
    tasks = [(os.getpid(), False)] * 12
    with pytest.raises(RuntimeError, match="worker failed"):  # a child's task failed
        jobs_module.run_tasks(_fails_in, tasks, 3, [1] * 12)
    assert jobs_module.run_tasks(int, ["5"], 4, [1]) == [5]  # one task: no child at all


def test_a_forking_process_takes_tasks_in_runs_beyond_what_its_pipe_holds(monkeypatch):
    """More tasks than numbers fit the pipe unread: they are taken a run at a time, each once, results in order."""
    monkeypatch.setattr(jobs_module, "_single_threaded", lambda: True)
    monkeypatch.setattr(jobs_module, "_PIPE_RUNS", 3)
    tasks = [str(n) for n in range(20)]
    assert jobs_module.run_tasks(int, tasks, 3, list(range(20))) == list(range(20))
