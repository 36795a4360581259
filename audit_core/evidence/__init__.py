"""Evidence bundles (docs/format.md section 7): one file an auditor checks offline with only the keys they trust.

``export_bundle`` writes the records of a window (and their edges) with range proofs against the
streams' signed checkpoints and, optionally, the witness's notes with consistency proofs;
``verify_bundle`` checks one and reports what it proves (``BundleReport``).
"""

from audit_core.evidence.export import BundleExportError, export_bundle
from audit_core.evidence.report import BundleFailure, BundleReport, StreamResult
from audit_core.evidence.verify import verify_bundle

__all__ = ["BundleExportError", "BundleFailure", "BundleReport", "StreamResult", "export_bundle", "verify_bundle"]
