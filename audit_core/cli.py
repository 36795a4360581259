"""The ``ledgerline`` command: one thin function per verb over the library function of that name.

Errors become one-line messages and exit codes here, at the edge, and nowhere else: 0 when all is
well, 1 when something failed verification or a file of the trail could not be read (a crafted or
damaged seal, manifest, Parquet file or record line: named, never a traceback), 2 for a usage
mistake (a missing file, an unusable key, a sequence that is not in the file, an argument out of
range).
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from audit_core._cli_args import (
    MAX_JOBS,
    MAX_LISTED_FAILURES,
    MAX_SEQUENCE,
    MAX_TAIL,
    add_signing_options,
    existing_path,
    hmac_key_from_env,
    instant_ns,
    int_between,
    iso,
    progress_bar,
    public_key_file,
    signing_config,
    signing_key_from,
    trusted_keys_file,
    utc_datetime,
)
from audit_core._layout import trail_files
from audit_core.cold.converter import UNREADABLE
from audit_core.cold.retention import MAX_RETENTION_DAYS
from audit_core.config import AuditConfig
from audit_core.errors import AuditError, AuditFormatError, AuditIntegrityError
from audit_core.hot.reader import describe_event, printable, tail_streams
from audit_core.trust.checkpoint import verifier_key
from audit_core.trust.proofs import check_proof as check_proof_file
from audit_core.trust.proofs import prove as prove_record
from audit_core.trust.signing import generate_keypair, load_public_key
from audit_core.verification import consistency_proof, verify_trail

if TYPE_CHECKING:

    from audit_core.events import AuditEvent
    from audit_core.trust.report import VerificationReport

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: What a shell reports for a command killed by SIGPIPE (128 + 13): the output was cut, so not "OK".
EXIT_CLOSED_PIPE = 141


def verify(args: argparse.Namespace) -> int:
    """Verify checksums, sequences, hash chains and seals; exit 1 if anything failed.

    Hot JSONL files anywhere under PATH are verified as chains; every cold store under PATH (a
    directory with day partitions of Parquet, a _manifest or a _root.json) is verified against its
    signed root and manifests: every Parquet file's SHA-256, every record's checksum and chain, the
    seals, and every typed column derived again from its record. With --public-key every seal
    (and seal copy) must carry a valid Ed25519 signature of that key (and its checkpoint, if
    present, must verify); manifests and the cold root must be signed by --cold-public-key (default:
    the same key). With --trusted-keys FILE (docs/format.md section 6) instead, every signature must
    be by a key the file lists for the document's role (writer: seals, checkpoints; converter:
    manifests, root, journals) inside its window: key_untrusted / key_outside_window otherwise; key
    rotations in the trail must be endorsed by the key they replace (key_rotation_invalid). Without a
    public key signatures are not checked. A path that does not exist or
    holds nothing to verify fails (nothing_verified) unless --allow-empty. With --witness DIR (a
    witness directory) or --checkpoint FILE (one stream checkpoint), every line a checkpoint covers
    must still be there unchanged: truncation, rollback and a deleted stream fail. A sealed file whose
    seal is authenticated (HMAC with the key, or signed by a trusted key) and whose chain runs unbroken
    to the seal's last hash takes its Merkle root and file hash from the seal, which vouches for them
    through that hash; --deep recomputes them for every file (and so catches a signed root that
    disagrees with the records).

    example:
      ledgerline verify trail/ --hmac-key-env LEDGERLINE_KEY --public-key ledgerline.pub
      ledgerline verify trail/ --witness /mnt/witness --public-key ledgerline.pub
      ledgerline verify trail/ --trusted-keys trusted.json
    """
    key = hmac_key_from_env(args.hmac_key_env)
    trusted = trusted_keys_file(args.trusted_keys, args.public_key, args.cold_public_key)
    public_key = public_key_file(args.public_key)
    cold_public_key = public_key_file(args.cold_public_key)
    progress = _verify_progress() if args.progress or (args.progress is None and sys.stderr.isatty()) else None
    trail = verify_trail(Path(args.path), hmac_key=key, public_key=public_key, cold_public_key=cold_public_key,
                         trusted_keys=trusted, allow_empty=args.allow_empty, witness=args.witness,
                         checkpoint=args.checkpoint, progress=progress, jobs=args.jobs, deep=args.deep)
    for label, report in trail.parts:
        print(json.dumps(report.to_dict(), indent=2) if args.json else _labelled(label, report, args.max_failures))
    return EXIT_OK if trail.ok else EXIT_FAILED


def _verify_progress() -> Callable[[str], None]:
    """Progress of ``verify`` on stderr: which part it is on and how long the previous one took."""
    started = [time.perf_counter()]

    def show(label: str) -> None:
        now = time.perf_counter()
        took = f" ({now - started[0]:.1f} s)" if label == "done" else ""
        kind, _, where = label.partition(" ")
        what = "done" if label == "done" else f"verifying {_PART_CHECKS.get(kind, kind).split(':')[0]} ({where})..."
        print(f"ledgerline verify: {what}{took}", file=sys.stderr, flush=True)

    return show


#: What each part of ``verify_trail`` checks, by the first word of its label.
_PART_CHECKS = {
    "hot": "hot JSONL: record checksums, sequences, hash chains, seals",
    "cold": "cold Parquet: file hashes, manifests, cold root, every row against its record and seal",
    "anchors": "witness anchors: every stream checkpoint held against the trail's lines and tree sidecars",
    "keys": "key history: each rotation endorsed by the key it replaces; revocations",
    "trail": "trail",
}


def _labelled(label: str, report: VerificationReport, max_failures: int) -> str:
    """A part's report under a heading that names the part and what it checked."""
    kind, _, where = label.partition(" ")
    lines = report.to_text(max_failures).splitlines()
    return "\n".join([f"{_PART_CHECKS.get(kind, kind)} ({where})", *("  " + line for line in lines)])


