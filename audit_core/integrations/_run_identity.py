"""What produced a run: the ``sys.session_start`` identity and ``sys.session_end`` totals of the observer.

Stdlib only (no NautilusTrader): the configuration hash, the session id, the installed Ledgerline
version, the strategy code's git commit, and a fingerprint of a data set without a catalog version.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any


def data_fingerprint(data: Iterable[Any]) -> str:
    """SHA-256 over the ``repr`` of each data item in order (quotes, trades, bars): a data set
    identity for ``identify_run(dataset=...)`` when the data has no catalog version of its own."""
    digest = hashlib.sha256()
    count = 0
    for item in data:
        digest.update(repr(item).encode())
        digest.update(b"\n")
        count += 1
    return f"sha256:{digest.hexdigest()}:{count}"


def run_identity(engine_config: Any, strategy_configs: Iterable[Any], dataset: str | Mapping[str, Any] | None,
                 seed: int | None) -> dict[str, Any]:
    """``AuditObserver.identify_run``'s record: the configurations as plain JSON, the data set, the seed."""
    configuration = {"engine": _config_json(engine_config),
                     "strategies": [_config_json(config) for config in strategy_configs]}
    return {"configuration": configuration, "dataset": dataset, "seed": seed}


#: A run nobody identified: no configuration, data set or seed.
UNIDENTIFIED: dict[str, Any] = {"configuration": {"engine": None, "strategies": []}, "dataset": None, "seed": None}


def session_start_payload(identity: Mapping[str, Any], *, trader_id: str, stream_id: str, next_sequence: int,
                          last_hash: str, environment: str, sync_trades: bool, nautilus_version: str,
                          code_version: str | None, code_path: str | None, ts_init: int) -> dict[str, Any]:
    """The ``sys.session_start`` payload; its ``session_id`` is unique in the trail (it hashes the
    chain position) and the same for the same fresh run."""
    configuration_hash = sha256_json(identity["configuration"])
    session_id = sha256_json([trader_id, stream_id, next_sequence, last_hash, configuration_hash])[:16]
    return {
        "session_id": session_id,
        "environment": environment,
        "sync_trades": sync_trades,
        "ledgerline_version": ledgerline_version(),
        "nautilus_trader_version": nautilus_version,
        "code_version": code_version,
        "git_commit": git_commit(code_path),
        "configuration_hash": configuration_hash,
        **identity,
        "ts_init": ts_init,
    }


def _config_json(config: Any) -> Any:
    """A configuration as plain JSON values: NautilusTrader configs through their own JSON."""
    if config is None:
        return None
    if hasattr(config, "json"):
        return json.loads(config.json())
    return json.loads(json.dumps(config, sort_keys=True, default=str))


def sha256_json(value: Any) -> str:
    """SHA-256 hex of ``value``'s canonical JSON (sorted keys, compact)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def ledgerline_version() -> str | None:
    try:
        return metadata.version("ledgerline")
    except metadata.PackageNotFoundError:
        return None


def git_commit(path: str | None) -> str | None:
    """The commit checked out at ``path`` (with ``+dirty`` when it has changes), None without git."""
    cwd = Path(path) if path is not None else None
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")
