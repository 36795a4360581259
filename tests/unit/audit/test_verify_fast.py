"""``verify``'s fast path (``chain.clean_file``) against its line-by-line pass: the same report, always.

A file whose records are all plainly right is checked in bulk (issue 18); anything else falls back
to the line-by-line pass, which alone writes failures. Every case here runs ``verify`` twice, once
as it is and once with the fast path switched off, and compares the whole reports. The fast path
must also really be taken where a file is clean, or this would compare the slow path with itself.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from test_cold_attacks import MODES, Trail
from test_tamper_battery import ATTACKS, clone, damage, templates  # noqa: F401
from test_verify_jobs import BOUNDARY_DAMAGE, six_days  # noqa: F401

import audit_core.trust.chain as chain
import audit_core.trust.seals as seals
from audit_core.hot.verifier import verify
from audit_core.trust.record import (
    GENESIS_HASH,
    compute_checksum,
    compute_checksums,
    read_run,
    record_bodies,
    split_record,
)
from audit_core.verification import verify_trail


@pytest.fixture
def fast_taken(monkeypatch) -> list[Path]:
    """The files the fast path verified (it returned a digest), in order."""
    taken: list[Path] = []
    original = chain.clean_file

    def spy(path, state, hmac_key, **options):
        result = original(path, state, hmac_key, **options)
        if result is not None:
            taken.append(path)
        return result

    monkeypatch.setattr(chain, "clean_file", spy)
    return taken


def slow_report(monkeypatch, run):
    """``run()``'s report with the fast path switched off."""
    with monkeypatch.context() as patch:
        patch.setattr(chain, "clean_file", lambda path, state, hmac_key, **options: None)
        return run()


def without_vouched(report: dict) -> dict:
    """``report`` (a ``to_dict()``) without the files whose roots an authenticated seal vouched for.

    Only the fast path leaves a root to its seal (``seals.CheckedSeal.vouches``); the line-by-line
    pass recomputes every one. Everything else, failures first, must be the same.
    """
    return {key: [without_vouched(part) for part in value] if key == "parts" else value
            for key, value in report.items() if key != "vouched"}


def trail_report(trail: Trail) -> dict:
    return verify_trail(trail.base, hmac_key=trail.hmac_key, public_key=trail.public_key, jobs=1).to_dict()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("attack", [*sorted(ATTACKS), "clean_recovered_torn_line", "clean_as_built"])
def test_every_tampering_is_reported_the_same_by_the_fast_path(
    attack, mode, templates, tmp_path, fast_taken, monkeypatch, crash  # noqa: F811
):
    trail = clone(templates[mode], tmp_path / "trail")
    if not damage(trail, attack, crash):
        return
    fast = trail_report(trail)
    taken = list(fast_taken)
    slow = slow_report(monkeypatch, lambda: trail_report(trail))
    assert without_vouched(fast) == slow
    if not attack.startswith("hot_"):  # a hot attack leaves no hot file clean but the first after retention
        assert taken, "no file took the fast path: the comparison would be of the slow path with itself"
    if attack.startswith("clean"):
        assert fast["ok"], fast


