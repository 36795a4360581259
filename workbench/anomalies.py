"""Unexplained changes: who touched the risk knob, without a reason, out of bounds, or out of turn.

Examples
--------
>>> import shutil, tempfile
>>> from benchmarks.trail_gen import generate_trail
>>> from workbench import detect_unexplained_changes, open_trail
>>> base = tempfile.mkdtemp()
>>> _ = generate_trail(base, events=800, days=1, seed=6)
>>> found = detect_unexplained_changes(open_trail(base), bounds={"risk_multiplier": (0.0, 2.0)},
...                                    allowed_sources=["meta_controller", "kelly_sizer", "particle_portfolio"])
>>> frame = found.to_pandas()
>>> sorted(set(frame["kind"]) - {"missing_reason", "out_of_bounds", "unexpected_source", "backdated"})
[]
>>> found.integrity_ok
True
>>> shutil.rmtree(base)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import ibis
import ibis.expr.types as ir

from workbench import filters
from workbench._columns import CHRONOLOGICAL, text
from workbench.errors import WorkbenchInputError
from workbench.parameters import parameter_changes

if TYPE_CHECKING:
    import pandas as pd

    from audit_core import VerificationFailure
    from workbench.trail import Trail
    from workbench.verification import VerificationStatus

#: Columns of the findings (``UnexplainedChanges.findings`` and ``to_pandas()``).
FINDING_COLUMNS = ("kind", "time", "ts_event", "source", "param_name", "old_value", "new_value", "trigger_reason",
                   "detail", "stream", "sequence", "file")
Bounds = Mapping[str, tuple[float | None, float | None]]
#: ``detect_unexplained_changes``: how far ``ts_event`` may lag ``ts_recorded`` before a record is ``backdated``.
DEFAULT_BACKDATE_TOLERANCE_NS = 5_000_000_000
AllowedSources = Collection[str] | Mapping[str, Collection[str]]


@dataclass
class UnexplainedChanges:
    """Findings: ``findings`` (lazy) from the records, ``integrity`` from verifying the files.

    Kinds in ``findings``: ``missing_reason``, ``out_of_bounds``, ``unexpected_source``,
    ``sequence_gap``, ``backdated``. ``integrity`` holds the failures of ``audit_core.verify`` over the hot files
    and ``verify_cold`` over the cold store (computed on first use; their ``kind`` is the
    ``FailureKind`` value, such as ``checksum_mismatch`` or ``chain_break``).
    """

    trail: Trail
    findings: ir.Table
    check_integrity: bool = True
    hmac_key: bytes | None = field(default=None, repr=False)

    @cached_property
    def integrity(self) -> list[VerificationFailure]:
        """The trail's verification failures: ``trail.verification``'s, verified once and cached.

        Verified now (through the same cache) only when the trail was opened with ``verify=False``
        or ``hmac_key`` differs from the key it was opened with.
        """
        if not self.check_integrity:
            return []
        status = self.trail.verification
        trail_key, public_key, cold_public_key = self.trail._keys
        if status.report is None or (self.hmac_key is not None and self.hmac_key != trail_key):
            from workbench.verification import verification_status

            status = verification_status(self.trail.path, self.hmac_key or trail_key, public_key,
                                         cold_public_key=cold_public_key)
        return status.failures

    @property
    def verification(self) -> VerificationStatus:
        """The trail's verification status (``trail.verification``)."""
        return self.trail.verification

    @property
    def integrity_ok(self) -> bool:
        return not self.integrity

    def to_pandas(self) -> pd.DataFrame:
        """Findings then integrity failures, one row each (executes the query and the verification).

        ``attrs["verification"]`` is the trail's verification summary.
        """
        import pandas as pd

        frame = self.findings.to_pandas()  # nullable Arrow dtypes: failures' missing ts_event/sequence fit
        attrs = dict(frame.attrs)
        if not self.integrity:
            return frame
        failures = pd.DataFrame([{
            "kind": failure.kind.value, "detail": failure.detail, "sequence": failure.sequence,
            "file": f"{failure.file}:{failure.line}" if failure.line else failure.file,
        } for failure in self.integrity], columns=list(FINDING_COLUMNS))
        failures = failures.astype(frame.dtypes.to_dict())
        combined = failures if frame.empty else pd.concat([frame, failures], ignore_index=True)
        combined.attrs.update(attrs)
        return combined


