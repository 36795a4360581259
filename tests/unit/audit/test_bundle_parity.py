"""The two bundle verifiers agree: audit_core.evidence.verify_bundle and spec_verifier (written from docs/format.md).

For valid bundles written by the exporter and for tampered ones, both must give the same claim, the
same set of (reason, stream) pairs and the same per-stream counts (docs/format.md section 7,
"agree"). Any disagreement fails: either a verifier or the specification is wrong.
"""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path
from typing import Any

import pytest
from _bundle_tools import (
    PUBLIC,
    STEP,
    NaiveTree,
    chain,
    flip_signature,
    hand_bundle,
    hmac_note,
    key_entry,
    leaf,
    read_zip,
    record,
    sign_note,
    stream_lines,
    tampered,
    unsigned_note,
    write_bundle,
    write_trusted_keys,
    write_zip,
)
from _bundle_tools import T0 as HAND_T0
from bundle_helpers import MINUTE, T0, SignedTrail, write_signed_trail
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import spec_verifier
from audit_core.evidence import export_bundle, verify_bundle
from audit_core.trust.keyring import TrustedKeys
from audit_core.trust.signing import load_public_key

#: The per-stream fields both verifiers must give alike (the counts, the range and what vouches for it).
COMPARED = ("origin", "N", "first", "end", "in_window", "matching", "redacted", "torn", "witnessed_size")


def raw_public_key(path: Path) -> bytes:
    return load_public_key(path).public_bytes(Encoding.Raw, PublicFormat.Raw)


def agree(bundle: Path, *, keys_file: Path | None = None, public_key: Path | None = None,
          hmac_key: bytes | None = None) -> dict[str, Any]:
    """Run both verifiers; fail on any disagreement; return the (common) report."""
    trusted = TrustedKeys.load(keys_file) if keys_file is not None else None
    theirs = verify_bundle(bundle, trusted_keys=trusted, public_key=load_public_key(public_key) if public_key else None,
                           hmac_key=hmac_key).to_dict()
    mine = spec_verifier.verify_bundle(
        bundle, trusted_keys_path=keys_file, hmac_key=hmac_key,
        public_key_b64=base64.b64encode(raw_public_key(public_key)).decode() if public_key else None)
    pairs = [{(f["reason"], f["stream"]) for f in report["failures"]} for report in (theirs, mine)]
    streams = [sorted(tuple(stream[name] for name in COMPARED) for stream in report["streams"])
               for report in (theirs, mine)]
    detail = json.dumps({"audit_core": theirs, "spec_verifier": mine}, indent=1)[:6000]
    assert theirs["claim"] == mine["claim"], detail
    assert pairs[0] == pairs[1], detail
    assert streams[0] == streams[1], detail
    # Beyond the definition: the key that vouched, and where each failure is.
    assert sorted((s["origin"], s["key_id"], s["trusted"]) for s in theirs["streams"]) == sorted(
        (s["origin"], s["key_id"], s["trusted"]) for s in mine["streams"]), detail
    assert sorted({(f["reason"], f["stream"], f["position"]) for f in theirs["failures"]}, key=str) == sorted(
        {(f["reason"], f["stream"], f["position"]) for f in mine["failures"]}, key=str), detail
    return mine


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> SignedTrail:
    return write_signed_trail(tmp_path_factory.mktemp("parity"))


@pytest.fixture(scope="module")
def keys_file(signed: SignedTrail) -> Path:
    return write_trusted_keys(signed.root / "trusted.json", [key_entry(raw_public_key(signed.public_key))])


def export(signed: SignedTrail, out: Path, **kwargs: Any) -> Path:
    kwargs.setdefault("start_ns", T0 + 10 * MINUTE)
    kwargs.setdefault("end_ns", T0 + 25 * MINUTE)
    return export_bundle(signed.trail, out, **kwargs)


