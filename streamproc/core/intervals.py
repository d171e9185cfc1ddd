"""Sampling uncertainty of performance metrics at a window's labeled sample size.

* :func:`wilson_interval` — Wilson (1927), *Probable inference, the law of succession,
  and statistical inference*, JASA 22: the score interval for a binomial proportion
  (accuracy, precision, recall), which unlike the normal (Wald) interval stays inside
  [0, 1] and keeps its coverage near 0 and 1 and at small n.
* :func:`hanley_mcneil_se` — Hanley & McNeil (1982), *The meaning and use of the area
  under a receiver operating characteristic (ROC) curve*, Radiology 143: the standard
  error of an AUC estimate from n₊ positives and n₋ negatives, with
  Q₁ = A/(2 − A) and Q₂ = 2A²/(1 + A) (the exponential-score approximation).
* :func:`mean_se` — the standard error s/√n of a mean (MAE: the mean of |e|), and
  :func:`rmse_se`, the delta method on √MSE: SE(RMSE) ≈ SE(MSE) / (2·RMSE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

Z_95: Final = 1.959963984540054
"""Two-sided 95% normal quantile."""


@dataclass(frozen=True, slots=True)
class Interval:
    """A point estimate with a two-sided confidence interval ``[low, high]``."""

    value: float
    low: float
    high: float
    n: int
    """The sample size behind it (labeled rows, or positives × negatives for AUC: see
    :func:`auc_interval`, which reports the labeled rows)."""

    def to_dict(self) -> dict[str, float | int]:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}


def wilson_interval(successes: int, n: int, z: float = Z_95) -> Interval | None:
    """Wilson score interval of ``successes`` / ``n`` (None when n = 0)."""
    if n <= 0:
        return None
    p = successes / n
    z2 = z * z
    den = 1.0 + z2 / n
    center = (p + z2 / (2 * n)) / den
    half = z / den * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    return Interval(p, max(0.0, center - half), min(1.0, center + half), n)


def hanley_mcneil_se(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of an AUC of ``auc`` from ``n_pos`` positives and ``n_neg``
    negatives (Hanley & McNeil 1982, eq. 2); NaN when either class is empty."""
    if n_pos <= 0 or n_neg <= 0 or not math.isfinite(auc):
        return math.nan
    q1 = auc / (2.0 - auc)
    q2 = 2.0 * auc * auc / (1.0 + auc)
    a2 = auc * auc
    var = (auc * (1.0 - auc) + (n_pos - 1) * (q1 - a2) + (n_neg - 1) * (q2 - a2)) / (n_pos * n_neg)
    return math.sqrt(max(var, 0.0))


def auc_interval(auc: float, n_pos: int, n_neg: int, z: float = Z_95) -> Interval | None:
    """``auc ± z·SE`` (Hanley–McNeil), clipped to [0, 1]; None when a class is empty."""
    se = hanley_mcneil_se(auc, n_pos, n_neg)
    if not math.isfinite(se):
        return None
    return Interval(auc, max(0.0, auc - z * se), min(1.0, auc + z * se), n_pos + n_neg)


def mean_se(mean: float, mean_sq: float, n: int) -> float:
    """SE of a mean from the mean and the mean of squares of n values (sample variance
    with n − 1); NaN for n < 2."""
    if n < 2:
        return math.nan
    var = max(mean_sq - mean * mean, 0.0) * n / (n - 1)
    return math.sqrt(var / n)


def rmse_se(mse: float, mean_fourth: float, n: int) -> float:
    """SE of √MSE by the delta method, from the MSE (mean of e²) and the mean of e⁴."""
    if n < 2 or mse <= 0.0:
        return math.nan
    return mean_se(mse, mean_fourth, n) / (2.0 * math.sqrt(mse))


def normal_interval(value: float, se: float, n: int, z: float = Z_95) -> Interval | None:
    """``value ± z·se`` (None when the SE is undefined)."""
    if not (math.isfinite(value) and math.isfinite(se)):
        return None
    return Interval(value, value - z * se, value + z * se, n)
