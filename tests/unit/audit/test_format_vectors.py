"""docs/format.md's test vectors: written by the real emitter, checked by an independent verifier.

The verifier below uses the standard library only (json, hashlib, hmac, base64) and follows the
format document, not audit_core: it is the kind of program an auditor writes from docs/format.md.
Two checks keep the document honest:

- the vectors in docs/format.md are exactly what the emitter writes today (bytes of every line,
  the seal, the checkpoint), so the document cannot drift from the code;
- the independent verifier accepts them and rejects each tampering, so the document is complete
  enough to write a verifier from.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
from pathlib import Path

import pytest

from audit_core import AuditConfig, AuditEventEmitter

FORMAT_DOC = Path(__file__).resolve().parents[3] / "docs" / "format.md"
T = 1_767_657_600_000_000_000  # 2026-01-06 00:00:00 UTC
HMAC_KEY = "test-vector-key"
#: Ed25519 private key of the signed vector: the 32 bytes 0x00..0x1f (a test key, never a real one).
SIGNING_SEED = bytes(range(32))
MODES = ("sha256", "hmac", "signed")


def write_vector_trail(base: Path, mode: str) -> Path:
    """Three records (a parameter change, a signal, a fill) of trader T1, stream main; returns the hot file."""
    options: dict[str, object] = {}
    if mode in ("hmac", "signed"):
        options["hmac_key"] = HMAC_KEY
    if mode == "signed":
        os.environ["LEDGERLINE_VECTOR_SIGNING_KEY"] = base64.b64encode(SIGNING_SEED).decode()
        options["signing_key_env"] = "LEDGERLINE_VECTOR_SIGNING_KEY"
    config = AuditConfig(base_path=base, trader_id="T1", stream_id="main", sync_writes=False, **options)
    try:
        audit = AuditEventEmitter(config, clock=lambda: T)
    finally:
        os.environ.pop("LEDGERLINE_VECTOR_SIGNING_KEY", None)  # read once, when the writer starts
    with audit:
        audit.emit_param_change("meta_controller", "risk_multiplier", 1.0, 0.5, "drawdown > 10%",
                                event_type="param.risk_change", ts_event=T)
        audit.emit_signal("particles", "momentum", 0.82, 0.91, instrument_id="EURUSD.SIM", correlation_id="SIG-1",
                          ts_event=T + 1)
        audit.emit_trade("trade.fill", "AuditObserver", "EURUSD.SIM", order_id="O-1", side="BUY", size="100000",
                         price="1.10012", commission="2.20", currency="USD", correlation_id="SIG-1", ts_event=T + 2)
    (hot_file,) = sorted((base / "hot").glob("*.jsonl"))
    return hot_file


def documented_vectors() -> dict[str, dict[str, str]]:
    """The fenced blocks of docs/format.md tagged ``<!-- vector MODE PART -->``: {mode: {part: text}}."""
    text = FORMAT_DOC.read_text(encoding="utf-8")
    vectors: dict[str, dict[str, str]] = {}
    for mode, part, body in re.findall(r"<!-- vector (\w+) (\w+) -->\n```[a-z]*\n(.*?)```", text, flags=re.S):
        vectors.setdefault(mode, {})[part] = body
    return vectors


# --- an independent verifier, from docs/format.md alone ----------------------------------------------

GENESIS = "0" * 64
SUFFIX = re.compile(rb',"checksum":"([0-9a-f]{64})"\}$')


def checksum(body: bytes, key: bytes | None) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest() if key else hashlib.sha256(body).hexdigest()


def merkle_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1: MTH of the leaves (the lines without their newline)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    split = 1 << ((len(leaves) - 1).bit_length() - 1)  # the largest power of two below n
    return hashlib.sha256(b"\x01" + merkle_root(leaves[:split]) + merkle_root(leaves[split:])).digest()


def verify_file(data: bytes, seal: dict, key: bytes | None) -> list[str]:
    """Problems with one sealed file of a stream that starts at sequence 0."""
    problems = []
    lines = data.split(b"\n")
    if lines[-1] != b"":
        problems.append("the file does not end with a newline")
    lines = lines[:-1]
    previous, expected, recorded = GENESIS, 0, None
    for number, line in enumerate(lines, start=1):
        match = SUFFIX.search(line)
        if match is None:
            problems.append(f"line {number}: checksum is not the last field")
            continue
        body = line[: match.start()] + b"}"
        try:
            record = json.loads(body)
            sequence, prev_hash = record["sequence"], record["prev_hash"]
        except (ValueError, TypeError, KeyError):  # not JSON, not an object, no chain fields
            problems.append(f"line {number}: not a record")
            previous, expected = match.group(1).decode(), expected + 1
            continue
        if checksum(body, key) != match.group(1).decode():
            problems.append(f"line {number}: checksum mismatch")
        if sequence != expected:
            problems.append(f"line {number}: expected sequence {expected}, got {sequence}")
        if prev_hash != previous:
            problems.append(f"line {number}: chain break")
        if record.get("format", 1) >= 3 and type(record.get("ts_recorded")) is not int:
            problems.append(f"line {number}: a format {record['format']} record without ts_recorded")
        elif "ts_recorded" in record:
            if recorded is not None and record["ts_recorded"] < recorded:
                problems.append(f"line {number}: ts_recorded goes backwards")
            recorded = record["ts_recorded"]
        previous, expected = match.group(1).decode(), (sequence if isinstance(sequence, int) else expected) + 1
    claims = {
        "records": len(lines), "file_size": len(data), "file_sha256": hashlib.sha256(data).hexdigest(),
        "merkle_root": merkle_root(lines).hex(), "last_hash": previous, "last_sequence": expected - 1,
    }
    problems += [f"seal says {name}={seal.get(name)!r}, the file gives {value!r}"
                 for name, value in claims.items() if seal.get(name) != value]
    covered = {k: v for k, v in seal.items() if k != "seal_checksum"}
    canonical = json.dumps(covered, sort_keys=True, separators=(",", ":")).encode()
    if checksum(canonical, key) != seal.get("seal_checksum"):
        problems.append("seal_checksum does not cover the seal")
    return problems


def verify_signature(seal: dict, checkpoint_note: str, public_key_raw: bytes) -> list[str]:
    """The seal's Ed25519 signature and its C2SP checkpoint (signed-note) against a raw public key."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    problems = []
    key = Ed25519PublicKey.from_public_bytes(public_key_raw)
    signed = {k: v for k, v in seal.items() if k not in ("seal_checksum", "signature")}
    try:
        key.verify(base64.b64decode(seal["signature"]["sig"]),
                   json.dumps(signed, sort_keys=True, separators=(",", ":")).encode())
    except InvalidSignature:
        problems.append("seal signature does not verify")
    text, _, signature_line = checkpoint_note.partition("\n\n")
    origin, size, root = text.split("\n")
    if (origin, int(size), base64.b64decode(root).hex()) != (
            f"ledgerline/{seal['stream']}/{seal['file']}", seal["records"], seal["merkle_root"]):
        problems.append("checkpoint does not state the seal's tree")
    blob = base64.b64decode(signature_line.removeprefix("\u2014 ledgerline ").strip())
    key_id = hashlib.sha256(b"ledgerline\n\x01" + public_key_raw).digest()[:4]
    if blob[:4] != key_id:
        problems.append("checkpoint signature names another key")
    try:
        key.verify(blob[4:], (text + "\n").encode())
    except InvalidSignature:
        problems.append("checkpoint signature does not verify")
    return problems


