"""Paired tests of two model versions scored on the same labeled rows.

* :func:`mcnemar` — McNemar (1947), *Note on the sampling error of the difference between
  correlated proportions or percentages*, Psychometrika 12: on the discordant counts b
  (A right, B wrong) and c (B right, A wrong), the exact two-sided binomial p-value
  min(1, 2·P(X ≤ min(b, c) | b + c, ½)) below :data:`MCNEMAR_EXACT_BELOW` discordant
  pairs, else χ² = (|b − c| − 1)²/(b + c) with one degree of freedom (Edwards 1948's
  continuity correction).
* :func:`mcnemar_pairs_needed` — pairs needed for McNemar's test (Connor 1987).
* :func:`delong` — DeLong, DeLong & Clarke-Pearson (1988), *Comparing the areas under two
  or more correlated receiver operating characteristic curves: a nonparametric
  approach*, Biometrics 44: the covariance of two AUCs on the same rows from the
  Mann–Whitney structural components V₁₀ (per positive) and V₀₁ (per negative),
  Var(Â_B − Â_A) = (S₁₀ᵃᵃ + S₁₀ᵇᵇ − 2S₁₀ᵃᵇ)/m + (S₀₁ᵃᵃ + S₀₁ᵇᵇ − 2S₀₁ᵃᵇ)/n, computed in
  O(n log n) from midranks (Sun & Xu 2014, *Fast implementation of DeLong's algorithm
  for comparing the areas under correlated receiver operating characteristic curves*,
  IEEE Signal Processing Letters 21).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
from scipy import stats

MCNEMAR_EXACT_BELOW: Final = 25


@dataclass(frozen=True, slots=True)
class McNemar:
    b: int
    """Pairs A got right and B wrong."""
    c: int
    """Pairs B got right and A wrong."""
    statistic: float
    pvalue: float
    exact: bool


def mcnemar(b: int, c: int, exact_below: int = MCNEMAR_EXACT_BELOW) -> McNemar:
    """McNemar's test of b vs c discordant pairs (see the module docstring)."""
    m = b + c
    if m == 0:
        return McNemar(b, c, 0.0, 1.0, True)
    if m < exact_below:
        p = min(1.0, 2.0 * float(stats.binom.cdf(min(b, c), m, 0.5)))
        return McNemar(b, c, float(min(b, c)), p, True)
    chi2 = (abs(b - c) - 1.0) ** 2 / m
    return McNemar(b, c, chi2, float(stats.chi2.sf(chi2, 1)), False)


def mcnemar_pairs_needed(
    discordant: float, mde: float, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Pairs for McNemar's test to detect an accuracy difference ``mde`` when a share
    ``discordant`` of pairs disagree in correctness (Connor 1987, *Sample size for testing
    differences in proportions for the paired-sample design*, Biometrics 43):
    n = (z_{1−α/2}·√ψ + z_{1−β}·√(ψ − δ²))² / δ²."""
    if not (0.0 < abs(mde) < discordant <= 1.0):
        raise ValueError(f"need 0 < |mde| < discordant <= 1 (got {mde}, {discordant})")
    za, zb = float(stats.norm.isf(alpha / 2.0)), float(stats.norm.ppf(power))
    num = za * math.sqrt(discordant) + zb * math.sqrt(discordant - mde * mde)
    return math.ceil(num * num / (mde * mde))


@dataclass(frozen=True, slots=True)
class DeLong:
    auc_a: float
    auc_b: float
    se: float
    """Standard error of auc_b − auc_a."""
    z: float
    pvalue: float
    n_pos: int
    n_neg: int


def delong(labels: np.ndarray, score_a: np.ndarray, score_b: np.ndarray) -> DeLong | None:
    """DeLong's test of AUC_B = AUC_A on the same rows (labels: True = positive); None
    unless both classes are present."""
    y = np.asarray(labels, dtype=bool)
    m, n = int(y.sum()), int((~y).sum())
    if m < 1 or n < 1:
        return None
    v10 = np.empty((2, m))  # per positive: share of negatives scored below (ties ½)
    v01 = np.empty((2, n))  # per negative: share of positives scored above
    aucs = np.empty(2)
    for r, s in enumerate((np.asarray(score_a, float), np.asarray(score_b, float))):
        pos, neg = s[y], s[~y]
        tz = stats.rankdata(np.concatenate([pos, neg]))
        tx, ty = stats.rankdata(pos), stats.rankdata(neg)
        aucs[r] = (tz[:m].sum() - m * (m + 1) / 2.0) / (m * n)
        v10[r] = (tz[:m] - tx) / n
        v01[r] = 1.0 - (tz[m:] - ty) / m
    s10 = np.cov(v10) if m > 1 else np.zeros((2, 2))
    s01 = np.cov(v01) if n > 1 else np.zeros((2, 2))
    cov = s10 / m + s01 / n
    var = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    diff = float(aucs[1] - aucs[0])
    se = math.sqrt(max(var, 0.0))
    if se == 0.0:
        z, p = 0.0, 1.0 if diff == 0.0 else 0.0
    else:
        z = diff / se
        p = float(2.0 * stats.norm.sf(abs(z)))
    return DeLong(float(aucs[0]), float(aucs[1]), se, z, p, m, n)
