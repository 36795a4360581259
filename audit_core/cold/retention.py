"""Retention: remove what has aged out of the window, record the removal in the trail first.

A purge runs in four steps, each safe to crash after:

1. **Plan.** Cold day partitions older than the window, and hot files whose every Parquet output is
   older than the window and which are sealed, verify, and match their manifest entry. Nothing
   under a legal hold, nothing unconverted, nothing of the ``retention`` stream (its records are
   what make the remaining trail verifiable), nothing reached through a symbolic link is ever in
   a plan.
2. **Journal.** The plan is written to ``cold/_retention/<plan id>.json`` (synced, renamed), as an
   authenticated document (``documents.py``): ``journal_checksum`` is SHA-256, or HMAC-SHA256 with
   the trail's key, and with a signing key it carries an Ed25519 ``signature``, like a seal.
3. **Record.** A durable ``sys.retention`` record naming every partition and every hot file (with
   its seal: last sequence and hash, Merkle root, file SHA-256) is appended to the audit trail,
   on the ``retention`` stream. The deletion is announced before it happens.
4. **Remove**, then mark removed outputs ``retired`` in their manifest entries and the journal
   ``done``.

Files on disk cannot steer it (the checks live in ``_retention_guard.py``). Before anything is
touched: ``days`` is checked; a trail whose
seals or records show an HMAC key (they do not verify as plain SHA-256) or a signature (a seal
carries one, or a checkpoint exists) is refused without that key; and every journal must
authenticate and name only day partitions inside the cold store and trail files inside the hot
directory, with no symbolic link on the way, or ``RetentionJournalError`` names it and nothing is
removed. A journal left by a crash is replayed only for what the current policy (window, holds,
verification) would remove too; one whose record never reached the trail removed nothing and is
abandoned. ``hot.verifier.verify`` accepts a stream whose first remaining record continues the last
hash a verified ``sys.retention`` record names, and ``converter.verify_cold`` skips outputs
marked retired.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from audit_core import _jsonfile
from audit_core._layout import (
    RETENTION_STREAM,  # its files are never purged
    checkpoint_path,
    parse_hot_file_name,
    seal_path,
)
from audit_core.cold._retention_guard import (
    HotIndex,
    Journal,
    TrailKeys,
    authenticated_journal,
    check_trail_keys,
    load_journals,
    manifest_entries,
    partition_path,
    resolve_keys,
    trail_files,
)
from audit_core.cold.manifest import (
    HOLDS_FILE,
    JOURNAL_DIR,
    converted_entry,
    entry_problems,
    legal_holds_problem,
    update_cold_root,
    write_entry,
)
from audit_core.cold.manifest import write_json_atomically as _write_json
from audit_core.config import AuditConfig
from audit_core.errors import AuditConfigError, AuditFormatError
from audit_core.events import AuditEventType
from audit_core.hot.emitter import AuditEventEmitter
from audit_core.hot.verifier import retention_records, verify
from audit_core.trust.seals import fsync_directory, read_seal

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

#: The largest window: 100 years, as ``AuditConfig.retention_days``.
MAX_RETENTION_DAYS = 36500


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
    public_key: Ed25519PublicKey | None = None,
) -> RetentionPlan:
    """Remove cold partitions and converted hot files older than ``days``, recording it first.

    Args:
        hot_path: The hot directory (files are removed there, and the record is appended there
            unless ``emitter`` is given). None: cold partitions only, and then ``emitter`` is needed.
        cold_path: The cold store.
        days: The window, 0 (keep everything forever) to ``MAX_RETENTION_DAYS``.
        now: The current time (UTC); tests pass a fixed one.
        holds: Legal holds on top of those in ``cold/_legal_holds.json``.
        dry_run: Plan and report only; write nothing.
        emitter: Where the ``sys.retention`` record goes: an emitter of the ``retention`` stream.
            Default: the ``retention`` stream in ``hot_path``, with ``config``'s settings.
        config: Settings for that default stream (its ``stream_id`` is replaced by ``retention``):
            its HMAC key, and its signing key (``signing_key_path`` / ``signing_key_env``), which
            signs the journals and the retention stream's seals. Default: ``emitter.config``.
        hmac_key: The trail's HMAC key when no ``config`` carries it: hot files and journals are
            verified with it, and the retention record and journals are keyed with it.
        public_key: Ed25519 key that hot files' seals (and journals) must be signed with to count
            as verified. Default: the public half of the configured signing key.

    Returns:
        The plan that was carried out.

    Raises:
        AuditConfigError: ``days`` is out of range, a key the trail needs is missing (or does not
            fit it), a hold file is malformed, or there is nowhere to write the record. Raised
            before anything is touched.
        RetentionJournalError: A journal in ``cold/_retention`` does not authenticate or names a
            path outside the trail (or through a symbolic link). Nothing was removed.
    """
    cutoff = _cutoff(days, now or dt.datetime.now(dt.UTC))
    cold = Path(cold_path)
    hot = None if hot_path is None else Path(hot_path)
    if emitter is not None and emitter.writer.stream_id != RETENTION_STREAM:
        raise AuditConfigError(
            f"the emitter writes stream {emitter.writer.stream_id!r}; sys.retention records count only in "
            f"the {RETENTION_STREAM!r} stream: pass an emitter with stream_id={RETENTION_STREAM!r}"
        )
    settings = config if config is not None else (emitter.config if emitter is not None else None)
    keys = resolve_keys(settings, hmac_key, public_key)
    check_trail_keys(hot, cold, keys, dry_run)
    journals = load_journals(cold, hot, keys)
    all_holds = [*load_holds(cold), *holds] if cutoff is not None else []
    holds_problem = legal_holds_problem(cold, keys.hmac_key, None if keys.signing_key is None
                                        else keys.signing_key.public_key())
    if holds_problem is not None:  # a hold deleted or edited behind the root's back lifts nothing
        raise AuditConfigError(f"{holds_problem}; retention touched nothing")
    resumed = None
    if journals and not dry_run:
        current = None if cutoff is None else _plan(hot, cold, cutoff, all_holds, keys)
        resumed = _finish_interrupted(journals, cold, hot, keys, current)
    if cutoff is None:
        plan = RetentionPlan(cutoff=None, dry_run=dry_run)
        plan.kept.append(("everything", "retention_days=0 keeps the trail forever"))
        return resumed or plan
    plan = _plan(hot, cold, cutoff, all_holds, keys)
    plan.dry_run = dry_run
    if dry_run or plan.empty:
        return plan
    _carry_out(plan, cold, hot, emitter, settings, keys)
    return plan


def _cutoff(days: object, now: dt.datetime) -> dt.date | None:
    """The first day kept (None: everything is kept); ``days`` is checked before anything else."""
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= MAX_RETENTION_DAYS:
        raise AuditConfigError(
            f"retention days={days!r}: expected a whole number from 0 (keep everything forever) "
            f"to {MAX_RETENTION_DAYS} (100 years)"
        )
    if days == 0:
        return None
    try:
        return now.astimezone(dt.UTC).date() - dt.timedelta(days=days)
    except OverflowError:
        raise AuditConfigError(f"retention days={days} before {now.isoformat()} is before year 1") from None


def _write_journal(path: Path, state: dict[str, Any], keys: TrailKeys) -> None:
    _write_json(path, authenticated_journal(state, keys))
    update_cold_root(path.parent.parent, keys.hmac_key, keys.signing_key)  # the root commits to every journal


# --- planning -----------------------------------------------------------------------------------


def _plan(hot: Path | None, cold: Path, cutoff: dt.date, holds: list[LegalHold], keys: TrailKeys) -> RetentionPlan:
    plan = RetentionPlan(cutoff=cutoff)

    def held(day: dt.date) -> LegalHold | None:
        return next((hold for hold in holds if hold.covers(day)), None)

    for directory in sorted(cold.glob("year=*/month=*/day=*")):
        relative = directory.relative_to(cold).as_posix()
        day = _partition_day(directory)
        if day is None or day >= cutoff:
            continue
        hold = held(day)
        try:
            partition_path(cold, relative)
        except ValueError as exc:
            plan.kept.append((relative, f"refused: {exc}"))
            continue
        if hold is not None:
            plan.kept.append((relative, f"legal hold {hold.start}..{hold.end}: {hold.reason}"))
        else:
            plan.partitions.append(relative)
    if hot is not None and hot.is_dir():
        index = HotIndex(hot)
        for path in trail_files(hot):
            name = parse_hot_file_name(path)
            if name is None or name.day >= cutoff:
                continue
            try:
                index.locate(path.name)
            except ValueError as exc:
                plan.kept.append((path.name, f"refused: {exc}"))
                continue
            why = _why_hot_file_stays(path, name.stream_id, cold, cutoff, held, keys)
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
    cold: Path,
    cutoff: dt.date,
    held: Callable[[dt.date], LegalHold | None],
    keys: TrailKeys,
) -> str | None:
    if stream_id.startswith(RETENTION_STREAM):
        return "retention records are kept forever"
    try:
        seal = read_seal(path)
    except (OSError, ValueError) as exc:
        return f"unreadable seal: {exc}"
    if seal is None:
        return "not sealed"
    converter_key = None if keys.signing_key is None else keys.signing_key.public_key()
    entry = converted_entry(path, cold, keys.hmac_key, converter_key)
    if entry is None:
        return "not converted to Parquet (no authentic manifest entry with its seal)"
    for output in entry["outputs"]:
        where = output.get("path") if isinstance(output, dict) else None
        day = _partition_day(Path(where).parent) if isinstance(where, str) else None
        if day is None or day >= cutoff:
            return f"its rows in {where} are inside the window"
        hold = held(day)
        if hold is not None:
            return f"legal hold {hold.start}..{hold.end}: {hold.reason}"
    name = parse_hot_file_name(path)
    if name is not None and held(name.day) is not None:
        return "legal hold on its day"
    report = verify([path], keys.hmac_key, require_stream_start=False, public_key=keys.public_key)
    if not report.ok:
        return f"fails verification: {report.failures[0]}"
    return None


def _partition_day(directory: Path) -> dt.date | None:
    try:
        parts = {p.split("=")[0]: int(p.split("=")[1]) for p in directory.parts[-3:]}
        return dt.date(parts["year"], parts["month"], parts["day"])
    except (IndexError, KeyError, ValueError):
        return None


# --- carrying out ---------------------------------------------------------------------------------


def _carry_out(
    plan: RetentionPlan,
    cold: Path,
    hot: Path | None,
    emitter: AuditEventEmitter | None,
    config: AuditConfig | None,
    keys: TrailKeys,
) -> None:
    journal = cold / JOURNAL_DIR / f"{plan.plan_id}.json"
    _write_journal(journal, {**plan.payload(), "status": "planned"}, keys)
    plan.record_sequence = _record(plan.payload(), hot, emitter, config, keys)
    _write_journal(journal, {**plan.payload(), "status": "recorded", "record_sequence": plan.record_sequence}, keys)
    _remove(plan.payload(), cold, hot, keys)
    _write_journal(journal, {**plan.payload(), "status": "done", "record_sequence": plan.record_sequence}, keys)


def _finish_interrupted(
    journals: list[Journal], cold: Path, hot: Path | None, keys: TrailKeys, current: RetentionPlan | None
) -> RetentionPlan | None:
    """Finish purges a crash interrupted, as far as the current policy allows. Returns the last, or None.

    ``current`` is what the current policy would remove now (None: nothing, ``days=0``). A journal
    whose ``sys.retention`` record is not in the trail removed nothing (the record comes first): it
    is marked abandoned and the current plan takes its place. Otherwise its partitions and hot
    files are removed only if ``current`` removes them too; those already gone are marked retired
    in their manifests. A journal with items the policy keeps stays unfinished for a later run.
    """
    finished = None
    for journal in journals:
        payload, sequence = journal.payload, journal.record_sequence
        if journal.status == "planned":
            sequence = _recorded(payload["plan_id"], hot, keys)
            if sequence is None:
                _write_journal(journal.path, {**payload, "status": "abandoned"}, keys)
                continue
        allowed, kept = _replayable(payload, cold, hot, current)
        _remove(allowed, cold, hot, keys)
        status = "recorded" if kept else "done"
        _write_journal(journal.path, {**payload, "status": status, "record_sequence": sequence}, keys)
        finished = RetentionPlan(
            cutoff=None if payload["cutoff"] is None else dt.date.fromisoformat(payload["cutoff"]),
            partitions=allowed["partitions"], hot_files=[RemovedHotFile(**h) for h in allowed["hot_files"]],
            kept=kept, plan_id=payload["plan_id"], record_sequence=sequence, resumed=True,
        )
    return finished


def _replayable(
    payload: dict[str, Any], cold: Path, hot: Path | None, current: RetentionPlan | None
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The part of a journal's payload the current policy lets go (or that is gone already), and what stays."""
    partitions = set(current.partitions) if current is not None else set()
    hot_files = {(h.file, h.file_sha256) for h in current.hot_files} if current is not None else set()
    reasons = dict(current.kept) if current is not None else {}
    policy = f"the current policy keeps it (cutoff {current.cutoff})" if current is not None else "days=0 keeps it"
    index = HotIndex(hot)
    allowed: dict[str, Any] = {**payload, "partitions": [], "hot_files": []}
    kept: list[tuple[str, str]] = []
    for partition in payload["partitions"]:
        if partition in partitions or not partition_path(cold, partition).exists():
            allowed["partitions"].append(partition)
        else:
            kept.append((partition, reasons.get(partition, policy)))
    for removed in payload["hot_files"]:
        if (removed["file"], removed["file_sha256"]) in hot_files or index.locate(removed["file"]) is None:
            allowed["hot_files"].append(removed)
        else:
            kept.append((removed["file"], reasons.get(removed["file"], policy)))
    return allowed, kept