def convert(args: argparse.Namespace) -> int:
    """Convert sealed, verified hot files to partitioned Parquet; exit 1 if any failed verification.

    Safe to run again at any time (files already converted are skipped) and after a crash. Live
    (unsealed) files are skipped until they are sealed. Manifest entries and the cold root are
    authenticated with the HMAC key and signed with --signing-key (the writer's key, or one of the
    converter's own whose public key verifiers pin with --cold-public-key).

    With --rebuild, first derive the columns of every Parquet file written with an older cold
    projection again from its verified records (the store is verified before, the rebuilt copy
    after, and only then swapped in; each manifest entry records what it replaced).

    example:
      ledgerline convert trail/hot trail/cold --public-key ledgerline.pub --signing-key converter.key
      ledgerline convert trail/hot trail/cold --rebuild --hmac-key-env LEDGERLINE_KEY
    """
    from audit_core.cold.converter import ParquetConverter

    converter = ParquetConverter(
        existing_path(args.hot), args.cold, hmac_key=hmac_key_from_env(args.hmac_key_env),
        public_key=trusted_keys_file(args.trusted_keys, args.public_key) or public_key_file(args.public_key),
        signing_key=signing_key_from(args),
    )
    if args.rebuild:
        with progress_bar(args.quiet, "rebuilding") as progress:
            print(converter.rebuild(progress=progress).summary())
    with progress_bar(args.quiet) as progress:
        results = converter.convert_all(progress=progress)
    failed = [r for r in results if r.failures]
    unreadable = sum(r.skipped == UNREADABLE for r in failed)
    for result in results:
        if result.converted:
            print(f"converted {result.source}: {result.rows} rows -> {', '.join(result.outputs)}")
        elif result.failures:
            print(f"NOT converted {result.source}: {result.skipped}: {result.failures[0]}")
        elif not args.quiet:
            print(f"skipped {result.source}: {result.skipped}")
    converted = sum(r.converted for r in results)
    print(f"{converted} converted, {len(failed) - unreadable} failed verification, "
          + (f"{unreadable} unreadable, " if unreadable else "")
          + f"{len(results) - converted - len(failed)} skipped")
    return EXIT_FAILED if failed else EXIT_OK


