"""The manifest's id filter: each output holds a Bloom filter over its files' order and correlation ids
(``trade_lifecycle`` reads by it); ``verify_cold`` derives it again from the rows and reports a difference.

Attacks, in every trail mode where they apply: a filter edited (bits cleared, so a day would be skipped) or
replaced by one of the wrong form, with the entry authenticated again (what a holder of the key, or anyone on
an unkeyed trail, can do), is found by deriving it again; edited or removed without the key, the entry's
authentication fails.
"""

from __future__ import annotations

import base64
from typing import Any

import duckdb
import pytest
from manifest_store import HOUR, JAN_5, MODES, ManifestStore

from audit_core.cold._id_filter import id_filter, parse


class Store(ManifestStore):
    def write(self, audit: Any, now: list[int]) -> None:
        self.ids: dict[int, set[str]] = {0: set(), 1: set()}
        for i in range(12):  # two days
            now[0] = JAN_5 + i * 4 * HOUR + 7
            signal, order = f"SIG-{i}", f"O-{i}"
            audit.emit_signal("strategy", "momentum", 0.5, 0.9, correlation_id=signal, instrument_id="EURUSD")
            audit.emit_trade("trade.order", "exec", "EURUSD", correlation_id=signal, order_id=order,
                             side="BUY", size="1000")
            audit.emit_system("sys.heartbeat", "node", {"i": i})
            self.ids[i * 4 // 24].update({signal, order})


@pytest.fixture(params=MODES)
def store(request, tmp_path) -> Store:
    return Store(tmp_path / "trail", request.param)


def test_each_output_holds_a_filter_that_says_yes_to_its_ids_and_no_to_others(store):
    found = store.outputs()
    assert [path.split("/")[2] for path in sorted(found)] == ["day=05", "day=06"]
    for path, output in found.items():
        day = int(path.split("day=")[1][:2]) - 5
        id_filter = parse(output["ids"])
        assert id_filter is not None and id_filter.bits == 120, output["ids"]  # 12 ids x 9.6 bits, in bytes
        assert all(id_filter.may_contain(value) for value in store.ids[day])
        # The other day's ids and unknown ones: a 1%-filter says no to nearly all of them.
        others = store.ids[1 - day] | {f"X-{n}" for n in range(50)}
        assert sum(id_filter.may_contain(value) for value in others) <= 6
    report = store.verify()
    assert report.ok, report.to_text()


def test_python_and_duckdb_set_the_same_bits():
    """The converter sets bits in SQL (md5_number_lower/upper) and the workbench tests in Python: they agree."""
    values = [f"O-{n}" for n in range(3000)] + ["é-ünïcode", "x' OR '1'='1", ""]
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT v AS order_id, NULL::VARCHAR AS correlation_id FROM unnest(?) AS u(v)",
                [values])
    recorded = id_filter(con, "t")
    parsed = parse(recorded)
    assert parsed is not None and parsed.bits == 28_832  # 3,003 ids x 9.6 bits, in bytes
    assert all(parsed.may_contain(value) for value in values)
    assert sum(parsed.may_contain(f"Q-{n}") for n in range(3000)) < 90  # about 1% false positives


def test_the_filter_is_exactly_the_documented_bits():
    """Every bit as the module docstring defines it, worked out here with hashlib, and no other bit set."""
    import hashlib

    values = [f"O-{n}" for n in range(500)] + ["é-ünïcode", ""]
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT v AS order_id, v AS correlation_id FROM unnest(?) AS u(v)", [values])
    recorded = id_filter(con, "t")
    assert recorded is not None
    bits, expected = recorded["bits"], bytearray(recorded["bits"] // 8)
    for value in values:
        digest = hashlib.md5(value.encode(), usedforsecurity=False).digest()
        h1, h2 = int.from_bytes(digest[8:], "little"), int.from_bytes(digest[:8], "little")
        for i in range(recorded["hashes"]):
            position = (h1 % bits + i * (h2 % bits)) % bits
            expected[position >> 3] |= 1 << (position & 7)
    assert base64.b64decode(recorded["filter"]) == bytes(expected)


def _cleared(output: dict[str, Any]) -> None:
    """Every bit off: the filter would say no to every id, and trade_lifecycle would skip the day."""
    output["ids"]["filter"] = base64.b64encode(bytes(output["ids"]["bits"] // 8)).decode()


EDITS = {
    "bits cleared": _cleared,
    "fewer hashes": lambda output: output["ids"].__setitem__("hashes", 1),
    "null": lambda output: output.__setitem__("ids", None),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_an_authentic_entry_with_a_wrong_filter_is_found_from_the_rows(store, edit):
    store.edit_first_output(EDITS[edit], authenticate=True)
    failures = store.verify().failures
    assert [failure.kind.value for failure in failures] == ["manifest_invalid"], failures
    assert "id filter is" in failures[0].detail and "ids make" in failures[0].detail


@pytest.mark.parametrize("mode", ["hmac", "signed"])
@pytest.mark.parametrize("edit", ["bits cleared", "removed"])
def test_a_filter_edited_or_removed_without_the_key_fails_authentication(tmp_path, mode, edit):
    store = Store(tmp_path / "trail", mode)
    store.edit_first_output(_cleared if edit != "removed" else lambda output: output.pop("ids"), authenticate=False)
    kinds = {failure.kind.value for failure in store.verify().failures}
    assert "manifest_invalid" in kinds, kinds


@pytest.mark.parametrize("malformed", ["everything", {"bits": 64}, {"bits": 64, "hashes": 7, "filter": "!!"},
                                       {"bits": 63, "hashes": 7, "filter": ""}, [1, 2, 3]])
def test_a_filter_of_the_wrong_form_is_reported_not_raised_and_vouches_for_nothing(tmp_path, malformed):
    assert parse(malformed) is None
    store = Store(tmp_path / "trail", "hmac")
    store.edit_first_output(lambda output: output.__setitem__("ids", malformed), authenticate=True)
    failures = store.verify().failures
    assert [failure.kind.value for failure in failures] == ["manifest_invalid"], failures
