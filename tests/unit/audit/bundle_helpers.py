"""Trails and bundle surgery for the evidence bundle tests (real emitters, real files, real ZIPs)."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit_core import AuditConfig, AuditEventEmitter
from audit_core.trust.signing import generate_keypair

NS = 1_000_000_000
MINUTE = 60 * NS
T0 = 1_767_657_600 * NS  # 2026-01-06 00:00:00 UTC
PARAMS = ("risk_multiplier", "kelly_fraction")


@dataclass
class SignedTrail:
    root: Path
    trail: Path
    private_key: Path
    public_key: Path
    witness: Path


def write_signed_trail(root: Path, *, trader: str = "T1", minutes: int = 60, witness: bool = True) -> SignedTrail:
    """Two streams over ``minutes`` minutes from T0: ``control`` (a parameter change every 3 minutes,
    alternating parameters and sources, heartbeats between) and ``quiet`` (one record at the start and
    one at the end), signed, with a witness directory."""
    root.mkdir(parents=True, exist_ok=True)
    private, public = root / "writer.key", root / "writer.pub"
    if not private.exists():
        generate_keypair(private, public)
    trail, witness_dir = root / "trail", root / "witness"
    now = [T0]
    config = {"base_path": trail, "trader_id": trader, "signing_key_path": private,
              "witness_path": witness_dir if witness else None}
    control = AuditEventEmitter(AuditConfig(stream_id="control", **config), clock=lambda: now[0])
    quiet = AuditEventEmitter(AuditConfig(stream_id="quiet", **config), clock=lambda: now[0])
    try:
        quiet.emit_system("sys.startup", "node", payload={"minutes": minutes})
        for minute in range(minutes):
            now[0] = T0 + minute * MINUTE
            if minute % 3 == 0:
                name = PARAMS[(minute // 3) % 2]
                source = "meta_controller" if name == "risk_multiplier" else "kelly_sizer"
                control.emit_param_change(source, name, minute, minute + 1, "rebalance",
                                          event_type="param.risk_change")
            else:
                control.emit_system("sys.heartbeat", "node", payload={"minute": minute})
        now[0] = T0 + minutes * MINUTE
        quiet.emit_system("sys.shutdown", "node", payload={})
    finally:
        control.close()
        quiet.close()
    return SignedTrail(root, trail, private, public, witness_dir)


def read_bundle(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    with zipfile.ZipFile(path) as archive:
        entries = {info.filename: archive.read(info) for info in archive.infolist()}
    return json.loads(entries["bundle.json"]), entries


def write_bundle(path: Path, index: dict[str, Any] | None, entries: dict[str, bytes],
                 extra: list[tuple[str, bytes]] = ()) -> Path:
    """A bundle with ``index`` (None: keep ``entries['bundle.json']``) and ``entries``, plus raw ``extra`` entries."""
    import warnings

    if index is not None:
        entries = {**entries, "bundle.json": json.dumps(index).encode()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about a duplicate name: the attack
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in [*entries.items(), *extra]:
                archive.writestr(name, data)
    return path


def stream_of(index: dict[str, Any], name: str) -> dict[str, Any]:
    return next(stream for stream in index["streams"] if stream["origin"].endswith(f"/{name}"))
