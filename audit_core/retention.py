"""Retention: remove what has aged out of the window, record the removal in the trail first.

A purge runs in four steps, each safe to crash after:

1. **Plan.** Cold day partitions older than the window, and hot files whose every Parquet output is
   older than the window and which are sealed, verify, and match their manifest entry. Nothing
   under a legal hold, nothing unconverted, nothing of the ``retention`` stream (its records are
   what make the remaining trail verifiable) is ever in a plan.
2. **Journal.** The plan is written to ``cold/_retention/<plan id>.json`` (synced, renamed).
3. **Record.** A durable ``sys.retention`` record naming every partition and every hot file (with
   its seal: last sequence and hash, Merkle root, file SHA-256) is appended to the audit trail,
   on the ``retention`` stream. The deletion is announced before it happens.
4. **Remove**, then mark removed outputs ``retired`` in their manifest entries and the journal
   ``done``.

A crash leaves a journal that is not ``done``; the next ``apply_retention`` finishes it first
(recording it only if the trail does not already hold its record). ``integrity.verify`` accepts a
stream whose first remaining record continues the last hash a ``sys.retention`` record names, and
``converter.verify_cold`` skips outputs marked retired.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from audit_core import _jsonfile
from audit_core._layout import checkpoint_path, parse_hot_file_name, seal_path
from audit_core.config import AuditConfig
from audit_core.converter import MANIFEST_DIR, read_manifest
from audit_core.converter import write_json_atomically as _write_json
from audit_core.emitter import AuditEventEmitter
from audit_core.errors import AuditConfigError, AuditFormatError
from audit_core.events import AuditEventType
from audit_core.integrity import fsync_directory, hot_files, read_seal, verify

JOURNAL_DIR = "_retention"
HOLDS_FILE = "_legal_holds.json"
#: The stream retention records go to. Its files are never purged: they prove what was.
RETENTION_STREAM = "retention"


@dataclass(frozen=True)
class LegalHold:
    """Pins every UTC day from ``start`` to ``end`` (inclusive): nothing of those days is removed."""

    start: dt.date
    end: dt.date
    reason: str = ""

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise AuditConfigError(f"legal hold {self.reason!r}: end {self.end} is before start {self.start}")

    def covers(self, day: dt.date) -> bool:
        return self.start <= day <= self.end


def load_holds(cold_path: Path | str) -> list[LegalHold]:
    """The holds in ``cold/_legal_holds.json``: ``[{"start": "2026-01-01", "end": "...", "reason": "..."}]``.

    Raises:
        AuditFormatError: The file is not valid JSON, not a list, or an entry lacks a valid date;
            names the file and the entry.
    """
    path = Path(cold_path) / HOLDS_FILE
    if not path.exists():
        return []
    entries = _jsonfile.read(path, "legal holds file")
    if not isinstance(entries, list):
        raise AuditFormatError(path, f"expected a list of holds, got {_jsonfile.type_name(entries)}")
    holds = []
    for index, entry in enumerate(entries):
        try:
            holds.append(LegalHold(
                dt.date.fromisoformat(entry["start"]), dt.date.fromisoformat(entry["end"]), str(entry.get("reason", ""))
            ))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise AuditFormatError(
                path, f"hold #{index} {entry!r:.80} needs ISO dates 'start' and 'end' ({exc})"
            ) from None
    return holds


@dataclass
class RemovedHotFile:
    file: str
    stream: str
    first_sequence: int | None
    last_sequence: int | None
    last_hash: str | None
    merkle_root: str
    file_sha256: str


@dataclass
class RetentionPlan:
    """What a purge removes (or, with ``dry_run``, would remove) and what it kept and why."""

    cutoff: dt.date | None  # days strictly before it are out of the window; None keeps everything
    partitions: list[str] = field(default_factory=list)  # relative to cold, e.g. "year=2026/month=01/day=05"
    hot_files: list[RemovedHotFile] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)  # (item, why it stays)
    dry_run: bool = False
    plan_id: str = ""
    record_sequence: int | None = None  # the sys.retention record, once written
    resumed: bool = False  # finished a purge an earlier run was interrupted in

    def payload(self) -> dict[str, Any]:
        return {
            "plan_id": self.plan_id,
            "cutoff": None if self.cutoff is None else self.cutoff.isoformat(),
            "partitions": self.partitions,
            "hot_files": [asdict(removed) for removed in self.hot_files],
        }

    @property
    def empty(self) -> bool:
        return not self.partitions and not self.hot_files


def apply_retention(
    hot_path: Path | str | None,
    cold_path: Path | str,
    *,
    days: int,
    now: dt.datetime | None = None,
    holds: Iterable[LegalHold] = (),
    dry_run: bool = False,
    emitter: AuditEventEmitter | None = None,
    config: AuditConfig | None = None,
    hmac_key: bytes | None = None,
    public_key: Any = None,
) -> RetentionPlan:
    """Remove cold partitions and converted hot files older than ``days``, recording it first.

    Args:
        hot_path: The hot directory (files are removed there, and the record is appended there
            unless ``emitter`` is given). None: cold partitions only, and then ``emitter`` is needed.
        cold_path: The cold store.
        days: The window; 0 keeps everything forever.
        now: The current time (UTC); tests pass a fixed one.
        holds: Legal holds on top of those in ``cold/_legal_holds.json``.
        dry_run: Plan and report only; write nothing.
        emitter: Where the ``sys.retention`` record goes. Default: the ``retention`` stream in
            ``hot_path``, with ``config``'s trader id and HMAC key.
        config: Settings for that default stream (its ``stream_id`` is replaced by ``retention``).
        hmac_key: The trail's HMAC key when no ``config`` carries it: hot files are verified with
            it, and the retention record is keyed with it like the rest of the trail.
        public_key: Ed25519 key that hot files' seals must be signed with to count as verified.

    Returns:
        The plan that was carried out.

    Raises:
        AuditConfigError: ``days`` is negative, a hold file is malformed, or there is nowhere to
            write the record.
    """
    if days < 0:
        raise AuditConfigError(f"retention days={days}: must be 0 (keep forever) or more")
    cold = Path(cold_path)
    hot = None if hot_path is None else Path(hot_path)
    now = now or dt.datetime.now(dt.UTC)
    resumed = None if dry_run else _finish_interrupted(cold, hot, emitter, config)
    if days == 0:
        plan = RetentionPlan(cutoff=None, dry_run=dry_run)
        plan.kept.append(("everything", "retention_days=0 keeps the trail forever"))
        return resumed or plan
    all_holds = [*load_holds(cold), *holds]
    if config is None and hmac_key is not None and hot is not None:
        config = AuditConfig(base_path=hot.parent, trader_id=_trader_of(hot), hmac_key=hmac_key.decode())
    hmac_key = config.resolve_hmac_key() if config is not None else hmac_key
    plan = _plan(hot, cold, now.astimezone(dt.UTC).date() - dt.timedelta(days=days), all_holds, hmac_key, public_key)
    plan.dry_run = dry_run
    if dry_run or plan.empty:
        return plan
    _carry_out(plan, cold, hot, emitter, config)
    return plan


# --- planning -----------------------------------------------------------------------------------


def _plan(
    hot: Path | None,
    cold: Path,
    cutoff: dt.date,
    holds: list[LegalHold],
    hmac_key: bytes | None,
    public_key: Any,
) -> RetentionPlan:
    plan = RetentionPlan(cutoff=cutoff)

    def held(day: dt.date) -> LegalHold | None:
        return next((hold for hold in holds if hold.covers(day)), None)

    for directory in sorted(cold.glob("year=*/month=*/day=*")):
        relative = str(directory.relative_to(cold))
        day = _partition_day(directory)
        if day is None or day >= cutoff:
            continue
        hold = held(day)
        if hold is not None:
            plan.kept.append((relative, f"legal hold {hold.start}..{hold.end}: {hold.reason}"))
        else:
            plan.partitions.append(relative)
    if hot is not None and hot.exists():
        manifests = _manifests(cold)
        for path in hot_files(hot):
            name = parse_hot_file_name(path)
            if name is None or name.day >= cutoff:
                continue
            why = _why_hot_file_stays(path, name.stream_id, manifests, cutoff, held, hmac_key, public_key)
            if why is not None:
                plan.kept.append((path.name, why))
                continue
            seal = read_seal(path) or {}
            plan.hot_files.append(RemovedHotFile(
                path.name, name.stream_key, seal.get("first_sequence"), seal.get("last_sequence"),
                seal.get("last_hash"), str(seal.get("merkle_root")), str(seal.get("file_sha256")),
            ))
    plan.plan_id = hashlib.sha256(json.dumps(plan.payload(), sort_keys=True).encode()).hexdigest()[:32]
    return plan


def _why_hot_file_stays(
    path: Path,
    stream_id: str,
    manifests: dict[str, dict[str, Any] | AuditFormatError],
    cutoff: dt.date,
    held: Any,
    hmac_key: bytes | None,
    public_key: Any,
) -> str | None:
    if stream_id.startswith(RETENTION_STREAM):
        return "retention records are kept forever"
    try:
        seal = read_seal(path)
    except AuditFormatError as exc:
        return f"its seal is unreadable: {exc}"
    if seal is None:
        return "not sealed"
    entry = manifests.get(path.name)
    if isinstance(entry, AuditFormatError):
        return f"its manifest entry is unreadable: {entry}"
    if entry is None or entry.get("seal", {}).get("file_sha256") != seal.get("file_sha256"):
        return "not converted to Parquet (no matching manifest entry)"
    for output in entry.get("outputs", []):
        day = _partition_day(Path(output["path"]).parent)
        if day is None or day >= cutoff:
            return f"its rows in {output['path']} are inside the window"
        hold = held(day)
        if hold is not None:
            return f"legal hold {hold.start}..{hold.end}: {hold.reason}"
    name = parse_hot_file_name(path)
    if name is not None and held(name.day) is not None:
        return "legal hold on its day"
    report = verify([path], hmac_key, require_stream_start=False, public_key=public_key)
    if not report.ok:
        return f"fails verification: {report.failures[0]}"
    return None


def _partition_day(directory: Path) -> dt.date | None:
    try:
        parts = {p.split("=")[0]: int(p.split("=")[1]) for p in directory.parts[-3:]}
        return dt.date(parts["year"], parts["month"], parts["day"])
    except (IndexError, KeyError, ValueError):
        return None


def _manifests(cold: Path) -> dict[str, dict[str, Any] | AuditFormatError]:
    """Manifest entries by source file; an unreadable one by its file's name, as its error (its file stays)."""
    entries: dict[str, dict[str, Any] | AuditFormatError] = {}
    for path in (cold / MANIFEST_DIR).glob("*.json"):
        try:
            entry = read_manifest(path)
        except AuditFormatError as exc:
            entries[path.name.removesuffix(".json")] = exc
            continue
        entries[entry["source"]] = entry
    return entries