def stats(args: argparse.Namespace) -> int:
    """Files, rows, bytes and time range of every day partition of a cold store.

    A Parquet file whose footer cannot be read is left out, named on stderr, and the exit code is 1.

    example:
      ledgerline stats trail/cold
    """
    from audit_core.cold.converter import ParquetConverter

    unreadable = _SkippedReporter("stats")
    partitions = ParquetConverter(args.cold, existing_path(args.cold)).get_partition_stats(on_error=unreadable)
    code = EXIT_FAILED if unreadable.count else EXIT_OK
    if args.json:
        print(json.dumps([vars(p) for p in partitions], indent=2))
        return code
    print(f"{'partition':<28} {'files':>5} {'rows':>10} {'bytes':>12}  first .. last ts_event (UTC)")
    for p in partitions:
        span = f"{iso(p.first_ts_event)} .. {iso(p.last_ts_event)}"
        print(f"{p.partition:<28} {p.files:>5} {p.rows:>10} {p.bytes:>12}  {span}")
    print(f"{len(partitions)} partition(s), {sum(p.rows for p in partitions)} rows, "
          f"{sum(p.bytes for p in partitions)} bytes"
          + (f"; {unreadable.count} unreadable file(s) left out" if unreadable.count else ""))
    return code


def retention(args: argparse.Namespace) -> int:
    """Remove cold partitions and converted hot files older than --days; the purge is recorded first.

    A sys.retention record naming everything removed (with the seal hashes of removed hot files)
    is appended to the trail (stream "retention" in --hot) before anything goes. Legal holds in
    COLD/_legal_holds.json pin date ranges. --days 0 keeps everything. A keyed trail needs
    --hmac-key-env and a signed one --signing-key (or --signing-key-env): without them nothing is
    touched (exit 2). A journal in COLD/_retention that does not authenticate, or names a path
    outside the trail, stops the run before anything is removed (exit 1).

    example:
      ledgerline retention trail/cold --hot trail/hot --days 90 --dry-run
    """
    from audit_core.cold.retention import apply_retention

    cold = existing_path(args.cold)
    hot = Path(args.hot) if args.hot else cold.parent / "hot"
    config = None
    signing = signing_config(args)
    if args.trader_id or args.hmac_key_env or signing:
        config = AuditConfig(
            base_path=hot.parent, hmac_key_env=args.hmac_key_env, **signing,
            **({"trader_id": args.trader_id} if args.trader_id else {}),
        )
    plan = apply_retention(
        hot if hot.exists() else None, cold, days=args.days, now=args.now, dry_run=args.dry_run, config=config,
        public_key=public_key_file(args.public_key),
    )
    verb = "would remove" if plan.dry_run else "removed"
    if plan.resumed:
        print(f"finished an interrupted purge (plan {plan.plan_id})")
    for partition in plan.partitions:
        print(f"{verb} partition {partition}")
    for removed in plan.hot_files:
        print(f"{verb} hot file {removed.file} (last hash {str(removed.last_hash)[:16]}...)")
    for item, why in plan.kept:
        print(f"kept {item}: {why}")
    recorded = "" if plan.record_sequence is None else f"; recorded as sys.retention sequence {plan.record_sequence}"
    print(f"cutoff {plan.cutoff}: {verb} {len(plan.partitions)} partition(s) and {len(plan.hot_files)} hot file(s)"
          f"{recorded}")
    return EXIT_OK


