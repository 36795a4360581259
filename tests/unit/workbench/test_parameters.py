"""The value in force: an operator overrides a controller's parameter, the controller resets it.

Built through ``AuditedComponent.set_parameter(..., source="ops_console")``, as a desk would; every
expected value is written out by hand.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from audit_core import AuditConfig, AuditEventEmitter
from audit_core.cold.converter import ParquetConverter
from audit_core.integrations.audited import AuditedComponent, AuditedParameter, reason
from benchmarks.trail_gen import FakeClock
from workbench import (
    TrailNotVerifiedWarning,
    UnknownValueWarning,
    WorkbenchInputError,
    open_trail,
    parameter_history,
    state_at,
)
from workbench.parameters import BY_SOURCE_COLUMNS, HISTORY_COLUMNS, STATE_COLUMNS, decode_values

S, MINUTE = 1_000_000_000, 60 * 1_000_000_000
T0 = 1_767_623_520 * S  # 2026-01-05 14:32:00 UTC
OVERRIDE, RESET = T0 + 10 * MINUTE, T0 + 58 * MINUTE  # the controller resets it 48 minutes after the override


class MetaController(AuditedComponent):
    risk_multiplier = AuditedParameter(event_type="param.risk_change", bounds=(0.25, 1.0))
    regime = AuditedParameter()
    weights = AuditedParameter(event_type="param.weight_change")
    hedged = AuditedParameter()


class Sizer(AuditedComponent):
    risk_multiplier = AuditedParameter(event_type="param.risk_change")  # the same name, another owner


def write(base, clock: FakeClock) -> None:
    with AuditEventEmitter(AuditConfig(base_path=base, trader_id="T-1", stream_id="control", sync_writes=False),
                           clock=clock) as audit:
        meta, sizer = MetaController(audit, "meta_controller"), Sizer(audit, "sizer")
        clock.now = T0
        meta.risk_multiplier = 1.0
        meta.regime = "VENTRAL"
        meta.weights = {"momentum": 0.6, "breakout": 0.4}
        meta.hedged = False
        sizer.risk_multiplier = 0.3
        clock.now = OVERRIDE
        meta.set_parameter("risk_multiplier", 8.0, source="ops_console")  # no reason: the incident
        meta.set_parameter("regime", 'DORSAL "manual" é', reason="desk call", source="ops_console")
        clock.now = RESET
        with reason("override reverted"):
            meta.risk_multiplier = 0.5
            meta.hedged = True
        clock.now = RESET + 1
        sizer.risk_multiplier = 0.35
        sizer.risk_multiplier = 0.4  # a second change at the same nanosecond: the later one holds


@pytest.fixture(params=["hot", "cold"])
def trail(request, tmp_path):
    base = tmp_path / "trail"
    write(base, FakeClock(T0))
    if request.param == "cold":  # closing the emitter sealed its file
        assert [result.converted for result in ParquetConverter(base / "hot", base / "cold").convert_all()] == [True]
    trail = open_trail(base)
    assert trail.hot.rows == (11 if request.param == "hot" else 0)
    return trail


def rows(table, *columns):
    return [tuple(row[c] for c in columns) for row in table.to_pyarrow().to_pylist()]


class TestValueInForce:
    def test_before_during_and_after_the_override(self, trail):
        risk = dict(param_name="risk_multiplier", owner="meta_controller")
        assert rows(state_at(trail, OVERRIDE - 1, **risk), "value_num", "source", "trigger_reason") == [
            (1.0, "meta_controller", "initial value")]
        assert rows(state_at(trail, OVERRIDE, **risk), "value_num", "source", "trigger_reason", "ts_event") == [
            (8.0, "ops_console", None, OVERRIDE)]  # a change at exactly the instant counts
        assert rows(state_at(trail, RESET - 1, **risk), "value_num", "source") == [(8.0, "ops_console")]
        assert rows(state_at(trail, RESET, **risk), "value_num", "source", "trigger_reason") == [
            (0.5, "meta_controller", "override reverted")]

    def test_one_row_per_owner_and_parameter_with_every_column(self, trail):
        state = state_at(trail, RESET + 1)
        assert tuple(state.columns) == STATE_COLUMNS
        assert rows(state, "owner", "param_name", "value", "source") == [
            ("meta_controller", "hedged", "true", "meta_controller"),
            ("meta_controller", "regime", '"DORSAL \\"manual\\" é"', "ops_console"),
            ("meta_controller", "risk_multiplier", "0.5", "meta_controller"),
            ("meta_controller", "weights", '{"momentum":0.6,"breakout":0.4}', "meta_controller"),
            ("sizer", "risk_multiplier", "0.4", "sizer"),
        ]

    def test_typed_values(self, trail):
        state = {row["param_name"] + "@" + row["owner"]: row
                 for row in state_at(trail, RESET + 1).to_pyarrow().to_pylist()}
        kinds = lambda row: (row["value_num"], row["value_text"], row["value_bool"], row["value_json"])  # noqa: E731
        assert kinds(state["risk_multiplier@meta_controller"]) == (0.5, None, None, None)
        assert kinds(state["regime@meta_controller"]) == (None, 'DORSAL "manual" é', None, None)
        assert kinds(state["hedged@meta_controller"]) == (None, None, True, None)
        weights = state["weights@meta_controller"]
        assert kinds(weights)[:3] == (None, None, None)
        assert json.loads(weights["value_json"]) == {"momentum": 0.6, "breakout": 0.4}

    def test_source_filters_the_values_in_force_it_set(self, trail):
        # During the override: both of the operator's changes hold. After the reset: only the regime.
        assert rows(state_at(trail, RESET - 1, source="ops_console"), "param_name") == [
            ("regime",), ("risk_multiplier",)]
        assert rows(state_at(trail, RESET, source="ops_console"), "param_name", "value_text") == [
            ("regime", 'DORSAL "manual" é')]

    def test_by_source_breaks_the_value_down_and_marks_the_one_in_force(self, trail):
        breakdown = state_at(trail, RESET - 1, param_name="risk_multiplier", by_source=True)
        assert tuple(breakdown.columns) == BY_SOURCE_COLUMNS
        assert rows(breakdown, "owner", "source", "value_num", "in_force") == [
            ("meta_controller", "meta_controller", 1.0, False),
            ("meta_controller", "ops_console", 8.0, True),
            ("sizer", "sizer", 0.3, True),
        ]
        after = state_at(trail, RESET + 1, param_name="risk_multiplier", owner="meta_controller", by_source=True)
        assert rows(after, "source", "value_num", "in_force") == [
            ("meta_controller", 0.5, True), ("ops_console", 8.0, False)]

    def test_nothing_before_the_first_change(self, trail):
        assert rows(state_at(trail, T0 - 1), "param_name") == []
        with pytest.warns(UnknownValueWarning, match=r"owner='nobody' matches nothing in this trail"):
            assert rows(state_at(trail, RESET, owner="nobody"), "param_name") == []

    @pytest.mark.parametrize(("kwargs", "message"), [
        ({"owner": 5}, r"owner=5"), ({"param_name": ["k", None]}, r"param_name"), ({"ts": "yesterday"}, r"ts=")])
    def test_bad_arguments_are_named(self, trail, kwargs, message):
        arguments = {"ts": RESET, **kwargs}
        with pytest.raises(WorkbenchInputError, match=message):
            state_at(trail, arguments.pop("ts"), **arguments)


class TestHistory:
    def test_owner_source_and_typed_values_of_every_change(self, trail):
        history = parameter_history(trail, "risk_multiplier", owner="meta_controller")
        assert tuple(history.columns) == HISTORY_COLUMNS
        assert rows(history, "owner", "source", "old_value_num", "new_value_num", "trigger_reason") == [
            ("meta_controller", "meta_controller", None, 1.0, "initial value"),
            ("meta_controller", "ops_console", 1.0, 8.0, None),
            ("meta_controller", "meta_controller", 8.0, 0.5, "override reverted"),
        ]
        assert rows(parameter_history(trail, "risk_multiplier", owner="sizer"), "new_value") == [
            ("0.3",), ("0.35",), ("0.4",)]
        assert rows(parameter_history(trail, "regime", "ops_console"), "old_value_text", "new_value_text") == [
            ("VENTRAL", 'DORSAL "manual" é')]


class TestDecodeValues:
    def test_json_text_becomes_python_values_on_request(self, trail):
        state = state_at(trail, RESET + 1)
        frame = decode_values(state)
        assert dict(zip(frame["param_name"] + "@" + frame["owner"], frame["value"], strict=True)) == {
            "hedged@meta_controller": True, "regime@meta_controller": 'DORSAL "manual" é',
            "risk_multiplier@meta_controller": 0.5, "weights@meta_controller": {"momentum": 0.6, "breakout": 0.4},
            "risk_multiplier@sizer": 0.4}
        assert state.to_pandas()["value"].tolist()[0] == "true"  # the default frame keeps JSON text

    def test_old_and_new_values_and_nulls(self, trail):
        history = parameter_history(trail, "risk_multiplier", owner="meta_controller").to_pandas()
        decoded = decode_values(history)
        assert decoded["old_value"].tolist() == [None, 1.0, 8.0]
        assert decoded["new_value"].tolist() == [1.0, 8.0, 0.5]
        assert history["new_value"].tolist() == ["1.0", "8.0", "0.5"]  # the input frame is not changed
        only_new = decode_values(history, columns=["new_value"])
        assert only_new["old_value"].tolist() == history["old_value"].tolist()

    def test_an_unknown_column_is_named(self):
        with pytest.raises(WorkbenchInputError, match=r"columns=\['valu'\]: \['valu'\] not in"):
            decode_values(pd.DataFrame({"value": ["1"]}), columns=["valu"])


class TestParameterIndex:
    """``state_at`` reads by the manifests' parameter index where it can vouch, and whole days where it cannot."""

    @staticmethod
    def strip_index(cold, day: str) -> None:
        """Entries as an older converter wrote them: no ``parameters`` on the outputs of ``day``."""
        from audit_core.cold.manifest import MANIFEST_DIR, read_manifest, update_cold_root, write_entry

        for path in sorted((cold / MANIFEST_DIR).glob("*.json")):
            entry = read_manifest(path)
            for output in entry["outputs"]:
                if f"/day={day}/" in output["path"]:
                    output.pop("parameters")
            write_entry(cold, {k: v for k, v in entry.items() if k != "manifest_checksum"}, None)
        update_cold_root(cold, None)

    @staticmethod
    def full_scan(trail, at: int, monkeypatch) -> list[dict]:
        from workbench import _parameter_index

        with monkeypatch.context() as patch:
            patch.setattr(_parameter_index, "plan", lambda trail, at: None)
            return state_at(trail, at).to_pyarrow().to_pylist()

    def test_days_without_an_index_are_read_whole_and_the_answers_stay_right(self, generated_trail, monkeypatch):
        from workbench import _parameter_index
        from workbench._time import utc_day

        trail = open_trail(generated_trail.base_path)
        late = generated_trail.last_ts
        indexed = _parameter_index.plan(trail, late)
        assert indexed is not None and indexed.whole_days == {utc_day(late)} and indexed.instants
        before = state_at(trail, late).to_pyarrow().to_pylist()
        assert before == self.full_scan(trail, late, monkeypatch) and len(before) >= 5
        first_day = utc_day(generated_trail.first_ts)
        self.strip_index(generated_trail.cold_path, f"{first_day.day:02d}")
        # The same Trail: the root changed, so the index is read again.
        unindexed = _parameter_index.plan(trail, late)
        assert unindexed is not None and unindexed.whole_days == {utc_day(late), first_day}
        for at in (generated_trail.first_ts + 3_600 * S, (generated_trail.first_ts + late) // 2, late):
            assert state_at(trail, at).to_pyarrow().to_pylist() == self.full_scan(trail, at, monkeypatch)

    def test_a_store_without_a_root_is_read_whole(self, generated_trail):
        from workbench import _parameter_index

        (generated_trail.cold_path / "_root.json").unlink()
        trail = open_trail(generated_trail.base_path, verify=False)
        assert _parameter_index.plan(trail, generated_trail.last_ts) is None
        with pytest.warns(TrailNotVerifiedWarning):
            assert len(state_at(trail, generated_trail.last_ts).to_pyarrow()) >= 5

    def test_only_the_files_of_the_days_planned_are_read(self, generated_trail):
        import re

        from workbench import _parameter_index

        trail = open_trail(generated_trail.base_path)
        late = generated_trail.last_ts
        reading = _parameter_index.plan(trail, late)
        assert reading is not None
        days = reading.whole_days | reading.instant_days
        planned = [file for day in days for file in generated_trail.cold_path.glob(
            f"year={day.year}/month={day.month:02d}/day={day.day:02d}/*.parquet")]
        sql = str(trail.backend.compile(state_at(trail, late)))
        explained = trail.backend.con.execute("EXPLAIN ANALYZE " + sql).fetchall()[0][1]
        assert sum(int(n) for n in re.findall(r"Total Files Read: (\d+)", explained)) == len(planned) > 0

    def test_row_groups_without_parameter_changes_are_skipped_unread(self, generated_trail):
        """A day's trade and signal files are skipped by their row groups' ``event_type`` statistics: with
        their data pages overwritten (footers intact), ``state_at`` still answers, while a read of them fails."""
        import duckdb
        import pyarrow.parquet as pq

        from workbench._time import utc_day

        trail = open_trail(generated_trail.base_path)
        late = generated_trail.last_ts
        expected = state_at(trail, late).to_pyarrow().to_pylist()
        day = utc_day(late)
        skipped = []
        for path in sorted(generated_trail.cold_path.glob(
                f"year={day.year}/month={day.month:02d}/day={day.day:02d}/*.parquet")):
            metadata = pq.ParquetFile(path).metadata
            column = metadata.schema.to_arrow_schema().names.index("event_type")
            groups = [metadata.row_group(n).column(column).statistics for n in range(metadata.num_row_groups)]
            if all(stats.has_min_max and not stats.min <= "param." <= stats.max and not stats.min.startswith("param.")
                   for stats in groups):
                skipped.append(path)
        assert skipped, "no file of the day without parameter changes: the test would check nothing"
        for path in skipped:
            data = bytearray(path.read_bytes())
            footer = int.from_bytes(data[-8:-4], "little") + 8  # footer, its length and the closing magic
            data[4:-footer] = b"\xff" * (len(data) - footer - 4)
            path.write_bytes(bytes(data))
        assert state_at(trail, late).to_pyarrow().to_pylist() == expected and len(expected) >= 5
        with pytest.raises(duckdb.Error):  # the overwritten pages are unreadable: had they been read, it fails
            trail.backend.con.execute(f"SELECT sum(length(event_type)) FROM read_parquet('{skipped[0]}')").fetchall()
