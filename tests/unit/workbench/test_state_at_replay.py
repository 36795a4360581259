"""state_at agrees with a replay of the emitted parameter changes at any instant (property-based)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit_core import ParameterChangeEvent
from benchmarks.trail_gen import generate_trail
from workbench import open_trail, state_at

S = 1_000_000_000


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    """A generated trail (last day left hot) and its parameter changes in emit order."""
    generated = generate_trail(tmp_path_factory.mktemp("replay") / "trail", events=1_200, days=2, seed=23,
                               keep_events=True, convert=False)
    from audit_core.converter import ParquetConverter

    converter = ParquetConverter(generated.hot_path, generated.cold_path)
    for path in sorted(generated.hot_path.glob("*.2026-01-01.*.jsonl")):
        converter.convert_file(path)
    changes = [event for _, event in generated.emitted if isinstance(event, ParameterChangeEvent)]
    return open_trail(generated.base_path), changes, generated


def replay(changes, at: int) -> dict[tuple[str, str], object]:
    state: dict[tuple[str, str], object] = {}
    for change in changes:  # one stream, emitted in (ts_event, sequence) order
        if change.ts_event <= at:
            state[(change.source, change.param_name)] = change.new_value
    return state


def instants(data, generated, changes) -> int:
    exact = st.sampled_from([change.ts_event for change in changes])
    near = exact.flatmap(lambda ts: st.sampled_from([ts - 1, ts + 1]))
    anywhere = st.integers(generated.first_ts - 3600 * S, generated.last_ts + 3600 * S)
    return data.draw(st.one_of(exact, near, anywhere), label="at")


@given(data=st.data())
def test_state_at_matches_the_replay(replayed, data):
    trail, changes, generated = replayed
    at = instants(data, generated, changes)
    got = {(row["source"], row["param_name"]): json.loads(row["value"])
           for row in state_at(trail, at).to_pyarrow().to_pylist()}
    assert got == replay(changes, at)


def test_the_trail_is_split_between_cold_and_hot(replayed):
    trail, changes, _ = replayed
    assert trail.hot.rows > 0 and len(changes) > 50
