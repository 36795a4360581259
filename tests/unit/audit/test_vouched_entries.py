"""The cold root vouches for the manifest entries it commits to (``manifest.vouched_entries``): an entry
whose bytes hash to a SHA-256 the root commits to is not authenticated again by ``converting_entry``,
when the root itself authenticates with the keys the entry is checked with.

Each defence with the attack it stops, in every trail mode where it applies: an entry edited after
the root was written, a root edited without the key, a stale root, an older authentic entry put
back, keys other than the root's, trusted keys with windows. Every answer is compared with the full
check's (``converting_entry`` without ``vouched``): vouching saves work, it never changes an answer.
On an unkeyed trail anyone can recompute any checksum, the root's as the entries': there a forged
root vouches for what a forged entry's recomputed checksum would pass anyway (the full check is no
defence either), so the forged-root attacks run on keyed and signed trails only.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from manifest_store import HOUR, JAN_5, MODES, SIGNED_UNKEYED, ManifestStore

from audit_core.cold.manifest import (
    MANIFEST_CHECKSUM,
    ROOT_CHECKSUM,
    VouchedEntries,
    converting_entry,
    read_manifest,
    root_path,
    update_cold_root,
    vouched_entries,
    write_entry,
)
from audit_core.trust import documents
from audit_core.trust.keyring import TrustedKeys
from audit_core.trust.seals import read_seal


class Store(ManifestStore):
    def write(self, audit: Any, now: list[int]) -> None:
        for i in range(8):  # two days, a few files
            now[0] = JAN_5 + i * 6 * HOUR + 3
            audit.emit_param_change("meta", "risk_multiplier", i / 10, (i + 1) / 10, "drawdown",
                                    event_type="param.risk_change")
            audit.emit_system("sys.heartbeat", "node", {"i": i})

    def decide(self, path: Path, vouched: VouchedEntries | None = None, hmac_key: Any = "store's",
               public_key: Any = "store's") -> dict[str, Any] | None:
        """``converting_entry`` of entry file ``path`` for its hot file, with the store's keys unless given."""
        data = path.read_bytes()
        entry = read_manifest(path)
        seal = read_seal(self.base / "hot" / entry["source"])
        return converting_entry(entry["source"], seal, entry,
                                self.hmac_key if hmac_key == "store's" else hmac_key,
                                self.public_key if public_key == "store's" else public_key,
                                entry_sha256=hashlib.sha256(data).hexdigest(), vouched=vouched)

    def vouched(self) -> VouchedEntries:
        return vouched_entries(self.cold, self.hmac_key, self.public_key)

    def root(self) -> dict[str, Any]:
        return json.loads(root_path(self.cold).read_text())

    def write_root(self, root: dict[str, Any]) -> None:
        overwrite(root_path(self.cold), (json.dumps(root, indent=1) + "\n").encode())


@pytest.fixture
def authentications(monkeypatch) -> list[str]:
    """The ``what`` of every ``check_document`` call from now on (the real check runs)."""
    calls: list[str] = []
    check = documents.check_document

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("what", "document"))
        return check(*args, **kwargs)

    monkeypatch.setattr(documents, "check_document", counted)
    return calls


def entry_checks(calls: list[str]) -> int:
    return calls.count("manifest entry")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def edit_unauthenticated(path: Path, change: Any, *, recompute: bool = False) -> None:
    """``change`` the parsed entry and write it back without the key: its checksum and signature as they
    were; with ``recompute``, a plain SHA-256 checksum recomputed, as anyone can on a trail without an
    HMAC key (its signature, if any, as it was)."""
    entry = read_manifest(path)
    unsigned_body = documents.canonical_bytes(entry, (MANIFEST_CHECKSUM,))
    plain = entry.get(MANIFEST_CHECKSUM) == documents.keyed_digest(unsigned_body)
    change(entry)
    if recompute and plain:
        entry[MANIFEST_CHECKSUM] = documents.keyed_digest(documents.canonical_bytes(entry, (MANIFEST_CHECKSUM,)))
    overwrite(path, (json.dumps(entry, indent=1) + "\n").encode())


def overwrite(path: Path, data: bytes) -> None:
    path.chmod(0o644)
    path.write_bytes(data)


def other_hash(output: dict[str, Any]) -> None:
    """An output's recorded SHA-256 changed: the entry keeps its form, only its authentication can tell."""
    output["sha256"] = "0" * 64


ALL_MODES = [*MODES, SIGNED_UNKEYED]
KEYED_MODES = ["hmac", "signed", SIGNED_UNKEYED]


