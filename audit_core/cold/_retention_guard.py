"""What retention trusts: the keys a trail needs, authenticated journals, paths confined to the trail.

Files on disk must not steer a purge (``retention.py``). Three checks, all made before anything
is touched:

- **Keys** (``check_trail_keys``): a keyed or signed trail is refused without its key, so a run
  can neither misjudge its files nor append an unkeyed or unsigned record that breaks the trail.
- **Journals** (``load_journals``): ``cold/_retention/<plan id>.json`` is an authenticated document
  (``documents.py``, checksum field ``journal_checksum``), checked with the trail's HMAC key and,
  for a signed trail, its public key.
- **Confinement** (``confined``, ``partition_path``, ``HotIndex``): every partition is exactly
  ``year=YYYY/month=MM/day=DD`` inside the cold store and every hot file a trail file name inside
  the hot directory, reached through no symbolic link; nothing else is ever removed.
"""

from __future__ import annotations

import functools
import hmac
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from audit_core._layout import checkpoint_path, parse_hot_file_name, seal_path
from audit_core._layout import trail_files as _trail_files
from audit_core.cold.manifest import JOURNAL_DIR, MANIFEST_DIR, read_manifest
from audit_core.config import AuditConfig
from audit_core.errors import AuditConfigError, RetentionJournalError
from audit_core.trust import documents, signing
from audit_core.trust.documents import CONVERTER_SIGNED
from audit_core.trust.record import RecordFields, compute_checksum, split_record
from audit_core.trust.seals import SEAL_CHECKSUM, read_seal
from audit_core.trust.signer import load_signer

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from audit_core.trust.signing import SigningKey

#: A journal is an authenticated document (``documents.py``) of this format and checksum field.
JOURNAL_FORMAT = "ledgerline-retention-journal/1"
JOURNAL_CHECKSUM = "journal_checksum"
#: The fields of a removed hot file, in a journal and in the ``sys.retention`` record.
REMOVED_HOT_FILE_FIELDS = frozenset(
    {"file", "stream", "first_sequence", "last_sequence", "last_hash", "merkle_root", "file_sha256"}
)
_PARTITION = re.compile(r"^year=\d{4}/month=\d{2}/day=\d{2}$")


# --- keys: a keyed or signed trail is never touched without its key -------------------------------


@dataclass(frozen=True)
class TrailKeys:
    hmac_key: bytes | None
    signing_key: SigningKey | None
    public_key: Ed25519PublicKey | None  # seals and journals must be signed by it, when set


def resolve_keys(
    settings: AuditConfig | None, hmac_key: bytes | None, public_key: Ed25519PublicKey | None
) -> TrailKeys:
    """The keys of a run: HMAC key from ``settings`` or ``hmac_key``, signing key from ``settings``."""
    configured = settings.resolve_hmac_key() if settings is not None else None
    if configured is not None and hmac_key is not None and configured != hmac_key:
        raise AuditConfigError("the config's HMAC key and hmac_key differ; give the trail's key once")
    signing_key = None if settings is None else load_signer(settings)
    if signing_key is not None:
        own = signing_key.public_key()
        if public_key is not None and signing.key_id(public_key) != signing.key_id(own):
            raise AuditConfigError(
                f"the signing key (key id {signing.key_id(own)}) is not the public key's pair "
                f"(key id {signing.key_id(public_key)}); retention signs with the trail's own key"
            )
        public_key = public_key or own
    return TrailKeys(configured or hmac_key, signing_key, public_key)


def check_trail_keys(hot: Path | None, cold: Path, keys: TrailKeys, dry_run: bool) -> None:
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
    for path in trail_files(hot):
        if signed is None and checkpoint_path(path).exists():
            signed = f"{checkpoint_path(path).name} exists (a signed seal's checkpoint)"
    if not checks:
        for path in trail_files(hot):
            record = _first_record(path)
            if record is not None:
                checks.append((f"the first record of {path.name}", functools.partial(_record_verifies, record)))
    for path in journal_paths(cold):
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
    for path in trail_files(hot):
        try:
            seal = read_seal(path)
        except (OSError, ValueError):
            continue  # an unreadable seal keeps its file out of any plan; it says nothing about keys
        if seal is not None:
            yield seal_path(path).name, seal
    for name, entry in manifest_entries(cold):
        if isinstance(entry.get("seal"), dict):
            yield f"the seal copy in {MANIFEST_DIR}/{name}", entry["seal"]


