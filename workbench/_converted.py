"""Whether a hot file's rows are in cold: ``audit_core.cold.manifest.converted_entry``'s answer, kept per bytes.

``open_trail`` asks it of every hot file still present (a trail keeps its sealed hot files after
converting them until retention removes them). The answer is a pure function of four things: the
hot file's name, the bytes of its seal, the bytes of its manifest entry, and the keys the entry is
checked with (parsing both, checking the entry's form, its checksum or signature and its copy of
the seal cost ~0.3 ms a file: most of a cold start's time on 90 hot files). So it is kept in this
process keyed by exactly those: the SHA-256 of both files' bytes (read at every open, a few
microseconds each), the name, and the keys' digests. Any changed byte of the seal or the entry is a
new key, checked afresh; nothing is believed because of a file's name, size or timestamps. With
trusted keys given as a ``TrustedKeys`` (windows, revocations) nothing is kept: each open checks.
Whether the entry's outputs are still there is asked at every open.

What is not kept (a new process's first open) is spared most of the check when the cold root,
read and checked once per open, commits to the entry's bytes (``audit_core.cold.manifest.vouched_entries``):
the SHA-256 computed for the key above is compared with the root's, instead of re-encoding the entry
and authenticating it again (on a 10M-event trail, 90 entries holding 10 MB of id filters: ~25 ms).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from audit_core.cold.manifest import VouchedEntries

#: Answers kept at most (each the output paths of one entry: the entry itself, with its id filters,
#: can be 100 KB).
MAX_KEPT = 16_384
_kept: dict[tuple[Any, ...], tuple[str, ...] | None] = {}


def converted(file: Path, cold_dir: Path, present: set[Path], lost: set[Path], hmac_key: bytes | None = None,
              public_key: Any = None, vouched: VouchedEntries | None = None) -> bool:
    """Whether the cold store holds hot ``file`` (same seal) by an authentic entry, in outputs ``present``
    (the Parquet files the trail reads), none of them ``lost`` (left out as damaged).

    A forged or edited entry hides no hot file: ``converted_entry`` decides. Without the trail's HMAC
    key, entries of a keyed trail cannot be authenticated, so every hot file is read (rows also in
    cold count once, see ``open_trail``). An output outside ``present`` (removed, or not where the
    trail's glob reads) makes the file count as not converted.

    Raises:
        AuditFormatError: the file's seal or its manifest entry is not in its format.
        OSError: one of them exists but cannot be read.
    """
    paths = _outputs(file, cold_dir, hmac_key, public_key, vouched)
    if paths is None:
        return False
    outputs = [cold_dir / path for path in paths]
    if not all(output in present for output in outputs):
        return False
    # Resolving a path costs a system call per component: only to compare with the files left out
    # as damaged, when there are any.
    return not lost or all(output.resolve() not in lost for output in outputs)


def clear() -> None:
    """Forget the answers kept (tests)."""
    _kept.clear()


def _outputs(file: Path, cold_dir: Path, hmac_key: bytes | None, public_key: Any,
             vouched: VouchedEntries | None = None) -> tuple[str, ...] | None:
    """The output paths of ``converted_entry(file, cold_dir, hmac_key, public_key, strict=True)`` (None when
    it is None), kept per the bytes it reads; entries the cold root vouches for (``vouched``) are not
    authenticated again (``converting_entry``)."""
    from audit_core._layout import seal_path
    from audit_core.cold.manifest import converting_entry, manifest_path, parse_manifest
    from audit_core.trust.seals import parse_seal

    entry_file, seal_file = manifest_path(cold_dir, file.name), seal_path(file)
    try:
        entry_bytes = entry_file.read_bytes()
    except (FileNotFoundError, IsADirectoryError):  # no entry: not converted
        return None
    try:
        seal_bytes = seal_file.read_bytes()
    except FileNotFoundError:  # not sealed: not converted
        return None
    keys = _keys_digest(hmac_key, public_key)
    entry_sha256 = hashlib.sha256(entry_bytes).hexdigest()
    key = None if keys is None else (file.name, hashlib.sha256(seal_bytes).digest(), entry_sha256, keys)
    if key is not None and key in _kept:
        return _kept[key]
    entry = converting_entry(file.name, parse_seal(seal_bytes, seal_file), parse_manifest(entry_bytes, entry_file),
                             hmac_key, public_key, entry_sha256=entry_sha256, vouched=vouched)
    paths = None if entry is None else tuple(str(output["path"]) for output in entry["outputs"])
    if key is not None:
        if len(_kept) >= MAX_KEPT:
            _kept.clear()
        _kept[key] = paths
    return paths


def _keys_digest(hmac_key: bytes | None, public_key: Any) -> tuple[bytes | None, bytes | None] | None:
    """What the answer depends on of the keys: SHA-256 of the HMAC key, an Ed25519 public key's raw bytes;
    None for keys whose answer is not kept (a ``TrustedKeys``: windows and revocations)."""
    hmac_digest = None if hmac_key is None else hashlib.sha256(b"ledgerline converted\0" + hmac_key).digest()
    if public_key is None:
        return hmac_digest, None
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    if not isinstance(public_key, Ed25519PublicKey):
        return None
    return hmac_digest, public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
