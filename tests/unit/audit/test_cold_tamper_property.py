"""The hypothesis tamper suite, run against the cold verifier: random edits of Parquet rows are always found.

The attacker here rewrites a Parquet file with pyarrow and then does everything an unkeyed trail
lets them do: recomputes the manifest entry (the file's SHA-256, rows and sequence range) and the
cold root. So whatever ``verify_cold`` reports comes from the rows themselves (each record's
checksum, the chain in source-line order, the seal copy's counts and hashes, and every typed column
derived again from the record) or from the entry's own rows disagreeing with its seal copy. With
an HMAC key the attacker cannot re-authenticate the entry, so the entry fails too; the row checks
must still name the row (they do not stop at the file hash).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit_core import AuditConfig, AuditEventEmitter
from audit_core.cold import ParquetConverter, verify_cold
from audit_core.cold.manifest import MANIFEST_DIR, file_sha256, read_manifest, update_cold_root, write_entry
from audit_core.trust.report import FailureKind

T0 = 1_767_571_200 * 10**9  # 2026-01-05 00:00 UTC
#: Failures that come from the rows, not from the file's hash or the entry's authentication.
ROW_KINDS = {FailureKind.CHECKSUM_MISMATCH, FailureKind.CHAIN_BREAK, FailureKind.SEQUENCE_GAP,
             FailureKind.SEQUENCE_REPEAT, FailureKind.COLUMN_MISMATCH, FailureKind.SEAL_MISMATCH,
             FailureKind.UNPARSEABLE_LINE}
TAMPERINGS = ("record", "checksum", "prev_hash", "strip_prev_hash", "delete", "delete_and_close_gap", "duplicate",
              "swap_lines", "sequence", "ts_event", "event_type", "new_value_num", "price", "source_line")
_PREV_KEY = '"prev_hash":'


def _prev_at(record: str) -> int:
    return record.index(_PREV_KEY) + len(_PREV_KEY)


def _with_prev_hash(record: str, prev_hash: str) -> str:
    """``record`` claiming ``prev_hash`` (projection 4 keeps it in the record where it cannot be derived)."""
    at = _prev_at(record)
    if record[at] == '"':  # it keeps one: replace it
        return record[:at] + f'"{prev_hash}"' + record[at + 66:]
    return record[:at] + f'"{prev_hash}"' + record[at:]
CASES = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module", params=[None, b"cold-property-key"], ids=["unkeyed", "hmac"])
def converted(request, tmp_path_factory) -> tuple[Path, bytes | None]:
    """One sealed, converted hot file of 24 records (parameter changes, signals, fills) in one day."""
    base, key = tmp_path_factory.mktemp("trail"), request.param
    config = AuditConfig(base_path=base, trader_id="T1", sync_writes=False,
                         hmac_key=None if key is None else key.decode())
    now = [T0]
    with AuditEventEmitter(config, clock=lambda: now[0]) as audit:
        for i in range(8):
            now[0] = T0 + i * 60 * 10**9
            audit.emit_param_change("meta", "risk_multiplier", i / 10, (i + 1) / 10, f"drawdown {i}")
            audit.emit_signal("pp", "momentum", 0.5, 0.9, correlation_id=f"S-{i}")
            audit.emit_trade("trade.fill", "obs", "EUR/USD.SIM", order_id=f"O-{i}", side="BUY", size="1000",
                             price=f"1.1{i:03d}", commission="0.20", currency="USD", correlation_id=f"S-{i}")
    assert all(r.converted for r in ParquetConverter(base / "hot", base / "cold", hmac_key=key).convert_all())
    assert verify_cold(base / "cold", key).ok
    return base / "cold", key


def _tamper(table: pa.Table, kind: str, data: st.DataObject) -> pa.Table:
    rows = table.to_pylist()
    n = len(rows)
    i = data.draw(st.integers(0, n - 1), label="row")
    row = rows[i]
    if kind == "record":  # one character of the stored record, still valid UTF-8
        text = row["record"]
        at = data.draw(st.integers(1, len(text) - 2), label="at")
        replacement = data.draw(st.sampled_from("0123456789abcdefXYZ ").filter(lambda c: c != text[at]))
        row["record"] = text[:at] + replacement + text[at + 1:]
    elif kind == "checksum":
        row["checksum"] = ("0" if row["checksum"][0] != "0" else "1") + row["checksum"][1:]
    elif kind == "prev_hash":  # the record claims another prev_hash than the one it was chained with
        row["record"] = _with_prev_hash(row["record"], "f" * 64)
    elif kind == "strip_prev_hash":  # a row that keeps its prev_hash (the file's first) drops it: nothing derives it
        first = min(rows, key=lambda r: r["source_line"])
        at = _prev_at(first["record"])
        first["record"] = first["record"][:at] + first["record"][at + 66:]
    elif kind == "delete":
        del rows[i]
    elif kind == "delete_and_close_gap":  # a row cut from the middle; the next row takes its line number and
        # keeps its own prev_hash (the checksum of the row cut), so its body still hashes right
        ordered = sorted(rows, key=lambda r: r["source_line"])
        k = data.draw(st.integers(1, n - 2), label="middle")
        cut, after = ordered[k], ordered[k + 1:]
        after[0]["record"] = _with_prev_hash(after[0]["record"], cut["checksum"])
        for later in after:
            later["source_line"] -= 1
        rows.remove(cut)
    elif kind == "duplicate":
        rows.insert(i, dict(row))
    elif kind == "swap_lines":  # two rows trade places in the source order
        j = data.draw(st.integers(0, n - 1).filter(lambda j: j != i), label="other")
        row["source_line"], rows[j]["source_line"] = rows[j]["source_line"], row["source_line"]
    elif kind == "sequence":
        row["sequence"] += data.draw(st.sampled_from([-1, 1, 1000]), label="delta")
    elif kind == "ts_event":
        row["ts_event"] += data.draw(st.sampled_from([-1, 1, -3600 * 10**9]), label="delta")
    elif kind == "event_type":
        row["event_type"] = "param.approved" if row["event_type"] != "param.approved" else "trade.fill"
    elif kind == "new_value_num":
        row["new_value_num"] = (row["new_value_num"] or 0.0) + 1.0
    elif kind == "price":
        row["price"] = (row["price"] or 0) + 1
    else:
        assert kind == "source_line"
        row["source_line"] += n
    return pa.Table.from_pylist(rows, schema=table.schema)


def _rewrite_as_an_unkeyed_attacker(cold: Path, file: Path, table: pa.Table, key: bytes | None) -> None:
    """Write the table over the file, then make the entry and the root agree with it (no key needed unkeyed)."""
    metadata = pq.read_metadata(file).metadata
    file.chmod(0o644)
    pq.write_table(table.replace_schema_metadata(metadata), file, compression="zstd")
    (entry_path,) = (cold / MANIFEST_DIR).glob("*.json")
    entry = {k: v for k, v in read_manifest(entry_path).items() if k != "manifest_checksum"}
    sequences = [s for s in table.column("sequence").to_pylist() if s is not None]
    (output,) = entry["outputs"]
    output.update(rows=table.num_rows, sha256=file_sha256(file), bytes=file.stat().st_size,
                  first_sequence=min(sequences), last_sequence=max(sequences))
    write_entry(cold, entry)  # without the key: only an unkeyed store accepts it
    if key is None:
        update_cold_root(cold)


@CASES
@given(kind=st.sampled_from(TAMPERINGS), data=st.data())
def test_every_row_tampering_is_found_by_the_rows_themselves(converted, kind, data):
    cold, key = converted
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "cold"
        shutil.copytree(cold, copy)
        (file,) = sorted(copy.glob("year=*/month=*/day=*/*.parquet"))
        table = pq.read_table(file)
        tampered = _tamper(table, kind, data)
        _rewrite_as_an_unkeyed_attacker(copy, file, tampered, key)
        report = verify_cold(copy, key)
        found = {failure.kind for failure in report.failures}
        assert not report.ok, f"{kind} went unnoticed"
        assert found & ROW_KINDS, f"{kind}: only {sorted(found)}; the rows themselves must show it"
        if key is None:  # file hash and root were recomputed: they cannot have been what told
            assert not found & {FailureKind.PARQUET_MISMATCH, FailureKind.ROOT_INVALID}, sorted(found)


def test_rewriting_the_same_rows_is_no_row_failure(converted):
    """No false alarm from the rows: a pyarrow rewrite of identical rows passes unkeyed (entry and root
    recomputed), and a keyed store fails only on the entry the attacker could not authenticate."""
    cold, key = converted
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "cold"
        shutil.copytree(cold, copy)
        (file,) = sorted(copy.glob("year=*/month=*/day=*/*.parquet"))
        _rewrite_as_an_unkeyed_attacker(copy, file, pq.read_table(file), key)
        report = verify_cold(copy, key)
        found = {failure.kind for failure in report.failures}
        if key is None:
            assert report.ok, report.to_text()
        else:
            assert found and not found & ROW_KINDS, sorted(found)


def _by_line(table: pa.Table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda row: row["source_line"])


@pytest.mark.parametrize(("kind", "expected"), [
    # Projection 4 stores no prev_hash column: a row's prev_hash is the checksum of the row one source
    # line before it in the file. Cut that row and the next one's body is incomplete.
    ("delete_middle", {(FailureKind.CHECKSUM_MISMATCH, 13), (FailureKind.SEQUENCE_GAP, 13)}),
    # Cut it, close the gap, and give the next row its own prev_hash back: its body hashes right, but
    # the chain does not link (and the sequence jumps).
    ("delete_and_close_gap", {(FailureKind.CHAIN_BREAK, 12), (FailureKind.SEQUENCE_GAP, 12)}),
    # The first row keeps its prev_hash (nothing before it gives it back): strip it and nothing derives it.
    ("strip_first_prev_hash", {(FailureKind.CHECKSUM_MISMATCH, 1)}),
    # A row claims a prev_hash of its own instead of deriving it.
    ("claim_prev_hash", {(FailureKind.CHECKSUM_MISMATCH, 7)}),
])
def test_prev_hash_tamperings_are_named_by_line(converted, kind, expected):
    cold, key = converted
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "cold"
        shutil.copytree(cold, copy)
        (file,) = sorted(copy.glob("year=*/month=*/day=*/*.parquet"))
        table = pq.read_table(file)
        rows = _by_line(table)
        assert rows[0]["record"][_prev_at(rows[0]["record"])] == '"'  # the first row keeps it
        assert all(row["record"][_prev_at(row["record"])] == "," for row in rows[1:])  # the rest derive it
        if kind == "delete_middle":
            del rows[11]
        elif kind == "delete_and_close_gap":
            cut = rows.pop(11)
            rows[11]["record"] = _with_prev_hash(rows[11]["record"], cut["checksum"])
            for row in rows[11:]:
                row["source_line"] -= 1
        elif kind == "strip_first_prev_hash":
            at = _prev_at(rows[0]["record"])
            rows[0]["record"] = rows[0]["record"][:at] + rows[0]["record"][at + 66:]
        else:
            rows[6]["record"] = _with_prev_hash(rows[6]["record"], rows[4]["checksum"])
        _rewrite_as_an_unkeyed_attacker(copy, file, pa.Table.from_pylist(rows, schema=table.schema), key)
        report = verify_cold(copy, key)
        found = {(failure.kind, failure.line) for failure in report.failures}
        assert expected <= found, sorted(found)
