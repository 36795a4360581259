"""``verify_cold``'s fast path (``_clean_entry.clean_entry``) against its careful checks: the same report, always.

An entry whose rows are all plainly right is accepted whole (issue 18): one query rebuilds its lines
and checks its typed columns, and THE chain rule's fast path (``chain.clean_run``) checks the lines.
Anything else falls back to the careful checks, which alone write failures. Every case here runs
``verify_cold`` twice, once as it is and once with the fast path switched off, and compares the whole
reports; where the store is clean, the fast path must really have been taken, or this would compare
the careful checks with themselves.
"""

from __future__ import annotations

import base64
import random
import shutil
import tempfile
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_cold_attacks import MODES
from test_cold_tamper_property import (  # noqa: F401
    CASES,
    TAMPERINGS,
    _rewrite_as_an_unkeyed_attacker,
    _tamper,
    converted,
)
from test_tamper_battery import ATTACKS, CLEAN, clone, damage, templates  # noqa: F401

import audit_core.cold.cold_verify as cold_verify
from audit_core.cold._bulk_verify import scan_file
from audit_core.cold._id_filter import HASHES, id_filter, parse
from audit_core.trust import chain


class FastPath:
    """Counts the entries the fast path accepted, and runs ``verify_cold`` with it on or off."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch, self.accepted = monkeypatch, 0

    def reports(self, cold: Path, *args, **kwargs) -> tuple[dict, dict]:
        """The report with the fast path, and the one without it (``jobs=1``: one process to patch)."""
        original = cold_verify.clean_entry

        def spy(*entry_args):
            result = original(*entry_args)
            self.accepted += result is not None
            return result

        with self.monkeypatch.context() as patch:
            patch.setattr(cold_verify, "clean_entry", spy)
            fast = cold_verify.verify_cold(cold, *args, jobs=1, **kwargs).to_dict()
        with self.monkeypatch.context() as patch:
            patch.setattr(cold_verify, "clean_entry", lambda *_: None)
            careful = cold_verify.verify_cold(cold, *args, jobs=1, **kwargs).to_dict()
        return fast, careful


@pytest.fixture
def fast_path(monkeypatch) -> FastPath:
    return FastPath(monkeypatch)


COLD_CASES = [*sorted(CLEAN), *sorted(name for name in ATTACKS if name.startswith("cold_"))]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", COLD_CASES)
def test_every_cold_attack_is_reported_the_same_by_the_fast_path(case, mode, templates, tmp_path, fast_path, crash):  # noqa: F811
    trail = clone(templates[mode], tmp_path / "trail")
    if not damage(trail, case, crash):
        return
    fast, careful = fast_path.reports(trail.cold, trail.hmac_key, trail.public_key)
    assert fast == careful
    if case in CLEAN:
        assert fast["ok"], fast
        assert fast_path.accepted, "no entry took the fast path: the comparison would be of the careful checks alone"


@CASES
@given(kind=st.sampled_from(TAMPERINGS), data=st.data())
def test_every_row_tampering_is_reported_the_same_by_the_fast_path(converted, kind, data, monkeypatch):  # noqa: F811
    cold, key = converted
    fast_path = FastPath(monkeypatch)
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "cold"
        shutil.copytree(cold, copy)
        (file,) = sorted(copy.glob("year=*/month=*/day=*/*.parquet"))
        _rewrite_as_an_unkeyed_attacker(copy, file, _tamper(pq.read_table(file), kind, data), key)
        fast, careful = fast_path.reports(copy, key)
        assert fast == careful
        assert not fast["ok"]


def test_a_clean_store_is_accepted_by_the_fast_path_with_the_hot_chain_rule(converted, fast_path, monkeypatch):  # noqa: F811
    """The clean store's entry is accepted whole, its lines checked by ``chain.clean_run`` (the hot rule)."""
    cold, key = converted
    runs: list[int] = []
    original = chain.clean_run

    def spy(lines, *args):
        runs.append(len(lines))
        return original(lines, *args)

    monkeypatch.setattr("audit_core.cold._clean_entry.clean_run", spy)
    fast, careful = fast_path.reports(cold, key)
    assert fast == careful and fast["ok"]
    assert fast_path.accepted == 1 and sum(runs) == fast["records"] == 24


