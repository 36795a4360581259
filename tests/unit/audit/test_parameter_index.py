"""The manifest's parameter index: each output lists the parameters changed in it and the instant of each one's
last change there (``state_at`` reads by it); ``verify_cold`` derives it again and reports a difference.

Attacks, each in every trail mode where it applies: an index edited (a day left out, an instant moved) with the
entry authenticated again (what a holder of the key, or anyone on an unkeyed trail, can do) is found by
deriving it again from the rows; an index edited or removed without the key fails the entry's authentication.
"""

from __future__ import annotations

from typing import Any

import pytest
from manifest_store import HOUR, JAN_5, MODES, ManifestStore


class Store(ManifestStore):
    def write(self, audit: Any, now: list[int]) -> None:
        self.changes: list[tuple[str, str, int]] = []
        for i in range(12):  # two days; an override by another source; a heartbeat between
            now[0] = JAN_5 + i * 4 * HOUR + 7
            audit.emit_param_change("meta", "risk_multiplier", i / 10, (i + 1) / 10, "drawdown",
                                    event_type="param.risk_change")
            self.changes.append(("meta", "risk_multiplier", now[0]))
            if i % 5 == 1:
                audit.emit_param_change("ops_console", "k", i, i + 1, None, owner="sizer", ts_event=now[0] + 1)
                self.changes.append(("sizer", "k", now[0] + 1))
            audit.emit_system("sys.heartbeat", "node", {"i": i})

    def expected(self, day: int) -> list[list[Any]]:
        last: dict[tuple[str, str], int] = {}
        for owner, name, ts in self.changes:
            if (ts - JAN_5) // (24 * HOUR) == day:
                last[(owner, name)] = max(ts, last.get((owner, name), ts))
        return [[owner, name, ts] for (owner, name), ts in sorted(last.items())]


@pytest.fixture(params=MODES)
def store(request, tmp_path) -> Store:
    return Store(tmp_path / "trail", request.param)


def test_each_output_lists_its_parameters_and_their_last_change(store):
    found = store.outputs()
    assert [path.split("/")[2] for path in sorted(found)] == ["day=05", "day=06"]
    by_day = {int(path.split("day=")[1][:2]) - 5: output["parameters"] for path, output in found.items()}
    assert by_day == {0: store.expected(0), 1: store.expected(1)}
    assert by_day[0] == [["meta", "risk_multiplier", JAN_5 + 20 * HOUR + 7], ["sizer", "k", JAN_5 + 4 * HOUR + 8]]
    report = store.verify()
    assert report.ok, report.to_text()


EDITS = {
    "instant moved": lambda output: output["parameters"][0].__setitem__(2, output["parameters"][0][2] - 1),
    "parameter left out": lambda output: output["parameters"].pop(),
    "parameter added": lambda output: output["parameters"].append(["meta", "ghost", JAN_5]),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_an_authentic_entry_with_a_wrong_index_is_found_from_the_rows(store, edit):
    store.edit_first_output(EDITS[edit], authenticate=True)
    failures = store.verify().failures
    assert [failure.kind.value for failure in failures] == ["manifest_invalid"], failures
    assert "parameter index lists" in failures[0].detail and "the file's rows say" in failures[0].detail


@pytest.mark.parametrize("mode", ["hmac", "signed"])
@pytest.mark.parametrize("edit", ["instant moved", "removed"])
def test_an_index_edited_or_removed_without_the_key_fails_authentication(tmp_path, mode, edit):
    store = Store(tmp_path / "trail", mode)
    store.edit_first_output(EDITS["instant moved"] if edit != "removed" else lambda output: output.pop("parameters"),
                authenticate=False)
    kinds = {failure.kind.value for failure in store.verify().failures}
    assert "manifest_invalid" in kinds, kinds


def test_an_index_of_the_wrong_form_is_reported_not_raised(tmp_path):
    store = Store(tmp_path / "trail", "hmac")
    store.edit_first_output(lambda output: output.__setitem__("parameters", "everything"), authenticate=True)
    failures = store.verify().failures
    assert [failure.kind.value for failure in failures] == ["manifest_invalid"], failures