def _record(
    payload: dict[str, Any],
    hot: Path | None,
    emitter: AuditEventEmitter | None,
    config: AuditConfig | None,
    keys: TrailKeys,
) -> int:
    if emitter is not None:
        return emitter.emit_system(AuditEventType.SYS_RETENTION, "ledgerline.retention", payload).sequence or 0
    if hot is None:
        raise AuditConfigError("retention needs a hot trail (or an emitter) to record the purge in")
    base = config or AuditConfig(base_path=hot.parent)
    update: dict[str, Any] = {
        "base_path": hot.parent,  # the config's hot path is base_path/hot
        "stream_id": RETENTION_STREAM,
        "durable_event_types": ("sys.retention",),
        "sync_writes": True,
    }
    if "trader_id" not in base.model_fields_set:
        update["trader_id"] = _trader_of(hot)
    if base.resolve_hmac_key() is None and keys.hmac_key is not None:
        update.update(hmac_key=SecretStr(keys.hmac_key.decode()), hmac_key_env=None)
    settings = base.model_copy(update=update)
    if settings.hot_path != hot:
        raise AuditConfigError(f"hot path {hot} must be a directory named 'hot' (the trail layout: <base>/hot)")
    with AuditEventEmitter(settings) as own:
        return own.emit_system(AuditEventType.SYS_RETENTION, "ledgerline.retention", payload).sequence or 0


