"""An independent verifier of Ledgerline evidence bundles, written only from docs/format.md.

It uses the Python standard library alone (Ed25519 included, from RFC 8032) and imports nothing
from ``audit_core``, so an auditor can read it whole and check a bundle with nothing else:

    python -m spec_verifier case.bundle --trusted-keys keys.json
"""

from spec_verifier.keys import KeyFileError
from spec_verifier.verify import Report, check_bundle, verify_bundle

__all__ = ["KeyFileError", "Report", "check_bundle", "verify_bundle"]
