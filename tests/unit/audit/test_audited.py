"""Audited parameters: every change recorded once, with old/new and reason; no change, no record."""

from __future__ import annotations

import enum
import json
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit_core import AuditConfig, AuditEventEmitter, parse_record
from audit_core.errors import AuditConfigError
from audit_core.integrations.audited import (
    AuditedComponent,
    AuditedParameter,
    FrozenMapping,
    current_reason,
    freeze,
    reason,
    to_json_value,
)


class Regime(enum.StrEnum):
    VENTRAL = "VENTRAL"
    DORSAL = "DORSAL"


class Controller(AuditedComponent):
    risk_multiplier = AuditedParameter(event_type="param.risk_change", bounds=(0.25, 1.5))
    regime = AuditedParameter()
    weights = AuditedParameter(event_type="param.weight_change")
    curve = AuditedParameter()

    def __init__(self, audit: AuditEventEmitter, source: str = "meta") -> None:
        super().__init__(audit, source)
        self.risk_multiplier = 1.0
        self.regime = Regime.VENTRAL


def lines(base) -> list[bytes]:
    return [line for path in sorted((base / "hot").glob("*.jsonl")) for line in path.read_bytes().splitlines(True)]


def records(base) -> list[dict]:
    return [json.loads(line) for line in lines(base)]


@pytest.fixture
def audit(tmp_path):
    with AuditEventEmitter(AuditConfig(base_path=tmp_path, sync_writes=False)) as emitter:
        yield emitter


class TestChanges:
    def test_initial_values_are_recorded_as_such(self, audit, tmp_path):
        Controller(audit)
        audit.flush()
        first, second = records(tmp_path)
        assert (first["param_name"], first["old_value"], first["new_value"]) == ("risk_multiplier", None, 1.0)
        assert first["trigger_reason"] == "initial value" and first["event_type"] == "param.risk_change"
        assert (second["param_name"], second["new_value"]) == ("regime", "VENTRAL")

    def test_a_change_records_old_new_and_the_reason_in_context(self, audit, tmp_path):
        controller = Controller(audit)
        with reason("drawdown 12% > 10%"):
            controller.risk_multiplier = 0.5
            controller.regime = Regime.DORSAL
        audit.flush()
        risk, regime = records(tmp_path)[2:]
        assert (risk["old_value"], risk["new_value"], risk["trigger_reason"]) == (1.0, 0.5, "drawdown 12% > 10%")
        assert (regime["old_value"], regime["new_value"]) == ("VENTRAL", "DORSAL")
        assert regime["trigger_reason"] == "drawdown 12% > 10%"

    def test_same_value_records_nothing(self, audit, tmp_path):
        controller = Controller(audit)
        controller.risk_multiplier = 1.0
        controller.regime = Regime.VENTRAL
        audit.flush()
        assert len(records(tmp_path)) == 2 and controller.audited_changes == 2

    def test_type_change_is_a_change(self, audit, tmp_path):
        controller = Controller(audit)
        controller.risk_multiplier = 1  # int 1 == float 1.0, but the recorded value's type differs
        audit.flush()
        assert records(tmp_path)[-1]["new_value"] == 1 and controller.audited_changes == 3

    def test_no_reason_is_recorded_as_missing_not_dropped(self, audit, tmp_path):
        controller = Controller(audit)
        controller.risk_multiplier = 4.0
        audit.flush()
        last = records(tmp_path)[-1]
        assert last["new_value"] == 4.0 and last["trigger_reason"] is None

    def test_explicit_reason_and_actor(self, audit, tmp_path):
        controller = Controller(audit)
        with reason("outer"):
            controller.set_parameter("risk_multiplier", 0.8, reason="manual override", source="ops.jdoe")
            assert current_reason() == "outer"
        audit.flush()
        last = records(tmp_path)[-1]
        assert (last["source"], last["trigger_reason"]) == ("ops.jdoe", "manual override")
        assert last["owner"] == "meta"  # the controller's parameter, changed by someone else

    def test_owner_is_left_out_when_the_component_changes_its_own_parameter(self, audit, tmp_path):
        controller = Controller(audit)
        controller.risk_multiplier = 0.5
        controller.set_parameter("risk_multiplier", 0.75, reason="rebalance")
        controller.set_parameter("risk_multiplier", 1.0, reason="same actor named", source="meta")
        audit.flush()
        assert [("owner" in record, record["source"]) for record in records(tmp_path)][-3:] == [
            (False, "meta"), (False, "meta"), (False, "meta")]

    def test_nested_reasons_restore_the_outer_one(self):
        with reason("outer"):
            with reason("inner"):
                assert current_reason() == "inner"
            assert current_reason() == "outer"
        assert current_reason() is None

    def test_reasons_are_per_thread(self, audit, tmp_path):
        seen = []
        with reason("main thread"):
            thread = threading.Thread(target=lambda: seen.append(current_reason()))
            thread.start()
            thread.join()
        assert seen == [None]