def update_root(args: argparse.Namespace) -> int:
    """Rewrite the cold store's signed root (COLD/_root.json) to commit to what the store holds now.

    The converter and retention do this themselves. Run it by hand after a deliberate change to
    COLD/_legal_holds.json, with --accept-legal-holds: until then verify fails and retention
    refuses, so a hold deleted or edited behind the root's back lifts nothing. A root that does
    not authenticate with the keys given is never overwritten (exit 1).

    example:
      ledgerline update-root trail/cold --accept-legal-holds --hmac-key-env LEDGERLINE_KEY --signing-key converter.key
    """
    from audit_core.cold.manifest import update_cold_root

    root = update_cold_root(
        existing_path(args.cold), hmac_key_from_env(args.hmac_key_env),
        signing_key_from(args),
        accept_legal_holds=args.accept_legal_holds,
    )
    print(f"root rewritten: {len(root['manifests'])} manifest entries, {len(root['parquet'])} Parquet files, "
          f"{len(root['retention_journals'])} retention journals, legal holds {root['legal_holds_sha256'][:16]}")
    return EXIT_OK


def tail(args: argparse.Namespace) -> int:
    """Print the newest events, one line each, oldest first; exit 1 if a line had to be skipped.

    Each line starts with the stream it came from (trader.stream). --stream, --type and --since
    keep only matching events (repeat an option for several; a type ending in * is a prefix);
    --follow keeps printing new events as they are appended (Ctrl-C stops). A line among the
    newest that is not a record (and not a torn write that crash recovery described) is left out
    and named on stderr; `ledgerline verify` says more.

    example:
      ledgerline tail trail/ -n 50 --type 'param.*' --since 2026-01-07T14:00
      ledgerline tail trail/hot --stream nautilus --follow
    """
    unreadable = _SkippedReporter("tail")
    accept = _tail_filter(args.stream, args.type, args.since)
    offsets: dict[Path, int] = {}
    n = args.n
    while True:
        for stream, event in tail_streams(args.path, n, on_error=unreadable, accept=accept, after=offsets):
            # Control characters and ANSI sequences in a record are shown escaped, never sent to the terminal.
            print(printable(event.to_line().decode().rstrip("\n"), json=True) if args.json
                  else f"{printable(stream):<28} {describe_event(event)}", flush=args.follow)
        if not args.follow:
            return EXIT_FAILED if unreadable.count else EXIT_OK
        n = MAX_TAIL  # from now on, every new line
        time.sleep(args.interval)


def _tail_filter(streams: list[str] | None, types: list[str] | None,
                 since: dt.datetime | None) -> Callable[[str, AuditEvent], bool] | None:
    """``tail``'s --stream/--type/--since as one predicate; a type ending in ``*`` is a prefix (``trade.*``)."""
    if not (streams or types or since):
        return None
    since_ns = None if since is None else int(since.timestamp()) * 1_000_000_000 + since.microsecond * 1_000

    def accept(stream: str, event: AuditEvent) -> bool:
        if streams and not any(stream == s or stream.endswith(f".{s}") for s in streams):
            return False
        if types and not any(event.event_type.startswith(t[:-1]) if t.endswith("*") else event.event_type == t
                             for t in types):
            return False
        return since_ns is None or event.ts_event >= since_ns

    return accept


def keygen(args: argparse.Namespace) -> int:
    """Create an Ed25519 key pair for signing seals (PEM files; the private one gets mode 0600).

    Give the private key to the writer (AuditConfig signing_key_path or signing_key_env) and the
    public key to whoever verifies. Existing files are never overwritten.

    example:
      ledgerline keygen ledgerline.key ledgerline.pub
    """
    key_id = generate_keypair(args.private, args.public)
    public_key = load_public_key(args.public)
    print(f"wrote {args.private} (private: keep it secret) and {args.public} (public)")
    print(f"key id {key_id}; signed-note verifier key {verifier_key(public_key)}")
    return EXIT_OK


