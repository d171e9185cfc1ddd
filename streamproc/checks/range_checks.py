"""The ``range`` check: the share of a numeric feature's window values outside its valid range.

The valid range is ``[range_min, range_max]`` where the thresholds declare it (per
feature, from the config's ``[thresholds.features.<name>]``; an undeclared side is open
unless the robust range supplies it), else the reference's **robust range**: its 0.1%
and 99.9% quantiles widened on each side by ``range_margin`` (default 0.1) × their
distance — wide enough that a heavy tail drawn from the reference distribution rarely
leaves it, narrow enough that a unit change or a sentinel value does.

Judged by sample size like the other share checks: the window's out-of-range share s
(from its KLL sketch: below lo, above hi) breaches ``out_of_range_warning`` (1%) or
``out_of_range_critical`` (5%) only when a one-sided binomial test rejects "s ≤ the
reference's own out-of-range share" at ``share_test_alpha``, taking the reference's
share at its upper bound (its sketch's rank error ε_ref and sampling error added) and
the window's at its lower bound (s − ε_cur; ε = 0 while a sketch holds every value).

Evidence names the range, where it came from (``declared`` / ``reference``), both
shares, and the window's extreme quantiles (0.1%, 1%, 99%, 99.9%) and min/max.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from streamproc.checks.context import Candidate, Window
from streamproc.checks.policy import EvaluationPolicy
from streamproc.checks.result import RANGE, CheckResult
from streamproc.core.feature_profile import FeatureProfile
from streamproc.core.kinds import FeatureKind
from streamproc.core.numeric_drift import rank_error
from streamproc.core.small_sample import binomial_excess_pvalue, upper_share
from streamproc.core.thresholds import Thresholds

ROBUST_QUANTILES = (0.001, 0.999)
_EXTREMES = (0.001, 0.01, 0.99, 0.999)


def robust_range(ref: FeatureProfile, margin: float) -> tuple[float, float]:
    """The reference's 0.1% and 99.9% quantiles, each moved out by margin × their distance."""
    lo, hi = (float(v) for v in ref.quantiles(list(ROBUST_QUANTILES)))
    span = hi - lo
    return lo - margin * span, hi + margin * span


def valid_range(ref: FeatureProfile, t: Thresholds) -> tuple[float, float, str]:
    """(lo, hi, source): the declared bounds where given, the robust range elsewhere."""
    robust = ref.derived(
        ("robust_range", t.range_margin), lambda r: robust_range(r, t.range_margin)
    )
    lo = t.range_min if t.range_min is not None else robust[0]
    hi = t.range_max if t.range_max is not None else robust[1]
    declared = t.range_min is not None or t.range_max is not None
    return lo, hi, "declared" if declared else "reference"


def outside_share(prof: FeatureProfile, lo: float, hi: float) -> float:
    """Share of ``prof``'s finite values below ``lo`` or above ``hi`` (sketch estimate)."""
    assert prof.kll is not None and prof.min is not None and prof.max is not None
    if prof.min >= lo and prof.max <= hi:
        return 0.0
    below = prof.kll.get_cdf([lo], inclusive=False)[0] if math.isfinite(lo) else 0.0
    above = 1.0 - prof.kll.get_cdf([hi], inclusive=True)[0] if math.isfinite(hi) else 0.0
    return float(min(1.0, max(0.0, below + above)))


def range_result(
    window: Window,
    name: str,
    ref: FeatureProfile,
    cur: FeatureProfile,
    t: Thresholds,
    policy: EvaluationPolicy,
) -> CheckResult | None:
    """Out-of-range share of one numeric feature; None below ``min_samples`` values."""
    if ref.kind is not FeatureKind.NUMERIC or ref.kll is None or cur.kll is None:
        return None
    n, m = ref.valid_count, cur.valid_count
    if min(n, m) < t.min_samples:
        return None
    lo, hi, source = valid_range(ref, t)
    share = outside_share(cur, lo, hi)
    ref_share = ref.derived(("range_share", lo, hi), lambda r: outside_share(r, lo, hi))
    bound = upper_share(min(1.0, ref_share + rank_error(ref.kll)), n)
    low = max(0.0, share - rank_error(cur.kll))
    pvalue = binomial_excess_pvalue(math.floor(low * m), m, bound)
    cand = Candidate.of(
        "out_of_range_share", share, t.out_of_range_warning, t.out_of_range_critical
    )
    if pvalue >= policy.share_test_alpha:
        cand = dataclasses.replace(cand, severity=None)
    qs = np.asarray(cur.quantiles(list(_EXTREMES)), dtype=np.float64)
    evidence: list[dict[str, Any]] = [
        {
            "range": [_num(lo), _num(hi)],
            "range_source": source,
            "out_of_range_share": share,
            "reference_share": ref_share,
            "pvalue": pvalue,
            "quantiles": {f"{q:g}": float(v) for q, v in zip(_EXTREMES, qs, strict=True)},
            "min": cur.min,
            "max": cur.max,
        }
    ]
    note = (
        f" (valid range [{lo:.4g}, {hi:.4g}], {source}; "
        f"window p0.1 {qs[0]:.4g}, p99.9 {qs[-1]:.4g})"
    )
    return window.result(
        RANGE, name, cand, n_reference=n, n_current=m, evidence=evidence, note=note
    )


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None