# --- carrying out ---------------------------------------------------------------------------------


def _carry_out(
    plan: RetentionPlan, cold: Path, hot: Path | None, emitter: AuditEventEmitter | None, config: AuditConfig | None
) -> None:
    journal = cold / JOURNAL_DIR / f"{plan.plan_id}.json"
    _write_json(journal, {**plan.payload(), "status": "planned"})
    plan.record_sequence = _record(plan.payload(), hot, emitter, config)
    _write_json(journal, {**plan.payload(), "status": "recorded", "record_sequence": plan.record_sequence})
    _remove(plan.payload(), cold, hot)
    _write_json(journal, {**plan.payload(), "status": "done", "record_sequence": plan.record_sequence})


def _finish_interrupted(
    cold: Path, hot: Path | None, emitter: AuditEventEmitter | None, config: AuditConfig | None
) -> RetentionPlan | None:
    """Complete a purge a crash interrupted. Returns it, or None if there was none."""
    finished = None
    for journal in sorted((cold / JOURNAL_DIR).glob("*.json")):
        state = json.loads(journal.read_bytes())
        if state.get("status") == "done":
            continue
        payload = {key: state[key] for key in ("plan_id", "cutoff", "partitions", "hot_files")}
        sequence = state.get("record_sequence")
        if sequence is None and not _recorded(payload["plan_id"], hot):
            sequence = _record(payload, hot, emitter, config)
        _remove(payload, cold, hot)
        _write_json(journal, {**payload, "status": "done", "record_sequence": sequence})
        finished = RetentionPlan(
            cutoff=None if payload["cutoff"] is None else dt.date.fromisoformat(payload["cutoff"]),
            partitions=payload["partitions"], hot_files=[RemovedHotFile(**h) for h in payload["hot_files"]],
            plan_id=payload["plan_id"], record_sequence=sequence, resumed=True,
        )
    return finished