@pytest.mark.parametrize("mode", MODES)
def test_two_lines_merged_by_a_carriage_return_are_not_read_as_two_records(
    mode, templates, tmp_path, fast_taken, monkeypatch  # noqa: F811
):
    """A line's newline replaced by ``\r`` (same size, same bytes otherwise): only ``\n`` ends a line, so the
    fast path reads one line where the seal counts two, and reports what the line-by-line pass reports."""
    trail = clone(templates[mode], tmp_path / "trail")
    path = max((trail.base / "hot").glob("audit.*.jsonl"), key=lambda file: file.stat().st_size)
    path.chmod(0o644)
    data = path.read_bytes()
    cut = data.index(b"\n", len(data) // 2)
    path.write_bytes(data[:cut] + b"\r" + data[cut + 1 :])
    tried: list[Path] = []
    clean_file = chain.clean_file  # (fast_taken's spy)
    monkeypatch.setattr(chain, "clean_file", lambda file, *args, **options: (
        tried.append(file), clean_file(file, *args, **options))[1])
    fast = trail_report(trail)
    slow = slow_report(monkeypatch, lambda: trail_report(trail))
    assert not fast["ok"] and without_vouched(fast) == slow
    assert path in tried and path not in fast_taken  # the fast path read the file, and declined it


@pytest.mark.parametrize("damage", BOUNDARY_DAMAGE, ids=lambda f: f.__name__)
@pytest.mark.parametrize("chunk", [None, 700])
def test_damage_between_files_and_chunks_is_reported_the_same(
    damage, chunk, six_days, tmp_path, fast_taken, monkeypatch  # noqa: F811
):
    """Six days of one stream damaged where files meet; with ``chunk``, each file is also read in small chunks."""
    if chunk is not None:
        monkeypatch.setattr(seals, "CHUNK_BYTES", chunk)
    shutil.copytree(six_days.base, tmp_path / "trail")
    files = sorted((tmp_path / "trail" / "hot").glob("audit.*.main.*.jsonl"))
    for path in files:
        path.chmod(0o644)
    damage(files)
    fast = verify(tmp_path / "trail", six_days.hmac_key, jobs=1).to_dict()
    assert fast_taken, "the undamaged files take the fast path"
    slow = slow_report(monkeypatch, lambda: verify(tmp_path / "trail", six_days.hmac_key, jobs=1).to_dict())
    assert not fast["ok"] and without_vouched(fast) == slow


def test_a_clean_stream_read_in_small_chunks_takes_the_fast_path(six_days, monkeypatch, fast_taken):  # noqa: F811
    monkeypatch.setattr(seals, "CHUNK_BYTES", 500)  # smaller than a line: chunks of one line each
    fast = verify(six_days.base, six_days.hmac_key, jobs=1)
    files = sorted((six_days.base / "hot").glob("audit.*.main.*.jsonl"))
    assert fast.ok and fast_taken == files
    slow = slow_report(monkeypatch, lambda: verify(six_days.base, six_days.hmac_key, jobs=1))
    assert without_vouched(fast.to_dict()) == slow.to_dict()


# --- read_run reads what split_record reads, or declines ------------------------------------------


def with_checksum(body: bytes) -> bytes:
    """The record line (no newline) of ``body``, with its checksum spliced in as the writer does."""
    return body[:-1] + b',"checksum":"' + compute_checksum(body).encode() + b'"}'


def record_body(sequence: int, prev_hash: str, recorded: bytes = b"1767225923595217516") -> bytes:
    return (b'{"ts_event":1767225923595217516,"event_type":"sys.x","source":"s","trader_id":"T-1","sequence":'
            + str(sequence).encode() + b',"correlation_id":null,"prev_hash":"' + prev_hash.encode()
            + b'","format":3,"ts_recorded":' + recorded + b',"payload":{"sequence":1,"prev_hash":"x"}}')


def record_line(sequence: int, prev_hash: str, recorded: bytes = b"1767225923595217516") -> bytes:
    return with_checksum(record_body(sequence, prev_hash, recorded))


def fast_read(line: bytes, sequence: int, prev_hash: str) -> list[int] | None:
    """``read_run`` of the whole line (newline in), ``line`` without its newline."""
    (checksum,) = compute_checksums([line[: -len(b',"checksum":"') - 66] + b"}"])
    return read_run([line + b"\n"], sequence, [prev_hash], [checksum])


def mutations(data: bytes):
    """``data`` with each byte replaced by a few characters that matter to the layout, or removed."""
    for at in range(len(data)):
        for byte in (b"0", b"9", b'"', b",", b":", b"}", b" ", b"-"):
            if data[at : at + 1] != byte:
                yield data[:at] + byte + data[at + 1 :]
        yield data[:at] + data[at + 1 :]


def test_read_run_accepts_a_canonical_line_with_split_records_values():
    line = record_line(7, GENESIS_HASH)
    record = split_record(line + b"\n")
    assert fast_read(line, 7, GENESIS_HASH) == [record.ts_recorded] == [1767225923595217516]


def test_read_run_declines_every_line_split_record_would_read_otherwise():
    """Whatever one damaged byte does, read_run either declines or agrees with split_record on every field.

    The body is damaged and checksummed again (what an attacker of an unkeyed trail can do), and the
    whole line is damaged as it stands (checksum field included).
    """
    base = record_body(7, hashlib.sha256(b"previous").hexdigest())
    prev = split_record(with_checksum(base) + b"\n").prev_hash
    assert prev is not None
    accepted = 0
    for line in [*map(with_checksum, mutations(base)), *mutations(with_checksum(base))]:
        read = fast_read(line, 7, prev)
        if read is None:
            continue
        accepted += 1
        record = split_record(line + b"\n")  # must not raise: the fast path accepted the line
        assert (record.sequence, record.prev_hash, record.ts_recorded) == (7, prev, read[0]), line
        assert compute_checksum(record.body) == record.checksum, line
    assert accepted > 100, "damage inside the payload or other fields leaves a valid layout"


def test_read_run_declines_a_line_without_its_newline():
    """A torn last line (no newline) is never read in bulk, even when its record is whole."""
    first = record_line(0, GENESIS_HASH)
    second = record_line(1, split_record(first + b"\n").checksum)
    checksums = compute_checksums(record_bodies([first + b"\n", second + b"\n"]))
    assert read_run([first + b"\n", second + b"\n"], 0, [GENESIS_HASH, checksums[0]], checksums) is not None
    assert read_run([first + b"\n", second], 0, [GENESIS_HASH, checksums[0]], checksums) is None
    assert read_run([first, second + b"\n"], 0, [GENESIS_HASH, checksums[0]], checksums) is None


@pytest.mark.parametrize("recorded", [b"0", b"01767225923595217516", b"9223372036854775808", b"", b"1_000", b"+1"])
def test_read_run_leaves_odd_ts_recorded_to_split_record(recorded):
    assert fast_read(record_line(0, GENESIS_HASH, recorded), 0, GENESIS_HASH) is None


@pytest.mark.parametrize("tail", [b"", b'"a":1,', b'"a":1,"b":2,', b'"ab":",,",'])
@pytest.mark.parametrize(
    "second", [b"1767225923595217517", b"176722592359521751", b"176722592359521", b"1767225923595"])
def test_read_run_reads_each_ts_recorded_up_to_its_own_comma(second, tail):
    """Texts of other lengths than the first line's, commas after them included, are read as split_record reads them."""
    first = record_line(0, GENESIS_HASH)
    body = record_body(1, split_record(first + b"\n").checksum, second)
    body = body.replace(b',"payload":', b"," + tail + b'"payload":')
    lines = [first + b"\n", with_checksum(body) + b"\n"]
    checksums = compute_checksums(record_bodies(lines))
    read = read_run(lines, 0, [GENESIS_HASH, checksums[0]], checksums)
    expected = [split_record(line).ts_recorded for line in lines]
    assert read in (None, expected)
    if len(second) <= 19:
        assert read == expected


def test_read_run_declines_a_run_that_does_not_count_on_or_chain():
    first = record_line(0, GENESIS_HASH)
    second = record_line(1, split_record(first + b"\n").checksum)
    lines = [first + b"\n", second + b"\n"]
    checksums = compute_checksums(record_bodies(lines))
    assert read_run(lines, 0, [GENESIS_HASH, checksums[0]], checksums) is not None
    assert read_run(lines, 1, [GENESIS_HASH, checksums[0]], checksums) is None
    assert read_run(lines, 0, [GENESIS_HASH, checksums[1]], checksums) is None
    assert read_run(lines, 0, [GENESIS_HASH, checksums[0]], checksums[::-1]) is None


@pytest.mark.parametrize("odd", ["0" * 63, "0" * 65, "\u00e9" + "0" * 63, "0" * 32 + "\n" + "0" * 31])
def test_read_run_declines_a_hash_no_line_can_hold(odd):
    """split_record reads 64 one-byte characters where a hash is: a line holding anything else is not read."""
    line = record_line(0, odd)
    (checksum,) = compute_checksums(record_bodies([line + b"\n"]))
    assert read_run([line + b"\n"], 0, [odd], [checksum]) is None
    if b"\n" not in odd.encode():  # (a line cannot hold a newline at all)
        with pytest.raises(ValueError):
            split_record(line)


def test_compute_checksums_is_compute_checksum_in_bulk():
    bodies = [json.dumps({"n": n}).encode() for n in range(5)]
    for key in (None, b"k" * 32, b"long key " * 20, b""):  # a key over the block size is hashed first
        assert compute_checksums(bodies, key) == [compute_checksum(body, key) for body in bodies]
        assert compute_checksums([], key) == []
