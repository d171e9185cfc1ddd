"""Two-proportion statistics against scipy, published values and simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.stats.contingency import relative_risk

from streamproc.core.proportions import (
    katz_ratio_interval,
    newcombe_interval,
    sample_size_per_arm,
    two_proportion_z,
)

# Newcombe (1998), Stat. Med. 17:873-890, Table II, method 10 (hybrid score)
NEWCOMBE_TABLE_II = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((6, 7, 2, 7), (0.0582, 0.8062)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
]


@pytest.mark.parametrize(("counts", "expected"), NEWCOMBE_TABLE_II)
def test_newcombe_matches_published_intervals(
    counts: tuple[int, int, int, int], expected: tuple[float, float]
) -> None:
    iv = newcombe_interval(*counts)
    assert iv is not None
    x1, n1, x2, n2 = counts
    assert iv.value == pytest.approx(x1 / n1 - x2 / n2)
    assert (iv.low, iv.high) == pytest.approx(expected, abs=6e-5)


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2"), [(0, 12, 12, 12), (1, 3, 250, 400), (77, 90, 3, 41)]
)
def test_newcombe_from_scipy_wilson_intervals(x1: int, n1: int, x2: int, n2: int) -> None:
    w1 = stats.binomtest(x1, n1).proportion_ci(0.95, method="wilson")
    w2 = stats.binomtest(x2, n2).proportion_ci(0.95, method="wilson")
    p1, p2 = x1 / n1, x2 / n2
    low = p1 - p2 - math.hypot(p1 - w1.low, w2.high - p2)
    high = p1 - p2 + math.hypot(w1.high - p1, p2 - w2.low)
    iv = newcombe_interval(x1, n1, x2, n2)
    assert iv is not None
    assert (iv.low, iv.high) == pytest.approx((low, high), abs=1e-12)


def test_newcombe_none_for_an_empty_side() -> None:
    assert newcombe_interval(1, 0, 3, 10) is None


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2"), [(10, 50, 20, 60), (3, 400, 17, 350), (45, 90, 44, 91)]
)
def test_katz_matches_scipy_relative_risk(x1: int, n1: int, x2: int, n2: int) -> None:
    iv = katz_ratio_interval(x1, n1, x2, n2)
    rr = relative_risk(x1, n1, x2, n2)
    ci = rr.confidence_interval(0.95)
    assert iv is not None
    assert iv.value == pytest.approx(rr.relative_risk, rel=1e-12)
    assert (iv.low, iv.high) == pytest.approx((ci.low, ci.high), rel=1e-9)


def test_katz_zero_count_uses_haldane_correction() -> None:
    iv = katz_ratio_interval(0, 40, 5, 50)
    assert iv is not None and iv.value == 0.0
    a, b, c, d = 0.5, 40.5, 5.5, 50.5
    se = math.sqrt(1 / a - 1 / b + 1 / c - 1 / d)
    log_r = math.log((a / b) / (c / d))
    assert iv.low == pytest.approx(math.exp(log_r - 1.959963984540054 * se))
    assert iv.high == pytest.approx(math.exp(log_r + 1.959963984540054 * se))
    assert katz_ratio_interval(0, 40, 0, 50) is None


@pytest.mark.parametrize(("x1", "n1", "x2", "n2"), [(30, 100, 45, 110), (5, 1000, 12, 900)])
def test_two_proportion_z_squared_is_pearson_chi2(x1: int, n1: int, x2: int, n2: int) -> None:
    z, p = two_proportion_z(x1, n1, x2, n2)
    table = np.array([[x1, n1 - x1], [x2, n2 - x2]])
    chi2, p_chi2, _dof, _exp = stats.chi2_contingency(table, correction=False)
    assert z * z == pytest.approx(chi2, rel=1e-10)
    assert p == pytest.approx(p_chi2, rel=1e-9)
    assert z < 0  # p1 < p2


def test_sample_size_textbook_value() -> None:
    # 0.5 vs 0.6, alpha 0.05 two-sided, power 0.8: 387.3 → 388 per arm (no correction)
    assert sample_size_per_arm(0.5, 0.1) == 388
    assert sample_size_per_arm(0.6, -0.1) == 388
    with pytest.raises(ValueError, match="mde"):
        sample_size_per_arm(0.95, 0.1)


def test_sample_size_gives_the_power_by_simulation() -> None:
    p1, mde = 0.2, 0.05
    n = sample_size_per_arm(p1, mde, alpha=0.05, power=0.8)
    rng = np.random.default_rng(7)
    sims = 4000
    xa = rng.binomial(n, p1, sims)
    xb = rng.binomial(n, p1 + mde, sims)
    pooled = (xa + xb) / (2 * n)
    z = (xb - xa) / n / np.sqrt(pooled * (1 - pooled) * 2 / n)
    power = float(np.mean(np.abs(z) > stats.norm.isf(0.025)))
    assert power == pytest.approx(0.8, abs=0.025)  # 3.9 SE of 4000 draws
