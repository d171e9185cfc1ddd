"""A floor held for a duration, the train–production gap, label staleness and coverage:
pure functions, expected values from sklearn / numpy / scipy on the raw rows."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import accuracy_score, mean_squared_error

from streamproc.checks.label_checks import label_coverage, label_staleness
from streamproc.checks.performance_checks import PerformancePolicy, judge_drop, realized_drop
from streamproc.checks.performance_trend import (
    FloorRun,
    MetricWindow,
    floor_run,
    gap_value,
    performance_gap,
    sustain_floor,
)
from streamproc.core.intervals import wilson_interval
from streamproc.core.performance import ClassificationPerformance

H = 3_600_000
T0 = 1_714_557_600_000


def _rows(n: int, accuracy: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.5
    pred = np.where(rng.random(n) < accuracy, y, ~y)
    return y.astype(int), pred.astype(int)


def _hourly(accuracies: list[float], n: int = 2000) -> list[MetricWindow]:
    """One-hour windows, their accuracy computed by sklearn from the raw rows."""
    out = []
    for i, a in enumerate(accuracies):
        y, p = _rows(n, a, seed=i)
        out.append(MetricWindow(T0 + i * H, T0 + (i + 1) * H, float(accuracy_score(y, p)), n))
    return out


SUSTAINED = PerformancePolicy(floor=0.95, floor_for_s=6 * 3600.0)


def test_a_floor_held_long_enough_is_sustained() -> None:
    windows = _hourly([0.99] * 4 + [0.90] * 8)
    below = [w for w in windows if w.value is not None and w.value < 0.95]
    run = floor_run(windows, SUSTAINED)
    assert run is not None and run.sustained
    assert (run.start_ms, run.end_ms) == (below[0].start_ms, below[-1].end_ms)
    assert run.windows == len(below) == 8 and run.duration_s == 8 * 3600.0
    shorter = floor_run(windows[:8], SUSTAINED)  # 4 h below so far
    assert shorter is not None and not shorter.sustained and shorter.windows == 4


def test_a_gap_an_unlabeled_window_or_a_good_one_resets_the_run() -> None:
    windows = _hourly([0.90] * 12)
    missing = windows[:7] + windows[8:]  # hour 7 has no window
    run = floor_run(missing, SUSTAINED)
    assert run is not None and run.windows == 4 and not run.sustained
    thin = list(windows)
    thin[8] = MetricWindow(thin[8].start_ms, thin[8].end_ms, 0.5, 10)  # < min_labeled
    run = floor_run(thin, SUSTAINED)
    assert run is not None and run.windows == 3 and not run.sustained
    good = _hourly([0.90] * 11 + [0.99])
    assert floor_run(good, SUSTAINED) is None  # the newest labeled window is fine
    at_floor = list(windows)
    at_floor[9] = MetricWindow(at_floor[9].start_ms, at_floor[9].end_ms, 0.95, 2000)
    run = floor_run(at_floor, SUSTAINED)
    assert run is not None and run.windows == 2


def test_no_run_without_a_sustained_floor() -> None:
    windows = _hourly([0.5] * 12)
    assert floor_run(windows, PerformancePolicy(floor=0.95)) is None  # floor_for 0: at once
    assert floor_run(windows, PerformancePolicy(floor_for_s=3600.0)) is None  # no floor


def test_lower_is_better_floor_is_a_maximum() -> None:
    rng = np.random.default_rng(3)
    windows = []
    for i in range(6):
        y = rng.normal(0, 1, 500)
        p = y + rng.normal(0, 2.0 if i >= 2 else 0.5, 500)
        rmse = float(np.sqrt(mean_squared_error(y, p)))
        windows.append(MetricWindow(T0 + i * H, T0 + (i + 1) * H, rmse, 500))
    pol = PerformancePolicy(primary_metric="rmse", floor=1.0, floor_for_s=4 * 3600.0)
    run = floor_run(windows, pol)
    assert run is not None and run.sustained and run.start_ms == T0 + 2 * H


def test_a_sustained_floor_is_judged_over_the_run_not_per_window() -> None:
    y, p = _rows(10_000, 0.93, seed=5)
    acc = float(accuracy_score(y, p))
    iv = wilson_interval(int((y == p).sum()), len(y))
    mild = PerformancePolicy(floor=0.95, drop_warning=0.5, drop_critical=0.6)
    assert judge_drop("accuracy", acc, iv, 0.96, len(y), mild).severity == "critical"  # type: ignore[union-attr]
    sustained = PerformancePolicy(
        floor=0.95, floor_for_s=6 * 3600.0, drop_warning=0.5, drop_critical=0.6
    )
    finding = judge_drop("accuracy", acc, iv, 0.96, len(y), sustained)
    assert finding is not None and finding.severity is None  # not yet: no run given
    run = FloorRun(T0, T0 + 8 * H, 8, 0.95, 6 * 3600.0)
    escalated = sustain_floor(finding, run)
    assert escalated.severity == "critical"
    assert "below the floor 0.95 for 8.0 h (8 windows)" in escalated.summary
    young = sustain_floor(finding, FloorRun(T0, T0 + 2 * H, 2, 0.95, 6 * 3600.0))
    assert young.severity is None and "alerting after 6.0 h" in young.summary


def _perf(y: np.ndarray, p: np.ndarray) -> ClassificationPerformance:
    perf = ClassificationPerformance(positive="1")
    perf.update(y, p, np.where(p == 1, 0.8, 0.2))
    return perf


def test_the_gap_of_the_merged_horizon_is_clear_where_one_window_is_not() -> None:
    parts = [_rows(400, 0.85, seed=10 + i) for i in range(10)]
    merged = _perf(*parts[0])
    for y, p in parts[1:]:
        merged = merged.merge(_perf(y, p))
    y_all = np.concatenate([y for y, _ in parts])
    p_all = np.concatenate([p for _, p in parts])
    expected = float(accuracy_score(y_all, p_all))
    ref = {"accuracy": 0.9}
    y0, p0 = parts[0][0][:40], parts[0][1][:40]
    assert _wilson_high(int((y0 == p0).sum()), 40) > 0.9  # 40 rows prove nothing
    one = realized_drop(_perf(y0, p0), ref, PerformancePolicy(min_labeled=20))
    assert one is not None and one.severity is None
    gap = performance_gap(merged, ref, PerformancePolicy(floor=0.95))  # 0.85 is below it
    assert gap is not None and gap.check == "gap" and gap.n == len(y_all)
    assert gap.value == pytest.approx(expected, rel=1e-12)
    drop = (0.9 - expected) / 0.9
    assert gap.change == pytest.approx(drop, rel=1e-9)
    assert _wilson_high(int((y_all == p_all).sum()), len(y_all)) < 0.9  # clear at n = 4000
    assert 0.05 < drop <= 0.10 and gap.severity == "warning"  # the floor is not applied
    assert gap_value("accuracy", expected, 0.9) == pytest.approx(0.9 - expected)
    assert gap_value("rmse", 1.3, 1.0) == pytest.approx(0.3)  # positive: worse either way
    assert performance_gap(_perf(*_rows(50, 0.5, 1)), ref, PerformancePolicy()) is None


def test_label_staleness() -> None:
    policy = PerformancePolicy(label_staleness_s=6 * 3600.0)
    last, now = T0, T0 + 7 * H
    r = label_staleness("m", "1", last_label_arrival_ms=last, now_ms=now, policy=policy,
                        replaying=False)  # fmt: skip
    assert r is not None and r.breached and r.severity == "critical"
    assert r.value == (now - last) / 1000 and r.threshold == 6 * 3600.0
    assert (r.window_start_ms, r.window_end_ms) == (last, now)
    fresh = label_staleness("m", "1", last_label_arrival_ms=last, now_ms=last + H,
                            policy=policy, replaying=False)  # fmt: skip
    assert fresh is not None and not fresh.breached
    common = {"last_label_arrival_ms": last, "now_ms": now, "policy": policy}
    assert label_staleness("m", "1", replaying=True, **common) is None  # type: ignore[arg-type]
    assert label_staleness("m", "1", replaying=False, serving=False, **common) is None  # type: ignore[arg-type]
    never = {"last_label_arrival_ms": 0, "now_ms": now, "policy": policy}
    assert label_staleness("m", "1", replaying=False, **never) is None  # type: ignore[arg-type]
    off = PerformancePolicy(label_staleness_s=0.0)
    assert label_staleness("m", "1", last_label_arrival_ms=last, now_ms=now, policy=off,
                           replaying=False) is None  # fmt: skip


def _wilson_high(k: int, n: int) -> float:
    """Wilson (1927) upper bound, written out from scipy's normal quantile."""
    z = norm.ppf(0.975)
    p = k / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return float(center + half)


