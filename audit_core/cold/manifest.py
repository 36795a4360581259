"""The cold store's own evidence: authenticated manifest entries and the signed cold root.

A **manifest entry** (``cold/_manifest/<hot file>.json``) says that one sealed hot file became
these Parquet files. It is an authenticated document (``documents.py``, checksum field
``manifest_checksum``: HMAC-SHA256 with the trail's key; Ed25519 ``signature`` when the converter
has a signing key)::

    {"format": "ledgerline-manifest/1", "source": <hot file name>, "stream": <trader_id.stream_id>,
     "projection_version": 2, "engine": "duckdb <version>", "seal": <the hot file's seal, as it was>,
     "outputs": [{"path": "year=YYYY/month=MM/day=DD/<stem>.parquet", "rows": n, "bytes": n,
                  "sha256": <hex of the file>, "first_sequence": n, "last_sequence": n,
                  "first_hash": <checksum of first_sequence>, "last_hash": <checksum of last_sequence>,
                  "parameters": [[<owner>, <param_name>, <ts_event of its last change in the file>], ...],
                  "ids": {"bits": m, "hashes": k, "filter": <base64>} | null}],
     "retired": [<an output retention removed, plus "plan_id">],   # after retention only
     "hot_removed_by": <plan id>,                                  # after retention only
     "signature": {...}, "manifest_checksum": <hex>}

``parameters`` (written since the workbench's ``state_at`` uses it; absent in older entries) lists
each parameter changed in the file, ordered (``_parquet.parameter_index_sql``); ``verify_cold``
derives it again from the file's rows and reports a difference. ``ids`` (written since the
workbench's ``trade_lifecycle`` uses it; absent in older entries, null for a file with too many ids)
is a Bloom filter over the file's ``order_id`` and ``correlation_id`` values (``_id_filter.py``),
derived again and compared by ``verify_cold`` the same way.

The **cold root** (``cold/_root.json``) commits to the whole store, like a transparency log's
checkpoint: every manifest entry and every Parquet file with its SHA-256, the legal holds file and
the retention journals (and, as ``projection_version``, the oldest projection version its entries
use). It is an authenticated document too (``root_checksum``)::

    {"format": "ledgerline-cold-root/1", "projection_version": 1, "updated_at_ns": n,
     "manifests": [{"path": "_manifest/<hot file>.json", "source": ..., "sha256": <hex of the file>}],
     "parquet": [{"path": ..., "rows": n, "sha256": <hex>}],
     "legal_holds_sha256": <hex of _legal_holds.json> | "none",
     "retention_journals": [{"path": "_retention/<plan id>.json", "sha256": <hex>}],
     "signature": {...}, "root_checksum": <hex>}

``update_cold_root`` rewrites it (atomically) after every change: the converter after each
conversion, retention after each purge. ``converted_entry`` is the one answer to "is this hot file
converted?" for the converter, the workbench and retention.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit_core import _jsonfile
from audit_core.cold.projection import PROJECTION_VERSION
from audit_core.errors import AuditFormatError, AuditIntegrityError
from audit_core.trust import documents
from audit_core.trust.documents import CONVERTER_SIGNED
from audit_core.trust.seals import check_seal_format, fsync_directory, read_seal

if TYPE_CHECKING:
    from audit_core.trust.keyring import VerifyingKeys
    from audit_core.trust.signing import SigningKey

MANIFEST_DIR = "_manifest"
MANIFEST_FORMAT = "ledgerline-manifest/1"
MANIFEST_CHECKSUM = "manifest_checksum"
ROOT_FILE = "_root.json"
ROOT_FORMAT = "ledgerline-cold-root/1"
ROOT_CHECKSUM = "root_checksum"
#: The legal holds file and the retention journals' directory, in the store's root.
HOLDS_FILE = "_legal_holds.json"
JOURNAL_DIR = "_retention"
#: Where the Parquet files of a cold store are, relative to it.
COLD_GLOB = "year=*/month=*/day=*/*.parquet"
#: ``legal_holds_sha256`` of a store without a holds file.
NO_HOLDS = "none"


# --- files ----------------------------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    """SHA-256 hex of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json_atomically(target: Path, data: dict[str, Any]) -> None:
    """Replace ``target`` with ``data`` as JSON: written to a temporary name, synced, renamed, directory synced.

    Manifests, the root and retention journals are whole or absent after a crash, never half-written.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=1) + "\n")
    fsync_file(temporary)
    os.replace(temporary, target)
    fsync_directory(target.parent)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def safe_relative(cold: Path, relative: object) -> Path | None:
    """``cold / relative`` when ``relative`` is a plain relative path inside ``cold``; else None.

    Paths in manifests and roots are data an attacker can write: no absolute paths, no ``..``,
    nothing that resolves (through a symlink) outside the store.
    """
    if not isinstance(relative, str) or not relative or "\\" in relative or "\x00" in relative:
        return None
    path = Path(relative)
    if path.is_absolute() or ".." in path.parts:
        return None
    target = cold / path
    try:
        target.resolve().relative_to(cold.resolve())
    except (OSError, ValueError):
        return None
    return target


# --- manifest entries -------------------------------------------------------------------------------


def manifest_path(cold: Path, source: str) -> Path:
    """The manifest entry of hot file ``source`` (a file name)."""
    return cold / MANIFEST_DIR / (source + ".json")


def new_entry(
    source: str, stream: str, seal: dict[str, Any], outputs: list[dict[str, Any]], version: int = PROJECTION_VERSION
) -> dict[str, Any]:
    """A manifest entry (not yet authenticated): ``source`` converted into ``outputs`` with projection ``version``.

    ``engine`` records the DuckDB that derived the columns: the projection is DuckDB SQL, so a
    verifier running another version that derives a value differently can say so.
    """
    return {
        "format": MANIFEST_FORMAT,
        "source": source,
        "stream": stream,
        "projection_version": version,
        "engine": engine(),
        "seal": seal,
        "outputs": outputs,
    }


def engine() -> str:
    """The engine the projection's expressions run on, with its version (``"duckdb 1.5.6"``)."""
    import duckdb

    return f"duckdb {duckdb.__version__}"


