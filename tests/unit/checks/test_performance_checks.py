"""Performance checks: graded only when the change is large and statistically clear."""

from __future__ import annotations

import numpy as np
import pytest

from streamproc.checks.performance_checks import (
    PerformancePolicy,
    calibration_drift,
    estimated_drop,
    judge_drop,
    label_drift,
    realized_drop,
)
from streamproc.core.cbpe import CalibrationMap, ScoreDistribution, estimate
from streamproc.core.intervals import wilson_interval
from streamproc.core.performance import ClassificationPerformance
from streamproc.core.regression_performance import RegressionPerformance

POLICY = PerformancePolicy()


def _window(n: int, accuracy: float, seed: int = 0) -> ClassificationPerformance:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.5
    right = rng.random(n) < accuracy
    pred = np.where(right, y, ~y)
    score = np.where(pred, 0.8, 0.2)
    perf = ClassificationPerformance(positive="1")
    perf.update(y.astype(int), pred.astype(int), score)
    return perf


def test_a_large_clear_drop_is_critical() -> None:
    f = realized_drop(_window(5000, 0.75), {"accuracy": 0.9}, POLICY)
    assert f is not None and f.severity == "critical" and f.change > 0.1
    assert f.interval is not None and f.interval.high < 0.9
    assert "95% interval" in f.summary and "n=5000" in f.summary


def test_the_same_drop_at_a_small_sample_is_not_clear() -> None:
    # 0.80 vs 0.88 is a 9% drop; at n = 30 Wilson's interval still covers 0.88
    iv = wilson_interval(24, 30)
    assert iv is not None and iv.high > 0.88
    f = judge_drop("accuracy", 0.8, iv, 0.88, 30, PerformancePolicy(min_labeled=20))
    assert f is not None and f.severity is None and f.change > 0.05
    big = judge_drop("accuracy", 0.8, wilson_interval(8000, 10000), 0.88, 10000, POLICY)
    assert big is not None and big.severity == "warning"


def test_below_min_labeled_gives_no_finding() -> None:
    assert realized_drop(_window(100, 0.5), {"accuracy": 0.9}, POLICY) is None


def test_floor_is_critical_and_lower_is_better_metrics() -> None:
    pol = PerformancePolicy(
        primary_metric="accuracy", floor=0.95, drop_warning=0.5, drop_critical=0.6
    )
    f = judge_drop("accuracy", 0.93, wilson_interval(9300, 10000), 0.96, 10000, pol)
    assert f is not None and f.severity == "critical"
    rng = np.random.default_rng(1)
    y = rng.normal(0, 1, 4000)
    reg = RegressionPerformance()
    reg.update(y, y + rng.normal(0, 1.3, 4000))
    f = realized_drop(reg, {"rmse": 1.0}, PerformancePolicy(primary_metric="rmse"))
    assert f is not None and f.severity == "critical" and f.change == pytest.approx(0.3, abs=0.05)


def test_estimated_drop_uses_the_cbpe_interval() -> None:
    rng = np.random.default_rng(2)
    s = rng.beta(5, 5, 20_000)  # scores near 0.5: a low estimated accuracy
    dist = ScoreDistribution(positive="1")
    dist.update(s)
    est = estimate(dist, CalibrationMap.fit_scores(s, rng.random(20_000) < s))
    f = estimated_drop(est, {"accuracy": 0.85}, POLICY)
    assert f is not None and f.kind == "estimated" and f.severity == "critical"


def test_calibration_drift() -> None:
    good = _window(5000, 0.9)  # scores 0.8/0.2 on 90% right: Brier ≈ 0.1
    f = calibration_drift(good, 0.1, POLICY)
    assert f is not None and f.severity is None
    bad = _window(5000, 0.75)
    f = calibration_drift(bad, 0.1, POLICY)
    assert f is not None and f.severity == "critical" and f.change > 0.05


def test_label_drift() -> None:
    ref = {"0": 9000, "1": 1000}
    assert label_drift({"0": 900, "1": 100}, ref, POLICY).severity is None  # type: ignore[union-attr]
    f = label_drift({"0": 600, "1": 400}, ref, POLICY)
    assert f is not None and f.severity == "critical" and "90.0% → 60.0%" in f.summary
    small = label_drift({"0": 2, "1": 3}, ref, PerformancePolicy(min_labeled=1))
    assert small is not None and small.severity is None  # not significant at n = 5
