"""The ``ledgerline`` command: one thin function per verb over the library function of that name.

Errors become one-line messages and exit codes here, at the edge, and nowhere else: 0 when all is
well, 1 when something failed verification, 2 for a usage mistake (a missing file, an unusable key,
a sequence that is not in the file).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from audit_core.checkpoint import verifier_key
from audit_core.errors import AuditError, AuditIntegrityError
from audit_core.integrity import verify as verify_trail
from audit_core.proofs import check_proof as check_proof_file
from audit_core.proofs import prove as prove_record
from audit_core.reader import describe_event
from audit_core.reader import tail as tail_trail
from audit_core.signing import generate_keypair, load_public_key

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def verify(args: argparse.Namespace) -> int:
    """Verify checksums, sequences, hash chains and seals; exit 1 if anything failed.

    With --public-key every seal must carry a valid Ed25519 signature of that key (and its
    checkpoint, if present, must verify); without it signatures are not checked.

    example:
      ledgerline verify trail/ --hmac-key-env LEDGERLINE_KEY --public-key ledgerline.pub
    """
    key = _hmac_key(args.hmac_key_env)
    report = verify_trail(args.path, hmac_key=key, public_key=_public_key(args.public_key))
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.to_text(args.max_failures))
    return EXIT_OK if report.ok else EXIT_FAILED


def tail(args: argparse.Namespace) -> int:
    """Print the newest events, one line each, oldest first.

    example:
      ledgerline tail trail/ -n 50
    """
    for event in tail_trail(args.path, args.n):
        print(event.to_line().decode().rstrip("\n") if args.json else describe_event(event))
    return EXIT_OK


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
    """Print a JSON inclusion proof that the record with --sequence N is in sealed FILE.

    The proof holds the record line, its leaf index, the tree size, the RFC 6962 audit path, the
    root and the file's seal, so `ledgerline check-proof` needs nothing else.

    example:
      ledgerline prove --sequence 17 trail/hot/audit.TRADER-001.main.2026-03-01.0000.jsonl > proof.json
    """
    print(json.dumps(prove_record(args.file, args.sequence), indent=2))
    return EXIT_OK


def check_proof(args: argparse.Namespace) -> int:
    """Check an inclusion proof using only its own contents; exit 1 if it does not hold.

    With --public-key the seal inside must be signed by that key; without it the signature is not
    checked, and the proof shows only that the record is in the tree the enclosed seal names.

    example:
      ledgerline check-proof proof.json --public-key ledgerline.pub
    """
    checked = check_proof_file(args.proof, public_key=_public_key(args.public_key))
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


def _hmac_key(env_var: str | None) -> bytes | None:
    if env_var is None:
        return None
    value = os.environ.get(env_var)
    if not value:
        raise AuditError(f"--hmac-key-env {env_var}: the variable is unset or empty")
    return value.encode()


def _public_key(path: str | None) -> Ed25519PublicKey | None:
    return None if path is None else load_public_key(path)


def _add_verb(
    verbs: argparse._SubParsersAction[argparse.ArgumentParser],
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
    parser = argparse.ArgumentParser(prog="ledgerline", description="Tamper-evident audit trail for trading systems.")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")

    p = _add_verb(verbs, "verify", verify)
    p.add_argument("path", help="a hot JSONL file or a trail directory")
    p.add_argument("--hmac-key-env", metavar="VAR", help="environment variable holding the HMAC key")
    p.add_argument("--public-key", metavar="KEY", help="public key file: require seals signed by it")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--max-failures", type=int, default=50, help="failures to list (default 50)")

    p = _add_verb(verbs, "tail", tail)
    p.add_argument("path", help="a hot JSONL file or a trail directory")
    p.add_argument("-n", type=int, default=20, help="how many events (default 20)")
    p.add_argument("--json", action="store_true", help="print the raw record lines")

    p = _add_verb(verbs, "keygen", keygen)
    p.add_argument("private", metavar="PRIVATE", help="file to create for the private key")
    p.add_argument("public", metavar="PUBLIC", help="file to create for the public key")

    p = _add_verb(verbs, "prove", prove)
    p.add_argument("file", metavar="FILE", help="a sealed hot JSONL file")
    p.add_argument("--sequence", type=int, required=True, metavar="N", help="sequence number of the record")

    p = _add_verb(verbs, "check-proof", check_proof)
    p.add_argument("proof", metavar="PROOF.json", help="a proof printed by `ledgerline prove`")
    p.add_argument("--public-key", metavar="KEY", help="public key file: require the seal to be signed by it")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except AuditIntegrityError as exc:
        print(f"ledgerline {args.verb}: FAILED: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (AuditError, OSError, ValueError) as exc:
        print(f"ledgerline {args.verb}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return code


if __name__ == "__main__":
    sys.exit(main())