def write_entry(
    cold: Path, entry: dict[str, Any], hmac_key: bytes | None = None, signing_key: SigningKey | None = None
) -> dict[str, Any]:
    """Authenticate ``entry`` (checksum, and signature with ``signing_key``) and write it atomically.

    Retention calls this too when it marks outputs retired. Returns the entry as written.
    """
    document = documents.authenticate(entry, MANIFEST_CHECKSUM, hmac_key, signing_key)
    write_json_atomically(manifest_path(cold, str(entry["source"])), document)
    return document


def read_manifest(path: Path) -> dict[str, Any]:
    """One entry of ``cold/_manifest``, its form checked: what converter, retention, verify and workbench read.

    An entry is an object with ``source`` (the hot file's name), ``seal`` (a copy of its seal,
    ``seals.check_seal_format``), ``outputs`` (``[{"path": <relative .parquet path>, "rows": n}]``)
    and, after retention, ``retired`` (outputs removed, same form) and ``hot_removed_by`` (a plan id).
    Only the form is checked; whether the entry is true is ``verify_cold``'s job.

    Raises:
        AuditFormatError: not JSON, not an object, or a field of the wrong form; names the file and the field.
        OSError: the file cannot be read.
    """
    return parse_manifest(path.read_bytes(), path)


def parse_manifest(data: bytes, path: Path) -> dict[str, Any]:
    """The manifest entry in ``data``, the bytes of file ``path``, its form checked (``read_manifest``).

    Raises:
        AuditFormatError: as ``read_manifest``; names ``path``.
    """
    entry = _jsonfile.loads_object(data, path, "manifest entry")

    def wrong(field: str, expected: str, got: object) -> AuditFormatError:
        return AuditFormatError(path, f"manifest entry {field}: expected {expected}, got {got!r:.80}")

    if not isinstance(entry.get("source"), str):
        raise wrong("source", "a file name", entry.get("source"))
    check_seal_format(entry.get("seal"), path, "manifest entry's seal")
    for key in ("outputs", "retired"):
        outputs = entry.get(key, [])
        if not isinstance(outputs, list):
            raise wrong(key, "an array", outputs)
        for index, output in enumerate(outputs):
            if not isinstance(output, dict):
                raise wrong(f"{key}[{index}]", "an object", output)
            relative = output.get("path")
            if not isinstance(relative, str) or not _is_relative_parquet_path(relative):
                raise wrong(f"{key}[{index}].path", "a relative .parquet path inside the cold store", relative)
            rows = output.get("rows")
            if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
                raise wrong(f"{key}[{index}].rows", "a count", rows)
    if not isinstance(entry.get("hot_removed_by", ""), str):
        raise wrong("hot_removed_by", "a plan id", entry["hot_removed_by"])
    return entry


