"""Differential test: every verifier of a sealed hot file gives the same verdict on random trails and tamperings.

Three implementations of the chain and seal rules check the same bytes:

- ``hot.verifier.verify``: the scalar reference, record by record;
- the converter's bulk path, ``_bulk_verify.scan_file`` (its own column-wise copy of the rules), whose ``clean`` verdict
  is what lets a file be converted without the reference looking at it;
- an independent verifier written from docs/format.md alone (``test_format_vectors.verify_file``).

A tampering that one of them misses and another catches is a bug in the one that missed it, so the
property is: all three agree, and the bulk path is never ``clean`` on a file the reference rejects.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_format_vectors import verify_file
from test_tamper import EVENTS, generated_trail, read_lines, rewrite

from audit_core.cold._bulk_verify import scan_file, verify_scanned
from audit_core.hot.verifier import verify
from audit_core.trust.seals import read_seal

AGREEMENT = settings(max_examples=40, deadline=None)
KEYS = [None, "differential-key"]


def _tamper(lines: list[bytes], kind: str, data: st.DataObject) -> list[bytes] | bytes:
    """One tampering of the file's lines, chosen with hypothesis."""
    n = len(lines)
    index = data.draw(st.integers(0, n - 1), label="line")
    if kind == "flip":
        line = bytearray(lines[index])
        at = data.draw(st.integers(0, len(line) - 2), label="byte")  # not the newline
        line[at] ^= data.draw(st.integers(1, 255), label="mask")
        return [*lines[:index], bytes(line), *lines[index + 1:]]
    if kind == "delete":
        return lines[:index] + lines[index + 1:]
    if kind == "duplicate":
        return lines[:index + 1] + lines[index:]
    if kind == "swap":
        other = data.draw(st.integers(0, n - 1).filter(lambda i: i != index), label="other")
        swapped = list(lines)
        swapped[index], swapped[other] = swapped[other], swapped[index]
        return swapped
    if kind == "truncate":
        data_bytes = b"".join(lines)
        return data_bytes[: data.draw(st.integers(0, len(data_bytes) - 1), label="cut")]
    assert kind == "append"
    return [*lines, lines[index]]


def verdicts(path, key: str | None) -> dict[str, bool]:
    hmac_key = key.encode() if key else None
    reference = verify([path], hmac_key, require_stream_start=True).ok
    scan = scan_file(path, hmac_key)
    bulk = verify_scanned(path, scan, hmac_key).ok
    independent = verify_file(path.read_bytes(), read_seal(path), hmac_key) == []
    return {"reference": reference, "bulk": bulk, "bulk_fast_path": scan.clean and bulk, "independent": independent}


@pytest.mark.parametrize("key", KEYS)
@AGREEMENT
@given(specs=EVENTS)
def test_untampered_trails_pass_every_verifier(key, specs):
    with generated_trail(specs, hmac_key=key) as path:
        assert verdicts(path, key) == {"reference": True, "bulk": True, "bulk_fast_path": True, "independent": True}


@pytest.mark.parametrize("kind", ["flip", "delete", "duplicate", "swap", "truncate", "append"])
@pytest.mark.parametrize("key", KEYS)
@AGREEMENT
@given(specs=EVENTS, data=st.data())
def test_every_verifier_rejects_the_same_tampering(kind, key, specs, data):
    with generated_trail(specs, hmac_key=key) as path:
        lines = read_lines(path)
        tampered = _tamper(lines, kind, data)
        if (b"".join(tampered) if isinstance(tampered, list) else tampered) == b"".join(lines):
            return  # a swap of equal lines or a flip that changed nothing is not a tampering
        rewrite(path, tampered)
        found = verdicts(path, key)
        assert found == {"reference": False, "bulk": False, "bulk_fast_path": False, "independent": False}, (
            kind, found)


def test_the_independent_verifier_reads_the_same_seal_the_writer_wrote(tmp_path):
    with generated_trail([("system", "sys.regime_change", "x", {"a": 1})] * 3) as path:
        seal = read_seal(path)
        assert seal is not None and json.loads(json.dumps(seal)) == seal
        assert verify_file(path.read_bytes(), seal, None) == []


@pytest.mark.parametrize("where", ["checksum", "string value"])
def test_a_byte_that_is_not_utf8_is_a_failure_of_the_bulk_path_not_a_crash(where):
    """Found by the property above: the bulk path cast the stored checksums (and lines) to text, and a
    flipped byte that is not valid UTF-8 raised ArrowInvalid out of ``scan_file`` instead of failing."""
    with generated_trail([("system", "sys.regime_change", "x", {"a": 1})] * 3) as path:
        lines = read_lines(path)
        line = bytearray(lines[1])
        at = len(line) - 10 if where == "checksum" else line.index(b'"x"') + 1
        line[at] = 0xFB
        rewrite(path, [lines[0], bytes(line), lines[2]])
        scan = scan_file(path)
        assert not scan.clean and not verify_scanned(path, scan).ok
        assert verdicts(path, None) == {"reference": False, "bulk": False, "bulk_fast_path": False,
                                        "independent": False}
