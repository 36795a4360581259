"""The verification status of an opened trail: one ``audit_core.verify_trail`` result, cached and authenticated.

``open_trail(..., verify=True)`` calls ``verification_status``; ``trail.verification`` is the
``VerificationStatus`` it returns. Verifying re-derives every hot chain and seal and every cold
Parquet column (about 7 s for a 1M-event trail), so the result is cached, keyed by a
``fingerprint`` of the files:

- every file under the trail's root (lock files aside): its path, size, inode, ``mtime_ns`` and
  ``ctime_ns``. A writer can set ``mtime`` back but not ``ctime``: an edited Parquet file, seal or
  manifest misses the cache even when its size and ``mtime`` were restored;
- the bytes of every seal sidecar (``*.seal``), checkpoint and cold root (``_root.json``).

and by the keys it was checked with (an HMAC key's tag, the Ed25519 public key's digest: never
the keys themselves): a result checked without keys never answers a request with keys.

Two caches: one in this process (a dict) and one on disk under
``$XDG_CACHE_HOME/ledgerline/verification/`` (default ``~/.cache``), one JSON file per trail and
keys. A disk entry is authenticated: HMAC-SHA256 (with a key derived from the trail's HMAC key)
over its canonical JSON when the trail is keyed, a plain SHA-256 otherwise. An unkeyed entry only
detects accidental damage: whoever can write your cache directory can forge it, as whoever can
rewrite an unkeyed trail can recompute its hashes; ``Trail.verify()`` always verifies afresh. An
entry that fails authentication, does not parse, or is for other files or keys is ignored and the
trail verified again. An entry that cannot be written (a read-only home) leaves the in-process
cache only.

Examples
--------
>>> import shutil, tempfile
>>> from benchmarks.trail_gen import generate_trail
>>> from workbench import open_trail
>>> base = tempfile.mkdtemp()
>>> _ = generate_trail(base, events=300, days=2, seed=1)
>>> status = open_trail(base).verification
>>> status.state, status.mode, status.source
('verified', 'unkeyed', 'verify_trail')
>>> status.summary
'verified: 304 hot records in 6 files + 304 cold rows in 6 Parquet files; SHA-256 chains, unkeyed; checked ...'
>>> open_trail(base).verification.source   # the same files, the same keys: not verified again
'memory cache'
>>> open_trail(base, verify=False).verification.summary
'not verified: opened with verify=False'
>>> shutil.rmtree(base)
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import html
import json
import logging
import os
import tempfile
import weakref
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from audit_core import TrailReport
    from workbench.trail import Trail

log = logging.getLogger(__name__)

#: The states of a ``VerificationStatus``.
VERIFIED, FAILED, UNVERIFIED = "verified", "failed", "unverified"
STATES = (VERIFIED, FAILED, UNVERIFIED)
#: What was checked: SHA-256 chains only, HMAC-SHA256, Ed25519 seal signatures, both; "none": nothing.
MODES = ("unkeyed", "hmac", "signature", "hmac+signature", "none")
CACHE_FORMAT = "ledgerline-verification-cache/1"
#: Domain-separation labels: the trail's HMAC key is never used as is outside the trail.
_CACHE_MAC_LABEL = b"ledgerline verification cache mac/1"
_KEY_TAG_LABEL = b"ledgerline verification cache key tag/1"
#: Files whose bytes (not only their metadata) enter the fingerprint: small, and what a forger edits.
_HASHED_SUFFIXES = (".seal", ".checkpoint")
_HASHED_NAMES = ("_root.json",)
_MEMORY_ENTRIES = 64
_MAX_NAMED_KINDS = 3

#: In-process cache: cache key -> (report, checked_at). Cleared by ``clear_memory_cache``.
_memory: dict[str, tuple[TrailReport, _dt.datetime]] = {}


@dataclass(frozen=True)
class VerificationStatus:
    """What is known about the integrity of an opened trail.

    Attributes
    ----------
    state
        ``"verified"`` (``verify_trail`` found nothing wrong), ``"failed"`` (it found failures:
        ``report.failures``) or ``"unverified"`` (nothing conclusive was checked: opened with
        ``verify=False``, a keyed trail opened without its key, or a trail without records).
    summary
        One line saying the state, what was checked, how and when (``str(status)``).
    mode
        What the check covered: ``"unkeyed"`` (SHA-256 chains: consistency, which anyone who
        rewrites every file can recompute), ``"hmac"``, ``"signature"`` (Ed25519 seal and cold
        root signatures), ``"hmac+signature"``, or ``"none"``.
    checked_at
        When ``verify_trail`` ran (UTC), also for a cached result; None when it did not run.
    report
        The ``audit_core.TrailReport`` (``parts``, ``failures``, ``to_text()``), or None.
    source
        ``"verify_trail"`` (run now), ``"memory cache"``, ``"disk cache"`` or ``"not run"``.
    path
        The trail's root.
    key_id
        The id of the Ed25519 key signatures were checked against, or None.
    fingerprint
        The fingerprint of the files the result is for (see the module docstring).
    """

    state: str
    summary: str
    mode: str = "none"
    checked_at: _dt.datetime | None = None
    report: TrailReport | None = field(default=None, repr=False, compare=False)
    source: str = "not run"
    path: str = ""
    key_id: str | None = None
    fingerprint: str | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """Whether the state is ``"verified"``."""
        return self.state == VERIFIED

    @property
    def failures(self) -> list[Any]:
        """The report's ``VerificationFailure`` list (empty when verification did not run)."""
        return list(self.report.failures) if self.report is not None else []

    def __str__(self) -> str:
        return self.summary

    def to_text(self, max_failures: int = 20) -> str:
        """The summary, then the report's own text (streams, failures), indented."""
        lines = [self.summary]
        if self.report is not None:
            lines += ["  " + line for line in self.report.to_text(max_failures).splitlines()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        color = {VERIFIED: "#2e7d32", FAILED: "#c62828"}.get(self.state, "#ef6c00")
        label = {VERIFIED: "VERIFIED", FAILED: "FAILED"}.get(self.state, "NOT VERIFIED")
        # The badge says the state and the summary says when it was checked: neither is repeated.
        state_word, _, rest = self.summary.partition(": ")
        headline = rest if state_word.upper() == label else self.summary
        details = (f"mode <code>{self.mode}</code>"
                   + (f", Ed25519 key <code>{html.escape(self.key_id)}</code>" if self.key_id else "")
                   + f" &middot; <code>{html.escape(self.path)}</code>")
        if self.report is not None and getattr(self.report, "parts", None):
            details += "".join(f"<br>{html.escape(label_)}: {'OK' if part.ok else 'FAILED'}, "
                               f"{len(part.files):,} file(s), {part.records:,} record(s)"
                               for label_, part in self.report.parts)
        parts = [f'<div class="ledgerline-verification" style="border-left:6px solid {color};padding:4px 10px;'
                 f'margin:4px 0">',
                 f'<b style="color:{color}">{label}</b> {html.escape(headline)}<br>',
                 f'<small>{details}</small>']
        failures = self.failures
        if failures:
            rows = "".join(f"<tr><td>{html.escape(f.kind.value)}</td><td>{html.escape(_relative(f.file, self.path))}"
                           f"</td><td>{f.line}</td><td>{'' if f.sequence is None else f.sequence}</td>"
                           f"<td>{html.escape(f.detail)}</td></tr>" for f in failures[:50])
            more = f"<p>... and {len(failures) - 50} more</p>" if len(failures) > 50 else ""
            parts.append(f"<details><summary>{len(failures):,} failure(s)</summary><table><tr><th>kind</th>"
                         f"<th>file</th><th>line</th><th>sequence</th><th>detail</th></tr>{rows}</table>{more}"
                         "</details>")
        parts.append("</div>")
        return "".join(parts)


def not_verified(path: Path | str, reason: str) -> VerificationStatus:
    """The status of a trail that was not checked, saying why (``"opened with verify=False"``)."""
    return VerificationStatus(UNVERIFIED, f"not verified: {reason}", path=str(path))


def verification_status(
    path: Path | str, hmac_key: bytes | None = None, public_key: Any = None, *, use_cache: bool = True,
    cold_public_key: Any = None,
) -> VerificationStatus:
    """Verify the trail under ``path`` (``audit_core.verify_trail``), or take the cached result for these files, keys.

    Parameters
    ----------
    path
        The trail's root.
    hmac_key, public_key
        The trail's HMAC key and the Ed25519 public key its seals and cold root are signed with.
    cold_public_key
        The converter's own public key, when it signs manifests and the cold root with a key of its
        own (default: ``public_key``).
    use_cache
        Look the result up in the caches first (False: always verify). The result is stored in
        both either way, unless the files changed while they were being verified.

    Returns
    -------
    VerificationStatus
        Never raises for tampering or damage: that is a ``"failed"`` status. Should
        ``verify_trail`` itself raise (an unusable key, a bug), the status is ``"unverified"`` and
        its summary names the exception.
    """
    from audit_core import verify_trail

    root = Path(path).resolve()
    keys = _key_identity(hmac_key, public_key, cold_public_key)
    before = fingerprint(root)
    key = _cache_key(root, keys)
    cacheable = "?" not in (keys["public_key"], keys.get("cold_public_key"))
    if use_cache and cacheable:
        cached = _memory.get(f"{key}:{before}")
        if cached is not None:
            return _status(root, cached[0], keys, hmac_key, cached[1], "memory cache", before)
        entry = _read_disk(root, key, before, keys, hmac_key)
        if entry is not None:
            _remember(f"{key}:{before}", entry)
            return _status(root, entry[0], keys, hmac_key, entry[1], "disk cache", before)
    checked_at = _dt.datetime.now(_dt.UTC)
    try:
        # An empty trail is "unverified: holds no records" here, not a failure: an analysis of nothing.
        report = verify_trail(root, hmac_key=hmac_key, public_key=public_key, cold_public_key=cold_public_key,
                              allow_empty=True)
    except Exception as exc:  # a bug or an unusable key must not keep a trail from being investigated
        return not_verified(root, f"verify_trail raised {type(exc).__name__}: {exc}")
    if cacheable and fingerprint(root) == before:  # files that changed meanwhile are not cached
        _remember(f"{key}:{before}", (report, checked_at))
        _write_disk(root, key, before, keys, hmac_key, report, checked_at)
    return _status(root, report, keys, hmac_key, checked_at, "verify_trail", before)


def fingerprint(root: Path | str) -> str:
    """SHA-256 over every file under ``root`` (lock files aside): path, size, inode, mtime_ns, ctime_ns.

    Seal sidecars, checkpoints and cold roots enter with the SHA-256 of their bytes too. A file
    that vanishes while it is listed enters as gone. The same files, untouched, give the same value.
    """
    root = Path(root)
    digest = hashlib.sha256(f"{CACHE_FORMAT}\0{root.resolve()}\n".encode())
    for file in sorted(root.rglob("*")):
        if file.name.endswith(".lock"):
            continue
        try:
            info = file.stat()
            if not file.is_file():
                continue
            entry: list[Any] = [file.relative_to(root).as_posix(), info.st_size, info.st_dev, info.st_ino,
                                info.st_mtime_ns, info.st_ctime_ns]
            if file.name.endswith(_HASHED_SUFFIXES) or file.name in _HASHED_NAMES:
                entry.append(hashlib.sha256(file.read_bytes()).hexdigest())
        except OSError as exc:
            entry = [file.relative_to(root).as_posix(), "gone", type(exc).__name__]
        digest.update(json.dumps(entry).encode() + b"\n")
    return digest.hexdigest()


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/ledgerline/verification`` (default ``~/.cache/ledgerline/verification``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ledgerline" / "verification"


def clear_memory_cache() -> None:
    """Forget every result cached in this process (the disk cache stays)."""
    _memory.clear()


# --- views: which trail a query reads, so that its pandas result can say how verified that trail is --------

# Keyed by (table name, id of the trail): one name can belong to several trails (Spark's fetched rows
# are named by their content), and a result over it then carries the weakest of their states.
_views: weakref.WeakValueDictionary[tuple[str, int], Trail] = weakref.WeakValueDictionary()


def register_view(events: ir.Table, trail: Trail) -> None:
    """Remember that the tables ``events`` (a view of ``trail``'s rows) reads belong to ``trail``.

    The tables, not ``events`` itself: on Spark the trail's rows are a projection over its view (the
    time column read back as an instant), which has no name of its own.
    """
    for name in _table_names(events):
        _views[name, id(trail)] = trail


def register_derived_view(view: ir.Table, source: ir.Table) -> None:
    """``view`` (a view made from ``source``, e.g. Spark's described rows) belongs to the trail ``source``
    reads, when it reads exactly one."""
    trails = _trails_reading(_table_names(source))
    if len(trails) == 1:
        register_view(view, trails[0])


def _trails_reading(names: set[str]) -> list[Trail]:
    """The opened trails that ``names`` (tables) belong to, each once, in the order they were registered."""
    trails = {id(trail): trail for (name, _), trail in list(_views.items()) if name in names}
    return list(trails.values())


def _table_names(expr: ir.Table) -> set[str]:
    import ibis.expr.operations as ops

    return {table.name for table in expr.op().find(ops.DatabaseTable)}


def annotate(expr: Any, frame: Any) -> Any:
    """Set ``frame.attrs["verification"]`` (the summary) and ``["verification_state"]`` from the trails ``expr`` reads.

    A result that reads no opened trail is left as it is; one that reads several gets their
    summaries joined with ``"; "`` and the weakest state.
    """
    if not _views or not hasattr(frame, "attrs"):
        return frame

    try:
        names = _table_names(expr)
    except Exception:  # an expression Ibis cannot walk just goes unannotated
        return frame
    statuses = [trail.verification for trail in _trails_reading(names)]
    if statuses:
        frame.attrs["verification"] = "; ".join(dict.fromkeys(status.summary for status in statuses))
        frame.attrs["verification_state"] = min((status.state for status in statuses),
                                                key=(FAILED, UNVERIFIED, VERIFIED).index)
    return frame


# --- private helpers --------------------------------------------------------------------------------------


def _key_identity(hmac_key: bytes | None, public_key: Any, cold_public_key: Any = None) -> dict[str, Any]:
    """What a cache entry records of the keys: the mode, an HMAC key tag, the public keys' SHA-256.

    A public key is ``"?"`` when it cannot be named (not an Ed25519 public key): such a result is
    not cached (``verify_trail`` says what is wrong with the key). ``cold_public_key`` is recorded
    only when given, so entries checked without one keep their identity.
    """
    public_id = _public_id(public_key)
    tag = None if hmac_key is None else hmac.new(hmac_key, _KEY_TAG_LABEL, hashlib.sha256).hexdigest()
    mode = {(False, False): "unkeyed", (True, False): "hmac", (False, True): "signature",
            (True, True): "hmac+signature"}[(tag is not None, public_id is not None)]
    identity = {"mode": mode, "hmac": tag, "public_key": public_id}
    if cold_public_key is not None:
        identity["cold_public_key"] = _public_id(cold_public_key)
    return identity


def _public_id(public_key: Any) -> str | None:
    """SHA-256 hex of an Ed25519 public key's raw bytes; None for no key, ``"?"`` for one that is not a key."""
    if public_key is None:
        return None
    try:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return hashlib.sha256(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()
    except Exception:  # not a key we can name: verified, never cached
        return "?"


def _cache_key(root: Path, keys: dict[str, Any]) -> str:
    identity = json.dumps([str(root), keys], sort_keys=True)
    return hashlib.sha256(identity.encode()).hexdigest()[:40]


def _remember(key: str, entry: tuple[TrailReport, _dt.datetime]) -> None:
    _memory[key] = entry
    while len(_memory) > _MEMORY_ENTRIES:
        _memory.pop(next(iter(_memory)))


def _canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _mac(document: dict[str, Any], hmac_key: bytes | None) -> dict[str, str]:
    body = _canonical({name: value for name, value in document.items() if name != "mac"})
    if hmac_key is None:
        return {"alg": "sha256", "value": hashlib.sha256(body).hexdigest()}
    mac_key = hmac.new(hmac_key, _CACHE_MAC_LABEL, hashlib.sha256).digest()
    return {"alg": "hmac-sha256", "value": hmac.new(mac_key, body, hashlib.sha256).hexdigest()}


def _read_disk(root: Path, key: str, fingerprint_: str, keys: dict[str, Any],
               hmac_key: bytes | None) -> tuple[TrailReport, _dt.datetime] | None:
    """The disk entry for these files and keys, or None: missing, unauthentic, unparseable, or for other files."""
    path = cache_dir() / f"{key}.json"
    try:
        document = json.loads(path.read_bytes())
        if not isinstance(document, dict) or document.get("format") != CACHE_FORMAT:
            return None
        if document.get("path") != str(root) or document.get("fingerprint") != fingerprint_ \
                or document.get("keys") != keys:
            return None
        expected = _mac(document, hmac_key)
        given = document.get("mac")
        if not isinstance(given, dict) or given.get("alg") != expected["alg"] \
                or not hmac.compare_digest(str(given.get("value")), expected["value"]):
            log.info("ignoring verification cache entry %s: it fails authentication", path)
            return None
        checked_at = _dt.datetime.fromisoformat(document["checked_at"])
        return _report_from_dict(document["report"]), checked_at
    except FileNotFoundError:
        return None
    except Exception as exc:  # any unusable entry is ignored: the trail is verified again
        log.info("ignoring verification cache entry %s: %s", path, exc)
        return None


def _write_disk(root: Path, key: str, fingerprint_: str, keys: dict[str, Any], hmac_key: bytes | None,
                report: TrailReport, checked_at: _dt.datetime) -> None:
    """Store the entry (temp file, then rename); a directory that cannot be written leaves the memory cache only."""
    document: dict[str, Any] = {"format": CACHE_FORMAT, "path": str(root), "fingerprint": fingerprint_, "keys": keys,
                                "checked_at": checked_at.isoformat(), "report": report.to_dict()}
    document["mac"] = _mac(document, hmac_key)
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{key}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(_canonical(document))
            os.replace(temp, directory / f"{key}.json")
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        log.info("verification cache not written to %s (%s): kept in this process only", directory, exc)


def _report_from_dict(document: dict[str, Any]) -> TrailReport:
    """A ``TrailReport`` rebuilt from its ``to_dict()``."""
    from audit_core import TrailReport

    return TrailReport.from_dict(document)


def _status(root: Path, report: TrailReport, keys: dict[str, Any], hmac_key: bytes | None,
            checked_at: _dt.datetime, source: str, fingerprint_: str) -> VerificationStatus:
    """The state and one-line summary of a report checked with ``keys``."""
    mode = keys["mode"]
    how = _how(report, mode)
    unchecked_signatures = "signature" not in mode and _signed(root)
    when = f"checked {_when(checked_at)}" + ("" if source == "verify_trail" else f" ({source})")
    mismatches = sum(failure.kind.value == "checksum_mismatch" for failure in report.failures)
    every_checksum_differs = bool(report.records) and mismatches >= report.records
    if report.ok and not report.records:
        state, summary = UNVERIFIED, f"not verified: the trail holds no records to check ({when})"
    elif report.ok and unchecked_signatures:
        state, summary = UNVERIFIED, (
            f"not verified: the seals or cold root are signed but no public_key was given, so signatures and "
            f"checkpoints were not checked (pass public_key=); {_extent(report)} passed {how}; {when}")
    elif report.ok:
        state, summary = VERIFIED, f"verified: {_extent(report)}; {how}; {when}"
    elif every_checksum_differs and hmac_key is None:
        state, summary = UNVERIFIED, (
            f"not verified: every record's checksum differs without an HMAC key, so the trail looks keyed: "
            f"open it with hmac_key= (or every record was altered); {len(report.failures):,} failure(s); {when}")
    else:
        hint = ("; every checksum differs: wrong hmac_key?" if every_checksum_differs else "")
        state, summary = FAILED, (f"FAILED: {_failures_line(report, root)}; {_extent(report)}; {how}{hint}; {when}")
    return VerificationStatus(state, summary, mode, checked_at, report, source, str(root), report.signing_key_id,
                              fingerprint_)


def _extent(report: TrailReport) -> str:
    def counted(n: int, what: str) -> str:
        return f"{n:,} {what}{'' if n == 1 else 's'}"

    pieces = []
    for label, part in report.parts:
        if label.startswith("hot "):
            pieces.append(f"{counted(part.records, 'hot record')} in {counted(len(part.files), 'file')}")
        else:
            pieces.append(f"{counted(part.records, 'cold row')} in {counted(len(part.files), 'Parquet file')}")
    return " + ".join(pieces) or "no files"


def _how(report: TrailReport, mode: str) -> str:
    checks = {"unkeyed": "SHA-256 chains, unkeyed", "hmac": "HMAC-SHA256",
              "signature": "SHA-256 chains + Ed25519", "hmac+signature": "HMAC-SHA256 + Ed25519"}[mode]
    if report.signing_key_id:
        checks += f" key id {report.signing_key_id}"
    return checks


def _signed(root: Path) -> bool:
    """Whether a seal or a cold root under ``root`` carries an Ed25519 ``signature``."""
    for document in (*root.rglob("*.seal"), *root.rglob("_root.json")):
        try:
            parsed = json.loads(document.read_bytes())
        except (OSError, ValueError, RecursionError):
            continue  # unreadable: verify_trail reports it
        if isinstance(parsed, dict) and "signature" in parsed:
            return True
    return False


def _failures_line(report: TrailReport, root: Path) -> str:
    kinds = Counter(failure.kind.value for failure in report.failures)
    first_file = {}
    for failure in report.failures:
        first_file.setdefault(failure.kind.value, _relative(failure.file, str(root)))
    named = [f"{kind}{f' x{count}' if count > 1 else ''} in {first_file[kind]}"
             for kind, count in kinds.most_common(_MAX_NAMED_KINDS)]
    more = f", {len(kinds) - _MAX_NAMED_KINDS} more kind(s)" if len(kinds) > _MAX_NAMED_KINDS else ""
    return f"{len(report.failures):,} failure(s) ({', '.join(named)}{more})"


def _relative(file: str, root: str) -> str:
    try:
        return Path(file).relative_to(root).as_posix()
    except ValueError:
        return file


def _when(instant: _dt.datetime) -> str:
    return instant.astimezone(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
