"""Seals: RFC 6962 Merkle roots, sealed files on close, and every tampering with a sealed file is detected.

A seal is the sidecar ``<file>.seal`` written when a file is rotated or closed. The chain alone cannot
see an edit of the last record or a deleted last line; the seal can. These tests alter sealed files the
way an attacker with write access would (restoring the write bits first) and expect ``verify`` to say so.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit_core import AuditConfig, AuditEventEmitter, FailureKind, VerificationReport, verify
from audit_core._layout import parse_hot_file_name, seal_path
from audit_core.trust.documents import canonical_bytes
from audit_core.trust.merkle import MerkleTree, merkle_root
from audit_core.trust.record import CHECKSUM_SUFFIX_PREFIX, compute_checksum, split_record

PROPERTY = settings(max_examples=40, deadline=None)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
TRADER = "T-SEAL"
STREAM = "alpha"


# --- reference Merkle tree hash (RFC 6962, section 2.1), written as the RFC states it ---------------


def rfc6962_mth(leaves: list[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < n:  # the largest power of two smaller than n
        k *= 2
    return hashlib.sha256(b"\x01" + rfc6962_mth(leaves[:k]) + rfc6962_mth(leaves[k:])).digest()


#: Inputs and roots of the certificate-transparency test vectors (trees of 1 to 8 leaves).
CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


class TestMerkleRoot:
    def test_empty_tree_is_sha256_of_nothing(self):
        assert merkle_root([]) == hashlib.sha256(b"").hexdigest()
        assert MerkleTree().root() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    @pytest.mark.parametrize("size", range(71))
    def test_matches_the_recursive_definition(self, size):
        leaves = [f"record {index} ".encode() * (index % 5) for index in range(size)]
        assert merkle_root(leaves) == rfc6962_mth(leaves).hex()

    @pytest.mark.parametrize("size", range(1, len(CT_LEAVES) + 1))
    def test_certificate_transparency_vectors(self, size):
        assert rfc6962_mth(CT_LEAVES[:size]).hex() == CT_ROOTS[size - 1]
        assert merkle_root(CT_LEAVES[:size]) == CT_ROOTS[size - 1]

    def test_leaf_and_node_are_domain_separated(self):
        # Without the 0x00/0x01 prefixes a two-leaf tree would equal a one-leaf tree of the two leaf hashes.
        a, b = b"a", b"b"
        inner = hashlib.sha256(b"\x00" + a).digest() + hashlib.sha256(b"\x00" + b).digest()
        assert merkle_root([a, b]) != merkle_root([inner])

    @given(st.lists(st.binary(max_size=40), max_size=40))
    @PROPERTY
    def test_matches_the_recursive_definition_on_any_leaves(self, leaves):
        assert merkle_root(leaves) == rfc6962_mth(leaves).hex()


# --- trails ---------------------------------------------------------------------------------------


def utc_ns(*args: int) -> int:
    return (dt.datetime(*args, tzinfo=dt.UTC) - _EPOCH) // dt.timedelta(microseconds=1) * 1000


DAY_1 = utc_ns(2026, 3, 1, 12)


class FakeClock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def config_for(base: Path, **overrides: Any) -> AuditConfig:
    return AuditConfig(base_path=base, trader_id=TRADER, stream_id=STREAM, sync_writes=False, **overrides)


def write_trail(base: Path, days: int = 1, per_day: int = 5, **overrides: Any) -> list[Path]:
    """A closed trail over ``days`` UTC days (one file each, crossed with a fake clock); its files."""
    clock = FakeClock(DAY_1)
    with AuditEventEmitter(config_for(base, **overrides), clock=clock) as emitter:
        for day in range(days):
            clock.now = DAY_1 + day * 86_400 * 1_000_000_000
            for index in range(per_day):
                clock.now += 1_000
                emitter.emit_param_change("seal-test", f"p{index}", index, {"day": day, "value": index + 1})
        assert emitter.writer.stats.rotations == days - 1
    files = sorted(config_for(base).hot_path.glob("*.jsonl"))
    assert len(files) == days
    return files


@contextmanager
def trail(days: int = 1, per_day: int = 5, **overrides: Any) -> Iterator[tuple[Path, list[Path]]]:
    """``write_trail`` in a fresh directory, for hypothesis tests (no function-scoped tmp_path)."""
    with tempfile.TemporaryDirectory() as directory:
        base = Path(directory)
        yield base, write_trail(base, days, per_day, **overrides)


def writable(path: Path) -> Path:
    """Give a sealed file its write bits back, as an attacker with the file's ownership would."""
    os.chmod(path, 0o640)
    return path


