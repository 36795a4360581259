"""The converter's one-pass verification agrees with ``hot.verifier.verify`` and the seal, chunk by chunk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from audit_core import AuditConfig, AuditEventEmitter
from audit_core.cold._bulk_verify import scan_file, verify_scanned
from audit_core.hot.verifier import verify
from audit_core.trust.merkle import MerkleTree, merkle_leaf_hash, merkle_root
from audit_core.trust.record import rebuild_line, split_record, strip_line
from audit_core.trust.seals import digest_file


def sealed_file(base: Path, events: int = 60, hmac_key: bytes | None = None) -> Path:
    config = AuditConfig(base_path=base, rotate_daily=False, sync_writes=False,
                         hmac_key=None if hmac_key is None else hmac_key.decode())
    with AuditEventEmitter(config) as emitter:
        for i in range(events):
            emitter.emit_param_change("c", "k", i, {"v": i, "s": "é\"\\"}, "r")
            emitter.emit_system("sys.regime_change", "c", {"prev_hash": "0" * 64, "i": i})
    (path,) = (base / "hot").glob("*.jsonl")
    return path


class TestOneTreeBuilder:
    """The converter's fast path feeds hashed leaves in chunks to the same ``MerkleTree`` seals use."""

    @pytest.mark.parametrize("size", [0, 1, 2, 3, 5, 7, 8, 9, 31, 32, 33, 100])
    def test_root_matches_rfc6962_reference_for_any_split(self, size):
        records = [f"r{i}".encode() for i in range(size)]
        for feed in (1, 3, 8):
            tree = MerkleTree(block=4)
            for start in range(0, size, feed):
                tree.add_leaf_hashes([merkle_leaf_hash(r) for r in records[start : start + feed]])
            assert tree.root() == merkle_root(records), (size, feed)

    @pytest.mark.parametrize("size", [0, 1, 5, 9, 17, 40])
    def test_single_records_and_hashed_blocks_mix_in_any_order(self, size):
        records = [f"r{i}".encode() for i in range(size)]
        tree = MerkleTree(block=4)
        for index, record in enumerate(records):  # alternate: one by one, then a few hashed at once
            if index % 3 == 0:
                tree.add(record)
            else:
                tree.add_leaf_hashes([merkle_leaf_hash(record)])
        assert tree.size == size and tree.root() == merkle_root(records)

    def test_block_must_be_a_power_of_two(self):
        with pytest.raises(ValueError, match="block=6: expected a power of two"):
            MerkleTree(block=6)


class TestColdRecordLayout:
    def test_strip_then_rebuild_is_the_identity(self, tmp_path):
        for line in sealed_file(tmp_path).read_bytes().splitlines():
            fields = split_record(line)
            stripped = strip_line(line, fields.prev_hash)
            assert fields.checksum.encode() not in stripped
            assert rebuild_line(stripped, fields.prev_hash, fields.checksum) == line

    def test_null_prev_hash_is_left_in_place(self):
        body = b'{"ts_event":1,"sequence":0,"prev_hash":null,"x":{"prev_hash":"' + b"a" * 64 + b'"}}'
        line = body[:-1] + b',"checksum":"' + b"b" * 64 + b'"}'
        assert strip_line(line, None) == body
        assert rebuild_line(body, None, "b" * 64) == line


class TestScanAgreesWithVerify:
    @pytest.mark.parametrize("chunk_bytes", [300, 4096, 1 << 20])
    def test_clean_file_takes_the_fast_path_and_matches_the_seal(self, tmp_path, chunk_bytes):
        path = sealed_file(tmp_path)
        scan = scan_file(path, chunk_bytes=chunk_bytes, merkle_block=8)
        assert scan.clean, scan.problems
        expected = digest_file(path)
        assert scan.digest.seal_fields() == expected.seal_fields()
        report = verify_scanned(path, scan)
        assert report.ok and report.records == expected.lines and report.sealed_files == 1

    def test_keyed_trail(self, tmp_path):
        key = b"k" * 32
        path = sealed_file(tmp_path, hmac_key=key)
        scan = scan_file(path, key)
        assert scan.clean and verify_scanned(path, scan, key).ok
        assert not scan_file(path).clean  # without the key every checksum differs

    @pytest.mark.parametrize("tamper", ["edit", "delete", "swap", "seal"])
    def test_tampering_falls_back_to_verify_and_reports_what_it_reports(self, tmp_path, tamper):
        path = sealed_file(tmp_path)
        lines = path.read_bytes().splitlines(keepends=True)
        os.chmod(path, 0o640)
        if tamper == "edit":
            lines[7] = lines[7].replace(b'"i":3', b'"i":4')
        elif tamper == "delete":
            del lines[10]
        elif tamper == "swap":
            lines[4], lines[5] = lines[5], lines[4]
        if tamper == "seal":
            seal = Path(str(path) + ".seal")
            os.chmod(seal, 0o640)
            seal.write_text(seal.read_text().replace('"records": 120', '"records": 121'))
        else:
            path.write_bytes(b"".join(lines))
        scan = scan_file(path, chunk_bytes=2048)
        report = verify_scanned(path, scan)
        expected = verify([path], require_stream_start=False)
        assert not report.ok
        assert [(f.kind, f.line, f.sequence) for f in report.failures] == [
            (f.kind, f.line, f.sequence) for f in expected.failures]
