"""Rollout arms from windows: service counters against numpy, verdicts by the table."""

from __future__ import annotations

import numpy as np
import pytest

from streamproc.checks.model_settings import RolloutSpec
from streamproc.checks.version_checks import RolloutPolicy
from streamproc.core import ops
from streamproc.core.kinds import FeatureKind
from streamproc.core.model_profile import ModelProfile
from streamproc.core.performance import ClassificationPerformance
from streamproc.monitor.rollout_eval import arm_accuracy, arm_stats, judge_rollout
from streamproc.monitor.state import AggregateState, WindowState


def _window(
    version: str, start: int, rng: np.random.Generator, acc: float
) -> tuple[WindowState, dict[str, np.ndarray]]:
    n = 800
    lat = rng.gamma(4, 5, n)
    err = rng.random(n) < 0.02
    fb = rng.random(n) < 0.05
    profile = ModelProfile.new("m", version, {"x": FeatureKind.NUMERIC})
    profile.update_columns({"x": rng.normal(0, 1, n)}, latency_ms=lat)
    o = ops.new_ops_profile("m", version)
    o.update_columns({ops.ERROR: err, ops.FALLBACK: fb})
    truth = rng.choice(["a", "b"], n)
    right = rng.random(n) < acc
    pred = np.where(right, truth, np.where(truth == "a", "b", "a"))
    perf = ClassificationPerformance()
    perf.update(list(truth), list(pred))
    w = WindowState("m", version, start, start + 1000, profile, o, performance=perf)
    return w, {"lat": lat, "err": err, "fb": fb, "right": right}


def test_arm_stats_equal_numpy_over_windows() -> None:
    rng = np.random.default_rng(3)
    made = [_window("1", k * 1000, rng, 0.7) for k in range(3)]
    stats = arm_stats([w for w, _ in made])
    lat = np.concatenate([r["lat"] for _, r in made])
    assert stats.n == lat.size
    assert stats.errors == int(sum(r["err"].sum() for _, r in made))
    assert stats.fallbacks == int(sum(r["fb"].sum() for _, r in made))
    assert stats.latency_mean_ms == pytest.approx(lat.mean(), rel=1e-9)
    assert stats.latency_var_ms2 == pytest.approx(lat.var(ddof=1), rel=1e-9)
    assert arm_accuracy([w for w, _ in made]) == (
        int(sum(r["right"].sum() for _, r in made)),
        lat.size,
    )


def _state(acc_b: float, windows: int) -> AggregateState:
    rng = np.random.default_rng(4)
    state = AggregateState(window_ms=1000, allowed_lateness_ms=0, retention_ms=10**9)
    for k in range(windows):
        for version, acc in (("1", 0.7), ("2", acc_b)):
            w, _ = _window(version, k * 1000, rng, acc)
            state.windows[w.key] = w
    return state


@pytest.mark.parametrize(
    ("acc_b", "windows", "min_n", "verdict"),
    [(0.85, 4, 200, "ship"), (0.55, 4, 200, "kill"), (0.85, 1, 2000, "extend")],
)
def test_ab_verdicts_follow_the_data(acc_b: float, windows: int, min_n: int, verdict: str) -> None:
    spec = RolloutSpec(
        "1",
        "2",
        "ab",
        RolloutPolicy(
            min_n=min_n, error_tolerance=0.05, fallback_tolerance=0.05, latency_tolerance_ms=50
        ),
    )
    finding, extra = judge_rollout(_state(acc_b, windows), "m", spec, windows * 1000)
    assert finding is not None and finding.verdict == verdict, finding
    assert extra["arms"]["champion"]["records"] == 800 * windows