def kinds(report: VerificationReport) -> set[FailureKind]:
    return {failure.kind for failure in report.failures}


def assert_detected(report: VerificationReport, kind: FailureKind, file: Path | None = None) -> None:
    assert not report.ok, "tampering went unnoticed"
    matching = [f for f in report.failures if f.kind is kind and (file is None or f.file == str(file))]
    assert matching, f"expected {kind.value}{'' if file is None else f' on {file.name}'}:\n{report.to_text()}"


def rechecksum(line: bytes, hmac_key: bytes | None = None) -> bytes:
    """The record line with its checksum recomputed over its (edited) body."""
    body = split_record(line).body
    return body[:-1] + CHECKSUM_SUFFIX_PREFIX + compute_checksum(body, hmac_key).encode() + b'"}\n'


def edit_value(line: bytes, new_value: int) -> bytes:
    record = json.loads(line)
    assert record["event_type"] == "param.state_change"
    old = json.dumps(record["new_value"], separators=(",", ":")).encode()
    new = json.dumps({**record["new_value"], "value": new_value}, separators=(",", ":")).encode()
    assert line.count(old) == 1 and old != new
    return line.replace(old, new)


class TestSealsOnClose:
    def test_every_file_of_a_closed_trail_is_sealed_read_only_with_matching_fields(self, tmp_path):
        files = write_trail(tmp_path, days=3, per_day=4)

        for index, path in enumerate(files):
            seal = json.loads(seal_path(path).read_bytes())
            assert stat.S_IMODE(path.stat().st_mode) == 0o440
            assert stat.S_IMODE(seal_path(path).stat().st_mode) == 0o440
            lines = path.read_bytes().splitlines(keepends=True)
            first, last = split_record(lines[0]), split_record(lines[-1])
            name = parse_hot_file_name(path)
            assert name is not None
            assert seal["format"] == "ledgerline-seal/1"
            assert seal["file"] == path.name
            assert seal["stream"] == f"{TRADER}.{STREAM}"
            assert seal["records"] == len(lines) == 4
            assert seal["file_size"] == path.stat().st_size
            assert (seal["first_sequence"], seal["last_sequence"]) == (4 * index, 4 * index + 3)
            assert (seal["first_hash"], seal["last_hash"]) == (first.checksum, last.checksum)
            assert seal["file_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
            assert seal["merkle_root"] == rfc6962_mth([line.rstrip(b"\n") for line in lines]).hex()
            assert seal["next_file"] == (files[index + 1].name if index + 1 < len(files) else None)
            assert seal["seal_checksum"] == compute_checksum(canonical_bytes(seal, ["seal_checksum"]))
        report = verify(tmp_path)
        assert report.ok, report.to_text()
        assert report.sealed_files == 3

    def test_keyed_seal_checksum_is_an_hmac(self, tmp_path):
        (path,) = write_trail(tmp_path, hmac_key="k")
        seal = json.loads(seal_path(path).read_bytes())

        assert seal["seal_checksum"] == compute_checksum(canonical_bytes(seal, ["seal_checksum"]), b"k")
        assert verify(tmp_path, hmac_key=b"k").ok


class TestTamperingWithASealedFile:
    @given(st.data())
    @PROPERTY
    def test_any_flipped_byte_is_detected(self, data):
        with trail(days=2, per_day=4) as (base, files):
            target = data.draw(st.sampled_from(files), label="file")
            content = bytearray(target.read_bytes())
            offset = data.draw(st.integers(0, len(content) - 1), label="offset")
            content[offset] ^= data.draw(st.integers(1, 255), label="xor")
            writable(target).write_bytes(bytes(content))

            report = verify(base)

            assert_detected(report, FailureKind.SEAL_MISMATCH, target)

    @given(st.data())
    @PROPERTY
    def test_field_edit_with_recomputed_checksum_is_detected_even_in_the_last_record(self, data):
        with trail(days=2, per_day=4) as (base, files):
            target = data.draw(st.sampled_from(files), label="file")
            lines = target.read_bytes().splitlines(keepends=True)
            # The last record of the newest file is included: the chain alone cannot see that edit.
            index = data.draw(st.integers(0, len(lines) - 1), label="line")
            lines[index] = rechecksum(edit_value(lines[index], data.draw(st.integers(100, 10**9), label="value")))
            writable(target).write_bytes(b"".join(lines))

            report = verify(base)

            assert_detected(report, FailureKind.SEAL_MISMATCH, target)

    def test_edit_of_the_very_last_record_with_recomputed_checksum(self, tmp_path):
        (path,) = write_trail(tmp_path)
        lines = path.read_bytes().splitlines(keepends=True)
        lines[-1] = rechecksum(edit_value(lines[-1], 999))
        writable(path).write_bytes(b"".join(lines))

        report = verify(tmp_path)

        assert_detected(report, FailureKind.SEAL_MISMATCH, path)
        assert kinds(report) == {FailureKind.SEAL_MISMATCH}, "the chain itself cannot see this edit"

    def test_deleted_last_line_is_detected(self, tmp_path):
        (path,) = write_trail(tmp_path)
        lines = path.read_bytes().splitlines(keepends=True)
        writable(path).write_bytes(b"".join(lines[:-1]))

        assert_detected(verify(tmp_path), FailureKind.SEAL_MISMATCH, path)

    @pytest.mark.parametrize("keep", [0, 1, 3, 4])
    def test_truncation_at_a_line_boundary_is_detected(self, tmp_path, keep):
        (path,) = write_trail(tmp_path)
        lines = path.read_bytes().splitlines(keepends=True)
        assert len(lines) == 5
        writable(path).write_bytes(b"".join(lines[:keep]))

        assert_detected(verify(tmp_path), FailureKind.SEAL_MISMATCH, path)

    def test_appended_well_chained_record_is_detected(self, tmp_path):
        (path,) = write_trail(tmp_path)
        last = path.read_bytes().splitlines(keepends=True)[-1]
        fields = split_record(last)
        record = json.loads(last)
        record.pop("checksum")
        record |= {"sequence": fields.sequence + 1, "prev_hash": fields.checksum, "param_name": "forged"}
        body = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()
        forged = body[:-1] + CHECKSUM_SUFFIX_PREFIX + compute_checksum(body).encode() + b'"}\n'
        with writable(path).open("ab") as handle:
            handle.write(forged)

        report = verify(tmp_path)

        assert_detected(report, FailureKind.SEAL_MISMATCH, path)
        assert kinds(report) == {FailureKind.SEAL_MISMATCH}, "the forged record itself chains correctly"

    def test_deleted_newest_file_is_detected_through_the_previous_seal(self, tmp_path):
        files = write_trail(tmp_path, days=2)
        files[-1].unlink()
        seal_path(files[-1]).unlink()

        report = verify(tmp_path)

        assert_detected(report, FailureKind.FILE_MISSING, files[0])
        assert any(files[-1].name in failure.detail for failure in report.failures)

    def test_deleted_middle_file_is_detected(self, tmp_path):
        files = write_trail(tmp_path, days=3)
        files[1].unlink()
        seal_path(files[1]).unlink()

        report = verify(tmp_path)

        assert_detected(report, FailureKind.FILE_MISSING, files[0])
        assert_detected(report, FailureKind.SEQUENCE_GAP, files[2])

    @pytest.mark.parametrize("which", [0, 1])
    def test_deleted_seal_of_a_non_newest_file_is_seal_missing(self, tmp_path, which):
        files = write_trail(tmp_path, days=3)
        seal_path(files[which]).unlink()

        report = verify(tmp_path)

        assert_detected(report, FailureKind.SEAL_MISSING, files[which])

    @given(st.data())
    @PROPERTY
    def test_edited_seal_is_invalid(self, data):
        with trail(days=2, per_day=3) as (base, files):
            target = data.draw(st.sampled_from(files), label="file")
            seal = json.loads(seal_path(target).read_bytes())
            key = data.draw(st.sampled_from(sorted(k for k in seal if k not in ("seal_checksum", "format"))))
            replacement = data.draw(
                st.one_of(st.integers(-5, 10**6), st.text(max_size=8), st.none()).filter(lambda v: v != seal[key]),
                label="value",
            )
            seal[key] = replacement
            writable(seal_path(target)).write_text(json.dumps(seal, indent=1))

            assert_detected(verify(base), FailureKind.SEAL_INVALID, target)

    def test_edited_seal_with_recomputed_checksum_still_fails_against_the_file(self, tmp_path):
        (path,) = write_trail(tmp_path)
        seal = json.loads(seal_path(path).read_bytes())
        seal["records"] += 1
        seal["seal_checksum"] = compute_checksum(canonical_bytes(seal, ["seal_checksum"]))
        writable(seal_path(path)).write_text(json.dumps(seal, indent=1))

        assert_detected(verify(tmp_path), FailureKind.SEAL_MISMATCH, path)

    @pytest.mark.parametrize("garbage", [b"", b"{", b"[]", b'{"format": "other/1"}'])
    def test_unreadable_seal_is_invalid(self, tmp_path, garbage):
        (path,) = write_trail(tmp_path)
        writable(seal_path(path)).write_bytes(garbage)

        assert_detected(verify(tmp_path), FailureKind.SEAL_INVALID, path)


class TestKeyedSeals:
    @staticmethod
    def reseal(path: Path, edit: Callable[[dict[str, Any]], None], checksum_key: bytes | None) -> None:
        seal = json.loads(seal_path(path).read_bytes())
        edit(seal)
        seal["seal_checksum"] = compute_checksum(canonical_bytes(seal, ["seal_checksum"]), checksum_key)
        writable(seal_path(path)).write_text(json.dumps(seal, indent=1))

    def test_seal_with_a_plain_sha256_checksum_is_invalid_under_the_key(self, tmp_path):
        (path,) = write_trail(tmp_path, hmac_key="k")
        # Nothing in the seal changed; only its checksum is now plain SHA-256, as a forger without the key writes it.
        self.reseal(path, lambda seal: None, checksum_key=None)

        report = verify(tmp_path, hmac_key=b"k")

        assert_detected(report, FailureKind.SEAL_INVALID, path)

    def test_forged_seal_for_an_edited_file_is_invalid_under_the_key(self, tmp_path):
        files = write_trail(tmp_path, days=2, hmac_key="k")
        path = files[-1]
        lines = path.read_bytes().splitlines(keepends=True)
        writable(path).write_bytes(b"".join(lines[:-1]))
        digest_fields = {
            "records": len(lines) - 1,
            "file_size": sum(map(len, lines[:-1])),
            "last_sequence": split_record(lines[-2]).sequence,
            "last_hash": split_record(lines[-2]).checksum,
            "file_sha256": hashlib.sha256(b"".join(lines[:-1])).hexdigest(),
            "merkle_root": merkle_root(line.rstrip(b"\n") for line in lines[:-1]),
        }
        self.reseal(path, lambda seal: seal.update(digest_fields), checksum_key=None)

        report = verify(tmp_path, hmac_key=b"k")

        assert_detected(report, FailureKind.SEAL_INVALID, path)
        assert FailureKind.SEAL_MISMATCH not in kinds(report), "the forged seal matches the truncated file"

    def test_seal_resealed_with_the_key_matches(self, tmp_path):
        (path,) = write_trail(tmp_path, hmac_key="k")
        self.reseal(path, lambda seal: None, checksum_key=b"k")

        assert verify(tmp_path, hmac_key=b"k").ok


@pytest.mark.parametrize("lines", [0, 1, 4095, 4096, 4097, 8192 + 3])
def test_file_digest_hashes_leaves_in_blocks_to_the_same_merkle_root(lines):
    """``FileDigest`` joins leaves to its tree a block at a time; the root is RFC 6962's over every line."""
    from audit_core.trust.seals import FileDigest

    records = [b'{"n":%d}' % i for i in range(lines)]
    digest = FileDigest()
    for record in records[:-1]:
        digest.add_line(record + b"\n", None)
    if records:
        digest.add_line(records[-1], None)  # a last line without a newline is a leaf of its own bytes too
    digest.finish()
    assert digest.merkle_root == merkle_root(records)
    assert digest.file_sha256 == hashlib.sha256(b"\n".join(records)).hexdigest()


_UNEVEN = b'{"a":1}\n\n' + b"x" * 100 + b"\n\r\n" + b"y" * 300 + b"\n"


@pytest.mark.parametrize("block", [1, 7, 64, 100, 101, 1 << 16])
@pytest.mark.parametrize("tail", [b"", b"a torn tail", b"z" * 250])
def test_read_chunks_gives_whole_lines_with_their_bytes_and_a_torn_tail_last(block, tail, tmp_path, monkeypatch):
    """Whole lines, newlines in (a line may span blocks; only a newline ends one, not a carriage return), each
    chunk with its bytes; bytes after the last newline last."""
    from audit_core.trust import seals

    monkeypatch.setattr(seals, "CHUNK_BYTES", block)
    path = tmp_path / "lines"
    path.write_bytes(_UNEVEN + tail)
    chunks = list(seals.read_chunks(path))
    assert b"".join(data for _, data in chunks) == _UNEVEN + tail
    assert [line for lines, _ in chunks for line in lines] == [b'{"a":1}\n', b"\n", b"x" * 100 + b"\n", b"\r\n",
                                                               b"y" * 300 + b"\n", *([tail] if tail else [])]
    whole = chunks[:-1] if tail else chunks
    assert all(data == b"".join(lines) for lines, data in whole)
    if tail:
        assert chunks[-1] == ([tail], tail)


@pytest.mark.parametrize("block", [7, 1 << 16])
def test_file_digest_of_chunks_is_the_digest_of_lines(block, tmp_path, monkeypatch):
    """``add_lines`` over ``read_chunks`` (whole lines) hashes what ``add_line`` hashes line by line."""
    from audit_core.trust import seals

    monkeypatch.setattr(seals, "CHUNK_BYTES", block)
    path = tmp_path / "lines"
    path.write_bytes(_UNEVEN)
    by_chunk, by_line = seals.FileDigest(), seals.FileDigest()
    for lines, data in seals.read_chunks(path):
        by_chunk.add_lines(lines, data)
    for line in seals.read_lines(path):
        by_line.add_line(line, None)
    assert by_chunk.finish().seal_fields() == by_line.finish().seal_fields()
    assert by_chunk.merkle_root == merkle_root(_UNEVEN.split(b"\n")[:-1])


# --- an authenticated seal vouches for its root; --deep recomputes ---------------------------------


def signed_trail(base: Path, days: int = 2) -> tuple[list[Path], Any, Any]:
    """A closed trail whose seals are signed (no HMAC key): its files, the signing key and the public key."""
    from audit_core.trust.signing import generate_keypair, load_private_key, load_public_key

    base.mkdir(exist_ok=True)
    generate_keypair(base / "writer.key", base / "writer.pub")
    files = write_trail(base / "trail", days, signing_key_path=base / "writer.key")
    return files, load_private_key(base / "writer.key"), load_public_key(base / "writer.pub")


def resign(path: Path, signing_key: Any, **changes: Any) -> None:
    """Seal ``path`` again with ``changes``, signed (and its checkpoint) with the writer's key: a buggy sealer."""
    from audit_core._layout import checkpoint_path
    from audit_core.trust import checkpoint, documents
    from audit_core.trust.seals import SEAL_CHECKSUM

    seal = {**json.loads(seal_path(path).read_bytes()), **changes}
    seal = documents.authenticate(seal, SEAL_CHECKSUM, None, signing_key)
    writable(checkpoint_path(path)).write_text(checkpoint.sign_checkpoint(seal, signing_key))
    writable(seal_path(path)).write_text(json.dumps(seal, indent=1))


class TestAuthenticatedSealVouches:
    def test_keyed_and_signed_seals_vouch_unkeyed_ones_never(self, tmp_path):
        keyed = write_trail(tmp_path / "keyed", days=3, hmac_key="k")
        report = verify(tmp_path / "keyed", hmac_key=b"k", jobs=1)
        assert report.ok and report.vouched == [str(path) for path in keyed]
        assert "Merkle roots and file hashes of 3 sealed file(s) not recomputed" in report.to_text()
        assert report.to_dict()["vouched"] == report.vouched

        signed, _, public_key = signed_trail(tmp_path / "signed")
        report = verify(tmp_path / "signed", public_key=public_key, jobs=1)
        assert report.ok and report.vouched == [str(path) for path in signed]

        write_trail(tmp_path / "plain", days=3)
        report = verify(tmp_path / "plain", jobs=1)
        assert report.ok and report.sealed_files == 3 and report.vouched == []
        assert "not recomputed" not in report.to_text() and "vouched" not in report.to_dict()
        # The signed trail without its public key: the signatures are not checked, nothing vouches.
        assert verify(tmp_path / "signed", jobs=1).vouched == []

    def test_deep_recomputes_every_root(self, tmp_path):
        write_trail(tmp_path, days=3, hmac_key="k")
        report = verify(tmp_path, hmac_key=b"k", jobs=1, deep=True)
        assert report.ok and report.sealed_files == 3 and report.vouched == []

    def test_unkeyed_seal_with_a_rewritten_root_is_caught(self, tmp_path):
        """Without a key anyone can recompute a seal's checksum: its root is never taken on trust."""
        (path,) = write_trail(tmp_path)
        TestKeyedSeals.reseal(path, lambda seal: seal.update(merkle_root="ab" * 32), checksum_key=None)

        report = verify(tmp_path, jobs=1)

        assert_detected(report, FailureKind.SEAL_MISMATCH, path)
        assert any("merkle_root" in failure.detail for failure in report.failures)
        assert report.vouched == []

    @pytest.mark.parametrize("appended", ["record", "blank_line", "bytes_without_newline"])
    def test_signed_seal_over_a_file_with_something_appended_is_caught(self, tmp_path, appended):
        """The chain must end where the seal does and nothing may follow it, or the seal vouches for nothing."""
        files, _, public_key = signed_trail(tmp_path, days=1)
        path = files[0]
        data = path.read_bytes()
        last = split_record(data.splitlines(keepends=True)[-1])
        if appended == "record":  # the next record, chained and checksummed: no key is needed for that
            extra = rechecksum(data.splitlines(keepends=True)[-1]
                               .replace(b'"sequence":%d' % last.sequence, b'"sequence":%d' % (last.sequence + 1))
                               .replace(str(last.prev_hash).encode(), last.checksum.encode()))
        else:
            extra = {"blank_line": b"\n", "bytes_without_newline": b"x"}[appended]
        writable(path).write_bytes(data + extra)

        report = verify(tmp_path / "trail", public_key=public_key, jobs=1)

        assert_detected(report, FailureKind.SEAL_MISMATCH, path)
        assert any("merkle_root" in failure.detail for failure in report.failures), report.to_text()
        assert report.vouched == []

    def test_deep_catches_a_signed_root_that_disagrees_with_the_records(self, tmp_path):
        files, signing_key, public_key = signed_trail(tmp_path)
        resign(files[0], signing_key, merkle_root="cd" * 32)

        vouched = verify(tmp_path / "trail", public_key=public_key, jobs=1)
        assert vouched.ok and str(files[0]) in vouched.vouched, "the signature vouches for what the sealer signed"

        deep = verify(tmp_path / "trail", public_key=public_key, jobs=1, deep=True)
        assert_detected(deep, FailureKind.SEAL_MISMATCH, files[0])
        assert deep.vouched == []

    def test_cli_deep_catches_it_too(self, tmp_path, capsys):
        from audit_core.cli import main

        files, signing_key, _ = signed_trail(tmp_path)
        resign(files[-1], signing_key, file_sha256="ef" * 32)
        public = str(tmp_path / "writer.pub")

        assert main(["verify", str(tmp_path / "trail"), "--public-key", public]) == 0
        assert "not recomputed: vouched for by their authenticated seals" in capsys.readouterr().out
        assert main(["verify", str(tmp_path / "trail"), "--public-key", public, "--deep"]) == 1
        assert "seal says file_sha256=" in capsys.readouterr().out

    def test_jobs_report_the_same_vouched_files(self, tmp_path, monkeypatch):
        import audit_core.hot.verifier as verifier

        files = write_trail(tmp_path, days=4, hmac_key="k")
        one = verify(tmp_path, hmac_key=b"k", jobs=1)
        monkeypatch.setattr(verifier, "worth_parallel", lambda paths, workers: True)
        two = verify(tmp_path, hmac_key=b"k", jobs=2)
        assert one.to_dict() == two.to_dict() and two.vouched == [str(path) for path in files]


def _digest_line_by_line(path: Path) -> dict[str, Any]:
    """The seal fields of ``path`` as every line parsed in turn gives them (the rule ``digest_file`` keeps)."""
    from audit_core.trust import seals

    digest = seals.FileDigest()
    for line in seals.read_lines(path):
        try:
            record = split_record(line) if line.endswith(b"\n") else None
        except ValueError:
            record = None
        digest.add_line(line, record)
    return digest.finish().seal_fields()


@pytest.mark.parametrize("block", [64, 1000, 1 << 16])
@pytest.mark.parametrize("layout", ["clean", "junk_first", "junk_last", "junk_between", "torn_tail", "only_junk",
                                    "junk_then_torn", "empty"])
def test_digest_file_reads_the_range_from_the_first_and_last_records(layout, block, tmp_path, monkeypatch):
    """Hashed a chunk at a time and parsed only at its ends, a file digests as every line parsed would:
    lines that are not records (first, last, between, a torn tail) count and are hashed, never ranged."""
    from audit_core.trust import seals

    monkeypatch.setattr(seals, "CHUNK_BYTES", block)
    with AuditEventEmitter(AuditConfig(base_path=tmp_path / "trail", stream_id="s")) as emitter:
        for i in range(40):
            emitter.emit_system("sys.x", "test", {"i": i})
        source = emitter.writer.path
    lines = source.read_bytes().splitlines(keepends=True)
    junk = b'{"not":"a record"}\n'
    data = {
        "clean": lines, "junk_first": [junk, *lines], "junk_last": [*lines, junk],
        "junk_between": [*lines[:20], junk, junk, *lines[20:]], "torn_tail": [*lines, lines[0][:50]],
        "only_junk": [junk, junk], "junk_then_torn": [*lines, junk, b'{"ts_event":1'], "empty": [],
    }[layout]
    path = tmp_path / source.name
    path.write_bytes(b"".join(data))
    fields = seals.digest_file(path).seal_fields()
    assert fields == _digest_line_by_line(path)
    if layout not in ("only_junk", "empty"):
        assert (fields["first_sequence"], fields["last_sequence"]) == (0, 39)
    assert fields["records"] == len(data)
