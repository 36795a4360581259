"""What a bundle verification found: the claim, the failures with their reasons, and per-stream counts.

``BundleReport.to_dict()`` has exactly the shape the independent verifier (``spec_verifier``)
returns, so the two can be compared; ``to_text()`` is what ``ledgerline verify-bundle`` prints: what
the bundle proves and, as plainly, what it does not.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

#: Failure reason codes, exactly those of docs/format.md section 7.
REASONS = (
    "bundle_malformed", "checkpoint_malformed", "signature_invalid", "key_untrusted", "key_outside_window",
    "range_proof_invalid", "boundary_unproven", "redaction_not_allowed", "chain_broken", "ts_recorded_backwards",
    "checksum_mismatch", "consistency_invalid",
)
CLAIMS = ("complete", "complete-redacted", "positions-only", "unauthenticated", "invalid")

_CLAIM_MEANING = {
    "complete": "every record of these streams that matches the selection in the window is in the bundle",
    "complete-redacted": "no record of the window was removed; whether the redacted ones match the selection "
                         "rests on the exporter's word",
    "positions-only": "the lines are exactly those at the positions shown; nothing is claimed about the window "
                      "(a record without ts_recorded is in a range)",
    "unauthenticated": "the bundle is consistent with itself, but no trusted key vouches for a checkpoint: "
                       "its origin is not proven (give --public-key or --trusted-keys)",
    "invalid": "the bundle does not verify: see the failures",
}


@dataclass
class BundleFailure:
    reason: str
    stream: str | None
    position: int | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "stream": self.stream, "position": self.position, "message": self.message}


@dataclass
class StreamResult:
    """One stream of a bundle: its range, counts and who vouches for its checkpoint."""

    origin: str
    N: int | None = None
    first: int | None = None
    end: int | None = None
    in_window: int = 0
    matching: int = 0
    redacted: int = 0
    torn: int = 0
    key_id: str | None = None
    trusted: bool = False
    witnessed_size: int | None = None
    #: Not in ``to_dict``: details ``to_text`` shows.
    signer: str = "not checked"
    time_complete: bool = True
    covered_up_to: bool = False
    matching_records: list[bytes] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"origin": self.origin, "N": self.N, "first": self.first, "end": self.end,
                "in_window": self.in_window, "matching": self.matching, "redacted": self.redacted,
                "torn": self.torn, "key_id": self.key_id, "trusted": self.trusted,
                "witnessed_size": self.witnessed_size}


@dataclass
class BundleReport:
    """The result of ``verify_bundle``; ``valid`` when no failure was found."""

    path: str
    claim: str = "invalid"
    failures: list[BundleFailure] = field(default_factory=list)
    streams: list[StreamResult] = field(default_factory=list)
    selection: dict[str, Any] | None = None
    keyed: bool = False
    checksums_checked: bool = True

    @property
    def valid(self) -> bool:
        return not self.failures

    def fail(self, reason: str, stream: str | None, position: int | None, message: str) -> None:
        assert reason in REASONS, reason
        self.failures.append(BundleFailure(reason, stream, position, message))

    def to_dict(self) -> dict[str, Any]:
        return {"claim": self.claim, "failures": [failure.to_dict() for failure in self.failures],
                "streams": [stream.to_dict() for stream in self.streams]}

    def to_text(self, max_failures: int = 50) -> str:
        """What the bundle proves and what it does not, for a person."""
        lines = [f"bundle {self.path}", f"claim: {self.claim.upper()}: {_CLAIM_MEANING[self.claim]}"]
        if self.selection is not None:
            lines.append(f"selection: {_selection_text(self.selection)}")
        for stream in self.streams:
            lines += ["", *_stream_text(stream)]
        if self.keyed and not self.checksums_checked:
            lines += ["", "record checksums are HMAC-SHA256 (a keyed trail) and were NOT checked: "
                          "give --hmac-key-env to check them (the range proofs still bind every line)"]
        lines += ["", "not proven: that the trail had no other stream than those listed (a bundle shows only "
                      "the streams it holds)"]
        if self.failures:
            lines += ["", f"{len(self.failures)} failure(s):"]
            for failure in self.failures[:max_failures]:
                where = "" if failure.stream is None else f" {failure.stream}"
                at = "" if failure.position is None else f" position {failure.position}"
                lines.append(f"  {failure.reason}{where}{at}: {failure.message}")
            if len(self.failures) > max_failures:
                lines.append(f"  ... and {len(self.failures) - max_failures} more")
        return "\n".join(lines)


def _selection_text(selection: dict[str, Any]) -> str:
    parts = [f"ts_recorded in [{iso_ns(selection.get('start_ns'))}, {iso_ns(selection.get('end_ns'))})"]
    for name in ("event_types", "sources", "params"):
        if selection.get(name) is not None:
            parts.append(f"{name} {', '.join(map(str, selection[name]))}")
    return "; ".join(parts)


def _stream_text(stream: StreamResult) -> list[str]:
    lines = [f"stream {stream.origin}"]
    if stream.first is None or stream.end is None or stream.N is None:
        return [*lines, "  not checked (see the failures)"]
    lines.append(f"  positions {stream.first}..{stream.end - 1} of a checkpoint of {stream.N} line(s): "
                 f"{stream.in_window} record(s) in the window, {stream.matching} matching, "
                 f"{stream.redacted} redacted, {stream.torn} torn line(s)")
    lines.append(f"  checkpoint signed by {stream.signer}; "
                 + ("trusted" if stream.trusted else "NOT trusted (no key the verifier was given vouches for it)"))
    lines.append("  witnessed: " + ("no witness in the bundle" if stream.witnessed_size is None
                                    else f"a witness holds {stream.witnessed_size} line(s), consistent with it"))
    if stream.covered_up_to:
        lines.append(f"  covered up to position {stream.N - 1}: records recorded after the checkpoint are not "
                     "covered")
    if not stream.time_complete:
        lines.append(f"  positions {stream.first}..{stream.end - 1} only; completeness by time not established "
                     "(a record without ts_recorded)")
    return lines


def iso_ns(ts_ns: object) -> str:
    """``ts_ns`` (nanoseconds since the epoch) as ISO 8601 UTC with all nine digits; anything else as is."""
    if not isinstance(ts_ns, int):
        return str(ts_ns)
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ts_ns // 1000)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ts_ns % 1_000_000_000:09d}Z"