# --- the tests -------------------------------------------------------------------------------------


def public_key_raw() -> bytes:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    private = Ed25519PrivateKey.from_private_bytes(SIGNING_SEED)
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@pytest.mark.parametrize("mode", MODES)
def test_the_document_holds_exactly_what_the_emitter_writes(tmp_path, mode):
    hot_file = write_vector_trail(tmp_path, mode)
    documented = documented_vectors()[mode]
    assert documented["file"] == hot_file.read_text(encoding="utf-8")
    assert json.loads(documented["seal"]) == json.loads(Path(f"{hot_file}.seal").read_text())
    if mode == "signed":
        assert documented["checkpoint"] == Path(f"{hot_file}.checkpoint").read_text(encoding="utf-8")


@pytest.mark.parametrize("mode", MODES)
def test_an_independent_verifier_accepts_the_vectors(mode):
    vector = documented_vectors()[mode]
    key = HMAC_KEY.encode() if mode != "sha256" else None
    seal = json.loads(vector["seal"])
    assert verify_file(vector["file"].encode(), seal, key) == []
    if mode == "signed":
        assert verify_signature(seal, vector["checkpoint"], public_key_raw()) == []


def tamperings(data: bytes) -> dict[str, bytes]:
    lines = data.splitlines(keepends=True)
    return {
        "edited value": data.replace(b'"new_value":0.5', b'"new_value":5.0'),
        "deleted line": lines[0] + lines[2],
        "swapped lines": lines[1] + lines[0] + lines[2],
        "truncated": data[:-1],
        "appended line": data + lines[2],
    }


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("attack", list(tamperings(b"a\nb\nc\n")))
def test_the_independent_verifier_rejects_each_tampering(mode, attack):
    vector = documented_vectors()[mode]
    key = HMAC_KEY.encode() if mode != "sha256" else None
    tampered = tamperings(vector["file"].encode())[attack]
    assert verify_file(tampered, json.loads(vector["seal"]), key) != []


def test_a_seal_edited_without_the_key_is_rejected():
    vector = documented_vectors()["hmac"]
    seal = json.loads(vector["seal"])
    seal["records"] = 2
    covered = {k: v for k, v in seal.items() if k != "seal_checksum"}
    seal["seal_checksum"] = hashlib.sha256(json.dumps(covered, sort_keys=True, separators=(",", ":")).encode()
                                           ).hexdigest()  # recomputed, but without the key
    assert "seal_checksum does not cover the seal" in verify_file(vector["file"].encode(), seal, HMAC_KEY.encode())


def test_a_signature_over_an_edited_seal_fails():
    vector = documented_vectors()["signed"]
    seal = json.loads(vector["seal"])
    seal["last_sequence"] = 1
    assert "seal signature does not verify" in verify_signature(seal, vector["checkpoint"], public_key_raw())