class TestContainers:
    def test_dict_is_frozen_and_in_place_change_is_refused(self, audit, tmp_path):
        controller = Controller(audit)
        weights = {"momentum": 0.5, "mean_reversion": 0.5}
        controller.weights = weights
        weights["momentum"] = 0.9  # the caller's dict is not the audited value
        assert controller.weights["momentum"] == 0.5
        with pytest.raises(TypeError, match="assign a new mapping"):
            controller.weights["momentum"] = 0.9
        controller.weights = {**controller.weights, "momentum": 0.6}
        audit.flush()
        last = records(tmp_path)[-1]
        assert last["old_value"] == {"momentum": 0.5, "mean_reversion": 0.5}
        assert last["new_value"] == {"momentum": 0.6, "mean_reversion": 0.5}
        assert isinstance(controller.weights, FrozenMapping)

    def test_equal_mapping_records_nothing(self, audit, tmp_path):
        controller = Controller(audit)
        controller.weights = {"a": 1}
        controller.weights = {"a": 1}
        assert controller.audited_changes == 3

    def test_list_becomes_a_tuple(self, audit):
        controller = Controller(audit)
        controller.curve = [1, 2, 3]
        assert controller.curve == (1, 2, 3)
        with pytest.raises(AttributeError):
            controller.curve.append(4)  # type: ignore[attr-defined]

    def test_numpy_array_is_read_only_and_element_changes_are_caught(self, audit, tmp_path):
        controller = Controller(audit)
        controller.curve = np.array([0.1, 0.2])
        with pytest.raises(ValueError, match="read-only"):
            controller.curve[0] = 5.0
        controller.curve = np.array([0.1, 0.2])  # equal: nothing
        controller.curve = np.array([0.1, 0.3])
        audit.flush()
        assert controller.audited_changes == 4
        assert records(tmp_path)[-1]["old_value"] == [0.1, 0.2] and records(tmp_path)[-1]["new_value"] == [0.1, 0.3]


class TestCannotBeBypassed:
    def test_assigning_before_the_emitter_is_bound_is_an_error(self):
        class Careless(AuditedComponent):
            k = AuditedParameter()

            def __init__(self) -> None:
                self.k = 1.0  # forgot super().__init__

        with pytest.raises(AuditConfigError, match=r"Careless\.k is audited"):
            Careless()

    def test_a_value_that_cannot_be_recorded_is_not_stored(self, audit, tmp_path):
        controller = Controller(audit)
        with pytest.raises(TypeError, match="cannot be recorded"):
            controller.risk_multiplier = object()
        assert controller.risk_multiplier == 1.0

    def test_unknown_parameter_name(self, audit):
        with pytest.raises(AuditConfigError, match="no audited parameter 'risk'"):
            Controller(audit).set_parameter("risk", 1.0)

    def test_bounds_and_current_values(self, audit):
        controller = Controller(audit)
        assert Controller.parameter_bounds() == {"risk_multiplier": (0.25, 1.5)}
        assert controller.audited_parameters() == {"risk_multiplier": 1.0, "regime": Regime.VENTRAL}


@given(st.lists(st.tuples(st.sampled_from(["risk_multiplier", "regime", "weights"]), st.integers(0, 3)), max_size=40))
def test_replaying_the_trail_gives_the_component_state(tmp_path_factory, steps):
    base = tmp_path_factory.mktemp("replay")
    with AuditEventEmitter(AuditConfig(base_path=base, sync_writes=False)) as audit:
        controller = Controller(audit)
        expected_changes = 2
        for name, value in steps:
            new = {"risk_multiplier": float(value), "regime": list(Regime)[value % 2], "weights": {"a": value}}[name]
            before = controller.audited_parameters().get(name)
            if before != freeze(new) or type(before) is not type(freeze(new)):
                expected_changes += 1
            setattr(controller, name, new)
        final = {name: to_json_value(value) for name, value in controller.audited_parameters().items()}
    replayed: dict = {}
    events = [parse_record(line) for line in lines(base)]
    for event in events:
        assert replayed.get(event.param_name) == event.old_value  # type: ignore[attr-defined]
        replayed[event.param_name] = event.new_value  # type: ignore[attr-defined]
    assert len(events) == expected_changes
    assert replayed == final
