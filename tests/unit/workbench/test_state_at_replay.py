"""state_at agrees with a plain-Python replay of the emitted parameter changes at any instant (property-based).

The trail is a generated one (a ``control`` stream of changes by their owners) plus an ``ops``
stream of overrides: an operator changing other components' parameters (``owner`` set), some at
exactly the nanosecond of a controller's change. The replay knows nothing of the workbench: it
walks the emitted events in (ts_event, stream, sequence) order and keeps, per (owner, parameter),
the last change at or before the instant.
"""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit_core import AuditConfig, AuditEventEmitter, ParameterChangeEvent
from audit_core.cold.converter import ParquetConverter
from benchmarks.trail_gen import PARAMETERS, TRADER, FakeClock, generate_trail
from workbench import _parameter_index, open_trail, state_at
from workbench._time import utc_day

S = 1_000_000_000
OVERRIDE_VALUES = (8.0, 3, "MANUAL \"hold\" é", True, False, {"momentum": 1.0}, [1, 2], None)


@pytest.fixture(scope="module", params=["split", "cold"])
def replayed(request, tmp_path_factory):
    """A generated trail plus operator overrides: "split", its first day converted and the rest left hot;
    "cold", five days all converted, so that ``state_at`` reads by the manifests' parameter index."""
    return _replayed(tmp_path_factory, days=2, convert_all=False) if request.param == "split" else _replayed(
        tmp_path_factory, days=5, convert_all=True)


def _replayed(tmp_path_factory, *, days: int, convert_all: bool):
    generated = generate_trail(tmp_path_factory.mktemp("replay") / "trail", events=1_200, days=days, seed=23,
                               keep_events=True, convert=False)
    changes = [(stream, event) for stream, event in generated.emitted if isinstance(event, ParameterChangeEvent)]
    rng = random.Random(7)
    ties = rng.sample([event.ts_event for _, event in changes], 15)
    anywhere = [rng.randrange(generated.first_ts, generated.last_ts) for _ in range(25)]
    clock = FakeClock(generated.first_ts)
    ops = AuditEventEmitter(AuditConfig(base_path=generated.base_path, trader_id=TRADER, stream_id="ops",
                                        sync_writes=False), clock=clock)
    with ops:
        for ts in sorted(ties + anywhere + ties[:3]):  # three instants get two overrides in one stream
            clock.now = ts
            name = rng.choice(sorted(PARAMETERS))
            event = ops.emit_param_change("ops_console", name, None, rng.choice(OVERRIDE_VALUES), None,
                                          owner=PARAMETERS[name][0], ts_event=ts)
            changes.append((f"{TRADER}.ops", event))
    converter = ParquetConverter(generated.hot_path, generated.cold_path)
    for path in sorted(generated.hot_path.glob("*.jsonl" if convert_all else "*.2026-01-01.*.jsonl")):
        assert converter.convert_file(path).converted
    return open_trail(generated.base_path), changes, generated


def in_order(changes):
    return sorted(changes, key=lambda item: (item[1].ts_event, item[0], item[1].sequence))


def replay(changes, at: int) -> dict[tuple[str, str], tuple]:
    """(owner, parameter) -> (value, source, reason) of the last change at or before ``at``."""
    state: dict[tuple[str, str], tuple] = {}
    for _, change in in_order(changes):
        if change.ts_event <= at:
            state[(change.owner or change.source, change.param_name)] = (
                change.new_value, change.source, change.trigger_reason)
    return state


def replay_by_source(changes, at: int) -> dict[tuple[str, str, str], tuple]:
    """(owner, source, parameter) -> (value, in force) of each source's last change at or before ``at``."""
    in_force, per_source = {}, {}
    for _, change in in_order(changes):
        if change.ts_event <= at:
            owner = change.owner or change.source
            in_force[(owner, change.param_name)] = change
            per_source[(owner, change.source, change.param_name)] = change
    return {key: (change.new_value, in_force[(key[0], key[2])] is change) for key, change in per_source.items()}


def typed(value) -> tuple:
    """(value_num, value_text, value_bool, value_json decoded) of a JSON value, worked out in Python."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return (float(value) if number else None, value if isinstance(value, str) else None,
            value if isinstance(value, bool) else None, value if isinstance(value, (list, dict)) else None)


def instants(data, generated, changes) -> int:
    exact = st.sampled_from([change.ts_event for _, change in changes])
    near = exact.flatmap(lambda ts: st.sampled_from([ts - 1, ts + 1]))
    anywhere = st.integers(generated.first_ts - 3600 * S, generated.last_ts + 3600 * S)
    return data.draw(st.one_of(exact, near, anywhere), label="at")


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_state_at_is_the_value_in_force_of_the_replay(replayed, data):
    trail, changes, generated = replayed
    at = instants(data, generated, changes)
    rows = state_at(trail, at).to_pyarrow().to_pylist()
    got = {(row["owner"], row["param_name"]): (json.loads(row["value"]) if row["value"] is not None else None,
                                               row["source"], row["trigger_reason"]) for row in rows}
    assert got == replay(changes, at)
    assert len(rows) == len(got)  # one row per (owner, parameter)
    for row in rows:
        decoded = None if row["value_json"] is None else json.loads(row["value_json"])
        assert (row["value_num"], row["value_text"], row["value_bool"], decoded) == typed(got[(
            row["owner"], row["param_name"])][0])


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_by_source_is_each_sources_last_change_marking_the_one_in_force(replayed, data):
    trail, changes, generated = replayed
    at = instants(data, generated, changes)
    got = {(row["owner"], row["source"], row["param_name"]): (
        json.loads(row["value"]) if row["value"] is not None else None, row["in_force"])
        for row in state_at(trail, at, by_source=True).to_pyarrow().to_pylist()}
    assert got == replay_by_source(changes, at)


def test_the_trail_has_overrides_ties_and_is_split_between_cold_and_hot(replayed):
    trail, changes, _ = replayed
    assert len(changes) > 90
    overrides = [change for _, change in changes if change.owner is not None]
    owned = {change.ts_event for _, change in changes if change.owner is None}
    assert len(overrides) == 43 and sum(change.ts_event in owned for change in overrides) >= 15
    late = max(change.ts_event for _, change in changes)
    assert {row["source"] for row in state_at(trail, late).to_pyarrow().to_pylist()} >= {"ops_console"}
    # state_at reads the last day (and the hot rows' days) whole, and before it only each parameter's last change.
    reading = _parameter_index.plan(trail, late)
    hot_days = {utc_day(trail.hot.first_ts), utc_day(trail.hot.last_ts)} if trail.hot.rows else set()
    assert reading is not None and reading.whole_days == {utc_day(late), *hot_days}
    assert reading.instants and utc_day(late) not in reading.instant_days
