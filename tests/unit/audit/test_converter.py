"""ParquetConverter: verified sealed files become day partitions; nothing lost, nothing twice."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

import pyarrow.parquet as pq
import pytest

from audit_core import AuditConfig, AuditEvent, AuditEventEmitter, parse_record
from audit_core.cold.cold_verify import verify_cold
from audit_core.cold.converter import STAGING_DIR, ParquetConverter, read_hot_file
from audit_core.cold.lines import source_lines
from audit_core.cold.manifest import MANIFEST_DIR
from audit_core.cold.projection import COLUMNS
from audit_core.errors import AuditFormatError
from audit_core.trust.record import is_stripped, rebuild_line

JAN_5_2359 = 1_767_657_540 * 10**9  # 2026-01-05 23:59:00 UTC
MINUTE = 60 * 10**9

#: The cold schema (projection 4), pinned: changing it means a new projection version (projection.PROJECTIONS).
EXPECTED_SCHEMA = [
    ("ts_event", "int64"), ("event_type", "string"), ("source", "string"), ("trader_id", "string"),
    ("stream", "string"), ("sequence", "int64"), ("correlation_id", "string"),
    ("checksum", "string"), ("record_format", "int16"), ("ts_recorded", "int64"), ("owner", "string"),
    ("param_name", "string"),
    ("old_value", "string"), ("new_value", "string"), ("old_value_num", "double"), ("new_value_num", "double"),
    ("old_value_text", "string"),
    ("new_value_text", "string"), ("old_value_bool", "bool"), ("new_value_bool", "bool"),
    ("old_value_json", "string"), ("new_value_json", "string"), ("trigger_reason", "string"),
    ("strategy_source", "string"), ("signal_value", "double"), ("confidence", "double"), ("regime", "string"),
    ("acted_on", "bool"), ("filter_reason", "string"), ("instrument_id", "string"), ("order_id", "string"),
    ("side", "string"), ("size", "decimal128(38, 18)"), ("price", "decimal128(38, 18)"),
    ("expected_price", "decimal128(38, 18)"), ("slippage_bps", "decimal128(38, 18)"),
    ("realized_pnl", "decimal128(38, 18)"), ("commission", "decimal128(38, 18)"), ("currency", "string"),
    ("position_id", "string"), ("reason", "string"), ("order_type", "string"), ("venue_order_id", "string"),
    ("trade_id", "string"), ("liquidity_side", "string"), ("realized_return", "decimal128(38, 18)"),
    ("avg_px_open", "decimal128(38, 18)"), ("avg_px_close", "decimal128(38, 18)"), ("duration_ns", "int64"),
    ("ts_init", "int64"), ("payload", "string"), ("record", "string"), ("source_line", "int64"),
    ("torn_bytes", "binary"),
]


class RiskLimitEvent(AuditEvent):
    """A user's own event root: its fields have no typed column but must survive in ``record``."""

    event_type_root: ClassVar[str] = "risk"
    limit_name: str
    utilisation: float


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        self.now += MINUTE // 4
        return self.now


def write_trail(base: Path, *, across_midnight: bool = True) -> list[bytes]:
    """A closed (sealed) trail with every event type; returns its record lines."""
    clock = Clock(JAN_5_2359 if across_midnight else JAN_5_2359 - 60 * MINUTE)
    config = AuditConfig(base_path=base, rotate_daily=False, sync_writes=False)
    with AuditEventEmitter(config, clock=clock) as emitter:
        for i in range(6):
            emitter.emit_param_change("meta", "risk_multiplier", 1.0 - i / 10, 0.9 - i / 10, "drawdown",
                                      event_type="param.risk_change")
            emitter.emit_param_change("pp", "strategy_weights", {"a": 0.5}, {"a": 0.4 + i / 100, "b": [1, 2]})
            emitter.emit_signal("pp", "momentum", 0.5 + i, 0.9, regime="VENTRAL", correlation_id=f"S-{i}")
            emitter.emit_signal("pp", "momentum", 0.1, 0.2, acted_on=False, filter_reason="below_threshold")
            emitter.emit_trade("trade.fill", "obs", "EUR/USD.SIM", order_id=f"O-{i}", side="SELL",
                               size="100000", price="1.100120000000000001", commission="2.20", currency="USD",
                               realized_pnl="-12.345678901234567890", trade_id=f"T-{i}", correlation_id=f"S-{i}")
            emitter.emit_system("sys.regime_change", "meta", {"from": "VENTRAL", "to": "DORSAL", "n": i})
            emitter.emit(RiskLimitEvent(event_type="risk.limit_breach", source="risk", limit_name="gross",
                                        utilisation=1.0 + i, ts_event=clock()))
    return [line for path in sorted((base / "hot").glob("*.jsonl")) for line in path.read_bytes().splitlines()]


