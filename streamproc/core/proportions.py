"""Two binomial proportions compared: difference, ratio, test and sample size.

Pure functions on counts (x successes of n), shared by the fairness metrics
(:mod:`streamproc.core.fairness`) and the version comparison
(:mod:`streamproc.core.version_compare`):

* :func:`newcombe_interval` — p₁ − p₂ with Newcombe's hybrid score interval (Newcombe
  1998, *Interval estimation for the difference between independent proportions*,
  Stat. Med. 17, method 10): from the Wilson intervals [l₁, u₁], [l₂, u₂] of each side,
  ``[d − √((p₁−l₁)² + (u₂−p₂)²), d + √((u₁−p₁)² + (p₂−l₂)²)]``. Good coverage at small
  n and near 0 or 1, where the Wald interval fails.
* :func:`katz_ratio_interval` — p₁ / p₂ with the Katz log interval (Katz et al. 1978,
  *Obtaining confidence intervals for the risk ratio in cohort studies*, Biometrics
  34): ``exp(ln R ± z·√(1/x₁ − 1/n₁ + 1/x₂ − 1/n₂))``. When a count is 0 the interval
  uses x + ½ and n + ½ on both sides (Haldane's correction; the point value stays the
  plain ratio).
* :func:`two_proportion_z` — the pooled two-proportion z-test (equal to Pearson's χ²
  on the 2×2 table without continuity correction: z² = χ²).
* :func:`sample_size_per_arm` — the sample size per arm for a two-sided test of
  p₁ vs p₂ = p₁ + δ at level α and power 1 − β (Fleiss, Levin & Paik 2003,
  *Statistical Methods for Rates and Proportions*, eq. 4.14, no continuity correction):
  ``n = (z_{1−α/2}·√(2p̄q̄) + z_{1−β}·√(p₁q₁ + p₂q₂))² / δ²``, p̄ = (p₁ + p₂)/2.
"""

from __future__ import annotations

import math

from scipy import stats

from streamproc.core.intervals import Z_95, Interval, wilson_interval


def newcombe_interval(x1: int, n1: int, x2: int, n2: int, z: float = Z_95) -> Interval | None:
    """p₁ − p₂ (x₁/n₁ − x₂/n₂) with Newcombe's method-10 interval; None when a side is
    empty. ``n`` of the result is n₁ + n₂."""
    w1, w2 = wilson_interval(x1, n1, z), wilson_interval(x2, n2, z)
    if w1 is None or w2 is None:
        return None
    p1, p2 = w1.value, w2.value
    d = p1 - p2
    low = d - math.sqrt((p1 - w1.low) ** 2 + (w2.high - p2) ** 2)
    high = d + math.sqrt((w1.high - p1) ** 2 + (p2 - w2.low) ** 2)
    return Interval(d, max(-1.0, low), min(1.0, high), n1 + n2)


def katz_ratio_interval(x1: int, n1: int, x2: int, n2: int, z: float = Z_95) -> Interval | None:
    """p₁ / p₂ with the Katz log interval; None when a side is empty or both rates are
    0 (ratio undefined). A ratio with p₂ = 0 < p₁ is +inf with a finite lower bound."""
    if n1 <= 0 or n2 <= 0 or (x1 == 0 and x2 == 0):
        return None
    p1, p2 = x1 / n1, x2 / n2
    value = p1 / p2 if p2 > 0 else math.inf
    a, b, c, d = float(x1), float(n1), float(x2), float(n2)
    if x1 == 0 or x2 == 0:
        a, b, c, d = a + 0.5, b + 0.5, c + 0.5, d + 0.5
    log_r = math.log((a / b) / (c / d))
    se = math.sqrt(max(1.0 / a - 1.0 / b + 1.0 / c - 1.0 / d, 0.0))
    return Interval(value, math.exp(log_r - z * se), math.exp(log_r + z * se), n1 + n2)


def two_proportion_z(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """(z, two-sided p) of the pooled test of p₁ = p₂; z > 0 when p₁ > p₂.
    (0, 1) when a side is empty or the pooled rate is 0 or 1."""
    if n1 <= 0 or n2 <= 0:
        return 0.0, 1.0
    pooled = (x1 + x2) / (n1 + n2)
    var = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)
    if var <= 0.0:
        return 0.0, 1.0
    zval = (x1 / n1 - x2 / n2) / math.sqrt(var)
    return zval, float(2.0 * stats.norm.sf(abs(zval)))


def sample_size_per_arm(p1: float, mde: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Rows per arm to detect p₂ = p₁ + ``mde`` (absolute) with a two-sided level-``alpha``
    test at ``power`` (see the module docstring); ValueError when p₂ is outside (0, 1)
    or ``mde`` is 0."""
    p2 = p1 + mde
    if mde == 0.0 or not (0.0 < p1 < 1.0 and 0.0 < p2 < 1.0):
        raise ValueError(f"need 0 < p1, p1 + mde < 1 and mde != 0 (p1={p1}, mde={mde})")
    if not (0.0 < alpha < 1.0 and 0.0 < power < 1.0):
        raise ValueError("alpha and power must be in (0, 1)")
    za = float(stats.norm.isf(alpha / 2.0))
    zb = float(stats.norm.ppf(power))
    pbar = (p1 + p2) / 2.0
    num = za * math.sqrt(2.0 * pbar * (1.0 - pbar)) + zb * math.sqrt(
        p1 * (1.0 - p1) + p2 * (1.0 - p2)
    )
    return math.ceil(num * num / (mde * mde))