@pytest.fixture(scope="module")
def bundle(signed: SignedTrail, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export(signed, tmp_path_factory.mktemp("bundle") / "case.bundle", witness=signed.witness)


class TestValidBundles:
    @pytest.mark.parametrize(("name", "kwargs", "claim"), [
        ("complete", {}, "complete"),
        ("filtered", {"event_types": ["param.*"], "params": ["risk_multiplier"]}, "complete"),
        ("sources", {"sources": ["kelly_sizer"]}, "complete"),
        ("redacted", {"params": ["kelly_fraction"], "redact": True}, "complete-redacted"),
        ("past the checkpoint", {"end_ns": T0 + 10_000 * MINUTE}, "complete"),
        ("from the start", {"start_ns": T0 - MINUTE}, "complete"),
        ("empty window", {"start_ns": T0 + 10 * MINUTE + 1, "end_ns": T0 + 10 * MINUTE + 2}, "complete"),
    ])
    @pytest.mark.parametrize("witness", [False, True])
    def test_exported_bundles(self, signed: SignedTrail, keys_file: Path, tmp_path: Path, name: str,
                              kwargs: dict[str, Any], claim: str, witness: bool) -> None:
        bundle = export(signed, tmp_path / "b.bundle", witness=signed.witness if witness else None, **kwargs)
        report = agree(bundle, keys_file=keys_file)
        assert report["claim"] == claim
        assert len(report["streams"]) == 2  # control and quiet
        assert all((s["witnessed_size"] is not None) == witness for s in report["streams"])
        assert agree(bundle, public_key=signed.public_key)["claim"] == claim
        assert agree(bundle)["claim"] == "unauthenticated"


def write_trail_in_mode(root: Path, mode: str) -> Path:
    """A one-stream trail written unkeyed, with an HMAC key, or with an HMAC key and an Ed25519 key."""
    from audit_core import AuditConfig, AuditEventEmitter
    from audit_core.trust.signing import generate_keypair

    options: dict[str, Any] = {}
    if mode in ("hmac", "signed"):
        options["hmac_key"] = "parity-key"
    if mode == "signed":
        generate_keypair(root / "w.key", root / "w.pub")
        options["signing_key_path"] = root / "w.key"
    now = [T0]
    config = AuditConfig(base_path=root / "trail", trader_id="T3", stream_id="m", witness_path=root / "witness",
                         **options)
    with AuditEventEmitter(config, clock=lambda: now[0]) as emitter:
        for minute in range(20):
            now[0] = T0 + minute * MINUTE
            emitter.emit_param_change("risk", "max_position", minute, minute + 1, "review")
    return root / "trail"


@pytest.mark.parametrize("mode", ["unkeyed", "hmac", "signed"])
def test_trails_in_every_mode(mode: str, tmp_path: Path) -> None:
    trail = write_trail_in_mode(tmp_path, mode)
    bundle = export_bundle(trail, tmp_path / "b.bundle", start_ns=T0 + 5 * MINUTE, end_ns=T0 + 9 * MINUTE,
                           witness=tmp_path / "witness")
    claims = {}
    for key in (None, b"parity-key", b"wrong key"):
        claims[key] = agree(bundle, hmac_key=key)["claim"]
        if mode == "signed":
            agree(bundle, hmac_key=key, public_key=tmp_path / "w.pub")
    edited = tampered(bundle, tmp_path / "e.bundle", _edit_record)
    for key in (None, b"parity-key"):
        assert agree(edited, hmac_key=key)["claim"] == "invalid"
    assert claims[None] == "unauthenticated"
    if mode == "hmac":  # the trail key authenticates an HMAC note
        assert claims[b"parity-key"] == "complete"
    if mode != "unkeyed":
        assert claims[b"wrong key"] == "invalid"


def _lines_name(index: dict[str, Any], stream: int = 0) -> str:
    name: str = index["streams"][stream]["lines"]
    return name


def _edit_record(index: dict[str, Any], entries: dict[str, bytes]) -> None:
    name = next(name for name, data in sorted(entries.items()) if b'"new_value":' in data)
    entries[name] = entries[name].replace(b'"new_value":', b'"new_value":1', 1)


def _drop_record(index: dict[str, Any], entries: dict[str, bytes], shrink: bool) -> None:
    name = _lines_name(index)
    lines = entries[name].split(b"\n")
    del lines[len(lines) // 2]
    entries[name] = b"\n".join(lines)
    if shrink:
        index["streams"][0]["end"] -= 1


def _redact_in_plain_bundle(index: dict[str, Any], entries: dict[str, bytes]) -> None:
    stream = index["streams"][0]
    name = stream["lines"]
    lines = entries[name].split(b"\n")
    at = len(lines) // 2
    stream["redacted"][str(stream["first"] + at)] = leaf(lines.pop(at)).hex()
    entries[name] = b"\n".join(lines)


def _swap_checkpoints(index: dict[str, Any], entries: dict[str, bytes]) -> None:
    a, b = index["streams"]
    a["checkpoint"], b["checkpoint"] = b["checkpoint"], a["checkpoint"]


def _narrow(signed: SignedTrail, index: dict[str, Any], entries: dict[str, bytes], edge: str) -> None:
    """Remove a boundary record and recompute an honest range proof for the narrower range."""
    stream = index["streams"][0]
    _, trader, name = stream["origin"].split("/")
    lines = stream_lines(signed.trail / "hot", trader, name)
    size = int(stream["checkpoint"].split("\n")[1])
    if edge == "left":
        stream["first"] += 1
        entries[stream["lines"]] = entries[stream["lines"]].split(b"\n", 1)[1]
    else:
        stream["end"] -= 1
        entries[stream["lines"]] = b"\n".join(entries[stream["lines"]].split(b"\n")[:-2]) + b"\n"
    tree = NaiveTree([leaf(line) for line in lines[:size]])
    stream["range_proof"] = [h.hex() for h in tree.range_proof(stream["first"], stream["end"], size)]


TAMPERINGS = {
    "record edit": _edit_record,
    "dropped record": lambda i, e: _drop_record(i, e, shrink=False),
    "dropped record, range shrunk": lambda i, e: _drop_record(i, e, shrink=True),
    "proof edit": lambda i, e: i["streams"][0]["range_proof"].__setitem__(0, "0" * 64),
    "proof hash added": lambda i, e: i["streams"][0]["range_proof"].append("0" * 64),
    "checkpoints swapped between streams": _swap_checkpoints,
    "redaction in a non-redacted bundle": _redact_in_plain_bundle,
    "signature flipped": lambda i, e: i["streams"][0].__setitem__(
        "checkpoint", flip_signature(i["streams"][0]["checkpoint"])),
    "witness proof edit": lambda i, e: i["streams"][0]["witness"]["consistency_proof"].append("0" * 64),
    "witness note of another stream": lambda i, e: i["streams"][0]["witness"].__setitem__(
        "note", i["streams"][1]["witness"]["note"]),
    "range past the checkpoint": lambda i, e: i["streams"][0].__setitem__("end", 10**6),
    "window emptied": lambda i, e: i["selection"].__setitem__("end_ns", i["selection"]["start_ns"]),
    "extra field": lambda i, e: i["streams"][0].__setitem__("note", "x"),
    "bundle keys replaced": lambda i, e: i.__setitem__("keys", []),
}


class TestTamperedBundles:
    @pytest.mark.parametrize("case", sorted(TAMPERINGS))
    def test_tampering(self, signed: SignedTrail, bundle: Path, keys_file: Path, tmp_path: Path, case: str) -> None:
        bad = tampered(bundle, tmp_path / "bad.bundle", TAMPERINGS[case])
        report = agree(bad, keys_file=keys_file)
        if case != "bundle keys replaced":  # the keys list is information only
            assert report["claim"] == "invalid"
        agree(bad)

    @pytest.mark.parametrize("edge", ["left", "right"])
    def test_boundary_removed(self, signed: SignedTrail, bundle: Path, keys_file: Path, tmp_path: Path,
                              edge: str) -> None:
        bad = tampered(bundle, tmp_path / "bad.bundle", lambda i, e: _narrow(signed, i, e, edge))
        assert {f["reason"] for f in agree(bad, keys_file=keys_file)["failures"]} == {"boundary_unproven"}

    def test_checkpoint_of_another_trail(self, bundle: Path, keys_file: Path, tmp_path: Path) -> None:
        other = write_signed_trail(tmp_path / "other")
        foreign = export(other, tmp_path / "other.bundle")
        note = read_zip(foreign)[0]["streams"][0]["checkpoint"]
        bad = tampered(bundle, tmp_path / "bad.bundle", lambda i, e: i["streams"][0].__setitem__("checkpoint", note))
        assert agree(bad, keys_file=keys_file)["claim"] == "invalid"
        other_keys = write_trusted_keys(tmp_path / "k.json", [key_entry(raw_public_key(other.public_key))])
        assert agree(bad, keys_file=other_keys)["claim"] == "invalid"

    def test_key_outside_its_window(self, signed: SignedTrail, bundle: Path, tmp_path: Path) -> None:
        public = raw_public_key(signed.public_key)
        for window in [(1, 2), (None, 1), (2**62, None)]:
            keys = write_trusted_keys(tmp_path / "k.json", [key_entry(public, not_before_ns=window[0],
                                                                      not_after_ns=window[1])])
            report = agree(bundle, keys_file=keys)
            assert {f["reason"] for f in report["failures"]} == {"key_outside_window"}
        # Windows around the checkpoints' signing time (the signed-at line; without it, unknown time).
        index, _ = read_zip(bundle)
        times = {line.split()[1] for stream in index["streams"] for line in stream["checkpoint"].split("\n")
                 if line.startswith("signed-at ")}
        signed_at = int(times.pop()) if len(times) == 1 else None
        for window, holds in [((T0 - MINUTE, T0 + 10**4 * MINUTE), True), ((None, T0 - MINUTE), False),
                              ((T0 + 10**4 * MINUTE, None), False)]:
            keys = write_trusted_keys(tmp_path / "w.json", [key_entry(public, not_before_ns=window[0],
                                                                      not_after_ns=window[1])])
            report = agree(bundle, keys_file=keys)
            inside = signed_at is not None and holds
            assert report["claim"] == ("complete" if inside else "invalid"), (signed_at, window)
        converter_only = write_trusted_keys(tmp_path / "c.json", [key_entry(public, roles=["converter"])])
        assert {f["reason"] for f in agree(bundle, keys_file=converter_only)["failures"]} == {"key_untrusted"}

    @pytest.mark.parametrize("entries", [
        lambda index, lines: [("bundle.json", index), *lines, ("../evil", b"x")],
        lambda index, lines: [("bundle.json", index), *lines, ("/abs", b"x")],
        lambda index, lines: [("bundle.json", index), *lines, lines[0]],
        lambda index, lines: [("bundle.json", index), ("bundle.json", index), *lines],
        lambda index, lines: [("bundle.json", index), *lines, ("streams/T1.other.lines", b"")],
        lambda index, lines: [("bundle.json", b"{not json"), *lines],
        lambda index, lines: [("bundle.json", index.replace(b'"keyed": false', b'"keyed": false, "keyed": false')),
                              *lines],
        lambda index, lines: [("bundle.json", index.replace(b'"created_ns": ', b'"created_ns": NaN, "x": ')), *lines],
        lambda index, lines: [("bundle.json", index), *[(name, data[:-1]) for name, data in lines]],
        lambda index, lines: lines,
    ])
    def test_container_attacks(self, bundle: Path, keys_file: Path, tmp_path: Path, entries: Any) -> None:
        index, lines = read_zip(bundle)
        raw = json.dumps(index).encode()
        bad = write_zip(tmp_path / "bad.bundle", entries(raw, sorted(lines.items())))
        report = agree(bad, keys_file=keys_file)
        assert {f["reason"] for f in report["failures"]} == {"bundle_malformed"}


# --- hand-made streams: what the exporter never writes, both verifiers must still judge alike -------

def _records_that_are_not(lines: list[bytes]) -> list[bytes]:
    return [lines[1][:-1] + b',"zz":1}', lines[1].replace(b'"sequence":1', b'"sequence":"1"'),
            lines[1].replace(b'"ts_recorded":', b'"ts_recorded":"').replace(b',"param_name"', b'","param_name"'),
            lines[1].replace(b'"source":"risk"', b'"source":"risk","source":"risk"'), b"[1, 2]", b"\xff\xfe",
            b'{"ts_event":1,"event_ty', lines[1].replace(b'"trader_id":"T9"', b'"trader_id":null'),
            lines[1].replace(b'"ts_event":', b'"ts_event":1.5,"x":'), *_layout_breaks(lines[1])]


def _layout_breaks(line: bytes) -> list[bytes]:
    """Valid JSON with the right types that leaves section 1's layout (section 7: not a record)."""
    return [line.replace(b'"ts_recorded":', b'"ts_recorded": '), line.replace(b'"format":3', b'"format":2'),
            line.replace(b'"ts_recorded":', b'"ts_recorded":0'), line.replace(b'"checksum":"', b'"checksum": "'),
            line.replace(b'"format":3,"ts_recorded":', b'"format":3,"x":1,"ts_recorded":'),
            line.replace(b'"prev_hash":"', b'"prev_hash":"ab'), line.replace(b'"prev_hash":', b'"prev_hash": ')]


def _hand_cases() -> dict[str, Any]:
    t0, lines = HAND_T0, chain(8)
    far = t0 + 100 * STEP
    broken = list(lines)
    broken[3] = record(3, "f" * 64, t0 + 3 * STEP)
    broken[5] = record(5, "0" * 64, t0)
    broken[6] = broken[6].replace(b'"x"', b'"y"')
    cases: dict[str, Any] = {
        "chain, clock and checksum": lambda p: hand_bundle(p, broken, 0, 8, t0, far),
        "ts below an earlier record": lambda p: hand_bundle(p, chain(6, [t0, t0 + 5, None, t0 + 1, t0 + 6, t0 + 6]),
                                                            0, 6, t0, far),
        "positions only": lambda p: hand_bundle(p, chain(5, [None, None, t0, t0, t0]), 0, 5, t0, t0 + 1),
        "cosigned note": lambda p: hand_bundle(p, lines, 0, 8, t0, far,
                                               note=lambda text: sign_note(text) + "\u2014 w.example AAAAAAAAAAAA\n"),
        "two signature lines": lambda p: hand_bundle(
            p, lines, 0, 8, t0, far, note=lambda text: sign_note(text) + sign_note(text).split("\n\n")[1]),
        "no signature line": lambda p: hand_bundle(p, lines, 0, 8, t0, far, note=lambda text: text + "\n"),
        "hmac note": lambda p: hand_bundle(p, lines, 0, 8, t0, far, note=hmac_note),
        "unsigned note": lambda p: hand_bundle(p, lines, 0, 8, t0, far, note=unsigned_note),
        "unsigned note forged": lambda p: hand_bundle(
            p, lines, 0, 8, t0, far, note=lambda text: unsigned_note(text).replace("signed-at 1", "signed-at 2")),
        "signature flipped": lambda p: hand_bundle(p, lines, 0, 8, t0, far,
                                                   note=lambda text: flip_signature(sign_note(text))),
        "signed late": lambda p: hand_bundle(p, lines, 0, 8, t0, far, signed_at=t0 + 10),
        "signing time unknown": lambda p: hand_bundle(p, lines, 0, 8, t0, far, signed_at=None),
        "redacted inside": lambda p: hand_bundle(p, lines, 1, 8, t0 + 2 * STEP, t0 + 6 * STEP, redact=(3, 4)),
        "redacted before the window": lambda p: hand_bundle(p, lines, 0, 8, t0 + 3 * STEP, t0 + 6 * STEP,
                                                            redact=(1,)),
        "redacted after the window": lambda p: hand_bundle(p, lines, 0, 8, t0 + 1 * STEP, t0 + 4 * STEP,
                                                           redact=(6,)),
        "redacted edge": lambda p: hand_bundle(p, lines, 1, 8, t0 + 2 * STEP, t0 + 6 * STEP, redact=(1,)),
        "redacted in a plain bundle": lambda p: hand_bundle(p, lines, 1, 8, t0 + 2 * STEP, t0 + 6 * STEP,
                                                            redact=(3,), redacted=False),
        "left boundary missing": lambda p: hand_bundle(p, lines, 3, 8, t0 + 2 * STEP, t0 + 6 * STEP),
        "right boundary missing": lambda p: hand_bundle(p, lines, 1, 6, t0 + 2 * STEP, t0 + 6 * STEP),
        "keyed hint": lambda p: hand_bundle(p, lines, 0, 8, t0, far, keyed=True),
        "a window with nothing in it": lambda p: hand_bundle(p, lines, 7, 8, far, far + 1),
    }
    for i, bad in enumerate(_records_that_are_not(lines)):
        cases[f"not a record {i}"] = lambda p, bad=bad: hand_bundle(p, [lines[0], bad, *lines[2:]], 0, 8, t0, far)
        cases[f"not a record at an edge {i}"] = lambda p, bad=bad: hand_bundle(
            p, [lines[0], bad, *lines[2:]], 1, 8, t0 + 2 * STEP, far)
    for name, text in {"zero-padded size": "ledgerline/T9/s\n08\n{root}\n", "other extension": "ledgerline/T9/s\n"
                       "8\n{root}\nx y\n", "origin": "ledgerline/T9\n8\n{root}\n", "root": "ledgerline/T9/s\n8\nAA==\n",
                       "signed-at": "ledgerline/T9/s\n8\n{root}\nsigned-at -1\n",
                       "signed-at zero-padded": "ledgerline/T9/s\n8\n{root}\nsigned-at 01\n",
                       "signed-at twice": "ledgerline/T9/s\n8\n{root}\nsigned-at 1\nsigned-at 1\n",
                       "signed-at first": "signed-at 1\nledgerline/T9/s\n8\n{root}\n",
                       "well formed": "ledgerline/T9/s\n8\n{root}\nsigned-at 1767657600000000000\n"}.items():
        cases[f"note: {name}"] = lambda p, text=text: _with_note_text(p, lines, text)
    return cases


def _with_note_text(path: Path, lines: list[bytes], text: str) -> Path:
    root = base64.b64encode(NaiveTree([leaf(line) for line in lines]).root()).decode()
    bundle = hand_bundle(path, lines, 0, 8, HAND_T0, HAND_T0 + 100 * STEP)
    return tampered(bundle, path, lambda i, e: i["streams"][0].__setitem__("checkpoint",
                                                                          sign_note(text.format(root=root))))


HAND_CASES = _hand_cases()


@pytest.mark.parametrize("case", sorted(HAND_CASES))
def test_hand_made_bundles(case: str, tmp_path: Path) -> None:
    bundle = HAND_CASES[case](tmp_path / "b.bundle")
    bounded = write_trusted_keys(tmp_path / "k.json", [key_entry(PUBLIC, not_before_ns=HAND_T0,
                                                                 not_after_ns=HAND_T0 + 1)])
    agree(bundle, keys_file=bounded)
    agree(bundle, keys_file=write_trusted_keys(tmp_path / "u.json", [key_entry(PUBLIC)]))
    agree(bundle)
    agree(bundle, hmac_key=b"trail-key")
    agree(bundle, hmac_key=b"other key")


def test_random_edits_of_an_exported_bundle(bundle: Path, keys_file: Path, tmp_path: Path) -> None:
    """Seeded random edits of the index and the lines: whatever the verdict, both verifiers give it."""
    rng = random.Random(2026)
    index, entries = read_zip(bundle)
    verdicts: set[str] = set()
    for i in range(120):
        edited_index, edited_entries = json.loads(json.dumps(index)), dict(entries)
        for _ in range(rng.randint(1, 3)):
            _random_edit(rng, edited_index, edited_entries)
        path = write_bundle(tmp_path / f"r{i}.bundle", edited_index, edited_entries)
        verdicts.add(agree(path, keys_file=keys_file)["claim"])
    assert "invalid" in verdicts


def _random_edit(rng: random.Random, index: dict[str, Any], entries: dict[str, bytes]) -> None:
    stream = rng.choice(index["streams"])
    kind = rng.randrange(9)
    if kind == 0:
        stream[rng.choice(["first", "end"])] += rng.choice([-1, 1])
    elif kind == 1 and stream["range_proof"]:
        proof = stream["range_proof"]
        j = rng.randrange(len(proof))
        proof[j] = rng.choice([proof[-1 - j], "0" * 64, proof[j][::-1]])
    elif kind == 2:
        lines = entries[stream["lines"]].split(b"\n")
        j = rng.randrange(len(lines))
        lines.insert(j, lines[j]) if rng.random() < 0.5 else lines.pop(j)
        entries[stream["lines"]] = b"\n".join(lines)
    elif kind == 3 and entries[stream["lines"]]:
        data = bytearray(entries[stream["lines"]])
        data[rng.randrange(len(data))] = rng.choice(b'0123456789abcdef{}",:\n ')
        entries[stream["lines"]] = bytes(data)
    elif kind == 4:
        selection = index["selection"]
        selection[rng.choice(["start_ns", "end_ns"])] += rng.choice([-1, 1]) * rng.choice([1, MINUTE, 10 * MINUTE])
    elif kind == 5:
        note = stream["checkpoint"].split("\n")
        note[1] = str(int(note[1]) + rng.choice([-1, 1]))
        stream["checkpoint"] = "\n".join(note)
    elif kind == 6 and stream["witness"]:
        stream["witness"]["consistency_proof"].append("ab" * 32)
    elif kind == 7:
        lines = entries[stream["lines"]].split(b"\n")[:-1]
        if len(lines) > 2:
            j = rng.randrange(1, len(lines) - 1)
            stream["redacted"][str(stream["first"] + j)] = leaf(lines.pop(j)).hex()
            entries[stream["lines"]] = b"".join(line + b"\n" for line in lines)
            index["redacted"] = rng.random() < 0.7
    else:
        index["selection"][rng.choice(["event_types", "sources", "params"])] = rng.choice(
            [None, ["param.*"], ["sys.heartbeat"], ["kelly_sizer"], ["risk_multiplier"], ["*"]])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from audit_core.trust.signing import generate_keypair
    from examples.adaptive_backtest import run_backtest

    root = tmp_path_factory.mktemp("demo")
    generate_keypair(root / "writer.key", root / "writer.pub")
    run_backtest(root / "trail", signing_key_path=root / "writer.key")
    return root


def test_demo_trail_bundles(demo: Path, tmp_path: Path) -> None:
    from examples.adaptive_backtest import DAY_NS, INCIDENT_NS, START_NS

    day3 = START_NS + 2 * DAY_NS
    day = export_bundle(demo / "trail", tmp_path / "day.bundle", start_ns=day3, end_ns=day3 + DAY_NS,
                        event_types=["param.*"])
    assert agree(day, public_key=demo / "writer.pub")["claim"] == "complete"
    incident = export_bundle(demo / "trail", tmp_path / "incident.bundle", start_ns=INCIDENT_NS - 3_600 * 10**9,
                             end_ns=INCIDENT_NS + 3_600 * 10**9, params=["risk_multiplier"], redact=True)
    assert agree(incident, public_key=demo / "writer.pub")["claim"] == "complete-redacted"
    edited = tampered(day, tmp_path / "edited.bundle", _edit_record)
    assert agree(edited, public_key=demo / "writer.pub")["claim"] == "invalid"


def test_both_commands_give_the_same_exit_status_and_json(signed: SignedTrail, bundle: Path, keys_file: Path,
                                                          tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from audit_core.cli import main as ledgerline
    from spec_verifier.__main__ import main as spec

    bad = tampered(bundle, tmp_path / "bad.bundle", lambda i, e: i["streams"][0]["range_proof"].pop())
    for path, options in [(bundle, ["--trusted-keys", str(keys_file)]),
                          (bundle, ["--public-key", str(signed.public_key)]),
                          (bundle, []), (bad, ["--trusted-keys", str(keys_file)])]:
        theirs = ledgerline(["verify-bundle", str(path), *options, "--json"])
        their_report = json.loads(capsys.readouterr().out)
        mine = spec([str(path), *options, "--json"])
        my_report = json.loads(capsys.readouterr().out)
        assert theirs == mine == (1 if path == bad else 0)
        assert their_report["claim"] == my_report["claim"]