def _record(
    payload: dict[str, Any], hot: Path | None, emitter: AuditEventEmitter | None, config: AuditConfig | None
) -> int:
    if emitter is not None:
        return emitter.emit_system(AuditEventType.SYS_RETENTION, "ledgerline.retention", payload).sequence or 0
    if hot is None:
        raise AuditConfigError("retention needs a hot trail (or an emitter) to record the purge in")
    trader = config.trader_id if config is not None else _trader_of(hot)
    settings = (config or AuditConfig(base_path=hot.parent, trader_id=trader)).model_copy(update={
        "base_path": hot.parent,  # the config's hot path is base_path/hot
        "stream_id": RETENTION_STREAM,
        "durable_event_types": ("sys.retention",),
        "sync_writes": True,
    })
    if settings.hot_path != hot:
        raise AuditConfigError(f"hot path {hot} must be a directory named 'hot' (the trail layout: <base>/hot)")
    with AuditEventEmitter(settings) as own:
        return own.emit_system(AuditEventType.SYS_RETENTION, "ledgerline.retention", payload).sequence or 0


def _recorded(plan_id: str, hot: Path | None) -> bool:
    if hot is None or not hot.exists():
        return False
    needle = f'"plan_id":"{plan_id}"'.encode()
    return any(needle in path.read_bytes() for path in hot_files(hot) if RETENTION_STREAM in path.name)