def prove(args: argparse.Namespace) -> int:
    """Print a JSON inclusion proof that the record with --sequence N is in sealed FILE; or, with
    --consistency OLD NEW TRAIL, check that stream checkpoint NEW extends OLD (the log only grew).

    An inclusion proof holds the record line, its leaf index, the tree size, the RFC 6962 audit
    path, the root and the file's seal, so `ledgerline check-proof` needs nothing else. A consistency
    proof (RFC 9162 section 2.1.4) is built from TRAIL (its files and tree sidecar), verified against
    both checkpoints' roots and printed; exit 1 if it does not hold. The notes are authenticated
    with --public-key or --hmac-key-env when given.

    example:
      ledgerline prove --sequence 17 trail/hot/audit.TRADER-001.main.2026-03-01.0000.jsonl > proof.json
      ledgerline prove --consistency monday.checkpoint friday.checkpoint trail/ --public-key ledgerline.pub
    """
    if args.consistency is not None:
        if args.file is None or args.sequence is not None:
            raise ValueError("--consistency OLD NEW takes the trail as its one path, and no --sequence")
        old, new = args.consistency
        proof = consistency_proof(old, new, args.file, hmac_key=hmac_key_from_env(args.hmac_key_env),
                                  public_key=trusted_keys_file(args.trusted_keys, args.public_key)
                                  or public_key_file(args.public_key))
        print(json.dumps(proof, indent=2))
        print(f"OK: {proof['origin']} at {proof['new_size']} line(s) extends its checkpoint at {proof['old_size']}",
              file=sys.stderr)
        return EXIT_OK
    if args.file is None or args.sequence is None:
        raise ValueError("prove needs FILE and --sequence N (or --consistency OLD NEW TRAIL)")
    print(json.dumps(prove_record(args.file, args.sequence), indent=2))
    return EXIT_OK


def check_proof(args: argparse.Namespace) -> int:
    """Check an inclusion proof using only its own contents; exit 1 if it does not hold.

    With --public-key the seal inside must be signed by that key (with --trusted-keys FILE, by a
    writer key of the file, inside its window, at the seal's sealed_at_ns); without it the signature is not
    checked, and the proof shows only that the record is in the tree the enclosed seal names.

    example:
      ledgerline check-proof proof.json --public-key ledgerline.pub
    """
    trusted = trusted_keys_file(args.trusted_keys, args.public_key)
    checked = check_proof_file(args.proof, public_key=trusted or public_key_file(args.public_key))
    signed = (
        f"seal signed by key {checked.signing_key_id}"
        if checked.signing_key_id
        else "seal signature not checked (no --public-key)"
    )
    print(
        f"OK: sequence {checked.sequence} is leaf {checked.index} of {checked.tree_size} in {checked.file}, "
        f"root {checked.root}; {signed}"
    )
    return EXIT_OK


def export(args: argparse.Namespace) -> int:
    """Write an evidence bundle: the records of TRAIL recorded in [--start, --end), with proofs.

    One file with, per stream, the lines of the window and its edge records exactly as written, an
    RFC 6962 range proof against the stream's signed checkpoint and, with --witness, the witness's
    note and a consistency proof. --type (a trailing .* is a prefix), --source and --param select
    the records the bundle is about; with --redact the window's other records are left out as
    hashes (the auditor still sees that nothing was removed). --start/--end take an ISO time (UTC)
    or nanoseconds since the epoch. Check it with `ledgerline verify-bundle`.

    example:
      ledgerline export trail/ --start 2026-01-07 --end 2026-01-08 --type 'param.*' -o case.bundle
      ledgerline export trail/ --start 2026-01-07T14:00 --end 2026-01-07T15:00 --param risk_multiplier \\
          --redact --witness /mnt/witness --public-key ledgerline.pub -o case.bundle
    """
    from audit_core.evidence import export_bundle

    keys = [] if args.public_key is None else [load_public_key(args.public_key)]
    out = export_bundle(existing_path(args.trail), args.output, start_ns=args.start, end_ns=args.end,
                        event_types=args.type, sources=args.source, params=args.param, redact=args.redact,
                        witness=args.witness, public_keys=keys)
    print(f"wrote {out} ({out.stat().st_size} bytes); check it with: ledgerline verify-bundle {out}")
    return EXIT_OK