def original_line(row: dict) -> bytes:
    """The hot line a cold row came from (without its newline): ``record`` with its hashes put back."""
    if row["torn_bytes"] is not None:
        return row["torn_bytes"]
    return rebuild_line(row["record"].encode(), row["prev_hash"], row["checksum"], ts_event=row["ts_event"],
                        sequence=row["sequence"], ts_recorded=row["ts_recorded"])


def assert_row_matches(row: dict, event: AuditEvent) -> None:
    """Every field of ``event`` that has a typed column has the same value in ``row``."""
    assert (row["ts_event"], row["event_type"], row["sequence"]) == (event.ts_event, event.event_type, event.sequence)
    assert row["checksum"] == event.checksum and row["prev_hash"] == event.prev_hash
    assert row["torn_bytes"] is None and row["source_line"] == event.sequence + 1
    data = event.model_dump(mode="json")
    for name, value in data.items():
        if name in row and name not in ("old_value", "new_value", "payload"):
            got = row[name]
            expected = Decimal(value) if isinstance(got, Decimal) and value is not None else value
            assert got == expected, (name, row["event_type"])
    for name in ("old_value", "new_value", "payload"):
        if name in data:
            assert json.loads(row[name]) == data[name]
    if "param_name" in data:
        assert row["owner"] == data.get("owner", data["source"])  # no owner in the record: the source owns it
        for name in ("old_value", "new_value"):
            assert typed(row, name) == expected_typed(data[name]), (name, data[name])
    else:
        assert row["owner"] is None
        assert all(typed(row, name) == expected_typed(None) for name in ("old_value", "new_value"))


TYPED = ("num", "text", "bool", "json")


def typed(row: dict, name: str) -> dict:
    """The typed columns of one value; the JSON column decoded (its text is engine-formatted)."""
    out = {kind: row[f"{name}_{kind}"] for kind in TYPED}
    out["json"] = None if out["json"] is None else json.loads(out["json"])
    return out