def test_a_rewritten_chain_rule_breaks_the_fast_path_not_the_report(converted, fast_path, monkeypatch):  # noqa: F811
    """If the chain rule declines every run, the entry falls back and the report is still the careful one."""
    cold, key = converted
    monkeypatch.setattr("audit_core.cold._clean_entry.clean_run", lambda *_: None)
    fast, careful = fast_path.reports(cold, key)
    assert fast == careful and fast["ok"] and fast_path.accepted == 0


def test_the_id_filter_sets_the_bits_of_its_sql_definition():
    """``id_filter`` (one MD5 per id, positions in numpy) sets exactly the bits the filter's rule in SQL sets."""
    rng = random.Random(7)
    ids = [f"O-{rng.getrandbits(48):x}" for _ in range(3000)] + ["", "é", "O-1"]
    con = duckdb.connect()
    con.execute("CREATE TABLE rows AS SELECT * FROM (SELECT unnest($ids) AS order_id, NULL::VARCHAR AS correlation_id)",
                {"ids": ids})
    made = id_filter(con, "rows")
    assert made is not None and made["hashes"] == HASHES
    bits = made["bits"]
    positions = {row[0] for row in con.execute(
        f"""SELECT DISTINCT (md5_number_lower(v) % {bits} + i * (md5_number_upper(v) % {bits})) % {bits}
            FROM (SELECT DISTINCT order_id AS v FROM rows), range({HASHES}) AS r(i)""").fetchall()}
    data = base64.b64decode(made["filter"])
    assert {i for i in range(bits) if data[i >> 3] & (1 << (i & 7))} == positions
    parsed = parse(made)
    assert parsed is not None and all(parsed.may_contain(value) for value in ids)


def test_the_converters_scan_of_a_time_ordered_file_is_clean(converted):  # noqa: F811
    """The scan passes a clean file, 19-digit nanosecond times included. (Whether the file is in
    ``ts_event`` order is DuckDB's question now: the converter stages beside the scan.)"""
    cold, key = converted
    files = sorted((cold.parent / "hot").glob("*.jsonl"))
    assert files
    for path in files:
        scan = scan_file(path, key)
        assert scan.clean, scan.problems


def test_rows_out_of_source_line_order_are_sorted_and_accepted(tmp_path, fast_path):
    """Records that come out of time order are stored sorted by time, not by source line: the fast path
    reads such a file sorted by source line and still accepts it, with the careful checks' report."""
    from test_converter import MINUTE, RiskLimitEvent

    from audit_core import AuditConfig, AuditEventEmitter
    from audit_core.cold.converter import ParquetConverter

    config = AuditConfig(base_path=tmp_path / "t", rotate_daily=False, sync_writes=False)
    noon = 1_767_614_400 * 10**9  # 2026-01-05 12:00 UTC: one day, one Parquet file
    with AuditEventEmitter(config) as emitter:
        for k in (0, 3, 1, 2, -1, 5, 4):
            emitter.emit(RiskLimitEvent(event_type="risk.limit_breach", source="risk", limit_name="gross",
                                        utilisation=1.0, ts_event=noon + k * MINUTE))
    (result,) = ParquetConverter(tmp_path / "t" / "hot", tmp_path / "cold").convert_all()
    assert result.converted, result.failures
    (file,) = (tmp_path / "cold").glob("year=*/month=*/day=*/*.parquet")
    assert pq.read_table(file).column("source_line").to_pylist() != list(range(1, 8))  # stored out of order
    fast, careful = fast_path.reports(tmp_path / "cold")
    assert fast == careful and fast["ok"] and fast["records"] == 7
    assert fast_path.accepted == 1
