"""The trusted-keys file (docs/format.md section 6): every malformation is refused naming field and value,
and a signature's key is accepted only with the document's role inside its window."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit_core.errors import AuditConfigError, AuditFormatError, AuditIntegrityError, KeyTrustError
from audit_core.trust.checkpoint import DEFAULT_KEY_NAME, note_key_id
from audit_core.trust.keyring import MAX_FILE_SIZE, ROLES, TRUSTED_KEYS_FORMAT, TrustedKeys
from audit_core.trust.signing import key_id

T0 = 1_767_225_600_000_000_000  # 2026-01-01 00:00 UTC
HOUR = 3_600_000_000_000


def raw(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def entry(private: Ed25519PrivateKey, **overrides: Any) -> dict[str, Any]:
    """An entry computed independently of keyring: key id = SHA-256(raw public key)[:8] in hex."""
    item: dict[str, Any] = {
        "key_id": hashlib.sha256(raw(private)).hexdigest()[:16],
        "public_key": base64.b64encode(raw(private)).decode(),
        "roles": ["writer"],
        "not_before_ns": T0,
        "not_after_ns": T0 + 24 * HOUR,
    }
    item.update(overrides)
    return item


def write_file(path: Path, keys: list[Any], **document: Any) -> Path:
    path.write_text(json.dumps({"format": TRUSTED_KEYS_FORMAT, "keys": keys, **document}))
    return path


@pytest.fixture
def key_a() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def key_b() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


class TestLoad:
    def test_a_valid_file_loads_every_key_with_its_roles_and_window(self, tmp_path, key_a, key_b):
        path = write_file(tmp_path / "t.json", [entry(key_a), entry(key_b, roles=["converter", "witness"],
                                                                   not_before_ns=None, not_after_ns=None,
                                                                   comment="cold signer")])
        trusted = TrustedKeys.load(path)
        assert [k.key_id for k in trusted.keys] == [key_id(key_a.public_key()), key_id(key_b.public_key())]
        assert trusted.keys[1].roles == {"converter", "witness"} and trusted.keys[1].comment == "cold signer"
        assert trusted.keys[0].not_before_ns == T0 and trusted.keys[0].not_after_ns == T0 + 24 * HOUR

    def test_to_document_round_trips_through_the_file(self, tmp_path, key_a):
        first = TrustedKeys.load(write_file(tmp_path / "t.json", [entry(key_a, comment="x")]))
        (tmp_path / "u.json").write_text(json.dumps(first.to_document()))
        again = TrustedKeys.load(tmp_path / "u.json")
        assert again.keys == first.keys

    @pytest.mark.parametrize(
        ("document", "match"),
        [
            ([], "expected a JSON object, got array"),
            ({"format": "ledgerline-trusted-keys/2", "keys": []}, "format: expected 'ledgerline-trusted-keys/1', got"),
            ({"keys": []}, "format: expected"),
            ({"format": TRUSTED_KEYS_FORMAT, "keys": []}, "keys: expected a non-empty array"),
            ({"format": TRUSTED_KEYS_FORMAT, "keys": {"a": 1}}, "keys: expected a non-empty array of keys, got object"),
            ({"format": TRUSTED_KEYS_FORMAT, "keys": [1]}, r"keys\[0\]: expected an object, got 1"),
        ],
    )
    def test_documents_that_are_not_a_trusted_keys_file_are_refused(self, tmp_path, document, match):
        path = tmp_path / "t.json"
        path.write_text(json.dumps(document))
        with pytest.raises(AuditFormatError, match=match):
            TrustedKeys.load(path)

    @pytest.mark.parametrize(
        ("overrides", "match"),
        [
            ({"key_id": "0" * 16}, r"keys\[0\]\.key_id: '0000000000000000' is not the id of its public_key"),
            ({"key_id": "ABCDEF0123456789"}, r"key_id: expected 16 lowercase hex"),
            ({"key_id": 7}, r"key_id: expected 16 lowercase hex characters, got 7"),
            ({"public_key": "not base64!"}, r"public_key: expected base64 of the 32 raw bytes"),
            ({"public_key": base64.b64encode(b"x" * 31).decode()}, r"public_key: expected base64"),
            ({"public_key": None}, r"public_key: expected base64 .* got null"),
            ({"roles": []}, r"roles: expected a non-empty array"),
            ({"roles": "writer"}, r"roles: expected a non-empty array"),
            ({"roles": ["writer", "admin"]}, r"roles: unknown role \"admin\""),
            ({"not_before_ns": "1767225600000000000"}, r"not_before_ns: expected null or an integer"),
            ({"not_after_ns": 1.5e18}, r"not_after_ns: expected null or an integer"),
            ({"not_after_ns": True}, r"not_after_ns: expected null or an integer .* got true"),
            ({"not_before_ns": -1}, r"not_before_ns: expected null or an integer"),
            ({"not_after_ns": T0}, r"not_after_ns: 1767225600000000000 is not after not_before_ns"),
            ({"not_after_ns": T0 - 1}, r"the window is empty"),
            ({"comment": 5}, r"comment: expected a string or null, got 5"),
            ({"not_after": T0}, r"unknown field\(s\) \['not_after'\]"),
        ],
    )
    def test_each_malformed_field_is_named_with_its_value(self, tmp_path, key_a, overrides, match):
        path = write_file(tmp_path / "t.json", [entry(key_a, **overrides)])
        with pytest.raises(AuditFormatError, match=match) as caught:
            TrustedKeys.load(path)
        assert str(path) in str(caught.value)

    def test_a_missing_field_is_refused(self, tmp_path, key_a):
        for field in ("key_id", "public_key", "roles"):
            item = entry(key_a)
            del item[field]
            with pytest.raises(AuditFormatError, match=rf"keys\[0\]\.{field}"):
                TrustedKeys.load(write_file(tmp_path / "t.json", [item]))

    def test_the_same_key_id_twice_is_refused(self, tmp_path, key_a):
        path = write_file(tmp_path / "t.json", [entry(key_a), entry(key_a, roles=["converter"])])
        with pytest.raises(AuditFormatError, match=r"keys\[1\]\.key_id: '[0-9a-f]{16}' is listed twice"):
            TrustedKeys.load(path)

    def test_unknown_top_level_fields_are_refused(self, tmp_path, key_a):
        with pytest.raises(AuditFormatError, match=r"unknown field\(s\) \['trust_all'\]"):
            TrustedKeys.load(write_file(tmp_path / "t.json", [entry(key_a)], trust_all=True))

    def test_not_json_not_utf8_and_deep_nesting_are_format_errors(self, tmp_path):
        path = tmp_path / "t.json"
        for data, match in ((b"{", "not valid JSON"), (b"\xff\xfe{}", "not valid JSON"),
                            (b"[" * 100 + b"]" * 100, "nests deeper")):
            path.write_bytes(data)
            with pytest.raises(AuditFormatError, match=match):
                TrustedKeys.load(path)

    def test_a_file_over_the_size_limit_is_refused_without_reading_it_all(self, tmp_path, key_a):
        path = write_file(tmp_path / "t.json", [entry(key_a, comment="x" * (MAX_FILE_SIZE + 10))])
        with pytest.raises(AuditFormatError, match=f"larger than {MAX_FILE_SIZE} bytes"):
            TrustedKeys.load(path)

    def test_a_fifo_or_a_directory_is_refused_and_never_blocks(self, tmp_path):
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)  # a FIFO with no writer: a plain open() would wait forever
        for path in (fifo, tmp_path):
            with pytest.raises(AuditFormatError, match="expected a regular file"):
                TrustedKeys.load(path)

    def test_a_symlink_to_a_fifo_is_refused_a_symlink_to_a_file_is_the_auditors_choice(self, tmp_path, key_a):
        # The auditor names this file; a symlink they made (keys/current.json -> keys/2026.json) is
        # theirs to make. What the file points at must still be a small regular file.
        os.mkfifo(tmp_path / "fifo")
        (tmp_path / "to-fifo").symlink_to(tmp_path / "fifo")
        with pytest.raises(AuditFormatError, match="expected a regular file"):
            TrustedKeys.load(tmp_path / "to-fifo")
        (tmp_path / "current.json").symlink_to(write_file(tmp_path / "t.json", [entry(key_a)]))
        assert TrustedKeys.load(tmp_path / "current.json").keys[0].key_id == key_id(key_a.public_key())

    def test_a_missing_file_is_a_config_error(self, tmp_path):
        with pytest.raises(AuditConfigError, match="does not exist"):
            TrustedKeys.load(tmp_path / "nope.json")

    def test_from_entries_checks_entries_like_the_file(self, key_a):
        with pytest.raises(AuditFormatError, match=r"bundle: keys\[0\]\.key_id"):
            TrustedKeys.from_entries([entry(key_a, key_id="1" * 16)], source="bundle")
        assert TrustedKeys.from_entries([entry(key_a)]).keys[0].roles == {"writer"}


class TestCheck:
    def test_a_key_is_accepted_only_for_its_roles(self, key_a):
        trusted = TrustedKeys.from_entries([entry(key_a, roles=["writer"])])
        kid = key_id(key_a.public_key())
        assert key_id(trusted.check(kid, "writer", T0)) == kid
        with pytest.raises(KeyTrustError, match="listed, but not as a trusted converter key") as caught:
            trusted.check(kid, "converter", T0)
        assert caught.value.reason == "key_untrusted" and caught.value.role == "converter"

    def test_an_unlisted_key_is_untrusted(self, key_a, key_b):
        trusted = TrustedKeys.from_entries([entry(key_a)])
        with pytest.raises(KeyTrustError, match="is not listed") as caught:
            trusted.check(key_id(key_b.public_key()), "writer", T0)
        assert caught.value.reason == "key_untrusted"
        assert isinstance(caught.value, AuditIntegrityError)

    def test_the_window_includes_not_before_and_excludes_not_after(self, key_a):
        trusted = TrustedKeys.from_entries([entry(key_a)])
        kid = key_id(key_a.public_key())
        trusted.check(kid, "writer", T0)
        trusted.check(kid, "writer", T0 + 24 * HOUR - 1)
        for when in (T0 - 1, T0 + 24 * HOUR):
            with pytest.raises(KeyTrustError) as caught:
                trusted.check(kid, "writer", when)
            assert caught.value.reason == "key_outside_window" and caught.value.signed_at_ns == when

    def test_an_unknown_signing_time_needs_an_unbounded_key(self, key_a, key_b):
        trusted = TrustedKeys.from_entries([entry(key_a), entry(key_b, not_before_ns=None, not_after_ns=None)])
        with pytest.raises(KeyTrustError, match="signing time unknown") as caught:
            trusted.check(key_id(key_a.public_key()), "writer", None)
        assert caught.value.reason == "key_outside_window"
        trusted.check(key_id(key_b.public_key()), "writer", None)

    def test_half_open_windows(self, key_a):
        kid = key_id(key_a.public_key())
        since = TrustedKeys.from_entries([entry(key_a, not_after_ns=None)])
        since.check(kid, "writer", T0 + 10**18)
        with pytest.raises(KeyTrustError):
            since.check(kid, "writer", None)  # bounded on one side: an unknown time is not inside

    def test_a_single_public_key_has_every_role_and_no_window(self, key_a):
        trusted = TrustedKeys.from_public_key(key_a.public_key())
        kid = key_id(key_a.public_key())
        for role in ROLES:
            assert key_id(trusted.check(kid, role, None)) == kid
            trusted.check(kid, role, 0)

    def test_signed_note_key_ids_are_looked_up_by_their_4_byte_id(self, key_a, key_b):
        trusted = TrustedKeys.from_entries([entry(key_a)])
        note_id = note_key_id(DEFAULT_KEY_NAME, key_a.public_key())
        assert key_id(trusted.for_note_key_id(note_id, "writer", T0)) == key_id(key_a.public_key())
        with pytest.raises(KeyTrustError) as caught:
            trusted.for_note_key_id(note_key_id(DEFAULT_KEY_NAME, key_b.public_key()), "writer", T0)
        assert caught.value.reason == "key_untrusted"
        with pytest.raises(KeyTrustError) as caught:
            trusted.for_note_key_id(note_id, "writer", T0 - 1)
        assert caught.value.reason == "key_outside_window"

    def test_an_unknown_role_is_a_programming_error(self, key_a):
        with pytest.raises(ValueError, match="role: expected one of"):
            TrustedKeys.from_public_key(key_a.public_key()).check(key_id(key_a.public_key()), "admin", None)

    def test_key_trust_errors_survive_pickling(self, key_a):
        import pickle

        error = KeyTrustError("key_outside_window", "msg", "ab" * 8, "writer", 5)
        again = pickle.loads(pickle.dumps(error))
        assert (again.reason, again.key_id, again.role, again.signed_at_ns, str(again)) == (
            "key_outside_window", "ab" * 8, "writer", 5, "msg")