def trail_files(hot: Path | None) -> list[Path]:
    """The trail files under ``hot`` (``_layout.trail_files``: anything else is never read or removed)."""
    if hot is None or not hot.is_dir():
        return []
    return _trail_files(hot)[0]


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
class Journal:
    path: Path
    payload: dict[str, Any]  # plan_id, cutoff, partitions, hot_files: what the sys.retention record names
    status: str
    record_sequence: int | None


def journal_paths(cold: Path) -> list[Path]:
    return sorted((cold / JOURNAL_DIR).glob("*.json"))


def load_journals(cold: Path, hot: Path | None, keys: TrailKeys) -> list[Journal]:
    """The unfinished journals, each authenticated and confined; RetentionJournalError for any that is not."""
    directory = cold / JOURNAL_DIR
    if directory.is_symlink():
        raise RetentionJournalError(directory, "the journal directory is a symbolic link")
    journals = []
    for path in journal_paths(cold):
        journal = _load_journal(path, cold, hot, keys)
        if journal is not None:
            journals.append(journal)
    return journals


def _load_journal(path: Path, cold: Path, hot: Path | None, keys: TrailKeys) -> Journal | None:
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
    problems = documents.check_document(
        state, JOURNAL_CHECKSUM, keys.hmac_key, keys.public_key, what="journal", **CONVERTER_SIGNED)
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
            partition_path(cold, partition)
        except ValueError as exc:
            raise RetentionJournalError(path, str(exc)) from None
    index = HotIndex(hot)
    for entry in removed:
        try:
            _check_removed_entry(entry)
            index.locate(entry["file"])
        except ValueError as exc:
            raise RetentionJournalError(path, f"hot file entry {entry!r}: {exc}") from None
    sequence = state.get("record_sequence")
    payload = {key: state.get(key) for key in ("plan_id", "cutoff", "partitions", "hot_files")}
    return Journal(path, payload, status, sequence if isinstance(sequence, int) else None)


def _check_removed_entry(entry: object) -> None:
    """A journal's hot file entry has the fields of ``RemovedHotFile``, and its stream is its file's."""
    if not isinstance(entry, dict) or set(entry) != REMOVED_HOT_FILE_FIELDS:
        raise ValueError(f"expected the fields {sorted(REMOVED_HOT_FILE_FIELDS)}")
    name = parse_hot_file_name(Path(str(entry["file"])))
    if name is not None and entry["stream"] != name.stream_key:
        raise ValueError(f"stream {entry['stream']!r} is not the stream of {entry['file']}")


def authenticated_journal(state: dict[str, Any], keys: TrailKeys) -> dict[str, Any]:
    """``state`` as a journal document: its format, a checksum and (with a signing key) a signature."""
    document = {"format": JOURNAL_FORMAT, **state}
    return documents.authenticate(document, JOURNAL_CHECKSUM, keys.hmac_key, keys.signing_key)


def confined(root: Path, relative: object, what: str) -> Path:
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


def partition_path(cold: Path, partition: object) -> Path:
    """The directory of a day partition named in a plan: exactly ``year=YYYY/month=MM/day=DD``, inside ``cold``."""
    if not isinstance(partition, str) or not _PARTITION.match(partition):
        raise ValueError(f"partition {partition!r} is not a day partition (year=YYYY/month=MM/day=DD)")
    return confined(cold, partition, "partition")


class HotIndex:
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
            for path in trail_files(self.hot):
                self._by_name.setdefault(path.name, []).append(path)
        found = self._by_name.get(name, [])
        if len(found) > 1:
            raise ValueError(f"{name} is under {self.hot} {len(found)} times: {[str(p) for p in found]}")
        if not found:
            return None
        return confined(self.hot, str(found[0].relative_to(self.hot)), "hot file")


def manifest_entries(cold: Path) -> Iterable[tuple[str, dict[str, Any]]]:
    """(file name, entry) of every readable manifest that is not a symbolic link; others are skipped."""
    for path in sorted((cold / MANIFEST_DIR).glob("*.json")):
        if path.is_symlink():
            continue
        try:
            entry = read_manifest(path)
        except (OSError, ValueError):  # AuditFormatError included: its hot file counts as unconverted, kept
            continue
        yield path.name, entry
