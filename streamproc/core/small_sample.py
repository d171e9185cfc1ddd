"""Statistics that know their sample size: the small-sample rules of the checks.

Pure functions on counts (no profiles), each the textbook form with its source:

* :func:`binomial_excess_pvalue` — one-sided exact binomial test, P(X ≥ k | m, p₀)
  (Clopper & Pearson 1934 use the same tail): is a window share k/m above a reference
  share p₀?
* :func:`upper_share` — p₀ plus its sampling uncertainty from a reference of n values
  (normal bound, z = 3) and 1/n, so that a share estimated from a finite reference is
  not taken as exact.
* :func:`good_turing_unseen` — the probability that the next value is one a sample never
  saw, f₁/n (Good 1953, after Turing), and its standard error
  sqrt(f₁(1 − f₁/n) + 2f₂)/n (Esty 1983, *A normal limit law for a nonparametric
  estimator of the coverage of a random sample*).
* :func:`merge_sparse_cells` — pool categories so that every cell of the 2×K table has an
  expected count ≥ 5 (Cochran 1954's rule for the chi-squared approximation).
* :func:`psi_null_mean`, :func:`js2_null_mean` — the expected PSI and JS² between two
  samples of one distribution on K bins: (K − 1)(1/n + 1/m) (PSI ≈ (1/n + 1/m)·χ²_{K−1};
  Yurdakul 2018, *Statistical properties of the population stability index*) and that
  ÷ (8 ln 2) for JS² in bits (second-order expansion of KL around the mixture).
* :func:`expected_distinct` — how many distinct values a sample of m values of the
  reference distribution shows: rarefaction Σ 1 − (1 − cᵢ/n)^m for m ≤ n (Hurlbert
  1971, binomial form), Chao's extrapolation S + f̂₀(1 − (1 − f₁/(n f̂₀ + f₁))^(m−n)),
  f̂₀ = f₁²/(2f₂) (or f₁(f₁ − 1)/2 when f₂ = 0), for m > n (Shen, Chao & Lin 2003).
* :func:`benjamini_hochberg` — which of many p-values are discoveries at false discovery
  rate q (Benjamini & Hochberg 1995).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

LONG_TAIL_UNSEEN = 0.01
"""A categorical reference is a *sparse long tail* when its Good–Turing unseen mass
(singletons ÷ values) is at least this: a fresh sample will show that share of values
the reference never saw (``profile show`` says so)."""

MIN_EXPECTED = 5.0
"""Smallest expected count per cell of a chi-squared table (Cochran 1954)."""


def binomial_excess_pvalue(k: int, m: int, p0: float) -> float:
    """P(X ≥ k) for X ~ Binomial(m, p₀): small when k of m is more than p₀ allows."""
    if m <= 0 or k <= 0:
        return 1.0
    if p0 <= 0.0:
        return 0.0
    if p0 >= 1.0:
        return 1.0
    return float(stats.binom.sf(k - 1, m, p0))


def upper_share(share: float, n: int, z: float = 3.0) -> float:
    """A reference share's upper bound: share + z·sqrt(share(1 − share)/n) + 1/n, ≤ 1."""
    if n <= 0:
        return 1.0
    return min(1.0, share + z * math.sqrt(max(share * (1.0 - share), 0.0) / n) + 1.0 / n)


def good_turing_unseen(counts: Sequence[int] | np.ndarray) -> tuple[float, float]:
    """(unseen mass f₁/n, its standard error) from a sample's exact category counts."""
    c = np.asarray(counts, dtype=np.int64)
    n = int(c.sum())
    if n <= 0:
        return 1.0, 0.0
    f1 = int(np.count_nonzero(c == 1))
    f2 = int(np.count_nonzero(c == 2))
    var = (f1 * (1.0 - f1 / n) + 2.0 * f2) / (n * n)
    return f1 / n, math.sqrt(max(var, 0.0))


def merge_sparse_cells(
    r: np.ndarray, c: np.ndarray, min_expected: float = MIN_EXPECTED
) -> tuple[np.ndarray, np.ndarray, int]:
    """(reference counts, current counts, cells pooled) with sparse columns pooled.

    Columns whose smaller expected count, (column total) × min(row totals) / N, is below
    ``min_expected`` go into one pooled column; while the pool itself falls short, the
    smallest kept column joins it. Columns of zero total are dropped. The kept columns
    keep their order; the pool, if any, is last.
    """
    keep = (r + c) > 0
    r, c = r[keep], c[keep]
    total = float(r.sum() + c.sum())
    if r.size < 2 or total <= 0:
        return r, c, 0
    scale = min(float(r.sum()), float(c.sum())) / total
    expected = (r + c) * scale
    sparse = expected < min_expected
    if not sparse.any():
        return r, c, 0
    pool_r, pool_c = float(r[sparse].sum()), float(c[sparse].sum())
    kept = np.flatnonzero(~sparse)
    kept = kept[np.argsort((r + c)[kept], kind="stable")]  # smallest first
    i = 0
    while (pool_r + pool_c) * scale < min_expected and i < kept.size:
        pool_r, pool_c = pool_r + r[kept[i]], pool_c + c[kept[i]]
        i += 1
    rest = np.sort(kept[i:])
    pooled = int(sparse.sum()) + i
    return np.append(r[rest], pool_r), np.append(c[rest], pool_c), pooled


def psi_null_mean(bins: int, n: int, m: int) -> float:
    """Expected PSI between two samples (n, m values) of one distribution on ``bins``."""
    if bins < 2 or n <= 0 or m <= 0:
        return 0.0
    return (bins - 1) * (1.0 / n + 1.0 / m)


def js2_null_mean(bins: int, n: int, m: int) -> float:
    """Expected squared Jensen–Shannon distance (bits) under no drift."""
    return psi_null_mean(bins, n, m) / (8.0 * math.log(2.0))


def expected_distinct(counts: Sequence[int] | np.ndarray, m: int) -> float:
    """Expected distinct values in a sample of ``m`` from the distribution ``counts`` came
    from (rarefaction below the sample size, Chao–Shen extrapolation above it)."""
    c = np.asarray(counts, dtype=np.float64)
    c = c[c > 0]
    n = float(c.sum())
    if n <= 0 or m <= 0:
        return 0.0
    if m <= n:
        return float(np.sum(1.0 - (1.0 - c / n) ** m))
    f1, f2 = float(np.sum(c == 1)), float(np.sum(c == 2))
    f0 = f1 * f1 / (2.0 * f2) if f2 > 0 else f1 * (f1 - 1.0) / 2.0
    if f0 <= 0 or f1 <= 0:
        return float(c.size)
    return float(c.size + f0 * (1.0 - (1.0 - f1 / (n * f0 + f1)) ** (m - n)))


def benjamini_hochberg(pvalues: Sequence[float], q: float) -> list[bool]:
    """Discoveries among ``pvalues`` at false discovery rate ``q`` (step-up procedure)."""
    p = np.asarray(pvalues, dtype=np.float64)
    k = p.size
    if k == 0:
        return []
    order = np.argsort(p, kind="stable")
    below = p[order] <= q * np.arange(1, k + 1) / k
    out = np.zeros(k, dtype=bool)
    if below.any():
        last = int(np.flatnonzero(below)[-1])
        out[order[: last + 1]] = True
    return [bool(x) for x in out]
