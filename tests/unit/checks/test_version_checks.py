"""Rollout checks: shadow and A/B pairs reach the verdict their data implies."""

from __future__ import annotations

import numpy as np
import pytest

from streamproc.checks.version_checks import (
    ArmStats,
    RolloutPolicy,
    guardrails,
    judge_ab,
    judge_shadow,
)
from streamproc.core.shadow import ShadowPairs


def _shadow(n: int, lift: float, seed: int) -> ShadowPairs:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.5
    common = rng.normal(size=n)
    a = 1 / (1 + np.exp(-(common + 1.0 * (2 * y - 1) + rng.normal(size=n))))
    b = 1 / (1 + np.exp(-(common + (1.0 + lift) * (2 * y - 1) + rng.normal(size=n))))
    sp = ShadowPairs()
    sp.update(a, b)
    sp.update_labeled([f"r{i}" for i in range(n)], a, b, y)
    return sp


@pytest.mark.parametrize(
    ("n", "lift", "metric", "verdict"),
    [
        (6000, 0.6, "accuracy", "ship"),
        (6000, 0.6, "roc_auc", "ship"),
        (6000, -0.6, "accuracy", "kill"),
        (120, 0.6, "accuracy", "extend"),  # below min_n
        (6000, 0.0, "roc_auc", "extend"),
    ],
)
def test_shadow_verdicts(n: int, lift: float, metric: str, verdict: str) -> None:
    f = judge_shadow(_shadow(n, lift, 1), RolloutPolicy(primary_metric=metric))
    assert f is not None and f.verdict == verdict
    assert f.breached == (verdict == "kill")
    assert f.evidence["pairs"] == n and 0 < f.evidence["agreement"]["value"] <= 1


def test_shadow_without_labels_has_no_verdict() -> None:
    sp = ShadowPairs()
    sp.update(np.array([0.1, 0.9]), np.array([0.2, 0.8]))
    assert judge_shadow(sp, RolloutPolicy()) is None
    with pytest.raises(ValueError):
        judge_shadow(sp, RolloutPolicy(primary_metric="f1"))


def test_ab_with_a_broken_guardrail_investigates() -> None:
    policy = RolloutPolicy(primary_metric="conversion")
    a = ArmStats(
        n=10_000,
        errors=50,
        fallbacks=10,
        latency_n=10_000,
        latency_mean_ms=40.0,
        latency_var_ms2=400.0,
    )
    b = ArmStats(
        n=10_000,
        errors=150,
        fallbacks=12,
        latency_n=10_000,
        latency_mean_ms=40.2,
        latency_var_ms2=400.0,
    )
    guards = guardrails(a, b, policy)
    assert {g.name: g.degraded for g in guards} == {
        "error_rate": True,
        "fallback_rate": False,
        "latency_mean_ms": False,
    }
    f = judge_ab(1000, 10_000, 1200, 10_000, policy, guards)
    assert f.verdict == "investigate" and f.severity == "warning"
    assert "error_rate" in f.summary
    assert judge_ab(1000, 10_000, 1200, 10_000, policy, guardrails(a, a, policy)).verdict == "ship"
    small = judge_ab(10, 100, 30, 100, policy)
    assert small.verdict == "extend" and small.decision.primary.needed_per_arm > 0