def detect_unexplained_changes(
    trail: Trail,
    *,
    bounds: Bounds | None = None,
    allowed_sources: AllowedSources | None = None,
    start: Any = None,
    end: Any = None,
    integrity: bool = True,
    hmac_key: bytes | None = None,
    backdate_tolerance_ns: int | None = DEFAULT_BACKDATE_TOLERANCE_NS,
) -> UnexplainedChanges:
    """Parameter changes nobody can explain, sequence gaps, backdated records, and integrity failures.

    Parameters
    ----------
    trail
        An opened trail.
    bounds
        ``{param_name: (low, high)}``: a change to a value below ``low`` or above ``high``
        (either may be None), or to a non-numeric value, is ``out_of_bounds``.
    allowed_sources
        Sources allowed to change parameters: a collection for every parameter, or
        ``{param_name: sources}`` (parameters not in the mapping are not checked). A change by
        another source is ``unexpected_source``.
    start, end
        Only changes (and gaps) within this window; gaps at the window's edges are not reported.
    integrity
        Also verify the hot files and the cold store (``audit_core.verify``, ``verify_cold``).
    hmac_key
        The trail's HMAC key, if it is keyed (for the integrity check).
    backdate_tolerance_ns
        A record of any type whose ``ts_event`` is earlier than its ``ts_recorded`` (when the
        emitter recorded it) by more than this many nanoseconds is ``backdated``: it claims to
        have happened well before it was written (an "approval" written after the incident it
        precedes). Venue timestamps and network delays make small lags normal; default 5 s.
        None turns the check off. Records written before ``ts_recorded`` existed are not checked.

    Returns
    -------
    UnexplainedChanges
        ``findings`` (lazy, ordered by time; columns ``FINDING_COLUMNS``), ``integrity`` and ``to_pandas()``.
    """
    t = trail.filter(start=start, end=end)
    changes = parameter_changes(trail, t)
    parts = [_finding(changes.filter(changes.trigger_reason.isnull() | (changes.trigger_reason.strip() == "")),
                      "missing_reason", ibis.literal("no trigger_reason recorded"))]
    for name, (low, high) in _check_bounds(bounds).items():
        value = changes.new_value_num
        outside = value.isnull()
        if low is not None:
            outside |= value < low
        if high is not None:
            outside |= value > high
        hit = changes.filter(changes.param_name == name, outside)
        parts.append(_finding(hit, "out_of_bounds", ibis.literal(f"{name} must be within [{low}, {high}], got ")
                              + text(hit.new_value, "null")))
    for names, sources in _check_sources(allowed_sources):
        hit = changes.filter(~changes.source.isin(sources))
        if names is not None:
            hit = hit.filter(hit.param_name.isin(names))
        parts.append(_finding(hit, "unexpected_source",
                              "source " + hit.source + " is not allowed (allowed: " + ", ".join(sorted(sources)) + ")"))
    parts.append(_sequence_gaps(t))
    if _check_tolerance(backdate_tolerance_ns) is not None:
        parts.append(_backdated(t, backdate_tolerance_ns))
    findings = parts[0]
    for part in parts[1:]:
        findings = findings.union(part)
    return UnexplainedChanges(trail, findings.order_by(*CHRONOLOGICAL, "kind"), integrity, hmac_key)


def _finding(rows: ir.Table, kind: str, detail: ir.StringValue) -> ir.Table:
    return rows.select(
        kind=ibis.literal(kind), time=rows.time, ts_event=rows.ts_event, source=rows.source,
        param_name=rows.param_name, old_value=rows.old_value, new_value=rows.new_value,
        trigger_reason=rows.trigger_reason, detail=detail.cast("string"), stream=rows.stream,
        sequence=rows.sequence, file=ibis.null("string"),
    )


def _sequence_gaps(t: ir.Table) -> ir.Table:
    """Records whose sequence is more than one after the previous record of their stream."""
    chained = t.filter(t.sequence.notnull())
    previous = chained.sequence.lag().over(ibis.window(group_by="stream", order_by="sequence"))
    gaps = chained.mutate(_previous=previous)
    gaps = gaps.filter(gaps.sequence - gaps._previous > 1)
    detail = ("sequence jumps from " + gaps._previous.cast("string") + " to " + gaps.sequence.cast("string")
              + " in stream " + gaps.stream + ": " + (gaps.sequence - gaps._previous - 1).cast("string")
              + " record(s) missing")
    return _finding(gaps, "sequence_gap", detail)


def _backdated(t: ir.Table, tolerance_ns: int) -> ir.Table:
    """Records whose ``ts_event`` is more than ``tolerance_ns`` before their ``ts_recorded``."""
    lag = t.ts_recorded - t.ts_event
    hit = t.filter(t.ts_recorded.notnull(), lag > tolerance_ns)
    lag = hit.ts_recorded - hit.ts_event
    detail = ("ts_event is " + lag.cast("string") + " ns before ts_recorded " + hit.ts_recorded.cast("string")
              + " (tolerance " + str(tolerance_ns) + " ns): recorded as if it happened earlier")
    return _finding(hit, "backdated", detail)


def _check_tolerance(tolerance_ns: int | None) -> int | None:
    if tolerance_ns is None:
        return None
    if isinstance(tolerance_ns, bool) or not isinstance(tolerance_ns, int) or tolerance_ns < 0:
        raise WorkbenchInputError(
            f"backdate_tolerance_ns={tolerance_ns!r}: expected a non-negative integer (nanoseconds) or None")
    return tolerance_ns


def _check_bounds(bounds: Bounds | None) -> dict[str, tuple[float | None, float | None]]:
    if bounds is None:
        return {}
    if not isinstance(bounds, Mapping):
        raise WorkbenchInputError(f"bounds={bounds!r}: expected {{param_name: (low, high)}}")
    checked = {}
    for name, pair in bounds.items():
        try:
            low, high = pair
        except (TypeError, ValueError):
            raise WorkbenchInputError(f"bounds[{name!r}]={pair!r}: expected (low, high), either may be None") from None
        for value in (low, high):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise WorkbenchInputError(f"bounds[{name!r}]={pair!r}: bounds must be numbers or None")
        if low is not None and high is not None and low > high:
            raise WorkbenchInputError(f"bounds[{name!r}]={pair!r}: low is above high")
        checked[name] = (low, high)
    return checked


def _check_sources(allowed: AllowedSources | None) -> list[tuple[list[str] | None, list[str]]]:
    """(parameter names or None for all, allowed sources) pairs."""
    if allowed is None:
        return []
    if isinstance(allowed, Mapping):
        return [([name], filters.string_values(sources, f"allowed_sources[{name!r}]"))
                for name, sources in allowed.items()]
    if isinstance(allowed, str):
        raise WorkbenchInputError(f"allowed_sources={allowed!r}: expected a collection of source names, not one string")
    return [(None, filters.string_values(allowed, "allowed_sources"))]