@pytest.fixture(params=ALL_MODES)
def store(request, tmp_path) -> Store:
    return Store(tmp_path / "trail", request.param)


@pytest.fixture(params=KEYED_MODES)
def keyed_store(request, tmp_path) -> Store:
    return Store(tmp_path / "trail", request.param)


class TestTheRootVouches:
    def test_an_entry_the_root_commits_to_is_accepted_without_its_authentication(self, store, authentications):
        vouched = store.vouched()
        assert vouched.digests == {digest(path) for path in store.entries()} and len(vouched.digests) >= 2
        assert authentications == ["cold root"]  # the root, once
        for path in store.entries():
            assert store.decide(path, vouched) is not None
        assert entry_checks(authentications) == 0
        for path in store.entries():
            assert store.decide(path) == store.decide(path, vouched)
        assert entry_checks(authentications) == len(store.entries())

    def test_an_entry_edited_after_the_root_was_written_is_not_believed(self, store, authentications):
        path = store.entries()[0]
        edit_unauthenticated(path, lambda entry: other_hash(entry["outputs"][0]))
        vouched = store.vouched()
        assert digest(path) not in vouched.digests
        assert store.decide(path, vouched) is None and entry_checks(authentications) == 1

    def test_a_stale_root_falls_back_to_the_full_check_and_answers_the_same(self, store, authentications):
        replaced, added = store.entries()[:2]
        # Replaced after the root, with the key (what the converter or retention does before updating the root).
        entry = {k: v for k, v in read_manifest(replaced).items() if k not in (MANIFEST_CHECKSUM, "signature")}
        write_entry(store.cold, {**entry, "engine": "duckdb 0.0.0"}, store.hmac_key, store.signing_key)
        # Added after the root: a root written before the entry existed commits to every other entry.
        root = store.root()
        root["manifests"] = [item for item in root["manifests"] if item["path"] != f"_manifest/{added.name}"]
        store.write_root(documents.authenticate(root, ROOT_CHECKSUM, store.hmac_key, store.signing_key))
        vouched = store.vouched()
        assert digest(replaced) not in vouched.digests and digest(added) not in vouched.digests
        assert store.decide(replaced, vouched) is not None and store.decide(added, vouched) is not None
        assert entry_checks(authentications) == 2
        for path in store.entries():
            assert store.decide(path, vouched) == store.decide(path)

    def test_an_older_authentic_entry_put_back_answers_as_the_full_check(self, store):
        path = store.entries()[0]
        older_entry, older_root = path.read_bytes(), root_path(store.cold).read_bytes()
        entry = {k: v for k, v in read_manifest(path).items() if k not in (MANIFEST_CHECKSUM, "signature")}
        write_entry(store.cold, {**entry, "engine": "duckdb 0.0.0"}, store.hmac_key, store.signing_key)
        update_cold_root(store.cold, store.hmac_key, store.signing_key)
        overwrite(path, older_entry)  # the newer root does not commit to it: checked in full, authentic
        vouched = store.vouched()
        assert digest(path) not in vouched.digests
        assert store.decide(path, vouched) is not None and store.decide(path, vouched) == store.decide(path)
        overwrite(root_path(store.cold), older_root)  # and with the older root put back too: vouched
        vouched = store.vouched()
        assert digest(path) in vouched.digests and store.decide(path, vouched) == store.decide(path)

    def test_no_root_vouches_for_nothing(self, store):
        root_path(store.cold).unlink()
        vouched = store.vouched()
        assert vouched.digests == frozenset()
        assert all(store.decide(path, vouched) is not None for path in store.entries())