def _trader_of(hot: Path) -> str:
    for path in hot_files(hot):
        name = parse_hot_file_name(path)
        if name is not None:
            return name.trader_id
    raise AuditConfigError(f"no hot files in {hot} to take a trader id from; pass config=AuditConfig(...)")


def _remove(payload: dict[str, Any], cold: Path, hot: Path | None) -> None:
    retired: set[str] = set()
    for partition in payload["partitions"]:
        directory = cold / partition
        retired.update(str(p.relative_to(cold)) for p in directory.glob("*.parquet"))
        shutil.rmtree(directory, ignore_errors=True)
        _remove_empty_parents(directory.parent, cold)
    if hot is not None:
        for removed in payload["hot_files"]:
            path = next((p for p in hot.rglob(removed["file"])), None)
            if path is None:
                continue  # removed before an interruption
            for target in (path, seal_path(path), checkpoint_path(path)):
                target.unlink(missing_ok=True)
            fsync_directory(path.parent)
    for manifest in sorted((cold / MANIFEST_DIR).glob("*.json")):
        try:
            entry = read_manifest(manifest)
        except AuditFormatError:
            continue  # cannot be marked retired; verify_cold reports it unreadable
        outputs = entry.get("outputs", [])
        gone = [o for o in outputs if o["path"] in retired or _in_partitions(o["path"], payload["partitions"])]
        hot_gone = any(h["file"] == entry.get("source") for h in payload["hot_files"])
        if not gone and not hot_gone:
            continue
        entry["outputs"] = [o for o in outputs if o not in gone]
        entry["retired"] = [*entry.get("retired", []), *({**o, "plan_id": payload["plan_id"]} for o in gone)]
        if hot_gone:
            entry["hot_removed_by"] = payload["plan_id"]
        _write_json(manifest, entry)


def _in_partitions(output: str, partitions: list[str]) -> bool:
    return any(output.startswith(partition + "/") for partition in partitions)


def _remove_empty_parents(directory: Path, root: Path) -> None:
    while directory != root and directory.exists() and not any(directory.iterdir()):
        directory.rmdir()
        directory = directory.parent
