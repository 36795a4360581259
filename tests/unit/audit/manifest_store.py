"""A small converted cold store in one trail mode, and the two ways of editing a manifest entry's output.

Shared by the tests of what the converter records per output and ``verify_cold`` derives again
(``test_id_filter``, ``test_parameter_index``): each subclass writes its own records in ``write``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from audit_core import AuditConfig, AuditEventEmitter
from audit_core.cold.cold_verify import verify_cold
from audit_core.cold.converter import ParquetConverter
from audit_core.cold.manifest import MANIFEST_DIR, read_manifest, update_cold_root, write_entry
from audit_core.trust.signing import generate_keypair, load_private_key, load_public_key

JAN_5 = 1_767_571_200 * 10**9  # 2026-01-05 00:00 UTC
HOUR = 3600 * 10**9
MODES = ["unkeyed", "hmac", "signed"]
#: Signed without an HMAC key: plain SHA-256 checksums, the signature alone authenticates.
SIGNED_UNKEYED = "signed-unkeyed"


class ManifestStore:
    """A trail of two days written by ``write`` in ``mode`` (unkeyed, hmac, signed or signed-unkeyed), converted."""

    key = b"store-k3y"

    def __init__(self, base: Path, mode: str) -> None:
        base.mkdir(parents=True, exist_ok=True)
        self.base, self.cold = base, base / "cold"
        self.hmac_key = None if mode in ("unkeyed", SIGNED_UNKEYED) else self.key
        self.signing_key = self.public_key = None
        options: dict[str, Any] = {}
        if mode in ("signed", SIGNED_UNKEYED):
            generate_keypair(base / "writer.key", base / "writer.pub")
            options["signing_key_path"] = base / "writer.key"
            self.signing_key = load_private_key(base / "writer.key")
            self.public_key = load_public_key(base / "writer.pub")
        config = AuditConfig(base_path=base, trader_id="T1", sync_writes=False,
                             hmac_key=None if self.hmac_key is None else self.hmac_key.decode(), **options)
        now = [JAN_5]
        with AuditEventEmitter(config, clock=lambda: now[0]) as audit:
            self.write(audit, now)
        results = ParquetConverter(base / "hot", self.cold, hmac_key=self.hmac_key, public_key=self.public_key,
                                   signing_key=self.signing_key).convert_all()
        assert all(result.converted for result in results)

    def write(self, audit: AuditEventEmitter, now: list[int]) -> None:
        """Emit the store's records; set ``now[0]`` to move the emitter's clock."""
        raise NotImplementedError

    def entries(self) -> list[Path]:
        return sorted((self.cold / MANIFEST_DIR).glob("*.json"))

    def outputs(self) -> dict[str, dict[str, Any]]:
        return {output["path"]: output for path in self.entries() for output in read_manifest(path)["outputs"]}

    def verify(self) -> Any:
        return verify_cold(self.cold, self.hmac_key, self.public_key)

    def edit_first_output(self, change: Callable[[dict[str, Any]], Any], *, authenticate: bool) -> None:
        """``change`` the first entry's first output, then write the entry back.

        ``authenticate``: as someone with the key (or anyone, unkeyed) would, entry and root written
        again and authenticated; otherwise as an attacker without the key, editing the JSON.
        """
        path = self.entries()[0]
        entry = read_manifest(path)
        change(entry["outputs"][0])
        if authenticate:
            write_entry(self.cold, {k: v for k, v in entry.items() if k not in ("manifest_checksum", "signature")},
                        self.hmac_key, self.signing_key)
            update_cold_root(self.cold, self.hmac_key, self.signing_key)
        else:
            path.chmod(0o644)
            path.write_text(json.dumps(entry, indent=1))
