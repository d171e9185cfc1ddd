"""Model-service health checks on profiles built from known data."""

from __future__ import annotations

import numpy as np
import pytest

from streamproc.checks import LifecyclePolicy, step
from streamproc.checks.context import Window
from streamproc.checks.service_checks import (
    DAY_MS,
    ServicePolicy,
    latency_result,
    rate_results,
    version_results,
    volume_baseline,
    volume_result,
)
from streamproc.contracts import validate
from streamproc.core import ops
from streamproc.core.kinds import FeatureKind
from streamproc.core.model_profile import ModelProfile

W = Window("credit", "7", 0, 300_000)
rng = np.random.default_rng(3)


def _profile(latency: np.ndarray, role: str = "window") -> ModelProfile:
    prof = ModelProfile.new("credit", "7", {"x": FeatureKind.NUMERIC}, metadata={"role": role})
    prof.update_columns({"x": rng.normal(size=len(latency))}, latency_ms=latency)
    return prof


def _ops(n: int, error_share: float, fallback_share: float) -> ModelProfile:
    prof = ops.new_ops_profile("credit", "7")
    prof.update_columns(
        {
            ops.ERROR: rng.random(n) < error_share,
            ops.FALLBACK: rng.random(n) < fallback_share,
        }
    )
    return prof


REFERENCE = _profile(rng.gamma(4, 5, 20_000), role="reference")  # p95 ≈ 39 ms


@pytest.mark.parametrize(("scale", "severity"), [(1.0, None), (2.6, "warning"), (6.0, "critical")])
def test_latency_against_the_reference(scale: float, severity: str | None) -> None:
    current = _profile(rng.gamma(4, 5, 5_000) * scale)
    result = latency_result(W, current, REFERENCE, ServicePolicy())
    assert result is not None and result.severity == severity
    ref_p95 = np.quantile(rng.gamma(4, 5, 200_000), 0.95)
    assert result.value == pytest.approx(scale, rel=0.1)
    assert result.evidence[0]["reference_p95_ms"] == pytest.approx(ref_p95, rel=0.05)


def test_latency_against_an_sla() -> None:
    current = _profile(np.full(1_000, 30.0))
    policy = ServicePolicy(latency_sla_ms=20.0)
    result = latency_result(W, current, REFERENCE, policy)
    assert result is not None
    assert (result.statistic, result.severity) == ("p95_vs_sla", "warning")
    assert result.value == pytest.approx(1.5)
    assert latency_result(W, _profile(np.full(50, 999.0)), REFERENCE, policy) is None  # < 100


def test_error_and_fallback_rates() -> None:
    results = {r.check: r for r in rate_results(W, _ops(10_000, 0.03, 0.10), ServicePolicy())}
    assert results["error_rate"].severity == "warning"
    assert results["error_rate"].value == pytest.approx(0.03, abs=0.005)
    assert results["fallback_rate"].severity == "warning"
    clean = {r.check: r for r in rate_results(W, _ops(10_000, 0.0, 0.0), ServicePolicy())}
    assert clean["error_rate"].breached is False and clean["fallback_rate"].breached is False


def test_sustained_fallback_means_an_open_circuit_breaker() -> None:
    (_, fallback) = rate_results(W, _ops(2_000, 0.0, 0.7), ServicePolicy())
    assert fallback.severity == "critical"
    assert fallback.evidence == {"circuit_breaker": "open"}
    assert "circuit breaker" in fallback.summary


def test_volume_baseline_prefers_the_same_window_a_day_earlier() -> None:
    start = 10 * DAY_MS
    counts = {start - DAY_MS: 1_000, start - 300_000: 5_000, start - 600_000: 5_000}
    assert volume_baseline(start, counts, 300_000, 3) == (1_000.0, "same window one day earlier")
    trailing = {start - i * 300_000: 1_000 + i for i in range(1, 5)}
    trailing[start - 5 * 300_000] = 10  # a partial window does not move the median
    base = volume_baseline(start, trailing, 300_000, 3)
    assert base is not None and base[0] == pytest.approx(1_002)  # median of 10, 1001..1004
    assert volume_baseline(start, {start - 300_000: 9}, 300_000, 3) is None


def test_volume_change_grades() -> None:
    base = (1_000.0, "median of the 4 previous windows")
    assert volume_result(W, 1_200, base, ServicePolicy()).severity is None  # type: ignore[union-attr]
    warn = volume_result(W, 400, base, ServicePolicy())
    assert warn is not None and warn.severity == "warning" and "fewer" in warn.summary
    crit = volume_result(W, 1_900, base, ServicePolicy())
    assert crit is not None and crit.severity == "critical" and crit.value == pytest.approx(0.9)


def test_versions_unexpected_and_concurrent() -> None:
    policy = ServicePolicy(expected_versions=frozenset({"7"}))
    results = version_results("credit", ["7", "8"], policy, window_start_ms=0, window_end_ms=1)
    by_version = {(r.model_version, r.statistic): r for r in results}
    assert by_version[("8", "unexpected_version")].breached
    assert not by_version[("7", "unexpected_version")].breached
    assert by_version[("*", "versions_serving")].breached
    rollout = ServicePolicy(expected_versions=frozenset({"7", "8"}), rollout=True)
    assert not any(
        r.breached
        for r in version_results("credit", ["7", "8"], rollout, window_start_ms=0, window_end_ms=1)
    )


def test_service_alerts_validate_against_the_alert_schema() -> None:
    (_, fallback) = rate_results(W, _ops(2_000, 0.0, 0.7), ServicePolicy())
    policy = LifecyclePolicy(fire_after=1, fire_window=1)
    _state, alert = step(None, fallback, 300_000, policy)
    assert alert is not None and alert["status"] == "firing"
    validate("alert", alert)