class TestForgedRoots:
    """An attacker without the key edits an entry and makes the root commit to the edited bytes."""

    def forge(self, store: Store, *, keep_signature: bool) -> Path:
        path = store.entries()[0]
        edit_unauthenticated(path, lambda entry: other_hash(entry["outputs"][0]), recompute=True)
        root = store.root()
        for item in root["manifests"]:
            if item["path"].endswith(path.name):
                item["sha256"] = digest(path)
        signature = root.pop("signature", None)
        root.pop(ROOT_CHECKSUM)
        if keep_signature and signature is not None:
            root["signature"] = signature  # over the root as it was: no longer valid
        # The attacker's best checksum: a plain SHA-256 (or an HMAC with a key of their own, no better).
        root[ROOT_CHECKSUM] = documents.keyed_digest(documents.canonical_bytes(root, (ROOT_CHECKSUM,)))
        store.write_root(root)
        return path

    @pytest.mark.parametrize("keep_signature", [True, False])
    def test_a_root_edited_without_the_key_vouches_for_nothing(self, keyed_store, keep_signature, authentications):
        path = self.forge(keyed_store, keep_signature=keep_signature)
        vouched = keyed_store.vouched()
        assert vouched.digests == frozenset()
        assert keyed_store.decide(path, vouched) is None and entry_checks(authentications) == 1
        assert all(keyed_store.decide(other, vouched) is not None for other in keyed_store.entries()[1:])

    def test_a_root_forged_for_an_hmac_only_check_is_not_believed(self, tmp_path, authentications):
        """A signed trail checked with its HMAC key alone: the root must still carry that key's HMAC."""
        store = Store(tmp_path / "trail", "signed")
        path = self.forge(store, keep_signature=True)
        vouched = vouched_entries(store.cold, store.hmac_key, None)
        assert vouched.digests == frozenset()
        assert store.decide(path, vouched, public_key=None) is None


class TestKeys:
    def test_a_root_checked_with_fewer_keys_than_it_was_written_with_still_vouches(self, tmp_path):
        """Written with the HMAC key and a signing key; checked with the HMAC key alone: the entries it
        commits to passed the stricter check when it was written."""
        store = Store(tmp_path / "trail", "signed")
        vouched = vouched_entries(store.cold, store.hmac_key, None)
        assert vouched.digests == {digest(path) for path in store.entries()}
        for path in store.entries():
            assert store.decide(path, vouched, public_key=None) == store.decide(path, public_key=None) is not None

    def test_a_root_re_checksummed_for_a_check_without_the_hmac_key_gets_no_more_than_the_entries_would(
            self, tmp_path):
        """A keyed, signed store checked with the public key alone: a root given a plain checksum (its
        signature still valid: it does not cover the checksum) vouches for its entries; the same edit
        made to each entry makes the full check accept them too. Nothing an attacker could not do anyway."""
        store = Store(tmp_path / "trail", "signed")
        root = store.root()
        root[ROOT_CHECKSUM] = documents.keyed_digest(documents.canonical_bytes(root, (ROOT_CHECKSUM,)))
        store.write_root(root)
        vouched = vouched_entries(store.cold, None, store.public_key)
        path = store.entries()[0]
        assert store.decide(path, hmac_key=None) is None  # its HMAC checksum: not authentic without the key
        assert store.decide(path, vouched, hmac_key=None) is not None
        entry = read_manifest(path)
        entry[MANIFEST_CHECKSUM] = documents.keyed_digest(documents.canonical_bytes(entry, (MANIFEST_CHECKSUM,)))
        overwrite(path, json.dumps(entry).encode())
        assert store.decide(path, hmac_key=None) is not None

    def test_other_keys_than_the_roots_vouch_for_nothing(self, store, authentications):
        other = b"another key"
        vouched = vouched_entries(store.cold, other, store.public_key)
        assert vouched.digests == frozenset()
        # Vouched with the store's keys, asked with others: checked in full (and not authentic with them).
        vouched = store.vouched()
        assert all(store.decide(path, vouched, hmac_key=other) is None for path in store.entries())
        assert entry_checks(authentications) == len(store.entries())

    @pytest.mark.parametrize("mode", ["signed", SIGNED_UNKEYED])
    def test_trusted_keys_with_windows_vouch_for_nothing(self, tmp_path, mode, authentications):
        store = Store(tmp_path / "trail", mode)
        authentications.clear()  # the converter's
        trusted = TrustedKeys.from_public_key(store.public_key)
        vouched = vouched_entries(store.cold, store.hmac_key, trusted)
        assert vouched.digests == frozenset() and "cold root" not in authentications
        for path in store.entries():
            assert store.decide(path, vouched, public_key=trusted) is not None
        assert entry_checks(authentications) == len(store.entries())

    def test_a_root_stripped_of_its_signature_vouches_for_nothing(self, tmp_path):
        """A root checked with the public key must carry a valid signature by it: one stripped of it
        (checksum recomputed, as anyone can without an HMAC key) vouches for nothing."""
        store = Store(tmp_path / "trail", SIGNED_UNKEYED)
        root = store.root()
        del root["signature"]
        store.write_root(documents.authenticate(root, ROOT_CHECKSUM))
        assert store.vouched().digests == frozenset()
        assert vouched_entries(store.cold, None, None).digests == {digest(path) for path in store.entries()}
