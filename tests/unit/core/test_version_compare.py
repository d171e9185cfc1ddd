"""A/B rate comparison, guardrails and the decision table against scipy on raw counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from streamproc.core.intervals import Interval
from streamproc.core.proportions import sample_size_per_arm
from streamproc.core.version_compare import (
    Comparison,
    Guardrail,
    compare_rates,
    decide,
    mean_guardrail,
    rate_guardrail,
)


def test_compare_rates_matches_scipy() -> None:
    x_a, n_a, x_b, n_b = 480, 4000, 560, 4000
    cmp = compare_rates("conversion", x_a, n_a, x_b, n_b, mde=0.01)
    _chi2, p, _dof, _e = stats.chi2_contingency(
        np.array([[x_a, n_a - x_a], [x_b, n_b - x_b]]), correction=False
    )
    assert cmp.pvalue == pytest.approx(p, rel=1e-9)
    assert cmp.difference == pytest.approx(x_b / n_b - x_a / n_a)
    wb = stats.binomtest(x_b, n_b).proportion_ci(0.95, method="wilson")
    wa = stats.binomtest(x_a, n_a).proportion_ci(0.95, method="wilson")
    pa, pb = x_a / n_a, x_b / n_b
    assert cmp.interval.low == pytest.approx(pb - pa - math.hypot(pb - wb.low, wa.high - pa))
    assert cmp.interval.high == pytest.approx(pb - pa + math.hypot(wb.high - pb, pa - wa.low))
    assert cmp.better == 1  # p ≈ 0.01
    assert cmp.needed_per_arm == sample_size_per_arm(pa, 0.01) - 4000
    worse = compare_rates("error", x_a, n_a, x_b, n_b, higher_is_better=False)
    assert worse.better == -1


def test_rate_guardrail_one_sided_newcombe() -> None:
    g = rate_guardrail("error_rate", 10, 5000, 60, 5000)
    assert g.degraded and g.value_b == pytest.approx(0.012)
    assert not rate_guardrail("error_rate", 10, 5000, 14, 5000).degraded
    assert not rate_guardrail("error_rate", 10, 5000, 60, 5000, tolerance=0.02).degraded
    assert not rate_guardrail("error_rate", 0, 0, 1, 10).degraded


def test_mean_guardrail_is_welch_one_sided() -> None:
    rng = np.random.default_rng(1)
    a = rng.gamma(2.0, 20.0, 800)
    b = rng.gamma(2.0, 21.5, 600)
    g = mean_guardrail(
        "latency", (a.size, a.mean(), a.var(ddof=1)), (b.size, b.mean(), b.var(ddof=1))
    )
    ref = stats.ttest_ind(b, a, equal_var=False, alternative="greater")
    assert g.pvalue == pytest.approx(ref.pvalue, rel=1e-9)
    assert g.degraded == (ref.pvalue < 0.05)
    tol = mean_guardrail("latency", (800, 40.0, 100.0), (600, 41.0, 100.0), tolerance=5.0)
    assert not tol.degraded


def _cmp(better: int, n: int = 1000, needed: int | None = None) -> Comparison:
    return Comparison(
        "m",
        0.5,
        0.5 + 0.01 * better,
        Interval(0.0, -0.1, 0.1, n),
        0.01,
        better,
        n,
        "two_proportion_z",
        needed,
    )


HELD = Guardrail("latency", False, 10.0, 10.0, 0.5)
BROKEN = Guardrail("error_rate", True, 0.01, 0.05, None)


@pytest.mark.parametrize(
    ("better", "guardrails", "verdict"),
    [
        (1, [HELD], "ship"),
        (1, [HELD, BROKEN], "investigate"),
        (0, [HELD], "extend"),
        (0, [BROKEN], "extend"),
        (-1, [HELD], "kill"),
        (-1, [BROKEN], "kill"),
    ],
)
def test_decision_table(better: int, guardrails: list[Guardrail], verdict: str) -> None:
    d = decide(_cmp(better), guardrails)
    assert d.verdict == verdict
    assert d.degraded == (
        () if verdict == "ship" else tuple(g.name for g in guardrails if g.degraded)
    )


def test_too_small_a_sample_extends_and_says_how_much_more() -> None:
    assert decide(_cmp(1, n=50), min_n=200).verdict == "extend"
    d = decide(_cmp(0, needed=1234))
    assert d.verdict == "extend" and "1234 more rows per arm" in d.reason


def test_ab_pairs_reach_the_verdict_their_data_implies() -> None:
    rng = np.random.default_rng(9)

    def arm(p: float, n: int) -> tuple[int, int]:
        return int((rng.random(n) < p).sum()), n

    verdicts = {}
    for name, (pa, pb, n) in {
        "ship": (0.10, 0.13, 8000),
        "kill": (0.10, 0.07, 8000),
        "extend": (0.10, 0.13, 150),
    }.items():
        (xa, na), (xb, nb) = arm(pa, n), arm(pb, n)
        errors = rate_guardrail("error_rate", *arm(0.01, n), *arm(0.01, n))
        verdicts[name] = decide(compare_rates("conversion", xa, na, xb, nb, mde=0.02), [errors])
    assert {k: v.verdict for k, v in verdicts.items()} == {k: k for k in verdicts}
    assert verdicts["extend"].primary.needed_per_arm > 0