def expected_typed(value: object) -> dict:
    """What the typed columns must hold for a JSON value, worked out in plain Python."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return {"num": float(value) if number else None, "text": value if isinstance(value, str) else None,
            "bool": value if isinstance(value, bool) else None,
            "json": value if isinstance(value, (list, dict)) else None}


def cold_rows(cold: Path) -> list[dict]:
    """Every row of the store, with its record's ``prev_hash`` (projection 4 stores no such column).

    Worked out here in plain Python, apart from ``projection.chained_rows``: a record that leaves
    its prev_hash out takes the checksum of the row one source line before it in the same file.
    """
    rows = []
    for file in sorted(cold.glob("year=*/month=*/day=*/*.parquet")):
        table = pq.read_table(file).to_pylist()
        checksums = {row["source_line"]: row["checksum"] for row in table if row["torn_bytes"] is None}
        for row in table:
            if row["torn_bytes"] is not None:
                row["prev_hash"] = None
            elif is_stripped(row["record"].encode()):
                row["prev_hash"] = checksums.get(row["source_line"] - 1)
            else:  # kept: a quoted hash, or null
                at = row["record"].index('"prev_hash":') + len('"prev_hash":')
                row["prev_hash"] = row["record"][at + 1 : at + 65] if row["record"][at] == '"' else None
            rows.append(row)
    return rows


class TestSchema:
    def test_schema_is_pinned(self, tmp_path):
        write_trail(tmp_path / "t")
        ParquetConverter(tmp_path / "t" / "hot", tmp_path / "cold").convert_all()
        (first, *_) = sorted((tmp_path / "cold").glob("year=*/month=*/day=*/*.parquet"))
        schema = pq.read_schema(first)
        assert [(f.name, str(f.type)) for f in schema] == EXPECTED_SCHEMA
        assert [name for name, _, _ in COLUMNS] == [name for name, _ in EXPECTED_SCHEMA]

    def test_zstd_and_sorted_by_time_then_source_line(self, tmp_path):
        write_trail(tmp_path / "t")
        ParquetConverter(tmp_path / "t" / "hot", tmp_path / "cold").convert_all()
        for file in (tmp_path / "cold").glob("year=*/month=*/day=*/*.parquet"):
            metadata = pq.ParquetFile(file).metadata
            assert metadata.row_group(0).column(0).compression == "ZSTD"
            keys = [(r["ts_event"], r["source_line"]) for r in pq.read_table(file).to_pylist()]
            assert keys == sorted(keys)

    def test_events_out_of_time_order_are_sorted_by_time(self, tmp_path):
        # In time order, file order is the cold order and the converter skips its sort; here it must not.
        config = AuditConfig(base_path=tmp_path / "t", rotate_daily=False, sync_writes=False)
        times = [JAN_5_2359 + k * MINUTE for k in (0, 3, 1, 2, -1, 5, 4)]  # crosses midnight, backwards too
        with AuditEventEmitter(config) as emitter:
            for ts in times:
                emitter.emit(RiskLimitEvent(event_type="risk.limit_breach", source="risk", limit_name="gross",
                                            utilisation=1.0, ts_event=ts))
        (result,) = ParquetConverter(tmp_path / "t" / "hot", tmp_path / "cold").convert_all()
        assert result.converted, result.failures
        seen = []
        for file in sorted((tmp_path / "cold").glob("year=*/month=*/day=*/*.parquet")):
            keys = [(r["ts_event"], r["source_line"]) for r in pq.read_table(file).to_pylist()]
            assert keys == sorted(keys)
            seen += keys
        assert sorted(seen) == sorted(zip(times, range(1, len(times) + 1), strict=True))
        assert verify_cold(tmp_path / "cold").ok


class TestEveryFieldSurvives:
    def test_each_row_keeps_its_record_and_typed_columns_match_it(self, tmp_path):
        lines = write_trail(tmp_path / "t")
        results = ParquetConverter(tmp_path / "t" / "hot", tmp_path / "cold").convert_all()
        assert [r.converted for r in results] == [True]
        rows = cold_rows(tmp_path / "cold")
        assert sorted(original_line(row) for row in rows) == sorted(lines)
        for row in rows:
            assert b'"checksum"' not in row["record"].encode() and row["checksum"] not in row["record"]
            assert_row_matches(row, parse_record(original_line(row)))
        risk = [row for row in rows if row["event_type"] == "risk.limit_breach"]
        assert len(risk) == 6 and all(json.loads(original_line(r))["limit_name"] == "gross" for r in risk)

    def test_every_field_of_every_type_survives_with_every_optional_field_set(self, tmp_path):
        config = AuditConfig(base_path=tmp_path / "t", rotate_daily=False, sync_writes=False)
        with AuditEventEmitter(config, clock=Clock(JAN_5_2359 - 60 * MINUTE)) as emitter:
            emitted = [
                emitter.emit_param_change("ctl", "k", {"a": [1, 2.5, None]}, 3, "because \"quoted\" \u00e9",
                                          event_type="param.k_change", correlation_id="C-1"),
                emitter.emit_signal("pp", "momentum", -1.25, 0.75, acted_on=False, filter_reason="cooldown",
                                    regime="DORSAL", instrument_id="EUR/USD.SIM", correlation_id="C-1"),
                emitter.emit_trade(
                    "trade.position_closed", "obs", "EUR/USD.SIM", correlation_id="C-1", order_id="O-1",
                    side="BUY", size="0.000000000000000001", price="12345678901234567890.123456789012345678",
                    slippage_bps="-0.5", realized_pnl="-1.10", commission="0.02", currency="USD", position_id="P-1",
                    strategy_source="momentum", reason="take profit", order_type="LIMIT", expected_price="1.5",
                    venue_order_id="V-1", trade_id="T-1", liquidity_side="MAKER", realized_return="0.0125",
                    avg_px_open="1.1", avg_px_close="1.2", duration_ns=3_600_000_000_000, ts_init=JAN_5_2359),
                emitter.emit_system("sys.resampling", "pf", {"n": 3, "ess": 0.5, "nested": {"x": [True, None]}}),
                emitter.emit(RiskLimitEvent(event_type="risk.limit_breach", source="risk", limit_name="net",
                                            utilisation=0.25)),
            ]
        (result,) = ParquetConverter(tmp_path / "t" / "hot", tmp_path / "cold").convert_all()
        assert result.converted, result.failures
        rows = {row["sequence"]: row for row in cold_rows(tmp_path / "cold")}
        assert sorted(rows) == [event.sequence for event in emitted]
        trade = emitted[2].model_dump(mode="json")
        assert all(value is not None for value in trade.values())  # really every optional field
        for event in emitted:
            row = rows[event.sequence]
            assert original_line(row) == event.to_line()[:-1]
            assert_row_matches(row, event)
        assert json.loads(original_line(rows[emitted[4].sequence]))["limit_name"] == "net"

    def test_numeric_parameter_values_get_a_numeric_column(self, tmp_path):
        write_trail(tmp_path / "t")
        ParquetConverter(tmp_path / "t" / "hot", tmp_path / "cold").convert_all()
        rows = cold_rows(tmp_path / "cold")
        risk = [r for r in rows if r["param_name"] == "risk_multiplier"]
        weights = [r for r in rows if r["param_name"] == "strategy_weights"]
        assert all(r["new_value_num"] == json.loads(r["new_value"]) for r in risk)
        assert all(r["new_value_num"] is None for r in weights)

    def test_typed_values_decode_every_json_kind_exactly_in_cold_and_hot(self, tmp_path):
        values = ["plain", 'quote " and backslash \\ end', "caf\u00e9 \U0001f600 \u4e2d", "line\nbreak\ttab\u0000nul",
                  "", "1.0", "true", "null", '"quoted"', 1, 2.5, -3, 0, 2**53 + 1, True, False, None, [1, "x"],
                  {"a": {"b": [True, None]}, "é": "😀"}, [], {}]
        config = AuditConfig(base_path=tmp_path / "t", rotate_daily=False, sync_writes=False)
        with AuditEventEmitter(config, clock=Clock(JAN_5_2359 - 60 * MINUTE)) as emitter:
            for old, new in zip([None, *values], values, strict=False):
                emitter.emit_param_change("ctl", "p", old, new)
        (hot_file,) = sorted((tmp_path / "t" / "hot").glob("*.jsonl"))
        hot = {row["sequence"]: row for row in read_hot_file(hot_file).to_pylist()}
        ParquetConverter(tmp_path / "t" / "hot", tmp_path / "cold").convert_all()
        cold = {row["sequence"]: row for row in cold_rows(tmp_path / "cold")}
        assert sorted(cold) == sorted(hot) == list(range(len(values)))
        for sequence, value in enumerate(values):
            for row in (cold[sequence], hot[sequence]):
                assert typed(row, "new_value") == expected_typed(value), value
                assert typed(row, "old_value") == expected_typed(values[sequence - 1] if sequence else None)
                raw = row["new_value"]
                assert (raw is None) if value is None else json.loads(raw) == value  # the raw JSON text stays
        assert cold[0]["new_value_text"] == "plain" and cold[2]["new_value_text"] == "café 😀 中"

    def test_escaped_strings_from_another_writer_decode_to_the_exact_text(self, tmp_path):
        # Our writer puts UTF-8 as it is; another may escape it (JSON allows both): same text either way.
        escaped = r'"caf\u00e9 \ud83d\ude00 \"q\" \\ \/ \b\f\n\r\t \u0000"'
        line = ('{"ts_event":1,"event_type":"param.x","source":"ops","sequence":0,"param_name":"p",'
                '"old_value":"a","new_value":' + escaped + ',"owner":"ctl","checksum":"00"}\n')
        path = tmp_path / "other.jsonl"
        path.write_text(line, encoding="ascii")
        (row,) = read_hot_file(path).to_pylist()
        assert row["new_value_text"] == json.loads(escaped) == 'café \U0001f600 "q" \\ / \b\f\n\r\t \x00'
        assert (row["old_value_text"], row["new_value_bool"], row["new_value_json"]) == ("a", None, None)
        assert (row["owner"], row["source"]) == ("ctl", "ops")

    def test_owner_is_the_records_owner_else_the_source_on_parameter_rows_only(self, tmp_path):
        config = AuditConfig(base_path=tmp_path / "t", rotate_daily=False, sync_writes=False)
        with AuditEventEmitter(config, clock=Clock(JAN_5_2359 - 60 * MINUTE)) as emitter:
            emitter.emit_param_change("meta_controller", "risk_multiplier", None, 1.0, "initial value")
            emitter.emit_param_change("ops_console", "risk_multiplier", 1.0, 8.0, None, owner="meta_controller")
            emitter.emit_signal("pp", "momentum", 0.5, 0.9)
        ParquetConverter(tmp_path / "t" / "hot", tmp_path / "cold").convert_all()
        rows = sorted(cold_rows(tmp_path / "cold"), key=lambda row: row["sequence"])
        assert [(row["source"], row["owner"]) for row in rows] == [
            ("meta_controller", "meta_controller"), ("ops_console", "meta_controller"), ("pp", None)]

    def test_decimals_are_exact(self, tmp_path):
        write_trail(tmp_path / "t")
        ParquetConverter(tmp_path / "t" / "hot", tmp_path / "cold").convert_all()
        fills = [r for r in cold_rows(tmp_path / "cold") if r["event_type"] == "trade.fill"]
        assert {r["price"] for r in fills} == {Decimal("1.100120000000000001")}
        assert sum(r["realized_pnl"] for r in fills) == Decimal("-12.345678901234567890") * 6


class TestPartitions:
    def test_a_file_spanning_midnight_lands_in_two_days(self, tmp_path):
        lines = write_trail(tmp_path / "t", across_midnight=True)
        result = ParquetConverter(tmp_path / "t" / "hot", tmp_path / "cold").convert_all()[0]
        assert [o.split("/")[2] for o in result.outputs] == ["day=05", "day=06"]
        stats = ParquetConverter(tmp_path / "t" / "hot", tmp_path / "cold").get_partition_stats()
        assert [s.partition for s in stats] == ["year=2026/month=01/day=05", "year=2026/month=01/day=06"]
        assert sum(s.rows for s in stats) == len(lines) == result.rows
        assert stats[0].last_ts_event < 1_767_657_600 * 10**9 <= stats[1].first_ts_event

    def test_instants_centuries_apart_make_two_partitions_not_a_day_by_day_walk(self, tmp_path):
        """``ts_event`` may be any int64 instant: 1970 and 2262 in one file are two partitions (the
        converter used to write one COPY per day in between: 106,000 of them, a conversion that never ends)."""
        config = AuditConfig(base_path=tmp_path / "t", rotate_daily=False, sync_writes=False)
        with AuditEventEmitter(config, clock=lambda: JAN_5_2359) as emitter:
            emitter.emit_system("sys.note", "clock", {"edge": "epoch"}, ts_event=0)
            emitter.emit_system("sys.note", "clock", {"edge": "int64 max"}, ts_event=2**63 - 1)
        result = ParquetConverter(tmp_path / "t" / "hot", tmp_path / "cold").convert_all()[0]
        assert [output.split("/")[:3] for output in result.outputs] == [
            ["year=1970", "month=01", "day=01"], ["year=2262", "month=04", "day=11"]]
        assert result.rows == 2 and verify_cold(tmp_path / "cold").ok


class TestVerifyBeforeConvert:
    def test_unsealed_file_is_not_converted(self, tmp_path, crash):
        emitter = AuditEventEmitter(AuditConfig(base_path=tmp_path / "t"))
        emitter.emit_param_change("c", "k", 0, 1)
        crash(emitter)
        (result,) = ParquetConverter(tmp_path / "t" / "hot", tmp_path / "cold").convert_all()
        assert not result.converted and "not sealed" in (result.skipped or "")
        assert not (tmp_path / "cold").exists() or not list((tmp_path / "cold").rglob("*.parquet"))

    def test_tampered_file_is_reported_and_left_untouched(self, tmp_path):
        write_trail(tmp_path / "t")
        (path,) = (tmp_path / "t" / "hot").glob("*.jsonl")
        lines = path.read_bytes().splitlines(keepends=True)
        lines[3] = lines[3].replace(b'"source":"pp"', b'"source":"PP"')
        os.chmod(path, 0o640)
        path.write_bytes(b"".join(lines))
        before = path.read_bytes()
        (result,) = ParquetConverter(tmp_path / "t" / "hot", tmp_path / "cold").convert_all()
        assert not result.converted and result.skipped == "failed verification"
        assert any("checksum_mismatch" in f for f in result.failures)
        assert path.read_bytes() == before
        assert not list((tmp_path / "cold").rglob("*.parquet"))
        assert not (tmp_path / "cold" / MANIFEST_DIR).exists()


class TestIdempotence:
    def test_converting_twice_writes_nothing_new(self, tmp_path):
        write_trail(tmp_path / "t")
        converter = ParquetConverter(tmp_path / "t" / "hot", tmp_path / "cold")
        converter.convert_all()
        files = {p: p.stat().st_mtime_ns for p in (tmp_path / "cold").rglob("*.parquet")}
        again = converter.convert_all()
        assert [r.skipped for r in again] == ["already converted"]
        assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cold").rglob("*.parquet")} == files

    def test_a_crash_half_way_leaves_no_duplicates_after_the_next_run(self, tmp_path):
        lines = write_trail(tmp_path / "t")
        converter = ParquetConverter(tmp_path / "t" / "hot", tmp_path / "cold")
        converter.convert_all()
        # What a crash after the Parquet renames but before the manifest leaves: no manifest entry,
        # plus a half-written staging file.
        for manifest in (tmp_path / "cold" / MANIFEST_DIR).iterdir():
            manifest.unlink()
        (source,) = (tmp_path / "t" / "hot").glob("*.jsonl")
        staging = tmp_path / "cold" / STAGING_DIR / source.name
        staging.mkdir(parents=True)
        (staging / "20260105.parquet").write_bytes(b"PAR1 half")
        (result,) = converter.convert_all()
        assert result.converted
        assert len(cold_rows(tmp_path / "cold")) == len(lines)
        assert len(list((tmp_path / "cold").glob("year=*/month=*/day=*/*.parquet"))) == 2
        assert not staging.exists()  # the half-written staging file is gone

    def test_manifest_records_the_seal_and_the_outputs(self, tmp_path):
        write_trail(tmp_path / "t")
        (path,) = (tmp_path / "t" / "hot").glob("*.jsonl")
        seal = json.loads((path.parent / (path.name + ".seal")).read_bytes())
        ParquetConverter(tmp_path / "t" / "hot", tmp_path / "cold").convert_all()
        entry = json.loads((tmp_path / "cold" / MANIFEST_DIR / (path.name + ".json")).read_bytes())
        assert entry["seal"]["merkle_root"] == seal["merkle_root"]
        assert entry["seal"]["last_hash"] == seal["last_hash"]
        assert sum(o["rows"] for o in entry["outputs"]) == seal["records"]
        for output in entry["outputs"]:
            assert (tmp_path / "cold" / output["path"]).exists()


@pytest.mark.parametrize("quote", ["o'brien"])
def test_paths_with_quotes_work(tmp_path, quote):
    write_trail(tmp_path / "t")
    (result,) = ParquetConverter(tmp_path / "t" / "hot", tmp_path / quote / "cold").convert_all()
    assert result.converted


class TestVerifyCold:
    """The cold side is checked against the seals its manifest recorded, from the Parquet rows alone."""

    @staticmethod
    def _converted(tmp_path: Path) -> Path:
        write_trail(tmp_path / "t")
        ParquetConverter(tmp_path / "t" / "hot", tmp_path / "cold").convert_all()
        return tmp_path / "cold"

    @staticmethod
    def _rewrite(file: Path, table) -> None:
        os.chmod(file, 0o644)
        pq.write_table(table, file, compression="zstd")

    def test_a_fresh_conversion_verifies(self, tmp_path):
        report = verify_cold(self._converted(tmp_path))
        assert report.ok, report.to_text()
        assert report.records == 42

    def test_a_deleted_row_is_detected(self, tmp_path):
        cold = self._converted(tmp_path)
        (*_, file) = sorted(cold.glob("year=*/month=*/day=*/*.parquet"))
        table = pq.read_table(file)
        self._rewrite(file, pa_concat(table, skip=table.num_rows // 2))
        kinds = {f.kind.value for f in verify_cold(cold).failures}
        assert {"sequence_gap", "chain_break"} <= kinds

    def test_an_edited_record_is_detected(self, tmp_path):
        cold = self._converted(tmp_path)
        (*_, file) = sorted(cold.glob("year=*/month=*/day=*/*.parquet"))
        table = pq.read_table(file)
        records = table.column("record").to_pylist()
        records[2] = records[2].replace('"source":"', '"source":"X', 1)
        import pyarrow as pa

        index = table.schema.get_field_index("record")
        self._rewrite(file, table.set_column(index, "record", pa.array(records, pa.string())))
        failures = verify_cold(cold).failures
        assert any(f.kind.value == "checksum_mismatch" for f in failures)

    def test_a_deleted_partition_file_is_detected(self, tmp_path):
        cold = self._converted(tmp_path)
        (file, *_) = sorted(cold.glob("year=*/month=*/day=*/*.parquet"))
        file.unlink()
        failures = verify_cold(cold).failures
        assert any(f.kind.value == "file_missing" for f in failures)

    def test_a_parquet_file_no_manifest_names_is_detected(self, tmp_path):
        cold = self._converted(tmp_path)
        (file, *_) = sorted(cold.glob("year=*/month=*/day=*/*.parquet"))
        extra = cold / "year=2026" / "month=02" / "day=01"
        extra.mkdir(parents=True)
        (extra / "forged.parquet").write_bytes(file.read_bytes())
        assert any(f.kind.value == "unexpected_file" for f in verify_cold(cold).failures)

    def test_a_swapped_seal_in_the_manifest_is_detected(self, tmp_path):
        cold = self._converted(tmp_path)
        (manifest,) = (cold / MANIFEST_DIR).glob("*.json")
        entry = json.loads(manifest.read_bytes())
        entry["seal"]["merkle_root"] = "0" * 64
        manifest.write_text(json.dumps(entry))
        kinds = {f.kind.value for f in verify_cold(cold).failures}
        assert {"seal_invalid", "manifest_invalid", "root_invalid"} <= kinds  # the copy, the entry, the root


def pa_concat(table, skip: int):
    """``table`` without its row ``skip``."""
    import pyarrow as pa

    return pa.concat_tables([table.slice(0, skip), table.slice(skip + 1)])


class TestTornLines:
    """A torn write that recovery closed off and described is carried over as a row, not dropped."""

    TORN = b'{"ts_event":1767657000000000000,"event_type":"param.state_change","source":"caf\xc3'  # cut mid-character

    def _torn_trail(self, tmp_path: Path, crash, *, first: bool = False) -> Path:
        config = AuditConfig(base_path=tmp_path / "t", rotate_daily=False, sync_writes=False)
        clock = Clock(JAN_5_2359 - 60 * MINUTE)
        emitter = AuditEventEmitter(config, clock=clock)
        if not first:
            for i in range(3):
                emitter.emit_param_change("c", "k", i, i + 1)
        emitter.flush()
        crash(emitter)
        (path,) = (tmp_path / "t" / "hot").glob("*.jsonl")
        with path.open("ab") as handle:
            handle.write(self.TORN)
        with AuditEventEmitter(config, clock=clock) as emitter:  # recovery, then more events, then the seal
            emitter.emit_param_change("c", "k", 9, 10)
        return path

    @pytest.mark.parametrize("first", [False, True], ids=["after-records", "first-line"])
    def test_torn_line_becomes_a_row_and_the_cold_side_still_verifies(self, tmp_path, crash, first):
        path = self._torn_trail(tmp_path, crash, first=first)
        lines = path.read_bytes().splitlines()
        (result,) = ParquetConverter(tmp_path / "t" / "hot", tmp_path / "cold").convert_all()
        assert result.converted, result.failures
        assert result.rows == len(lines)
        rows = sorted(cold_rows(tmp_path / "cold"), key=lambda row: row["source_line"])
        assert [original_line(row) for row in rows] == lines  # every line, in order, byte for byte
        assert b"".join(source_lines(tmp_path / "cold", path.name)) == path.read_bytes()
        (torn,) = [row for row in rows if row["event_type"] == "sys.torn_line"]
        assert torn["torn_bytes"] == self.TORN and torn["sequence"] is None and torn["checksum"] is None
        assert torn["record"] == self.TORN.decode("utf-8", "replace")
        assert torn["source_line"] == (1 if first else 4) and torn["ts_event"] is not None
        assert any(row["event_type"] == "sys.recovery" for row in rows)
        report = verify_cold(tmp_path / "cold")
        assert report.ok, report.to_text()

    def test_deleting_the_torn_row_is_detected(self, tmp_path, crash):
        self._torn_trail(tmp_path, crash)
        ParquetConverter(tmp_path / "t" / "hot", tmp_path / "cold").convert_all()
        (file,) = (tmp_path / "cold").glob("year=*/month=*/day=*/*.parquet")
        table = pq.read_table(file)
        index = table.column("event_type").to_pylist().index("sys.torn_line")
        os.chmod(file, 0o644)
        pq.write_table(pa_concat(table, skip=index), file)
        assert any(f.kind.value == "seal_mismatch" for f in verify_cold(tmp_path / "cold").failures)

    def test_an_unrecovered_bad_line_still_fails_verification(self, tmp_path):
        write_trail(tmp_path / "t")
        (path,) = (tmp_path / "t" / "hot").glob("*.jsonl")
        lines = path.read_bytes().splitlines(keepends=True)
        lines.insert(5, b'{"ts_event":1,"event_type":"param.x"\n')
        os.chmod(path, 0o640)
        path.write_bytes(b"".join(lines))
        (result,) = ParquetConverter(tmp_path / "t" / "hot", tmp_path / "cold").convert_all()
        assert not result.converted and any("unparseable_line" in f for f in result.failures)


class TestParquetLayout:
    def test_low_cardinality_strings_are_dictionary_encoded(self, tmp_path):
        config = AuditConfig(base_path=tmp_path / "t", rotate_daily=False, sync_writes=False)
        with AuditEventEmitter(config, clock=Clock(JAN_5_2359 - 600 * MINUTE)) as emitter:
            for i in range(300):  # DuckDB leaves a row group of a handful of rows plain
                emitter.emit_param_change(f"source-{i % 3}", "k", i, i + 1, event_type=f"param.k{i % 4}")
        ParquetConverter(tmp_path / "t" / "hot", tmp_path / "cold", row_group_size=128).convert_all()
        for file in (tmp_path / "cold").glob("year=*/month=*/day=*/*.parquet"):
            metadata = pq.ParquetFile(file).metadata
            names = [metadata.schema.column(i).name for i in range(metadata.num_columns)]
            for name in ("event_type", "source", "trader_id"):
                for group in range(metadata.num_row_groups):
                    column = metadata.row_group(group).column(names.index(name))
                    assert column.has_dictionary_page, (file.name, name)
                    assert any("DICTIONARY" in encoding for encoding in column.encodings), column.encodings

    def test_record_leaves_out_what_its_columns_hold_but_rebuilds_the_line(self, tmp_path):
        lines = write_trail(tmp_path / "t")
        ParquetConverter(tmp_path / "t" / "hot", tmp_path / "cold").convert_all()
        files = sorted((tmp_path / "cold").glob("year=*/month=*/day=*/*.parquet"))
        assert len(files) == 2  # the trail crosses midnight
        kept = []
        for row in cold_rows(tmp_path / "cold"):
            assert row["checksum"] not in row["record"]
            # Their columns hold them (projection 4): the record only keeps the keys.
            assert row["record"].startswith('{"ts_event":,"event_type":')
            assert '"sequence":,' in row["record"] and '"ts_recorded":,' in row["record"]
            if row["prev_hash"] in row["record"]:
                kept.append(row["source_line"])
            else:
                assert '"prev_hash":,' in row["record"]
            assert original_line(row) == lines[row["source_line"] - 1]
        # Only each file's first row keeps its prev_hash: no row before it in the file gives it back.
        firsts = sorted(min(pq.read_table(f, columns=["source_line"]).column(0).to_pylist()) for f in files)
        assert sorted(kept) == firsts and firsts[0] == 1

    def test_source_lines_give_the_hot_file_back_byte_for_byte(self, tmp_path):
        write_trail(tmp_path / "t")
        (path,) = (tmp_path / "t" / "hot").glob("*.jsonl")
        ParquetConverter(tmp_path / "t" / "hot", tmp_path / "cold").convert_all()
        assert b"".join(source_lines(tmp_path / "cold", path.name)) == path.read_bytes()

    @pytest.mark.parametrize("source", ["../escape.jsonl", "missing.jsonl"])
    def test_source_lines_of_no_entry_is_a_format_error(self, tmp_path, source):
        write_trail(tmp_path / "t")
        ParquetConverter(tmp_path / "t" / "hot", tmp_path / "cold").convert_all()
        with pytest.raises(AuditFormatError, match=r"source|manifest entry"):
            list(source_lines(tmp_path / "cold", source))


class OddSignalEvent(AuditEvent):
    """A user's event whose field shares a typed column's name with a value that column cannot hold."""

    event_type_root: ClassVar[str] = "odd"
    signal_value: str


class TestTypedRead:
    """A file without torn lines is parsed by DuckDB's typed ``read_json`` beside its raw lines; a file
    the typed read refuses takes the plain parse (``json_transform``): the rows are the same either way."""

    @staticmethod
    def convert(base: Path, cold: Path, monkeypatch, *, refuse: bool = False) -> list[bool]:
        """Convert ``base``'s trail into ``cold``; the ``plain`` flag of each ``rows`` the converter built."""
        import audit_core.cold.converter as converter

        built: list[bool] = []
        create = converter._ColumnarPass._create_rows

        def spy(self, parsed: str, *, plain: bool) -> None:
            built.append(plain)
            if refuse and not plain:
                parsed = "(SELECT line, j FROM (SELECT error('refused') AS line, NULL AS j))"
            create(self, parsed, plain=plain)

        monkeypatch.setattr(converter._ColumnarPass, "_create_rows", spy)
        results = ParquetConverter(base / "hot", cold).convert_all()
        assert all(result.converted for result in results)
        return built

    def test_the_typed_read_gives_the_rows_of_the_plain_parse(self, tmp_path, monkeypatch):
        write_trail(tmp_path / "t")
        assert self.convert(tmp_path / "t", tmp_path / "typed", monkeypatch) == [False]
        assert self.convert(tmp_path / "t", tmp_path / "plain", monkeypatch, refuse=True) == [False, True]
        typed, plain = cold_rows(tmp_path / "typed"), cold_rows(tmp_path / "plain")
        assert len(typed) > 40
        assert typed == plain
        assert verify_cold(tmp_path / "typed").ok

    def test_a_value_the_typed_read_refuses_takes_the_plain_parse(self, tmp_path, monkeypatch):
        config = AuditConfig(base_path=tmp_path / "t", rotate_daily=False, sync_writes=False)
        clock = Clock(JAN_5_2359 - 60 * MINUTE)
        with AuditEventEmitter(config, clock=clock) as emitter:
            emitter.emit_signal("pp", "momentum", 0.5, 0.9)
            emitter.emit(OddSignalEvent(event_type="odd.signal", source="odd", signal_value="abc", ts_event=clock()))
        assert self.convert(tmp_path / "t", tmp_path / "cold", monkeypatch) == [False, True]
        rows = cold_rows(tmp_path / "cold")
        assert [row["signal_value"] for row in rows] == [0.5, None]  # json_transform: NULL where it cannot cast
        assert [original_line(row) for row in rows] == write_lines(tmp_path / "t")
        assert verify_cold(tmp_path / "cold").ok

    def test_a_line_out_of_step_with_its_json_is_an_error_not_a_shifted_row(self, tmp_path):
        import duckdb

        from audit_core.cold.converter import _typed_read

        hot = tmp_path / "lines.jsonl"
        hot.write_text('{"sequence":0,"checksum":"' + "a" * 64 + '"}\n{"sequence":1,"checksum":"b"}\n')
        with pytest.raises(duckdb.Error, match="out of step"):
            duckdb.connect().execute(f"SELECT * FROM {_typed_read(4)}", {"path": str(hot)}).fetchall()


def write_lines(base: Path) -> list[bytes]:
    return [line for path in sorted((base / "hot").glob("*.jsonl")) for line in path.read_bytes().splitlines()]
