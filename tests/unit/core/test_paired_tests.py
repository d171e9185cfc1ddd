"""McNemar and DeLong against scipy, an O(n²) DeLong written here, a bootstrap and a
simulation of the paired sample size."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from streamproc.core.paired_tests import delong, mcnemar, mcnemar_pairs_needed


@pytest.mark.parametrize(("b", "c"), [(3, 9), (0, 5), (7, 7), (12, 11), (1, 0)])
def test_mcnemar_exact_is_scipy_binomtest(b: int, c: int) -> None:
    res = mcnemar(b, c)
    assert res.exact
    assert res.pvalue == pytest.approx(stats.binomtest(min(b, c), b + c, 0.5).pvalue, rel=1e-12)


def test_mcnemar_chi2_for_many_discordant_pairs() -> None:
    res = mcnemar(40, 62)
    assert not res.exact
    assert res.statistic == pytest.approx((22 - 1) ** 2 / 102)
    assert res.pvalue == pytest.approx(stats.chi2.sf((22 - 1) ** 2 / 102, 1), rel=1e-12)
    # the corrected chi-squared approximates the exact test closely at this size
    assert res.pvalue == pytest.approx(stats.binomtest(40, 102, 0.5).pvalue, abs=0.004)
    assert mcnemar(0, 0).pvalue == 1.0


def _delong_naive(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """DeLong et al. (1988) straight from the definition: ψ over every (positive,
    negative) pair, V10 / V01 as row / column means, S = sample covariances."""
    comps10, comps01, aucs = [], [], []
    for s in (a, b):
        x, yy = s[y], s[~y]
        psi = (x[:, None] > yy[None, :]) + 0.5 * (x[:, None] == yy[None, :])
        aucs.append(psi.mean())
        comps10.append(psi.mean(axis=1))
        comps01.append(psi.mean(axis=0))
    s10, s01 = np.cov(np.array(comps10)), np.cov(np.array(comps01))
    m, n = y.sum(), (~y).sum()
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n
    return aucs[0], aucs[1], float(np.sqrt(var))


def _paired_scores(n: int, seed: int, ties: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.35
    common = rng.normal(size=n)
    a = common + 0.9 * y + rng.normal(scale=0.8, size=n)
    b = common + 1.2 * y + rng.normal(scale=0.8, size=n)
    if ties:
        a, b = np.round(a, 1), np.round(b, 1)
    return y, a, b


@pytest.mark.parametrize("ties", [False, True])
def test_delong_matches_the_quadratic_definition(ties: bool) -> None:
    y, a, b = _paired_scores(700, 1, ties)
    res = delong(y, a, b)
    auc_a, auc_b, se = _delong_naive(y, a, b)
    assert res is not None
    assert res.auc_a == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    assert res.auc_b == pytest.approx(roc_auc_score(y, b), abs=1e-12)
    assert (res.auc_a, res.auc_b) == pytest.approx((auc_a, auc_b), abs=1e-12)
    assert res.se == pytest.approx(se, rel=1e-9)
    assert res.pvalue == pytest.approx(2 * stats.norm.sf(abs(auc_b - auc_a) / se), rel=1e-9)
    assert (res.n_pos, res.n_neg) == (int(y.sum()), int((~y).sum()))


def test_delong_se_agrees_with_a_paired_bootstrap() -> None:
    y, a, b = _paired_scores(600, 2, ties=False)
    res = delong(y, a, b)
    rng = np.random.default_rng(3)
    diffs = []
    for _ in range(400):
        i = rng.integers(0, len(y), len(y))
        diffs.append(roc_auc_score(y[i], b[i]) - roc_auc_score(y[i], a[i]))
    assert res is not None
    assert res.se == pytest.approx(float(np.std(diffs, ddof=1)), rel=0.15)


def test_delong_degenerate_inputs() -> None:
    assert delong(np.ones(5, bool), np.arange(5.0), np.arange(5.0)) is None
    y = np.array([True, False, True, False])
    same = delong(y, np.array([0.9, 0.1, 0.8, 0.3]), np.array([0.9, 0.1, 0.8, 0.3]))
    assert same is not None and same.pvalue == 1.0 and same.auc_a == same.auc_b == 1.0


def test_mcnemar_pairs_needed_gives_the_power_by_simulation() -> None:
    psi, delta = 0.2, 0.04
    n = mcnemar_pairs_needed(psi, delta)
    rng = np.random.default_rng(5)
    sims = 4000
    discordant = rng.binomial(n, psi, sims)
    c = rng.binomial(discordant, (psi + delta) / (2 * psi))
    b = discordant - c
    chi2 = (b - c) ** 2 / np.maximum(discordant, 1)  # uncorrected, as Connor's formula
    power = float(np.mean(stats.chi2.sf(chi2, 1) < 0.05))
    assert power == pytest.approx(0.8, abs=0.03)
    with pytest.raises(ValueError):
        mcnemar_pairs_needed(0.05, 0.1)
