"""Per-segment findings: which slices breached, whether the aggregate did too, and a
false-discovery control over the many slices of one check.

A check (drift, quality, performance) evaluated on every slice of
:mod:`streamproc.core.segments` gives one severity per slice key. With 200 slices a
check at a 1% false-alarm rate fires on two of them by chance in every window, so when
the per-slice p-values are known the breaches are kept only for the slices that are
discoveries of the Benjamini–Hochberg procedure at false discovery rate ``fdr``
(Benjamini & Hochberg 1995; :func:`~streamproc.core.small_sample.benjamini_hochberg`).
Each finding names its segment as a mapping (``{"country": "DE"}``, the alert's
``segment``) and says whether the aggregate breached as well (``aggregate_affected``)
— a slice that breaches while the aggregate does not is *confined* to that segment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from streamproc.checks.result import Severity
from streamproc.core.segments import parse_slice_key
from streamproc.core.small_sample import benjamini_hochberg


@dataclass(frozen=True, slots=True)
class SegmentFinding:
    key: str
    segment: dict[str, str]
    severity: Severity | None
    aggregate_affected: bool
    pvalue: float | None = None
    discovery: bool | None = None
    """Whether the slice is a BH discovery (None: no p-value given)."""

    @property
    def breached(self) -> bool:
        return self.severity is not None

    @property
    def confined(self) -> bool:
        """Breached here while the aggregate did not."""
        return self.breached and not self.aggregate_affected

    def note(self) -> str:
        """A sentence for the alert message."""
        if not self.breached:
            return ""
        if self.aggregate_affected:
            return "; the aggregate is affected too"
        return "; confined to this segment (the aggregate is not affected)"


def segment_findings(
    severities: Mapping[str, Severity | None],
    aggregate: Severity | None,
    pvalues: Mapping[str, float] | None = None,
    fdr: float = 0.05,
) -> list[SegmentFinding]:
    """One finding per slice key, sorted by key. With ``pvalues`` (per key; a key
    without one keeps its severity), a breach survives only at a BH discovery."""
    if not 0.0 < fdr < 1.0:
        raise ValueError("fdr must be in (0, 1)")
    keys = sorted(severities)
    found: dict[str, bool] = {}
    if pvalues:
        tested = [k for k in keys if k in pvalues]
        found = dict(
            zip(tested, benjamini_hochberg([pvalues[k] for k in tested], fdr), strict=True)
        )
    out = []
    for k in keys:
        sev = severities[k]
        disc = found.get(k)
        if disc is False:
            sev = None
        out.append(
            SegmentFinding(
                k,
                parse_slice_key(k),
                sev,
                aggregate is not None,
                None if pvalues is None else pvalues.get(k),
                disc,
            )
        )
    return out
