"""Writing an evidence bundle: the records of a window, their range proofs, checkpoints and witness proofs.

For each stream of the trail: its newest stream checkpoint (the local one, or the witness's when
the witness holds less), the stream's leaves rebuilt from its files and tree sidecar and checked
against that checkpoint's root (the sidecar is untrusted), the positions of the window found on
``ts_recorded`` (which never goes backwards in a stream), the lines of the range with its edge
records, and the range proof from the stream tree. The ZIP is deterministic (fixed entry times and
order; only ``created_ns`` differs between two exports) and is written to a temporary name, synced
and renamed.
"""

from __future__ import annotations

import json
import os
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit_core._layout import (
    hot_directory,
    parse_hot_file_name,
    stream_checkpoint_path,
    stream_leaves_path,
    trail_files,
)
from audit_core.errors import AuditError
from audit_core.evidence.bundle_format import (
    BUNDLE_FORMAT,
    INDEX_ENTRY,
    Selection,
    line_leaf,
    lines_entry,
    range_proof,
    read_record,
)
from audit_core.hot.anchors import file_lines, group_stream_files, read_sidecar, rebuild_stream
from audit_core.trust.record import compute_checksum, split_record
from audit_core.trust.signing import key_id, raw_public_key
from audit_core.trust.stream_tree import MemoryLeaves, StreamCheckpoint, StreamTree, read_note
from audit_core.trust.witness import read_note_file

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

#: A fixed time for every entry, so the same trail and arguments give the same bytes.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class BundleExportError(AuditError):
    """The trail cannot back a bundle of this window (no checkpoint covers it, leaves that do not rebuild
    the checkpoint's root, lines only a removed file held); nothing was written."""


@dataclass
class _Stream:
    trader_id: str
    stream_id: str
    files: list[Path]

    @property
    def key(self) -> str:
        return f"{self.trader_id}.{self.stream_id}"


def export_bundle(
    trail: Path | str,
    out: Path | str,
    *,
    start_ns: int,
    end_ns: int,
    event_types: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
    params: Sequence[str] | None = None,
    redact: bool = False,
    witness: Path | str | None = None,
    public_keys: Sequence[Ed25519PublicKey] = (),
) -> Path:
    """Write the evidence bundle of ``trail`` for a window and filters to ``out`` (docs/format.md section 7).

    Args:
        trail: The trail's root (or its hot directory).
        out: The bundle file to write (replaced atomically).
        start_ns, end_ns: The window ``[start_ns, end_ns)`` on ``ts_recorded``.
        event_types, sources, params: Filters (None: no restriction); a type ``a.*`` is a prefix.
        redact: Give records of the window that do not match as leaf hashes only.
        witness: A witness directory: add its note and a consistency proof per stream.
        public_keys: Public keys to list in the bundle, for information (a verifier never trusts them).

    Returns:
        ``out``.

    Raises:
        AuditConfigError: a bad window or filter.
        BundleExportError: the trail cannot back the bundle (the message names the stream and why).
    """
    selection = Selection.of(start_ns, end_ns, event_types, sources, params)
    hot = hot_directory(Path(trail))
    groups = group_stream_files(trail_files(hot)[0]) if hot.is_dir() else {}
    if not groups:
        raise BundleExportError(f"{trail}: no hot files of any stream: nothing to export")
    streams = []
    keyed = False
    for files in groups.values():
        name = _stream_name(files[0])
        entry, lines, stream_keyed = _export_stream(_Stream(*name, files), hot, selection, redact,
                                                    None if witness is None else Path(witness))
        keyed |= stream_keyed
        streams.append((entry, lines))
    streams.sort(key=lambda item: item[0]["origin"])
    index = {
        "format": BUNDLE_FORMAT,
        "created_ns": time.time_ns(),
        "selection": selection.to_json(),
        "redacted": redact,
        "keyed": keyed,
        "streams": [entry for entry, _ in streams],
        "keys": [_key_entry(key) for key in public_keys],
    }
    return _write_zip(Path(out), index, [(entry["lines"], lines) for entry, lines in streams])


def _stream_name(path: Path) -> tuple[str, str]:
    name = parse_hot_file_name(path)
    assert name is not None  # group_stream_files keeps only named files
    return name.trader_id, name.stream_id