def _is_relative_parquet_path(relative: str) -> bool:
    parts = Path(relative).parts
    return (
        bool(parts) and relative.endswith(".parquet") and "\x00" not in relative
        and not Path(relative).is_absolute() and ".." not in parts
    )


def entry_problems(
    entry: dict[str, Any], hmac_key: bytes | None = None, public_key: VerifyingKeys | None = None
) -> list[str]:
    """Why ``entry`` is not an authentic manifest entry of this version; empty when it is.

    Checks its format, its ``manifest_checksum`` (HMAC with ``hmac_key``) and, with ``public_key``
    (the key the converter signs with), its signature; then that its outputs and retired outputs
    together account for every line its seal counts.
    """
    problems = [str(p) for p in documents.check_document(entry, MANIFEST_CHECKSUM, hmac_key, public_key,
                                                         what="manifest entry", **CONVERTER_SIGNED)]
    return problems + _entry_form_problems(entry)


def _entry_form_problems(entry: dict[str, Any]) -> list[str]:
    """``entry_problems`` but the authentication: the format, and that the outputs account for the seal's lines."""
    if entry.get("format") != MANIFEST_FORMAT:
        return [f"format is {entry.get('format')!r}, expected {MANIFEST_FORMAT!r} (written before "
                "manifests were authenticated? convert the hot file again)"]
    seal, outputs, retired = entry.get("seal"), entry.get("outputs"), entry.get("retired", [])
    if not isinstance(seal, dict) or not isinstance(outputs, list) or not isinstance(retired, list) or not all(
        isinstance(output, dict) and isinstance(output.get("rows"), int) for output in [*outputs, *retired]
    ):
        return ["seal must be an object, outputs and retired lists of objects with integer rows"]
    rows = sum(output["rows"] for output in [*outputs, *retired])
    if rows != seal.get("records"):
        return [f"outputs and retired outputs hold {rows} rows, the seal counts {seal.get('records')} lines"]
    return []


def converted_entry(
    hot_file: Path | str,
    cold: Path | str,
    hmac_key: bytes | None = None,
    public_key: VerifyingKeys | None = None,
    *,
    strict: bool = False,
) -> dict[str, Any] | None:
    """The manifest entry that shows ``hot_file`` converted, or None: THE "is this hot file converted?".

    True only for an authentic entry (``entry_problems`` finds nothing, checked with the trail's
    ``hmac_key`` and the converter's ``public_key``) of this hot file whose copy of the seal is the
    hot file's own seal (``seal_copy_differences`` finds nothing). A forged or edited entry
    therefore hides nothing: the converter converts the file, the workbench reads it from hot,
    retention keeps it. On a keyed trail an entry is authentic only with the key; without it every
    hot file counts as not converted. (Whether the outputs are still there is the caller's
    question: the workbench reads a file from hot when one is missing; retention, finishing a purge
    that removed some, must not.)

    With ``strict``, a seal or entry that is not in its format raises ``AuditFormatError`` (naming
    the file) instead of counting as "not converted", for callers that report unreadable files.
    """
    hot_file, cold = Path(hot_file), Path(cold)
    path = manifest_path(cold, hot_file.name)
    try:
        seal = read_seal(hot_file)
        entry = read_manifest(path) if path.is_file() else None
    except (OSError, ValueError):
        if strict:
            raise
        return None
    return converting_entry(hot_file.name, seal, entry, hmac_key, public_key)


def converting_entry(
    source: str,
    seal: dict[str, Any] | None,
    entry: dict[str, Any] | None,
    hmac_key: bytes | None = None,
    public_key: VerifyingKeys | None = None,
    *,
    entry_sha256: str | None = None,
    vouched: VouchedEntries | None = None,
) -> dict[str, Any] | None:
    """``entry`` if it shows hot file ``source``, whose seal is ``seal``, converted; else None.

    The decision of ``converted_entry`` once the seal and the entry are read (both parsed and
    their form checked; None when absent): for callers that read the bytes themselves.

    ``entry_sha256`` (hex of the bytes ``entry`` was parsed from) and ``vouched`` (``vouched_entries``,
    read once for the checked keys) spare the entry's own checksum and signature when the cold root
    commits to those bytes (``VouchedEntries`` says why that is sound), without re-encoding and
    hashing the entry (its id filters make it up to megabytes). Its form, its source and its copy
    of the seal are checked all the same.
    """
    if seal is None or entry is None or entry.get("source") != source:
        return None
    authentic = vouched is not None and entry_sha256 is not None and vouched.vouches(entry_sha256, hmac_key, public_key)
    if (_entry_form_problems(entry) if authentic else entry_problems(entry, hmac_key, public_key)):
        return None
    return None if seal_copy_differences(entry["seal"], seal) else entry


