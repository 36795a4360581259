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

Files on disk cannot steer it. Before anything is touched: ``days`` is checked; a trail whose
seals or records show an HMAC key (they do not verify as plain SHA-256) or a signature (a seal
carries one, or a checkpoint exists) is refused without that key; and every journal must
authenticate and name only day partitions inside the cold store and trail files inside the hot
directory, with no symbolic link on the way, or ``RetentionJournalError`` names it and nothing is
removed. A journal left by a crash is replayed only for what the current policy (window, holds,
verification) would remove too; one whose record never reached the trail removed nothing and is
abandoned. ``integrity.verify`` accepts a stream whose first remaining record continues the last
hash a verified ``sys.retention`` record names, and ``converter.verify_cold`` skips outputs
marked retired.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import json
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from audit_core import documents, signing
from audit_core._layout import RETENTION_STREAM as RETENTION_STREAM  # its files are never purged
from audit_core._layout import checkpoint_path, parse_hot_file_name, seal_path
from audit_core.config import AuditConfig
from audit_core.converter import MANIFEST_DIR
from audit_core.converter import write_json_atomically as _write_json
from audit_core.emitter import AuditEventEmitter
from audit_core.errors import AuditConfigError, RetentionJournalError
from audit_core.events import AuditEventType
from audit_core.integrity import (
    SEAL_CHECKSUM,
    RecordFields,
    compute_checksum,
    fsync_directory,
    hot_files,
    read_seal,
    retention_records,
    split_record,
    verify,
)
from audit_core.manifest import converted_entry

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