def _export_stream(
    stream: _Stream, hot: Path, selection: Selection, redact: bool, witness: Path | None
) -> tuple[dict[str, Any], bytes, bool]:
    checkpoint, witnessed = _checkpoints(stream, hot, witness)
    size = checkpoint.size
    notes = [note for note in (checkpoint, witnessed) if note is not None]
    tree, leaves, removed = _leaves(stream, hot, notes)
    sources: list[Callable[[], list[bytes]]] = [partial(file_lines, path, last=index == len(stream.files) - 1)
                                                 for index, path in enumerate(stream.files)]
    try:
        first, end, lines = _window(stream, sources, removed, size, selection)
    except _StartsInRemovedFiles:
        first, end, lines = _window(stream, _cold_sources(stream, hot, removed) + sources, 0, size, selection)
    redacted: dict[str, str] = {}
    full: list[bytes] = []
    keyed = False
    for position, line in enumerate(lines, start=first):
        if line_leaf(line) != leaves[position]:
            raise BundleExportError(f"stream {stream.key}: line {position} changed after its leaf was recorded")
        record = read_record(line)
        keyed |= record is not None and compute_checksum(record.body) != record.checksum
        if (redact and record is not None and first < position < end - 1 and selection.in_window(record.ts_recorded)
                and not selection.matches(record)):
            redacted[str(position)] = leaves[position].hex()
        else:
            full.append(line)
    entry: dict[str, Any] = {
        "origin": checkpoint.origin,
        "checkpoint": checkpoint.note,
        "first": first,
        "end": end,
        "lines": lines_entry(stream.trader_id, stream.stream_id),
        "redacted": redacted,
        "range_proof": [node.hex() for node in range_proof(tree.subtree_hash, size, first, end)],
        "witness": None if witnessed is None else {
            "note": witnessed.note,
            "consistency_proof": [node.hex() for node in tree.consistency_proof(size, witnessed.size)],
        },
    }
    return entry, b"".join(line + b"\n" for line in full), keyed


def _leaves(stream: _Stream, hot: Path, notes: list[StreamCheckpoint]) -> tuple[StreamTree, list[bytes], int]:
    """The stream's tree, leaf hashes and the position of its first present line, proven by the notes' roots.

    The sidecar is taken when its leaves rebuild every note's root (an untrusted file proven by the
    signed root; the lines exported are compared with it one by one later); otherwise the leaves are
    rebuilt from the files (``hot.anchors.rebuild_stream``), which must rebuild the roots too.
    """
    sidecar = read_sidecar(stream_leaves_path(hot, stream.trader_id, stream.stream_id))
    newest = max(note.size for note in notes)
    first_lines = file_lines(stream.files[0], last=len(stream.files) == 1)
    if first_lines and len(sidecar) >= newest:
        leaf = line_leaf(first_lines[0])
        removed = 0 if sidecar[0] == leaf else next((i for i, held in enumerate(sidecar) if held == leaf), -1)
        tree = StreamTree(MemoryLeaves(sidecar), newest)
        if removed >= 0 and all(tree.root(note.size) == note.root for note in notes):
            return tree, sidecar, removed
    rebuilt = rebuild_stream(stream.files, sidecar)
    if rebuilt.sidecar_problem is not None:  # a damaged sidecar: the files alone, if none was removed
        rebuilt = rebuild_stream(stream.files, [])
    if len(rebuilt.leaves) < newest:
        raise BundleExportError(f"stream {stream.key}: its checkpoint covers {newest} line(s), its files hold "
                                f"{len(rebuilt.leaves)}: lines were removed")
    tree = StreamTree(MemoryLeaves(rebuilt.leaves), newest)
    for note in notes:
        if tree.root(note.size) != note.root:
            raise BundleExportError(f"stream {stream.key}: its lines do not rebuild the root of its checkpoint at "
                                    f"{note.size} line(s); `ledgerline verify` says more")
    return tree, rebuilt.leaves, rebuilt.removed


def _checkpoints(
    stream: _Stream, hot: Path, witness: Path | None
) -> tuple[StreamCheckpoint, StreamCheckpoint | None]:
    """The stream's checkpoint and the witness's note (None without a witness, or when it holds none
    for this stream: the bundle then shows the stream as not witnessed).

    When the witness holds fewer lines than the local checkpoint, the witness's note is the
    checkpoint: the bundle then claims only what a witness vouches for.
    """
    local_path = stream_checkpoint_path(hot, stream.trader_id, stream.stream_id)
    local = _note(local_path, stream, missing_ok=witness is not None)
    held = None if witness is None else _note(witness / f"{stream.key}.checkpoint", stream, missing_ok=True)
    if held is None:
        if local is None:
            raise BundleExportError(f"stream {stream.key}: no checkpoint, neither {local_path} nor the witness's")
        return local, None
    if local is None or local.size > held.size:
        return held, held
    return local, held


def _note(path: Path, stream: _Stream, *, missing_ok: bool) -> StreamCheckpoint | None:
    try:
        text = read_note_file(path, missing_ok=missing_ok)
        note = None if text is None else read_note(text, str(path))
    except (OSError, AuditError) as exc:
        raise BundleExportError(f"stream {stream.key}: no usable checkpoint {path}: {exc}") from None
    if note is not None and (note.trader_id, note.stream_id) != (stream.trader_id, stream.stream_id):
        raise BundleExportError(f"{path}: a checkpoint of {note.origin}, not of stream {stream.key}")
    return note


