"""One verification of a whole trail: every hot chain and seal, every cold store, one report.

``verify_trail`` is what ``ledgerline verify``, ``workbench.AuditQuery.verify_checksums`` and the
workbench's integrity findings all call, so that what "the trail verifies" means is decided in one
place. The hot side is ``hot.verifier.verify``; each cold store is ``cold_verify.verify_cold``
(pyarrow and DuckDB, imported only when a cold store is there).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit_core._layout import hot_directory, hot_files, trail_files
from audit_core.cold.manifest import MANIFEST_DIR, ROOT_FILE, read_manifest, seal_copy_differences
from audit_core.errors import AuditError
from audit_core.hot.anchors import check_checkpoints, group_stream_files, prove_consistency
from audit_core.hot.verifier import retention_records, verify
from audit_core.trust.jobs import check_jobs
from audit_core.trust.key_history import read_key_history
from audit_core.trust.report import FailureKind, VerificationFailure, VerificationReport
from audit_core.trust.seals import read_seal
from audit_core.trust.stream_tree import StreamCheckpoint, read_note
from audit_core.trust.witness import DirectoryWitness, read_note_file

if TYPE_CHECKING:
    from collections.abc import Callable

    from audit_core.trust.keyring import TrustedKeys, VerifyingKeys

_PARTITION = re.compile(r"^year=\d+/month=\d+/day=\d+$")


def cold_stores(root: Path | str) -> list[Path]:
    """Cold stores at or under ``root``: directories holding day partitions of Parquet, a ``_manifest`` or a root.

    A store whose ``_manifest/`` was deleted is still found (by its Parquet files or its root) and
    fails verification; it is never skipped.
    """
    root = Path(root)
    if root.is_file() or not root.exists():
        return []
    found = {manifest.parent for manifest in root.rglob(MANIFEST_DIR) if manifest.is_dir()}
    found |= {path.parent for path in root.rglob(ROOT_FILE) if path.is_file()}
    found |= {path.parents[3] for path in root.rglob("*.parquet") if _PARTITION.match("/".join(path.parts[-4:-1]))}
    return sorted(found)


@dataclass
class TrailReport(VerificationReport):
    """A ``VerificationReport`` over hot and cold together, keeping each part's own report.

    ``parts`` is ``[(label, report)]``: ``"hot <path>"`` for the hot files, ``"cold <path>"`` for each
    cold store. The totals and ``failures`` are the parts' together, so ``ok`` is true only when
    every part verified.
    """

    parts: list[tuple[str, VerificationReport]] = field(default_factory=list)

    def add(self, label: str, part: VerificationReport) -> None:
        self.parts.append((label, part))
        self.files += part.files
        self.records += part.records
        self.failures += part.failures
        self.recovered += part.recovered
        self.retired += part.retired
        self.streams.update(part.streams)
        self.sealed_files += part.sealed_files
        self.vouched += part.vouched
        self.signing_key_id = self.signing_key_id or part.signing_key_id

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "parts": [{"part": label, **part.to_dict()} for label, part in self.parts]}

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> TrailReport:
        """The report whose ``to_dict()`` is ``document`` (part by part, as ``verify_trail`` builds it)."""
        report = cls(keyed=bool(document["keyed"]))
        for part in document["parts"]:
            report.add(str(part["part"]), VerificationReport.from_dict(
                {key: value for key, value in part.items() if key != "part"}))
        if report.to_dict() != document:
            raise ValueError("the document does not rebuild to the same report")
        return report


def verify_trail(
    path: Path | str,
    hmac_key: bytes | None = None,
    public_key: VerifyingKeys | None = None,
    *,
    cold_public_key: VerifyingKeys | None = None,
    trusted_keys: TrustedKeys | None = None,
    allow_empty: bool = False,
    witness: Path | str | None = None,
    checkpoint: Path | str | None = None,
    progress: Callable[[str], None] | None = None,
    jobs: int | None = None,
    deep: bool = False,
) -> TrailReport:
    """Verify everything under ``path``: hot files as chains with their seals, and every cold store.

    Args:
        path: A trail's root (its ``hot/`` and ``cold/``), any directory above trails, a hot
            directory, a cold store, or one hot file.
        hmac_key: The trail's HMAC key, if it is keyed.
        public_key: The key seals were signed with; every seal and seal copy must then be signed.
        cold_public_key: The key manifests and the cold root were signed with, when the converter
            has a key of its own (default: ``public_key``).
        trusted_keys: The auditor's trusted-keys file (``TrustedKeys.load``, docs/format.md section 6),
            instead of ``public_key``/``cold_public_key``: seals, stream checkpoints and witness notes
            must be signed by a ``writer`` key, manifests, the root and retention journals by a
            ``converter`` key, each inside its window (``key_untrusted``/``key_outside_window``
            otherwise); key-rotation records must be endorsed by the key they replace.
        allow_empty: Whether a path with nothing to verify (no trail file, no cold store) passes.
            By default it fails (``nothing_verified``), as does a path that does not exist: a
            trail deleted whole must not verify as "OK: 0 files".
        witness: A ``DirectoryWitness`` directory. Every stream checkpoint it holds must be covered
            by the trail: fewer lines (truncation, a rolled-back file), other lines, or a stream with no
            file left and no verified retention record is a failure. Notes are checked with
            ``public_key`` (Ed25519) or ``hmac_key`` (HMAC line) when given.
        checkpoint: One stream checkpoint note file, checked the same way.
        progress: Called with the label of each part (``"hot <path>"``, ``"cold <store>"``) before
            it is verified, and with ``"done"`` at the end: ``ledgerline verify`` shows it on a terminal.
        jobs: Worker processes for the hot files and the cold entries (default: all cores; small
            trails are verified in this process). The report is the same whatever the number.
        deep: Recompute the Merkle root and SHA-256 of every sealed hot file, also where an
            authenticated seal vouches for them (``verify``'s ``deep``; ``report.vouched`` lists those
            taken from their seal otherwise).

    Returns:
        One report (``parts`` keeps the hot and each cold report); it never raises for tampering.

    Raises:
        ValueError: ``jobs`` is not a positive whole number.
    """
    check_jobs(jobs)
    if trusted_keys is not None:
        if public_key is not None or cold_public_key is not None:
            raise ValueError("verify_trail: give trusted_keys or public_key/cold_public_key, not both")
        public_key = cold_public_key = trusted_keys
    root = Path(path)
    report = TrailReport(keyed=hmac_key is not None)
    if not root.exists():
        report.add(f"trail {root}", _nothing_verified(root, "no such file or directory", hmac_key))
        return report
    stores = cold_stores(root)
    tell = progress or (lambda _: None)
    key_files: list[Path] | None = None  # the hot files holding key records, found by the hot pass
    if not stores or root.is_file() or any(root.rglob("*.jsonl")):
        tell(f"hot {root}")
        key_files = []
        report.add(f"hot {root}", verify(root, hmac_key=hmac_key, public_key=public_key, jobs=jobs,
                                         key_record_files=key_files, deep=deep))
    hot = {file.name: file for file in hot_files(root)} if root.is_dir() else {}
    for store in stores:
        from audit_core.cold.cold_verify import verify_cold

        tell(f"cold {store}")
        part = verify_cold(store, hmac_key=hmac_key, public_key=public_key, cold_public_key=cold_public_key,
                           jobs=jobs)
        part.failures += _seal_copies_against_hot_files(store, hot)
        report.add(f"cold {store}", part)
    if root.is_file() or any(root.rglob("*.jsonl")):
        keys = verify_key_history(root, key_files)
        if keys.key_history:
            report.add(f"keys {root}", keys)
    if witness is not None or checkpoint is not None:
        tell(f"anchors {witness or checkpoint}")
        report.add(f"anchors {witness or checkpoint}",
                   verify_anchors(root, witness, checkpoint, hmac_key=hmac_key, public_key=public_key))
    if not report.files and not report.records and not allow_empty:
        nothing = _nothing_verified(root, "no trail file and no cold store in it", hmac_key)
        if report.parts:  # the (empty) hot part says it failed, and why
            report.parts[0][1].failures += nothing.failures
            report.failures += nothing.failures
        else:
            report.add(f"trail {root}", nothing)
    tell("done")
    return report


def verify_anchors(
    root: Path,
    witness: Path | str | None,
    checkpoint: Path | str | None,
    *,
    hmac_key: bytes | None = None,
    public_key: VerifyingKeys | None = None,
) -> VerificationReport:
    """The trail under ``root`` against the checkpoints a witness directory holds (and/or one note file).

    A damaged or unauthentic note is an ``unreadable_file`` failure; a witness that holds nothing
    is ``nothing_verified`` (it anchors nothing).
    """
    part = VerificationReport(keyed=hmac_key is not None)
    notes: list[tuple[str, StreamCheckpoint | Exception]] = []
    if witness is not None:
        held = DirectoryWitness(witness, public_key=public_key, hmac_key=hmac_key).checkpoints()
        notes += [(str(path), found) for path, found in held]
        if not held:
            part.failures.append(VerificationFailure(
                str(witness), 0, None, FailureKind.NOTHING_VERIFIED,
                "the witness holds no stream checkpoint: nothing is anchored (wrong directory, or it was emptied)"))
    if checkpoint is not None:
        try:
            text = read_note_file(Path(checkpoint))
            assert text is not None
            notes.append((str(checkpoint), read_note(text, str(checkpoint), public_key=public_key, hmac_key=hmac_key)))
        except (OSError, AuditError) as exc:
            notes.append((str(checkpoint), exc))
    files = [] if not root.exists() else trail_files(root)[0]
    hot_dir = hot_directory(root)
    try:
        retention = retention_records(root, hmac_key, public_key=public_key) if root.exists() else []
    except (OSError, AuditError):
        retention = []  # the hot part reports why the retention stream does not verify
    failures, checked = check_checkpoints(hot_dir, notes, group_stream_files(files), retention)
    part.failures += failures
    part.files += [source for source, found in notes if not isinstance(found, Exception)][:checked]
    return part


def verify_key_history(root: Path | str, key_files: list[Path] | None = None) -> VerificationReport:
    """The key rotations and revocations of the trail under ``root``, each rotation's endorsement checked.

    Each rotation must be endorsed by the key it names as the old key, and follow the stream's
    previous rotation (``trust.key_history``); otherwise ``key_rotation_invalid``. The history is
    evidence for the auditor's trusted-keys file (``draft_trusted_keys``), never trust by itself.
    ``key_files``: the trail files holding key records, as ``verify`` found them (``key_record_files``);
    only those are read, in trail order. None: every trail file is searched.
    """
    files = trail_files(root)[0]
    if key_files is not None:
        holding = set(key_files)
        files = [path for path in files if path in holding]
    history = read_key_history(files)
    part = VerificationReport()
    part.key_history = history.lines()
    part.failures += [VerificationFailure(str(event.file), 0, event.sequence, FailureKind.KEY_ROTATION_INVALID,
                                          event.describe()) for event in history.problems]
    return part


def consistency_proof(
    old: Path | str,
    new: Path | str,
    trail: Path | str,
    *,
    hmac_key: bytes | None = None,
    public_key: VerifyingKeys | None = None,
) -> dict[str, object]:
    """Show that checkpoint file ``new`` extends checkpoint file ``old`` (the log only grew): a checked proof.

    Both notes are authenticated with ``public_key`` / ``hmac_key`` when given; the proof is built
    from ``trail`` (its files and tree sidecar) and verified against both roots (RFC 9162 section 2.1.4).

    Raises:
        AuditFormatError: a note file is not a stream checkpoint.
        AuditIntegrityError: a note does not verify, or the proof does not hold.
        OSError: a file cannot be read.
    """
    notes = []
    for path in (Path(old), Path(new)):
        text = read_note_file(path)
        assert text is not None
        notes.append(read_note(text, str(path), public_key=public_key, hmac_key=hmac_key))
    root = Path(trail)
    key = f"{notes[1].trader_id}.{notes[1].stream_id}"
    files = group_stream_files(trail_files(root)[0]).get(key, []) if root.exists() else []
    return prove_consistency(notes[0], notes[1], hot_directory(root), files)


def _nothing_verified(root: Path, why: str, hmac_key: bytes | None) -> VerificationReport:
    part = VerificationReport(keyed=hmac_key is not None)
    part.failures.append(VerificationFailure(
        str(root), 0, None, FailureKind.NOTHING_VERIFIED,
        f"{why}: nothing was verified (a trail deleted whole looks like this; if an empty trail is expected, "
        "pass allow_empty=True / --allow-empty)"))
    return part



def _seal_copies_against_hot_files(store: Path, hot: dict[str, Path]) -> list[VerificationFailure]:
    """Each manifest's seal copy against the seal of its source, while that hot file is still there.

    Without a key, someone who recomputes every hash can make a cold store agree with itself (rows,
    seal copy, entry, root); the hot file's own seal, verified with the hot chain, still tells.
    """
    failures = []
    for path in sorted((store / MANIFEST_DIR).glob("*.json")):
        try:
            entry = read_manifest(path)
            source = hot.get(str(entry["source"]))
            seal = read_seal(source) if source is not None else None
        except (OSError, ValueError):
            continue  # unreadable entries and seals are verify_cold's and verify's failures already
        if source is None or seal is None:
            continue
        copy = entry["seal"]
        differ = seal_copy_differences(copy, seal)
        if differ:
            failures.append(VerificationFailure(
                str(path), 0, None, FailureKind.SEAL_MISMATCH,
                f"the manifest's copy of {source.name}'s seal differs from the seal the hot file has "
                f"({', '.join(f'{key}: {copy.get(key)!r:.40} vs {seal.get(key)!r:.40}' for key in differ[:3])})"))
    return failures