def verify_bundle(args: argparse.Namespace) -> int:
    """Check an evidence bundle offline and say what it proves and what it does not; exit 1 if invalid.

    Trust comes only from the keys given: --trusted-keys (a trusted-keys file, with roles and
    validity windows) or --public-key (one key). Without either the claim is at best
    "unauthenticated". Claims: complete, complete-redacted, positions-only, unauthenticated, invalid.

    example:
      ledgerline verify-bundle case.bundle --trusted-keys trusted-keys.json
      ledgerline verify-bundle case.bundle --public-key ledgerline.pub --json
    """
    from audit_core.evidence import verify_bundle as check
    from audit_core.trust.keyring import TrustedKeys

    if args.public_key and args.trusted_keys:
        raise ValueError("give --public-key or --trusted-keys, not both")
    if not Path(args.bundle).is_file():
        raise AuditError(f"{args.bundle}: no such file")
    try:
        trusted = TrustedKeys.load(args.trusted_keys) if args.trusted_keys else None
    except AuditFormatError as exc:  # the auditor's own file: a usage mistake, not a bundle that failed
        raise AuditError(f"--trusted-keys: {exc}") from None
    report = check(args.bundle, trusted_keys=trusted, public_key=public_key_file(args.public_key),
                   hmac_key=hmac_key_from_env(args.hmac_key_env))
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.to_text())
    return EXIT_OK if report.valid else EXIT_FAILED


class _SkippedReporter:
    """An ``on_error`` callback: one line on stderr per file the library left out, counted."""

    def __init__(self, verb: str) -> None:
        self.verb, self.count = verb, 0

    def __call__(self, error: AuditFormatError) -> None:
        self.count += 1
        print(f"ledgerline {self.verb}: skipped {error}", file=sys.stderr)


