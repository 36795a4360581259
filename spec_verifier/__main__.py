"""``python -m spec_verifier BUNDLE [--trusted-keys FILE | --public-key FILE]``: check a bundle offline.

Exit status: 0 when the bundle is valid (whatever its claim), 1 when a check failed, 2 when the
command line or a key file is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from spec_verifier.keys import KeyFileError
from spec_verifier.verify import check_bundle

CLAIMS = {
    "complete": "every record of these streams matching the selection in the window is in the bundle",
    "complete-redacted": "no record of the window was removed; whether the redacted ones match the selection "
                         "rests on the exporter's word",
    "positions-only": "the lines are exactly those at positions first..end-1; nothing is claimed about the window",
    "unauthenticated": "the bundle is consistent with itself; its origin is not proven",
    "invalid": "a check failed (below)",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spec_verifier", description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, help="the evidence bundle (a ZIP file)")
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument("--trusted-keys", type=Path, help="trusted-keys file (docs/format.md section 6)")
    keys.add_argument("--public-key", type=Path, help="one public key file (PEM or base64), trusted for every role")
    parser.add_argument("--hmac-key-env", help="environment variable holding the trail's HMAC key")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    hmac_key = None
    if args.hmac_key_env:
        value = os.environ.get(args.hmac_key_env)
        if not value:
            print(f"error: environment variable {args.hmac_key_env} is not set", file=sys.stderr)
            return 2
        hmac_key = value.encode()
    try:
        public_key = args.public_key.read_text(encoding="utf-8") if args.public_key else None
        report = check_bundle(args.bundle, trusted_keys_path=args.trusted_keys, public_key_b64=public_key,
                              hmac_key=hmac_key)
    except (KeyFileError, OSError, UnicodeDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_dict(), indent=1))
    else:
        print(f"claim: {report.claim}: {CLAIMS[report.claim]}")
        for stream in report.streams:
            trust = "trusted" if stream.trusted else "not trusted"
            key = f"key {stream.key_id} ({trust})" if stream.key_id else "no key"
            span = ("no checkpoint" if stream.N is None
                    else f"positions {stream.first}..{(stream.end or 0) - 1} of {stream.N}")
            print(f"  {stream.origin}: {span}, "
                  f"{stream.in_window} records in the window, {stream.matching} matching, {stream.redacted} redacted, "
                  f"{stream.torn} torn; {key}; witnessed size {stream.witnessed_size}")
        for failure in report.failures:
            where = f" at position {failure.position}" if failure.position is not None else ""
            print(f"  FAILED {failure.reason} ({failure.stream or 'bundle'}{where}): {failure.message}")
        for note in report.notes:
            print(f"  note: {note}")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