@pytest.mark.parametrize(
    ("labeled", "predicted", "severity"),
    [
        (2_000, 10_000, "critical"),  # 20% < half of 50%
        (4_000, 10_000, "warning"),  # 40% < 50%
        (4_950, 10_000, None),  # 49.5%, but the interval reaches 50%
        (6_000, 10_000, None),
        (0, 3, None),  # three predictions without labels prove nothing
        (0, 40, "critical"),
    ],
)
def test_label_coverage(labeled: int, predicted: int, severity: str | None) -> None:
    policy = PerformancePolicy(label_coverage_min=0.5)
    r = label_coverage("m", "1", window_start_ms=T0, window_end_ms=T0 + H, labeled=labeled,
                       predicted=predicted, policy=policy)  # fmt: skip
    assert r is not None and r.severity == severity and r.breached is (severity is not None)
    assert r.value == labeled / predicted
    high = _wilson_high(labeled, predicted)
    assert r.evidence["interval"][1] == pytest.approx(high, rel=1e-9)  # type: ignore[index]
    expected = "critical" if high < 0.25 else "warning" if high < 0.5 else None
    assert severity == expected


def test_label_coverage_is_off_by_default() -> None:
    kw = {"window_start_ms": T0, "window_end_ms": T0 + H, "labeled": 0, "predicted": 10_000}
    assert label_coverage("m", "1", policy=PerformancePolicy(), **kw) is None  # type: ignore[arg-type]
    on = PerformancePolicy(label_coverage_min=0.5)
    assert label_coverage("m", "1", policy=on, **{**kw, "predicted": 0}) is None  # type: ignore[arg-type]
