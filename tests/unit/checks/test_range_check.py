"""The ``range`` check: fires on 2% out-of-range values, quiet on stable heavy tails.

Expected ranges and shares are computed from the raw values with numpy.
"""

from __future__ import annotations

import numpy as np
import pytest
from datasketches import kll_doubles_sketch

from streamproc.checks.evaluate import evaluate_window
from streamproc.checks.policy import EvaluationPolicy
from streamproc.checks.result import CheckResult
from streamproc.core.model_profile import ModelProfile
from streamproc.core.thresholds import DEFAULT_THRESHOLDS

N_REF = 20_000
M = 5_000


def _range(ref: ModelProfile, x: np.ndarray, policy: EvaluationPolicy | None = None) -> CheckResult:
    cur = ModelProfile.new("m", "1", {"x": ref.features["x"].kind}, bin_edges=ref.psi_edges())
    cur.update_columns({"x": x})
    res = evaluate_window(
        ref, cur, None, policy or EvaluationPolicy(), window_start_ms=0, window_end_ms=1
    )
    return next(r for r in res if r.check == "range")


@pytest.mark.parametrize("shape", ["student_t3", "lognormal"])
def test_stable_heavy_tail_stays_quiet(shape: str) -> None:
    rng = np.random.default_rng(21)

    def draw(n: int) -> np.ndarray:
        return rng.standard_t(3, n) if shape == "student_t3" else rng.lognormal(0, 1, n)

    ref = ModelProfile.build_reference("m", "1", {"x": draw(N_REF)})
    breached = sum(_range(ref, draw(500)).breached for _ in range(200))
    assert breached == 0
    assert not _range(ref, draw(M)).breached


def test_two_percent_out_of_range_warns_and_names_the_range() -> None:
    rng = np.random.default_rng(22)
    ref_x = rng.normal(10, 2, N_REF)
    ref = ModelProfile.build_reference("m", "1", {"x": ref_x})
    q_lo, q_hi = np.quantile(ref_x, [0.001, 0.999])
    lo, hi = q_lo - 0.1 * (q_hi - q_lo), q_hi + 0.1 * (q_hi - q_lo)
    x = rng.normal(10, 2, M)
    x[: M // 50] = 1_000.0  # 2%: a sentinel far above the range
    r = _range(ref, x)
    assert (r.breached, r.severity, r.statistic) == (True, "warning", "out_of_range_share")
    assert r.value == pytest.approx(np.mean((x < lo) | (x > hi)), abs=0.002)
    ev = r.evidence[0]
    assert ev["range_source"] == "reference"
    # the range is the reference's 0.1% / 99.9% quantiles widened by 0.1 × their distance;
    # its KLL sketch places each quantile within its normalized rank error, so undo the
    # widening and check the ranks of the quantiles against the raw reference (numpy)
    got_lo, got_hi = ev["range"]
    spread = (got_hi - got_lo) / 1.2
    eps = kll_doubles_sketch.get_normalized_rank_error(1024, False)
    assert abs(np.mean(ref_x < got_lo + 0.1 * spread) - 0.001) <= eps + 0.001
    assert abs(np.mean(ref_x < got_hi - 0.1 * spread) - 0.999) <= eps + 0.001
    assert ev["quantiles"]["0.999"] == pytest.approx(1_000.0)
    assert ev["max"] == 1_000.0
    assert "valid range [" in r.summary
    x[: M // 10] = -1e6  # 10%: critical
    assert _range(ref, x).severity == "critical"


def test_declared_range_from_the_thresholds() -> None:
    """age in [0, 120]: 3% of ages at 150 warn whatever the reference's own range."""
    rng = np.random.default_rng(23)
    ref = ModelProfile.build_reference("m", "1", {"x": rng.uniform(18, 90, N_REF)})
    t = DEFAULT_THRESHOLDS.with_overrides({"features": {"x": {"range_min": 0, "range_max": 120}}})
    policy = EvaluationPolicy(thresholds=t)
    x = rng.uniform(18, 90, M)
    assert not _range(ref, x, policy).breached
    x[:150] = 150.0
    r = _range(ref, x, policy)
    assert (r.breached, r.severity) == (True, "warning")
    assert r.evidence[0]["range"] == [0.0, 120.0]
    assert r.evidence[0]["range_source"] == "declared"
    assert r.value == pytest.approx(0.03, abs=0.002)
