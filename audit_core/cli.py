"""The ``ledgerline`` command: one thin function per verb over the library function of that name.

Errors become one-line messages and exit codes here, at the edge, and nowhere else.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from audit_core.errors import AuditError
from audit_core.integrity import verify as verify_trail
from audit_core.reader import describe_event
from audit_core.reader import tail as tail_trail

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def verify(args: argparse.Namespace) -> int:
    """Verify checksums, sequences and hash chains; exit 1 if anything failed."""
    key = _hmac_key(args.hmac_key_env)
    report = verify_trail(args.path, hmac_key=key)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.to_text(args.max_failures))
    return EXIT_OK if report.ok else EXIT_FAILED


def tail(args: argparse.Namespace) -> int:
    """Print the newest events, one line each, oldest first."""
    for event in tail_trail(args.path, args.n):
        print(event.to_line().decode().rstrip("\n") if args.json else describe_event(event))
    return EXIT_OK


def _hmac_key(env_var: str | None) -> bytes | None:
    if env_var is None:
        return None
    value = os.environ.get(env_var)
    if not value:
        raise AuditError(f"--hmac-key-env {env_var}: the variable is unset or empty")
    return value.encode()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ledgerline", description="Tamper-evident audit trail for trading systems.")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")

    p = verbs.add_parser("verify", help=verify.__doc__, description=verify.__doc__)
    p.add_argument("path", help="a hot JSONL file or a trail directory")
    p.add_argument("--hmac-key-env", metavar="VAR", help="environment variable holding the HMAC key")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--max-failures", type=int, default=50, help="failures to list (default 50)")
    p.set_defaults(run=verify)

    p = verbs.add_parser("tail", help=tail.__doc__, description=tail.__doc__)
    p.add_argument("path", help="a hot JSONL file or a trail directory")
    p.add_argument("-n", type=int, default=20, help="how many events (default 20)")
    p.add_argument("--json", action="store_true", help="print the raw record lines")
    p.set_defaults(run=tail)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except (AuditError, OSError, ValueError) as exc:
        print(f"ledgerline {args.verb}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return code


if __name__ == "__main__":
    sys.exit(main())