JOURNAL_DIR = "_retention"
HOLDS_FILE = "_legal_holds.json"
#: A journal is an authenticated document (``documents.py``) of this format and checksum field.
JOURNAL_FORMAT = "ledgerline-retention-journal/1"
JOURNAL_CHECKSUM = "journal_checksum"
#: The largest window: 100 years, as ``AuditConfig.retention_days``.
MAX_RETENTION_DAYS = 36500
_PARTITION = re.compile(r"^year=\d{4}/month=\d{2}/day=\d{2}$")


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
        AuditConfigError: The file is not valid JSON or an entry lacks a valid date; names the entry.
    """
    path = Path(cold_path) / HOLDS_FILE
    if not path.exists():
        return []
    try:
        entries = json.loads(path.read_bytes())
    except json.JSONDecodeError as exc:
        raise AuditConfigError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(entries, list):
        raise AuditConfigError(f"{path}: expected a list of holds, got {type(entries).__name__}")
    holds = []
    for index, entry in enumerate(entries):
        try:
            holds.append(LegalHold(
                dt.date.fromisoformat(entry["start"]), dt.date.fromisoformat(entry["end"]), str(entry.get("reason", ""))
            ))
        except (KeyError, TypeError, ValueError) as exc:
            raise AuditConfigError(
                f"{path}: hold #{index} {entry!r} needs ISO dates 'start' and 'end' ({exc})"
            ) from exc
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
    keys = _keys(settings, hmac_key, public_key)
    _check_trail_keys(hot, cold, keys, dry_run)
    journals = _load_journals(cold, hot, keys)
    all_holds = [*load_holds(cold), *holds] if cutoff is not None else []
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


# --- keys: a keyed or signed trail is never touched without its key -------------------------------


@dataclass(frozen=True)
class _Keys:
    hmac_key: bytes | None
    signing_key: Ed25519PrivateKey | None
    public_key: Ed25519PublicKey | None  # seals and journals must be signed by it, when set


def _keys(settings: AuditConfig | None, hmac_key: bytes | None, public_key: Ed25519PublicKey | None) -> _Keys:
    configured = settings.resolve_hmac_key() if settings is not None else None
    if configured is not None and hmac_key is not None and configured != hmac_key:
        raise AuditConfigError("the config's HMAC key and hmac_key differ; give the trail's key once")
    signing_key = None
    if settings is not None and (settings.signing_key_path is not None or settings.signing_key_env is not None):
        signing_key = signing.load_private_key(settings.signing_key_path, env_var=settings.signing_key_env)
        own = signing_key.public_key()
        if public_key is not None and signing.key_id(public_key) != signing.key_id(own):
            raise AuditConfigError(
                f"the signing key (key id {signing.key_id(own)}) is not the public key's pair "
                f"(key id {signing.key_id(public_key)}); retention signs with the trail's own key"
            )
        public_key = public_key or own
    return _Keys(configured or hmac_key, signing_key, public_key)


def _check_trail_keys(hot: Path | None, cold: Path, keys: _Keys, dry_run: bool) -> None:
    """Refuse (AuditConfigError) a keyed or signed trail without its key, before anything is touched.

    Keyed: a seal (in the hot directory, or its copy in a manifest) has a ``seal_checksum`` that is
    not the plain SHA-256 of its contents (with no seal anywhere: a hot file's first record has a
    checksum that is not). An edited seal of an unkeyed trail looks the same and is refused too.
    With a key, at least one of them must verify with it (else: a wrong key, or an unkeyed trail).
    Signed: a seal carries a ``signature``, a seal has a checkpoint, or a journal is signed; the
    signing key is then needed (journals and the retention stream's seals are signed), or for a
    dry run at least the public key.
    """
    checks: list[tuple[str, Callable[[bytes | None], bool]]] = []
    signed: str | None = None
    for where, seal in _seals(hot, cold):
        checks.append((where, functools.partial(_seal_verifies, seal)))
        if signed is None and "signature" in seal:
            signed = f"{where} carries an Ed25519 signature"
    for path in _trail_files(hot):
        if signed is None and checkpoint_path(path).exists():
            signed = f"{checkpoint_path(path).name} exists (a signed seal's checkpoint)"
    if not checks:
        for path in _trail_files(hot):
            record = _first_record(path)
            if record is not None:
                checks.append((f"the first record of {path.name}", functools.partial(_record_verifies, record)))
    for path in _journal_paths(cold):
        if signed is None and _signed_document(path):
            signed = f"retention journal {path.name} is signed"
    keyed = next((where for where, verifies in checks if not verifies(None)), None)
    if keys.hmac_key is None and keyed is not None:
        raise AuditConfigError(
            f"{keyed} does not verify as plain SHA-256: the trail is HMAC-keyed (or edited). Retention "
            "needs the trail's HMAC key (hmac_key=, AuditConfig hmac_key/hmac_key_env, --hmac-key-env) "
            "and touched nothing"
        )
    if keys.hmac_key is not None and checks and not any(verifies(keys.hmac_key) for _, verifies in checks):
        raise AuditConfigError(
            f"the HMAC key given verifies none of the trail's {len(checks)} seal(s) and first record(s) "
            f"(first: {checks[0][0]}): a wrong key, or a trail written without one; retention touched nothing"
        )
    if signed is not None and keys.signing_key is None and not (dry_run and keys.public_key is not None):
        raise AuditConfigError(
            f"the trail is signed ({signed}): retention signs its journals and its record's seal, so it "
            "needs the trail's signing key (AuditConfig signing_key_path/signing_key_env, --signing-key) "
            "and touched nothing"
        )


def _seal_verifies(seal: dict[str, Any], hmac_key: bytes | None) -> bool:
    return not documents.check_document(seal, SEAL_CHECKSUM, hmac_key)


def _record_verifies(record: RecordFields, hmac_key: bytes | None) -> bool:
    return hmac.compare_digest(compute_checksum(record.body, hmac_key), record.checksum)


def _seals(hot: Path | None, cold: Path) -> Iterable[tuple[str, dict[str, Any]]]:
    for path in _trail_files(hot):
        try:
            seal = read_seal(path)
        except (OSError, ValueError):
            continue  # an unreadable seal keeps its file out of any plan; it says nothing about keys
        if seal is not None:
            yield seal_path(path).name, seal
    for name, entry in _manifest_entries(cold):
        if isinstance(entry.get("seal"), dict):
            yield f"the seal copy in {MANIFEST_DIR}/{name}", entry["seal"]


def _trail_files(hot: Path | None) -> list[Path]:
    """The files under ``hot`` named like trail files (anything else is never read or removed)."""
    if hot is None or not hot.is_dir():
        return []
    return [path for path in hot_files(hot) if parse_hot_file_name(path) is not None]


def _first_record(path: Path) -> RecordFields | None:
    try:
        with path.open("rb") as handle:
            return split_record(handle.readline())
    except (OSError, ValueError):
        return None


def _signed_document(path: Path) -> bool:
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(document, dict) and documents.SIGNATURE_FIELD in document


# --- journals: authenticated, confined ------------------------------------------------------------


@dataclass
class _Journal:
    path: Path
    payload: dict[str, Any]  # plan_id, cutoff, partitions, hot_files: what the sys.retention record names
    status: str
    record_sequence: int | None


def _journal_paths(cold: Path) -> list[Path]:
    return sorted((cold / JOURNAL_DIR).glob("*.json"))


def _load_journals(cold: Path, hot: Path | None, keys: _Keys) -> list[_Journal]:
    """The unfinished journals, each authenticated and confined; RetentionJournalError for any that is not."""
    directory = cold / JOURNAL_DIR
    if directory.is_symlink():
        raise RetentionJournalError(directory, "the journal directory is a symbolic link")
    journals = []
    for path in _journal_paths(cold):
        journal = _load_journal(path, cold, hot, keys)
        if journal is not None:
            journals.append(journal)
    return journals


def _load_journal(path: Path, cold: Path, hot: Path | None, keys: _Keys) -> _Journal | None:
    if path.is_symlink():
        raise RetentionJournalError(path, "is a symbolic link")
    try:
        state = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as exc:
        raise RetentionJournalError(path, f"is not readable JSON ({exc})") from None
    if not isinstance(state, dict):
        raise RetentionJournalError(path, f"expected a JSON object, got {type(state).__name__}")
    if state.get("status") == "done" and JOURNAL_CHECKSUM not in state and "format" not in state:
        return None  # finished before journals were authenticated: it steers nothing
    problems = documents.check_document(state, JOURNAL_CHECKSUM, keys.hmac_key, keys.public_key, what="journal")
    if problems:
        raise RetentionJournalError(path, "; ".join(map(str, problems)))
    if state.get("format") != JOURNAL_FORMAT:
        raise RetentionJournalError(path, f"format: expected {JOURNAL_FORMAT!r}, got {state.get('format')!r}")
    if state.get("plan_id") != path.stem:
        raise RetentionJournalError(path, f"names plan {state.get('plan_id')!r}, but is the journal of {path.stem!r}")
    status = state.get("status")
    if status in ("done", "abandoned"):
        return None
    if status not in ("planned", "recorded"):
        raise RetentionJournalError(path, f"status {status!r}: expected planned, recorded, done or abandoned")
    partitions, removed = state.get("partitions"), state.get("hot_files")
    if not isinstance(partitions, list) or not isinstance(removed, list):
        raise RetentionJournalError(path, "partitions and hot_files must be lists")
    for partition in partitions:
        try:
            _partition_path(cold, partition)
        except ValueError as exc:
            raise RetentionJournalError(path, str(exc)) from None
    index = _HotIndex(hot)
    for entry in removed:
        try:
            RemovedHotFile(**entry)
            index.locate(entry["file"])
        except (TypeError, ValueError) as exc:
            raise RetentionJournalError(path, f"hot file entry {entry!r}: {exc}") from None
    sequence = state.get("record_sequence")
    payload = {key: state.get(key) for key in ("plan_id", "cutoff", "partitions", "hot_files")}
    return _Journal(path, payload, status, sequence if isinstance(sequence, int) else None)


def _write_journal(path: Path, state: dict[str, Any], keys: _Keys) -> None:
    document = {"format": JOURNAL_FORMAT, **state}
    _write_json(path, documents.authenticate(document, JOURNAL_CHECKSUM, keys.hmac_key, keys.signing_key))


def _confined(root: Path, relative: object, what: str) -> Path:
    """``root / relative`` if that stays inside ``root`` without passing a symbolic link; else ValueError."""
    if not isinstance(relative, str) or not relative or "\x00" in relative:
        raise ValueError(f"{what} {relative!r} is not a path")
    parts = PurePosixPath(relative).parts
    if PurePosixPath(relative).is_absolute() or ".." in parts:
        raise ValueError(f"{what} {relative!r} is not a relative path inside {root} (absolute, or with '..')")
    target = root
    for part in parts:
        target = target / part
        if target.is_symlink():
            raise ValueError(f"{what} {relative!r}: {target} is a symbolic link, and retention never follows one")
    if not target.resolve().is_relative_to(root.resolve()):
        raise ValueError(f"{what} {relative!r} resolves to {target.resolve()}, outside {root.resolve()}")
    return target


def _partition_path(cold: Path, partition: object) -> Path:
    """The directory of a day partition named in a plan: exactly ``year=YYYY/month=MM/day=DD``, inside ``cold``."""
    if not isinstance(partition, str) or not _PARTITION.match(partition):
        raise ValueError(f"partition {partition!r} is not a day partition (year=YYYY/month=MM/day=DD)")
    return _confined(cold, partition, "partition")


class _HotIndex:
    """Trail files under the hot directory by name; ``locate`` finds one safely or says why not."""

    def __init__(self, hot: Path | None) -> None:
        self.hot = hot
        self._by_name: dict[str, list[Path]] | None = None

    def locate(self, name: object) -> Path | None:
        """The file called ``name`` under the hot directory, or None when it is not there (any more).

        Raises:
            ValueError: ``name`` is not a trail file name, is there twice, or is reached through a link.
        """
        if not isinstance(name, str) or PurePosixPath(name).name != name or parse_hot_file_name(Path(name)) is None:
            raise ValueError(f"{name!r} is not a trail file name (audit.<trader>.<stream>.<day>.<segment>.jsonl)")
        if self.hot is None or not self.hot.is_dir():
            return None
        if self._by_name is None:
            self._by_name = {}
            for path in _trail_files(self.hot):
                self._by_name.setdefault(path.name, []).append(path)
        found = self._by_name.get(name, [])
        if len(found) > 1:
            raise ValueError(f"{name} is under {self.hot} {len(found)} times: {[str(p) for p in found]}")
        if not found:
            return None
        return _confined(self.hot, str(found[0].relative_to(self.hot)), "hot file")


# --- planning -----------------------------------------------------------------------------------


def _plan(hot: Path | None, cold: Path, cutoff: dt.date, holds: list[LegalHold], keys: _Keys) -> RetentionPlan:
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
            _partition_path(cold, relative)
        except ValueError as exc:
            plan.kept.append((relative, f"refused: {exc}"))
            continue
        if hold is not None:
            plan.kept.append((relative, f"legal hold {hold.start}..{hold.end}: {hold.reason}"))
        else:
            plan.partitions.append(relative)
    if hot is not None and hot.is_dir():
        index = _HotIndex(hot)
        for path in _trail_files(hot):
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
    keys: _Keys,
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


def _manifest_entries(cold: Path) -> Iterable[tuple[str, dict[str, Any]]]:
    """(file name, entry) of every readable manifest that is not a symbolic link; others are skipped."""
    for path in sorted((cold / MANIFEST_DIR).glob("*.json")):
        try:
            entry = None if path.is_symlink() else json.loads(path.read_bytes())
        except (OSError, ValueError, RecursionError):
            entry = None  # its hot file counts as unconverted: kept
        if isinstance(entry, dict):
            yield path.name, entry


# --- carrying out ---------------------------------------------------------------------------------


def _carry_out(
    plan: RetentionPlan,
    cold: Path,
    hot: Path | None,
    emitter: AuditEventEmitter | None,
    config: AuditConfig | None,
    keys: _Keys,
) -> None:
    journal = cold / JOURNAL_DIR / f"{plan.plan_id}.json"
    _write_journal(journal, {**plan.payload(), "status": "planned"}, keys)
    plan.record_sequence = _record(plan.payload(), hot, emitter, config, keys)
    _write_journal(journal, {**plan.payload(), "status": "recorded", "record_sequence": plan.record_sequence}, keys)
    _remove(plan.payload(), cold, hot)
    _write_journal(journal, {**plan.payload(), "status": "done", "record_sequence": plan.record_sequence}, keys)


def _finish_interrupted(
    journals: list[_Journal], cold: Path, hot: Path | None, keys: _Keys, current: RetentionPlan | None
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
        _remove(allowed, cold, hot)
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
    index = _HotIndex(hot)
    allowed: dict[str, Any] = {**payload, "partitions": [], "hot_files": []}
    kept: list[tuple[str, str]] = []
    for partition in payload["partitions"]:
        if partition in partitions or not _partition_path(cold, partition).exists():
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
    keys: _Keys,
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


def _recorded(plan_id: str, hot: Path | None, keys: _Keys) -> int | None:
    """The sequence of the plan's ``sys.retention`` record, if a verified one is in the trail."""
    if hot is None or not hot.is_dir():
        return None
    for record in retention_records(hot, keys.hmac_key, public_key=keys.public_key):
        if record.payload.get("plan_id") == plan_id:
            return record.sequence
    return None


def _trader_of(hot: Path) -> str:
    for path in _trail_files(hot):
        name = parse_hot_file_name(path)
        if name is not None and name.stream_id != RETENTION_STREAM:
            return name.trader_id
    raise AuditConfigError(f"no hot files in {hot} to take a trader id from; pass config=AuditConfig(...)")


def _remove(payload: dict[str, Any], cold: Path, hot: Path | None) -> None:
    """Remove a plan's partitions and hot files (each confined again), then mark them in the manifests."""
    retired: set[str] = set()
    for partition in payload["partitions"]:
        try:
            directory = _partition_path(cold, partition)
        except ValueError:
            continue  # became a link since it was checked: never followed
        retired.update(p.relative_to(cold).as_posix() for p in directory.glob("*.parquet"))
        shutil.rmtree(directory, ignore_errors=True)
        _remove_empty_parents(directory.parent, cold)
    index = _HotIndex(hot)
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
    for name, entry in _manifest_entries(cold):
        outputs = [o for o in entry.get("outputs", []) if isinstance(o, dict)]
        gone = [o for o in outputs if o.get("path") in retired or _in_partitions(o.get("path"), payload["partitions"])]
        hot_gone = any(h["file"] == entry.get("source") for h in payload["hot_files"])
        if not gone and not hot_gone:
            continue
        entry["outputs"] = [o for o in outputs if o not in gone]
        entry["retired"] = [*entry.get("retired", []), *({**o, "plan_id": payload["plan_id"]} for o in gone)]
        if hot_gone:
            entry["hot_removed_by"] = payload["plan_id"]
        _write_json(cold / MANIFEST_DIR / name, entry)


def _in_partitions(output: object, partitions: list[str]) -> bool:
    return isinstance(output, str) and any(output.startswith(partition + "/") for partition in partitions)


def _remove_empty_parents(directory: Path, root: Path) -> None:
    while directory != root and directory.exists() and not any(directory.iterdir()):
        directory.rmdir()
        directory = directory.parent
