"""Performance checks: a metric's drop against the reference, calibration drift, label
drift — each graded only when it is statistically clear at the window's labeled size.

Pure functions from (window accumulator or estimate, reference values, policy) to a
:class:`PerformanceFinding`, or None when the window has fewer than
``min_labeled`` labeled rows or the metric is undefined. The worker maps findings onto
the alert lifecycle (check names ``performance`` / ``calibration`` / ``label_drift``).

* **Drop** (``judge_drop``): relative change (reference − value)/reference for a metric
  where higher is better (accuracy, precision, recall, F1, ROC AUC), (value −
  reference)/reference where lower is better (RMSE, MAE, MAPE, log loss, Brier). Graded
  warning above ``drop_warning`` (5%), critical above ``drop_critical`` (10%), and
  critical below an absolute ``floor`` when one is configured — but only when the
  window's 95% interval lies wholly on the bad side of the reference (for a floor: of
  the floor): Wilson (1927) for accuracy, precision and recall, Hanley & McNeil (1982)
  for ROC AUC, s/√n and the delta method for MAE and RMSE, ``accuracy_se`` for a CBPE
  estimate. A metric without an interval (F1, MAPE) is graded on the point value
  alone. With ``floor_for_s`` > 0 the floor is not judged per window here but over the
  run of windows below it (:mod:`streamproc.checks.performance_trend`). The reference's
  own sampling error is not added (a validation set is usually far larger than a
  window; a small one makes the check more eager, not less).
* **Calibration** (``calibration_drift``): Brier score increase over the reference,
  warning above +0.02, critical above +0.05; gated by the increase exceeding z × an upper
  bound of its standard error — a per-row Brier term lies in [0, 1], so its variance is at
  most B(1 − B) (Bhatia–Davis 2000).
* **Label drift** (``label_drift``): PSI of the class prior against the reference's
  (shares smoothed as for features), warning above 0.1, critical above 0.25, gated by the
  chi-squared test of homogeneity at ``label_drift_alpha``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np

from streamproc.checks.context import grade
from streamproc.checks.result import Severity
from streamproc.core.categorical_drift import chi2_homogeneity
from streamproc.core.cbpe import Estimate
from streamproc.core.divergence import psi
from streamproc.core.intervals import Z_95, Interval, normal_interval
from streamproc.core.performance import ClassificationPerformance
from streamproc.core.regression_performance import RegressionPerformance

HIGHER_IS_BETTER: Final = frozenset({"accuracy", "precision", "recall", "f1", "roc_auc"})
LOWER_IS_BETTER: Final = frozenset({"rmse", "mae", "mape", "log_loss", "brier"})
PSI_EPS: Final = 5e-4


@dataclass(frozen=True)
class PerformancePolicy:
    """Thresholds of the performance checks (defaults of issue #16)."""

    primary_metric: str = "accuracy"
    drop_warning: float = 0.05
    drop_critical: float = 0.10
    floor: float | None = None
    """Absolute bound on the primary metric (a minimum, or a maximum when lower is
    better); crossing it is critical."""
    brier_warning: float = 0.02
    brier_critical: float = 0.05
    label_psi_warning: float = 0.1
    label_psi_critical: float = 0.25
    label_drift_alpha: float = 0.01
    min_labeled: int = 200
    floor_for_s: float = 0.0
    """How long (event time) every labeled window must stay below the floor before the
    floor is critical (:func:`~streamproc.checks.performance_trend.floor_run`); 0: at once."""
    label_staleness_s: float = 21600.0
    """``label_staleness``: wall-clock seconds without a performance delta for a model
    version that had labels (0: off)."""
    label_delay_s: float = 86400.0
    """``label_coverage`` judges the newest closed window at least this much event time
    older than the model's newest event (labels are due by then)."""
    label_coverage_min: float = 0.0
    """``label_coverage``: labeled / predicted rows below this → warning, below half of
    it → critical (0: off)."""
    z: float = Z_95

    def __post_init__(self) -> None:
        if self.primary_metric not in HIGHER_IS_BETTER | LOWER_IS_BETTER:
            raise ValueError(f"unknown primary metric {self.primary_metric!r}")
        for name in ("drop", "brier", "label_psi"):
            w, c = getattr(self, f"{name}_warning"), getattr(self, f"{name}_critical")
            if not 0 <= w <= c:
                raise ValueError(f"{name}: need 0 <= warning <= critical, got {w}, {c}")
        if self.min_labeled < 1 or not 0 < self.label_drift_alpha < 1:
            raise ValueError("min_labeled must be >= 1 and label_drift_alpha in (0, 1)")
        for name in ("floor_for_s", "label_staleness_s", "label_delay_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.label_coverage_min <= 1:
            raise ValueError(f"label_coverage_min must be in [0, 1], got {self.label_coverage_min}")
        if self.floor is not None and not math.isfinite(self.floor):
            raise ValueError(f"floor must be a finite number, got {self.floor}")


@dataclass(frozen=True)
class PerformanceFinding:
    check: str
    """``performance``, ``calibration``, ``label_drift`` or ``gap``."""
    metric: str
    kind: str
    """``realized`` or ``estimated``."""
    value: float
    reference: float
    change: float
    """Relative drop, absolute Brier increase, or PSI."""
    severity: Severity | None
    interval: Interval | None
    n: int
    summary: str

    @property
    def breached(self) -> bool:
        return self.severity is not None


def judge_drop(
    metric: str,
    value: float,
    interval: Interval | None,
    reference: float,
    n: int,
    policy: PerformancePolicy,
    kind: str = "realized",
) -> PerformanceFinding | None:
    """Grade one metric against its reference value (see the module docstring)."""
    if n < policy.min_labeled or not (math.isfinite(value) and math.isfinite(reference)):
        return None
    higher = metric in HIGHER_IS_BETTER
    sign = 1.0 if higher else -1.0
    change = sign * (reference - value) / abs(reference) if reference else 0.0
    severity = grade(change, policy.drop_warning, policy.drop_critical)
    # statistically clear: the whole interval is worse than the reference
    if interval is not None and severity is not None:
        bound = interval.high if higher else interval.low
        if sign * (reference - bound) <= 0:
            severity = None
    # a sustained floor (floor_for_s > 0) is judged over windows: performance_trend
    immediate = metric == policy.primary_metric and not policy.floor_for_s
    floor = policy.floor if immediate else None
    if floor is not None and sign * (floor - value) > 0:
        bound = value if interval is None else (interval.high if higher else interval.low)
        if sign * (floor - bound) > 0:
            severity = "critical"
    ci = "" if interval is None else f", 95% interval [{interval.low:.4g}, {interval.high:.4g}]"
    summary = (
        f"{kind} {metric} {value:.4g} vs reference {reference:.4g} "
        f"({change:+.1%} {'drop' if higher else 'increase'}{ci}, n={n})"
    )
    return PerformanceFinding("performance", metric, kind, value, reference, change,
                              severity, interval, n, summary)  # fmt: skip


def realized_drop(
    perf: ClassificationPerformance | RegressionPerformance,
    reference: Mapping[str, float | None],
    policy: PerformancePolicy,
    metric: str | None = None,
) -> PerformanceFinding | None:
    """:func:`judge_drop` of a realized window accumulator's metric."""
    name = metric or policy.primary_metric
    value, ref = perf.metrics().get(name), reference.get(name)
    if value is None or ref is None:
        return None
    n = perf.n if name not in ("roc_auc", "log_loss", "brier") else _scored(perf)
    return judge_drop(name, value, perf.intervals().get(name), ref, n, policy)


def estimated_drop(
    est: Estimate,
    reference: Mapping[str, float | None],
    policy: PerformancePolicy,
    metric: str | None = None,
) -> PerformanceFinding | None:
    """:func:`judge_drop` of a CBPE estimate (accuracy carries ``accuracy_se``)."""
    name = metric or policy.primary_metric
    value, ref = getattr(est, name, None), reference.get(name)
    if value is None or ref is None:
        return None
    iv = None
    if name == "accuracy" and est.accuracy_se is not None:
        iv = normal_interval(value, est.accuracy_se, est.n, policy.z)
    return judge_drop(name, value, iv, ref, est.n, policy, kind="estimated")


def calibration_drift(
    perf: ClassificationPerformance, reference_brier: float, policy: PerformancePolicy
) -> PerformanceFinding | None:
    """Brier score increase over the reference, gated by its standard-error bound."""
    n = perf.n_scored
    brier = perf.metrics().get("brier")
    if n < policy.min_labeled or brier is None:
        return None
    change = brier - reference_brier
    se = math.sqrt(max(brier * (1.0 - brier), 0.0) / n)
    severity = grade(change, policy.brier_warning, policy.brier_critical)
    if change - policy.z * se <= 0:
        severity = None
    iv = Interval(brier, brier - policy.z * se, brier + policy.z * se, n)
    summary = f"Brier score {brier:.4f} vs reference {reference_brier:.4f} ({change:+.4f}, n={n})"
    return PerformanceFinding("calibration", "brier", "realized", brier, reference_brier,
                              change, severity, iv, n, summary)  # fmt: skip


def label_drift(
    priors: Mapping[str, int], reference_priors: Mapping[str, int], policy: PerformancePolicy
) -> PerformanceFinding | None:
    """PSI of the class prior vs the reference's, gated by chi-squared homogeneity."""
    n = int(sum(priors.values()))
    if n < policy.min_labeled or not reference_priors:
        return None
    classes = sorted(set(priors) | set(reference_priors))
    cur = np.array([priors.get(c, 0) for c in classes], dtype=np.float64)
    ref = np.array([reference_priors.get(c, 0) for c in classes], dtype=np.float64)
    value = psi(ref / ref.sum(), cur / cur.sum(), PSI_EPS)
    _stat, pvalue, _dof = chi2_homogeneity(ref, cur)
    severity = grade(value, policy.label_psi_warning, policy.label_psi_critical)
    if not pvalue < policy.label_drift_alpha:
        severity = None
    i = int(np.argmax(np.abs(cur / n - ref / ref.sum())))
    top = classes[i]
    summary = (
        f"class prior PSI {value:.3f} (chi-squared p={pvalue:.2g}, n={n}); "
        f"largest change: {top!r} {ref[i] / ref.sum():.1%} → {cur[i] / n:.1%}"
    )
    return PerformanceFinding("label_drift", "class_prior_psi", "realized", value, 0.0,
                              value, severity, None, n, summary)  # fmt: skip


def _scored(perf: ClassificationPerformance | RegressionPerformance) -> int:
    return perf.n_scored if isinstance(perf, ClassificationPerformance) else perf.n