def seal_copy_differences(copy: dict[str, Any], seal: dict[str, Any]) -> list[str]:
    """The fields in which a manifest's copy of a seal differs from the seal its hot file has.

    Seals are never rewritten, so an honest copy is the seal itself, field for field (its
    ``seal_checksum`` and signature included): any difference means one of the two was replaced.
    """
    return [key for key in sorted(copy.keys() | seal.keys()) if copy.get(key) != seal.get(key)]


# --- the cold root ----------------------------------------------------------------------------------


def root_path(cold: Path) -> Path:
    return cold / ROOT_FILE


def legal_holds_sha256(cold: Path) -> str:
    """SHA-256 hex of ``cold/_legal_holds.json``, or ``"none"`` when there is none."""
    path = cold / HOLDS_FILE
    return file_sha256(path) if path.is_file() else NO_HOLDS


def expected_root(
    cold: Path, hmac_key: bytes | None = None, public_key: VerifyingKeys | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The root's commitments (no time, no authentication) for the store as it is, and what was left out.

    Only manifest entries that are authentic (``entry_problems`` with these keys) are committed to,
    with the Parquet files they name (hashes as the entries record them, not re-read). The legal
    holds and journals are hashed as they are on disk.
    """
    manifests, parquet, left_out, versions = [], [], [], set()
    for path in sorted((cold / MANIFEST_DIR).glob("*.json")):
        try:
            data = path.read_bytes()
            entry = read_manifest(path)
        except (OSError, ValueError) as exc:
            left_out.append(f"{path.name}: unreadable ({exc})")
            continue
        problems = entry_problems(entry, hmac_key, public_key)
        if problems:
            left_out.append(f"{path.name}: {problems[0]}")
            continue
        if isinstance(entry.get("projection_version"), int):
            versions.add(entry["projection_version"])
        manifests.append({"path": f"{MANIFEST_DIR}/{path.name}", "source": entry.get("source"),
                          "sha256": hashlib.sha256(data).hexdigest()})
        parquet += [{"path": o.get("path"), "rows": o.get("rows"), "sha256": o.get("sha256")} for o in entry["outputs"]]
    journals = [{"path": f"{JOURNAL_DIR}/{path.name}", "sha256": file_sha256(path)}
                for path in sorted((cold / JOURNAL_DIR).glob("*.json"))]
    body = {
        "format": ROOT_FORMAT,
        # The oldest projection an entry uses: what a reader of the store must understand.
        "projection_version": min(versions, default=PROJECTION_VERSION),
        "manifests": manifests,
        "parquet": sorted(parquet, key=lambda output: str(output["path"])),
        "legal_holds_sha256": legal_holds_sha256(cold),
        "retention_journals": journals,
    }
    return body, left_out


#: The root's fields that commit to the store (everything but its time and authentication).
ROOT_COMMITMENTS = ("format", "projection_version", "manifests", "parquet", "legal_holds_sha256", "retention_journals")


def read_root(cold: Path) -> dict[str, Any] | None:
    """The parsed ``cold/_root.json``, or None when there is none. ValueError if it is not a JSON object."""
    path = root_path(cold)
    if not path.exists():
        return None
    root = json.loads(path.read_bytes())
    if not isinstance(root, dict):
        raise ValueError(f"{path}: the cold root must be a JSON object, got {type(root).__name__}")
    return root


def update_cold_root(
    cold: Path | str,
    hmac_key: bytes | None = None,
    signing_key: SigningKey | None = None,
    *,
    accept_legal_holds: bool = False,
    now_ns: int | None = None,
) -> dict[str, Any]:
    """Rewrite ``cold/_root.json`` (atomically) to commit to the store as it is now. Returns the root.

    Call after every change to the store: the converter does after converting, retention must
    after each purge (once its journal is ``done`` and the manifest entries are rewritten). Manifest
    entries that are not authentic with these keys are left out (``verify_cold`` then reports them).

    The legal holds are not re-blessed behind anyone's back: while the current root authenticates,
    its ``legal_holds_sha256`` is kept unless ``accept_legal_holds`` (after a deliberate change to
    ``_legal_holds.json``), so a deleted or edited holds file keeps failing verification.

    Raises:
        AuditIntegrityError: a root exists but does not authenticate with these keys (it was
            edited, or the keys are not the store's): nothing is rewritten; verify the store and
            move the root aside to start a new one.
    """
    cold = Path(cold)
    public_key = None if signing_key is None else signing_key.public_key()
    body, _ = expected_root(cold, hmac_key, public_key)
    try:
        previous = read_root(cold)
    except ValueError as exc:
        raise AuditIntegrityError(
            f"{root_path(cold)}: unreadable ({exc}); verify the store before replacing it") from exc
    if previous is not None:
        problems = root_authentication_problems(previous, hmac_key, public_key)
        if problems:
            raise AuditIntegrityError(
                f"{root_path(cold)}: {problems[0]}; not rewritten (verify the store, then move the root aside)")
        if not accept_legal_holds and "legal_holds_sha256" in previous:
            body["legal_holds_sha256"] = previous["legal_holds_sha256"]
    body["updated_at_ns"] = time.time_ns() if now_ns is None else now_ns
    root = documents.authenticate(body, ROOT_CHECKSUM, hmac_key, signing_key)
    write_json_atomically(root_path(cold), root)
    return root


def legal_holds_problem(
    cold: Path | str, hmac_key: bytes | None = None, public_key: VerifyingKeys | None = None
) -> str | None:
    """Why ``cold/_legal_holds.json`` cannot be trusted as it is, or None: for retention, before it plans.

    The root commits to the holds file's SHA-256. A root that exists must authenticate (with
    ``hmac_key`` and the cold key ``public_key``), and the holds file must be the one it commits to:
    a hold deleted or edited behind the root's back lifts nothing. None when there is no root yet
    (``verify_cold`` reports that) or everything matches.
    """
    cold = Path(cold)
    try:
        root = read_root(cold)
    except (OSError, ValueError) as exc:
        return f"{root_path(cold)} is unreadable ({exc}): verify the cold store"
    if root is None:
        return None
    problems = root_authentication_problems(root, hmac_key, public_key)
    if problems:
        return f"{root_path(cold)}: {problems[0]}: verify the cold store"
    committed, present = root.get("legal_holds_sha256"), legal_holds_sha256(cold)
    if committed != present:
        return (f"{cold / HOLDS_FILE} is not the legal holds file the cold root commits to ({str(committed)[:16]}, "
                f"the file is {present[:16]}): deleted or edited? After a deliberate change, accept it with "
                "`ledgerline update-root --accept-legal-holds` (update_cold_root(..., accept_legal_holds=True))")
    return None


def root_authentication_problems(
    root: dict[str, Any], hmac_key: bytes | None = None, public_key: VerifyingKeys | None = None
) -> list[documents.DocumentProblem]:
    """Why the parsed cold root ``root`` is not authentic with these keys (``root_checksum`` with
    ``hmac_key``; with ``public_key``, the converter's key, its signature); empty when it is."""
    return documents.check_document(root, ROOT_CHECKSUM, hmac_key, public_key, what="cold root", **CONVERTER_SIGNED)


@dataclass(frozen=True)
class VouchedEntries:
    """The manifest entry files an authentic cold root commits to (SHA-256 hex of their bytes), and the
    keys it authenticated with: ``vouched_entries``' answer, for ``converting_entry``.

    The root is written by ``update_cold_root`` with the converter's HMAC key and signing key, and
    commits only to entries ``entry_problems`` found authentic with those keys. So when the root
    itself authenticates with the keys the caller checks with, an entry whose bytes hash to a
    committed SHA-256 is authentic with them too:

    - the root's HMAC with ``hmac_key`` matches: its writer held that key and checked the entries
      with it. Without a key, a plain SHA-256 proves nothing about any writer, but then the entries'
      own checksums prove nothing either: anyone who can edit a file can recompute both. (Such a
      root, re-checksummed over a keyed store, vouches for its entries where the full check would
      refuse their HMAC checksums; re-checksumming the entries themselves gets the same, the
      signatures, which cover neither checksum, still holding.)
    - with ``public_key`` (one Ed25519 key), the root carries a valid signature by it: its writer
      signed with that key and checked the entries against it; without one, entries checked with a
      signing key pass a check without it too.

    Trusted keys given as a ``TrustedKeys`` (roles, windows, revocations) vouch for nothing: an
    entry's signing time and the root's need not fall in the same window, so each entry is checked.
    A stale root, an older authentic root put back, or none at all vouches for at most entries that
    were authentic: any other entry (edited, added or replaced since) gets the full check.
    """

    digests: frozenset[str]
    hmac_key: bytes | None
    public_key: VerifyingKeys | None

    def vouches(self, entry_sha256: str, hmac_key: bytes | None, public_key: VerifyingKeys | None) -> bool:
        """Whether the root commits to an entry file whose bytes hash to ``entry_sha256``, checked with these keys."""
        return entry_sha256 in self.digests and self.hmac_key == hmac_key and self.public_key == public_key


def vouched_entries(
    cold: Path | str, hmac_key: bytes | None = None, public_key: VerifyingKeys | None = None
) -> VouchedEntries:
    """The entries ``cold/_root.json`` vouches for when checked with these keys (``VouchedEntries``):
    none when the root is missing, unreadable, not authentic with them, or the keys are a ``TrustedKeys``.

    Read and check the root once (one open of a trail), then pass the answer to ``converting_entry``
    for each entry.
    """
    from audit_core.trust.keyring import TrustedKeys

    nothing = VouchedEntries(frozenset(), hmac_key, public_key)
    if isinstance(public_key, TrustedKeys):
        return nothing
    try:
        root = read_root(Path(cold))
    except (OSError, ValueError):
        return nothing
    if root is None or root.get("format") != ROOT_FORMAT or root_authentication_problems(root, hmac_key, public_key):
        return nothing
    manifests = root.get("manifests")
    digests = frozenset(
        item["sha256"] for item in (manifests if isinstance(manifests, list) else [])
        if isinstance(item, dict) and isinstance(item.get("sha256"), str)
    )
    return VouchedEntries(digests, hmac_key, public_key)


def root_problems(
    cold: Path, hmac_key: bytes | None = None, public_key: VerifyingKeys | None = None
) -> list[str]:
    """Why ``cold/_root.json`` does not vouch for the store as it is; empty when it does.

    Missing, unreadable, not authentic (checksum with ``hmac_key``; signature with ``public_key``,
    the converter's key), or stale: it does not commit to exactly the manifest entries, Parquet
    files, legal holds and retention journals present.
    """
    try:
        root = read_root(cold)
    except (OSError, ValueError) as exc:
        return [f"{ROOT_FILE} is unreadable: {exc}"]
    if root is None:
        return [f"{ROOT_FILE} is missing: nothing vouches for the set of manifests, Parquet files and holds"]
    problems = [str(p) for p in root_authentication_problems(root, hmac_key, public_key)]
    expected, _ = expected_root(cold, hmac_key, public_key)
    for key in ROOT_COMMITMENTS:
        if root.get(key) != expected[key]:
            problems.append(_stale(key, root.get(key), expected[key]))
    return problems


def _stale(key: str, committed: Any, present: Any) -> str:
    """What differs between the root's ``committed`` value of ``key`` and what the store holds."""
    if isinstance(committed, list) and isinstance(present, list):
        with contextlib.suppress(TypeError, AttributeError):
            before = {json.dumps(item, sort_keys=True): item.get("path") for item in committed}
            now = {json.dumps(item, sort_keys=True): item.get("path") for item in present}
            gone = sorted({str(before[k]) for k in before.keys() - now.keys()})
            new = sorted({str(now[k]) for k in now.keys() - before.keys()})
            return (f"the root is stale: {key} it commits to but the store does not hold (deleted or changed): "
                    f"{gone or 'none'}; held but not committed to (added or changed): {new or 'none'}")
    if key == "legal_holds_sha256":
        return (f"the root is stale: it commits to legal holds {str(committed)[:16]}, the store holds "
                f"{str(present)[:16]} (_legal_holds.json deleted or edited; after a deliberate change, "
                "update_cold_root(..., accept_legal_holds=True))")
    return f"the root is stale: {key} is {committed!r}, the store has {present!r}"
