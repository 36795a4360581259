"""Argument types and option readers the ``ledgerline`` verbs share (keys, paths, instants, progress).

Each turns one command-line value into what the library takes, or raises the one-line error the
CLI's edge prints (``AuditError``/``AuditConfigError`` for exit 2, ``argparse.ArgumentTypeError``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from audit_core.errors import AuditConfigError, AuditError, AuditFormatError
from audit_core.trust.signing import load_public_key

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from audit_core.trust.keyring import TrustedKeys
    from audit_core.trust.signing import SigningKey


def hmac_key_from_env(env_var: str | None) -> bytes | None:
    if env_var is None:
        return None
    value = os.environ.get(env_var)
    if not value:
        raise AuditError(f"--hmac-key-env {env_var}: the variable is unset or empty")
    return value.encode()


def trusted_keys_file(path: str | None, *others: str | None) -> TrustedKeys | None:
    """The trusted-keys file at ``path`` (a malformed file is a usage error naming the field), or None."""
    if path is None:
        return None
    if any(other is not None for other in others):
        raise ValueError("give --trusted-keys or --public-key/--cold-public-key, not both")
    from audit_core.trust.keyring import TrustedKeys

    try:
        return TrustedKeys.load(path)
    except AuditFormatError as exc:  # the auditor's own file: a usage mistake, not a damaged trail
        raise AuditConfigError(f"--trusted-keys {exc}") from None


def public_key_file(path: str | None) -> Ed25519PublicKey | None:
    return None if path is None else load_public_key(path)


def add_signing_options(parser: argparse.ArgumentParser, what: str) -> None:
    """The private key a verb signs with: a file, an environment variable, or a signing command."""
    parser.add_argument("--signing-key", metavar="KEY", help=f"private key file: {what}")
    parser.add_argument("--signing-key-env", metavar="VAR",
                        help="environment variable holding that private key instead")
    parser.add_argument("--signing-key-command", metavar="CMD",
                        help="sign through this command instead (KMS, HSM): message on stdin, base64 signature "
                             "on stdout; needs --signing-public-key")
    parser.add_argument("--signing-public-key", metavar="PUB", help="public key file of --signing-key-command's key")


def _signing_command(args: argparse.Namespace) -> list[str] | None:
    """``--signing-key-command`` split like a shell would, checked against the other signing options."""
    chosen = [option for option, value in (("--signing-key", args.signing_key), ("--signing-key-env",
              args.signing_key_env), ("--signing-key-command", args.signing_key_command)) if value is not None]
    if len(chosen) > 1:
        raise AuditConfigError(f"give one of --signing-key, --signing-key-env, --signing-key-command, not {chosen}")
    if args.signing_key_command is None:
        if args.signing_public_key is not None:
            raise AuditConfigError("--signing-public-key goes with --signing-key-command")
        return None
    import shlex

    try:
        argv = shlex.split(args.signing_key_command)
    except ValueError as exc:
        raise AuditConfigError(f"--signing-key-command {args.signing_key_command!r}: {exc}") from None
    if not argv:
        raise AuditConfigError("--signing-key-command: expected a command, got an empty text")
    if args.signing_public_key is None:
        raise AuditConfigError("--signing-key-command needs --signing-public-key (the command's public key file)")
    return argv


def signing_key_from(args: argparse.Namespace) -> SigningKey | None:
    """The key ``add_signing_options`` named, or None; a command is probed once (``Signer.from_command``)."""
    command = _signing_command(args)
    if command is not None:
        from audit_core.trust.signer import Signer

        return Signer.from_command(command, args.signing_public_key)
    if args.signing_key is None and args.signing_key_env is None:
        return None
    from audit_core.trust.signing import load_private_key

    return load_private_key(args.signing_key, env_var=args.signing_key_env)


def signing_config(args: argparse.Namespace) -> dict[str, object]:
    """The same choice as ``AuditConfig`` fields, for verbs that write records (retention)."""
    command = _signing_command(args)
    chosen = {"signing_key_path": args.signing_key, "signing_key_env": args.signing_key_env,
              "signing_key_command": None if command is None else tuple(command),
              "signing_public_key_path": args.signing_public_key}
    return {field: value for field, value in chosen.items() if value is not None}


def existing_path(path: str) -> Path:
    if not Path(path).exists():
        raise AuditError(f"{path}: no such file or directory")
    return Path(path)


def iso(ts_ns: int | None) -> str:
    if ts_ns is None:
        return "-"
    return dt.datetime.fromtimestamp(ts_ns / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def int_between(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer from ``low`` to ``high``, else a one-line usage error saying so."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer from {low} to {high}, got {text[:40]!r}")
        return value

    return parse


#: Bounds of numeric arguments: a sequence is an int64; retention's own bound on its window.
MAX_SEQUENCE = 2**63 - 1
MAX_TAIL = 1_000_000
MAX_LISTED_FAILURES = 1_000_000
MAX_JOBS = 1024


def utc_datetime(text: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date or datetime, e.g. 2026-01-31T00:00") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def instant_ns(text: str) -> int:
    """An argparse type: nanoseconds since the epoch, or an ISO date/time (UTC unless it says otherwise)."""
    if text.isascii() and text.isdigit():
        return int(text)
    since_epoch = utc_datetime(text) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return since_epoch // dt.timedelta(microseconds=1) * 1_000


@contextlib.contextmanager
def progress_bar(quiet: bool, what: str = "converting") -> Iterator[Callable[[int, int, str], None] | None]:
    """A tqdm bar on stderr fed by the library's progress callback (files done of total)."""
    if quiet:
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(total=0, unit="file", desc=what, file=sys.stderr, disable=None)

    def update(done: int, total: int, name: str) -> None:
        bar.total = total
        bar.set_postfix_str(name, refresh=False)
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        bar.close()