def _recorded(plan_id: str, hot: Path | None, keys: TrailKeys) -> int | None:
    """The sequence of the plan's ``sys.retention`` record, if a verified one is in the trail."""
    if hot is None or not hot.is_dir():
        return None
    for record in retention_records(hot, keys.hmac_key, public_key=keys.public_key):
        if record.payload.get("plan_id") == plan_id:
            return record.sequence
    return None


def _trader_of(hot: Path) -> str:
    for path in trail_files(hot):
        name = parse_hot_file_name(path)
        if name is not None and name.stream_id != RETENTION_STREAM:
            return name.trader_id
    raise AuditConfigError(f"no hot files in {hot} to take a trader id from; pass config=AuditConfig(...)")


def _remove(payload: dict[str, Any], cold: Path, hot: Path | None, keys: TrailKeys) -> None:
    """Remove a plan's partitions and hot files (each confined again), then mark them in the manifests."""
    retired: set[str] = set()
    for partition in payload["partitions"]:
        try:
            directory = partition_path(cold, partition)
        except ValueError:
            continue  # became a link since it was checked: never followed
        retired.update(p.relative_to(cold).as_posix() for p in directory.glob("*.parquet"))
        shutil.rmtree(directory, ignore_errors=True)
        _remove_empty_parents(directory.parent, cold)
    index = HotIndex(hot)
    for removed in payload["hot_files"]:
        try:
            path = index.locate(removed["file"])
        except ValueError:
            continue
        if path is None:
            continue  # removed before an interruption
        for target in (path, seal_path(path), checkpoint_path(path)):
            target.unlink(missing_ok=True)
        fsync_directory(path.parent)
    converter_key = None if keys.signing_key is None else keys.signing_key.public_key()
    for _, entry in manifest_entries(cold):
        if entry_problems(entry, keys.hmac_key, converter_key):
            continue  # never re-authenticate an entry that was not authentic: it keeps failing verification
        outputs = [o for o in entry.get("outputs", []) if isinstance(o, dict)]
        gone = [o for o in outputs if o.get("path") in retired or _in_partitions(o.get("path"), payload["partitions"])]
        hot_gone = any(h["file"] == entry.get("source") for h in payload["hot_files"])
        if not gone and not hot_gone:
            continue
        entry["outputs"] = [o for o in outputs if o not in gone]
        entry["retired"] = [*entry.get("retired", []), *({**o, "plan_id": payload["plan_id"]} for o in gone)]
        if hot_gone:
            entry["hot_removed_by"] = payload["plan_id"]
        write_entry(cold, entry, keys.hmac_key, keys.signing_key)


def _in_partitions(output: object, partitions: list[str]) -> bool:
    return isinstance(output, str) and any(output.startswith(partition + "/") for partition in partitions)


def _remove_empty_parents(directory: Path, root: Path) -> None:
    while directory != root and directory.exists() and not any(directory.iterdir()):
        directory.rmdir()
        directory = directory.parent