def _window(
    stream: _Stream, sources: list[Callable[[], list[bytes]]], removed: int, size: int, selection: Selection
) -> tuple[int, int, list[bytes]]:
    """``(first, end, lines of [first, end))``: the window's positions with its edge records, within ``size``.

    ``first`` is the last record recorded before the window (0 if none), ``end - 1`` the first record
    recorded at or after its end (``end = size`` if the checkpoint ends first). Only the lines from
    ``first`` on are kept in memory.

    Raises:
        BundleExportError: the checkpoint does not cover the window's first record, or the range
            starts in a file retention removed.
    """
    position = removed
    first, kept, end, first_in_window = 0, [], None, None
    for source in sources:
        lines = source()
        last = next(((at, ts) for at in range(len(lines) - 1, -1, -1) if (ts := _ts(lines[at])) is not None), None)
        if last is not None and last[1] < selection.start_ns and position + last[0] < size:
            # ts_recorded never goes backwards: the whole file was recorded before the window
            first, kept = position + last[0], lines[last[0]:]
            position += len(lines)
            continue
        for line in lines:
            ts = _ts(line)
            if ts is not None and ts < selection.start_ns and position < size:
                first, kept = position, [line]
            elif ts is not None and ts >= selection.end_ns:
                end = position + 1
                kept.append(line)
                break
            else:
                if first_in_window is None and selection.in_window(ts):
                    first_in_window = position
                kept.append(line)
            position += 1
        if end is not None:
            break
    if first < removed:
        raise _StartsInRemovedFiles(first)
    if size == 0 or (first_in_window is not None and first_in_window >= size):
        raise BundleExportError(f"stream {stream.key}: its checkpoint covers {size} line(s), which do not reach the "
                                f"window's first record (line {first_in_window}); export again after the next "
                                "checkpoint")
    end = size if end is None else min(end, size)
    return first, end, kept[: end - first]


class _StartsInRemovedFiles(Exception):
    """The range starts before the stream's first present hot file: its lines must come from the cold store."""


def _cold_sources(stream: _Stream, hot: Path, removed: int) -> list[Callable[[], list[bytes]]]:
    """Line sources for the stream's first ``removed`` lines, from the cold store (``cold.lines.source_lines``).

    The removed files are those with a manifest entry in ``<trail>/cold`` that come before the first
    present file; their seal copies must count exactly ``removed`` lines. Each line is still
    compared with the leaf the signed root proves before it goes into the bundle.

    Raises:
        BundleExportError: no cold store, or it does not hold the removed files' lines.
    """
    from audit_core.cold.lines import source_lines
    from audit_core.cold.manifest import MANIFEST_DIR, manifest_path, read_manifest

    first_present = parse_hot_file_name(stream.files[0])
    assert first_present is not None
    cold = hot.parent / "cold"
    names = []
    for entry in sorted((cold / MANIFEST_DIR).glob("*.json")) if cold.is_dir() else []:
        name = parse_hot_file_name(Path(entry.name[: -len(".json")]))
        if name is not None and name.stream_key == stream.key and name.order < first_present.order:
            names.append((name.order, entry.name[: -len(".json")]))
    sources: list[Callable[[], list[bytes]]] = []
    counted = 0
    for _, source in sorted(names):
        try:
            seal = read_manifest(manifest_path(cold, source))["seal"]
        except (OSError, AuditError) as exc:
            raise BundleExportError(f"stream {stream.key}: the cold store's entry for {source} cannot be read: "
                                    f"{exc}") from None
        counted += int(seal.get("records", 0)) if isinstance(seal, dict) else 0
        sources.append(partial(_cold_lines, stream, cold, source, source_lines))
    if counted != removed:
        raise BundleExportError(
            f"stream {stream.key}: the window starts in hot files retention removed (the first {removed} line(s) "
            f"of the stream); the cold store {cold} holds entries for {counted} of those lines: they cannot be "
            "exported")
    return sources


def _cold_lines(stream: _Stream, cold: Path, source: str, reader: Callable[[Path, str], Any]) -> list[bytes]:
    try:
        return [line[:-1] for line in reader(cold, source)]
    except AuditError as exc:
        raise BundleExportError(f"stream {stream.key}: the lines of removed hot file {source} cannot be read from "
                                f"the cold store: {exc}") from None


def _ts(line: bytes) -> int | None:
    """``ts_recorded`` of a record line, sliced without parsing it (None: not a record, or none)."""
    try:
        return split_record(line).ts_recorded
    except ValueError:
        return None


def _key_entry(public_key: Ed25519PublicKey) -> dict[str, Any]:
    import base64

    return {"key_id": key_id(public_key), "public_key": base64.b64encode(raw_public_key(public_key)).decode(),
            "roles": ["writer"], "not_before_ns": None, "not_after_ns": None}


def _write_zip(out: Path, index: dict[str, Any], lines: list[tuple[str, bytes]]) -> Path:
    """Write the bundle to a temporary name beside ``out``, sync it and rename it over ``out``."""
    temp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        with zipfile.ZipFile(temp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            entries = [(INDEX_ENTRY, json.dumps(index, indent=1, ensure_ascii=False).encode() + b"\n"), *lines]
            for name, data in entries:
                info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, data)
        with temp.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, out)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    directory = os.open(out.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return out