def keys(args: argparse.Namespace) -> int:
    """Draft a trusted-keys file from a trail's key rotations and revocations (`ledgerline keys trusted`).

    The initial key (--initial-key, the key the trail was first signed with) is trusted as a writer
    until the first rotation away from it; each key a valid rotation introduces (endorsed by the key
    it replaces) from its rotation time until it is rotated out; a revocation ends a key's window at
    its not_after_ns. --converter-key adds a converter key with no window. Review the file before
    you trust it: it says what the trail claims, checked only as far as the endorsements go.

    example:
      ledgerline keys trusted trail/ --initial-key ledgerline-2026.pub -o trusted.json
      ledgerline verify trail/ --trusted-keys trusted.json
    """
    from audit_core.trust.key_history import draft_trusted_keys, read_key_history

    history = read_key_history(trail_files(existing_path(args.trail))[0])
    for event in history.problems:
        print(f"ledgerline keys: ignored: {event.describe()}", file=sys.stderr)
    drafted = draft_trusted_keys(history, load_public_key(args.initial_key),
                                 converter_keys=[load_public_key(path) for path in args.converter_key or []])
    text = json.dumps(drafted.to_document(), indent=1) + "\n"
    if args.output is None:
        print(text, end="")
    else:
        with open(args.output, "x", encoding="utf-8") as out:  # never overwrite an auditor's file
            out.write(text)
        print(f"wrote {args.output}: {len(drafted.keys)} key(s); {len(history.events)} key record(s) in the trail",
              file=sys.stderr)
    return EXIT_OK


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (``ledgerline VERB: error: ...``) and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _add_verb(
    verbs: argparse._SubParsersAction[_Parser],
    name: str,
    run: Callable[[argparse.Namespace], int],
) -> argparse.ArgumentParser:
    doc = inspect.cleandoc(run.__doc__ or "")
    parser = verbs.add_parser(
        name, help=doc.splitlines()[0], description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.set_defaults(run=run)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ledgerline", description="Tamper-evident audit trail for trading systems.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")

    p = _add_verb(verbs, "verify", verify)
    p.add_argument("path", help="a hot JSONL file or a trail directory")
    p.add_argument("--hmac-key-env", metavar="VAR", help="environment variable holding the HMAC key")
    p.add_argument("--public-key", metavar="KEY", help="public key file: require seals signed by it")
    p.add_argument("--cold-public-key", metavar="KEY",
                   help="public key file: require cold manifests and root signed by it (default: --public-key)")
    p.add_argument("--trusted-keys", metavar="FILE",
                   help="trusted-keys file (roles and windows) instead of --public-key/--cold-public-key")
    p.add_argument("--allow-empty", action="store_true",
                   help="pass when there is nothing to verify (default: a missing or empty path fails)")
    p.add_argument("--witness", metavar="DIR", help="witness directory: every stream checkpoint in it must hold")
    p.add_argument("--checkpoint", metavar="FILE", help="a stream checkpoint note that must hold")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--deep", action="store_true",
                   help="recompute every sealed file's Merkle root and file hash, also where an authenticated "
                        "seal vouches for them")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="say on stderr which part is being verified (default: when stderr is a terminal)")
    p.add_argument("--max-failures", type=int_between(0, MAX_LISTED_FAILURES), default=50,
                   help="failures to list (default 50)")
    p.add_argument("--jobs", type=int_between(1, MAX_JOBS), default=None, metavar="N",
                   help="worker processes (default: all cores; a small trail is verified in one)")

    p = _add_verb(verbs, "convert", convert)
    p.add_argument("hot", metavar="HOT", help="hot directory (or one hot file)")
    p.add_argument("cold", metavar="COLD", help="cold store root (created if missing)")
    p.add_argument("--hmac-key-env", metavar="VAR", help="environment variable holding the HMAC key")
    p.add_argument("--public-key", metavar="KEY", help="public key file: convert only files whose seals it signed")
    p.add_argument("--trusted-keys", metavar="FILE", help="trusted-keys file: convert only files its writers sealed")
    add_signing_options(p, "sign manifest entries and the cold root")
    p.add_argument("--rebuild", action="store_true",
                   help="first rebuild the columns of files written with an older cold projection")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no lines for skipped files")

    p = _add_verb(verbs, "stats", stats)
    p.add_argument("cold", metavar="COLD", help="cold store root")
    p.add_argument("--json", action="store_true", help="print the partitions as JSON")

    p = _add_verb(verbs, "retention", retention)
    p.add_argument("cold", metavar="COLD", help="cold store root")
    p.add_argument("--days", type=int_between(0, MAX_RETENTION_DAYS), required=True, metavar="N",
                   help="keep N days (0: keep everything)")
    p.add_argument("--hot", metavar="DIR", help="hot directory (default: COLD/../hot)")
    p.add_argument("--dry-run", action="store_true", help="print what would be removed; change nothing")
    p.add_argument("--now", type=utc_datetime, metavar="ISO", help="the current time (default: now, UTC)")
    p.add_argument("--trader-id", metavar="ID", help="trader id of the retention stream (default: the trail's)")
    p.add_argument("--hmac-key-env", metavar="VAR", help="environment variable holding the HMAC key")
    p.add_argument("--public-key", metavar="KEY", help="public key file: hot files' seals must be signed by it")
    add_signing_options(p, "a signed trail's key: signs journals and seals")

    p = _add_verb(verbs, "update-root", update_root)
    p.add_argument("cold", metavar="COLD", help="cold store root")
    p.add_argument("--accept-legal-holds", action="store_true",
                   help="commit to the legal holds file as it is now (after a deliberate change)")
    p.add_argument("--hmac-key-env", metavar="VAR", help="environment variable holding the HMAC key")
    add_signing_options(p, "sign the root (the converter's key)")

    p = _add_verb(verbs, "tail", tail)
    p.add_argument("path", help="a hot JSONL file or a trail directory")
    p.add_argument("-n", type=int_between(1, MAX_TAIL), default=20, help="how many events (default 20)")
    p.add_argument("--json", action="store_true", help="print the raw record lines")
    p.add_argument("--stream", action="append", metavar="NAME", help="only this stream (trader.stream or stream)")
    p.add_argument("--type", action="append", metavar="TYPE", help="only this event type (a trailing * is a prefix)")
    p.add_argument("--since", type=utc_datetime, metavar="ISO", help="only events at or after this time (UTC)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing events as they are appended")
    p.add_argument("--interval", type=float, default=1.0, metavar="S", help=argparse.SUPPRESS)

    p = _add_verb(verbs, "keygen", keygen)
    p.add_argument("private", metavar="PRIVATE", help="file to create for the private key")
    p.add_argument("public", metavar="PUBLIC", help="file to create for the public key")

    p = _add_verb(verbs, "prove", prove)
    p.add_argument("file", metavar="FILE", nargs="?", help="a sealed hot JSONL file (with --consistency: the trail)")
    p.add_argument("--sequence", type=int_between(0, MAX_SEQUENCE), metavar="N", help="sequence number of the record")
    p.add_argument("--consistency", nargs=2, metavar=("OLD", "NEW"), help="two checkpoint files of one stream")
    p.add_argument("--public-key", metavar="KEY", help="with --consistency: the notes must be signed by it")
    p.add_argument("--trusted-keys", metavar="FILE", help="with --consistency: the notes' trusted keys")
    p.add_argument("--hmac-key-env", metavar="VAR", help="with --consistency: the notes' HMAC key")

    p = _add_verb(verbs, "check-proof", check_proof)
    p.add_argument("proof", metavar="PROOF.json", help="a proof printed by `ledgerline prove`")
    p.add_argument("--public-key", metavar="KEY", help="public key file: require the seal to be signed by it")
    p.add_argument("--trusted-keys", metavar="FILE", help="trusted-keys file: the seal's key must be a writer in it")

    p = _add_verb(verbs, "keys", keys)
    p.add_argument("action", choices=["trusted"], help="trusted: draft a trusted-keys file")
    p.add_argument("trail", metavar="TRAIL", help="the trail (or its hot directory)")
    p.add_argument("--initial-key", metavar="PUB", required=True, help="public key the trail was first signed with")
    p.add_argument("--converter-key", metavar="PUB", action="append", help="a converter public key to list")
    p.add_argument("-o", "--output", metavar="FILE", help="file to create (default: print)")

    p = _add_verb(verbs, "export", export)
    p.add_argument("trail", metavar="TRAIL", help="the trail directory")
    p.add_argument("--start", type=instant_ns, required=True, metavar="WHEN", help="window start (ISO UTC or ns)")
    p.add_argument("--end", type=instant_ns, required=True, metavar="WHEN", help="window end, exclusive")
    p.add_argument("--type", action="append", metavar="PATTERN", help="event type (a trailing .* is a prefix)")
    p.add_argument("--source", action="append", metavar="SOURCE", help="only records of this source")
    p.add_argument("--param", action="append", metavar="NAME", help="only changes of this parameter")
    p.add_argument("--redact", action="store_true", help="give the window's other records as hashes only")
    p.add_argument("--witness", metavar="DIR", help="witness directory: add its notes and consistency proofs")
    p.add_argument("--public-key", metavar="KEY", help="public key file to list in the bundle (for information)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the bundle file to write")

    p = _add_verb(verbs, "verify-bundle", verify_bundle)
    p.add_argument("bundle", metavar="FILE", help="an evidence bundle")
    p.add_argument("--public-key", metavar="KEY", help="public key file: the one writer key to trust")
    p.add_argument("--trusted-keys", metavar="FILE", help="trusted-keys file: keys with roles and windows")
    p.add_argument("--hmac-key-env", metavar="VAR", help="environment variable holding the trail's HMAC key")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ledgerline")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at interpreter exit
    except BrokenPipeError:
        return _reader_went_away()
    except KeyboardInterrupt:  # `tail --follow` ends this way
        return EXIT_OK
    except (AuditIntegrityError, AuditFormatError) as exc:  # a damaged trail, not a usage mistake
        print(f"ledgerline {args.verb}: FAILED: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (AuditError, OSError, ValueError) as exc:
        print(f"ledgerline {args.verb}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return code


def _reader_went_away() -> int:
    """``ledgerline verify | head``: the reader closed the pipe; stop quietly, with the exit status of ``cat``."""
    # Python would report the failed flush of stdout at exit: point stdout at /dev/null first.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_CLOSED_PIPE


if __name__ == "__main__":
    sys.exit(main())
