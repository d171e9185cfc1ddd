"""Drift statistics from sketches vs exact numpy/scipy results on the raw data."""

from __future__ import annotations

import math
from collections.abc import Callable

import datasketches as ds
import numpy as np
import pytest
from scipy import stats

from streamproc.core.divergence import js_distance, psi
from streamproc.core.drift import compare_features
from streamproc.core.feature_profile import REFERENCE_K, WINDOW_K, FeatureProfile
from streamproc.core.kinds import FeatureKind
from streamproc.core.numeric_drift import bin_shares, numeric_drift, psi_edges, reference_edges
from streamproc.core.thresholds import DEFAULT_THRESHOLDS

N = 1_000_000
EPS = DEFAULT_THRESHOLDS.psi_smoothing


def _reference(x: np.ndarray) -> FeatureProfile:
    p = FeatureProfile.new(FeatureKind.NUMERIC, k=REFERENCE_K)
    p.update(x)
    return p


def _window(x: np.ndarray, deltas: int = 100, edges: np.ndarray | None = None) -> FeatureProfile:
    """A window profile merged from many small deltas, as the streaming path builds it
    (``build_delta`` creates each delta with the reference's PSI edges)."""
    out: FeatureProfile | None = None
    for chunk in np.array_split(x, deltas):
        d = FeatureProfile.new(FeatureKind.NUMERIC, k=WINDOW_K, bin_edges=edges)
        d.update(chunk)
        out = d if out is None else out.merge(d)
    assert out is not None
    return out


def _exact_shares(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    s = np.sort(x)
    idx = np.concatenate(([0], np.searchsorted(s, edges, side="left"), [s.size]))
    return np.diff(idx) / s.size


def _close(approx: float, exact: float) -> bool:
    return abs(approx - exact) <= max(0.01, 0.03 * abs(exact))


def _psi_term(p: np.ndarray, q: np.ndarray, eps: float) -> np.ndarray:
    p, q = np.maximum(p, eps), np.maximum(q, eps)
    out: np.ndarray = (q - p) * np.log(q / p)
    return out


def _jsd_term(p: np.ndarray, q: np.ndarray, eps: float) -> np.ndarray:
    p, q = np.maximum(p, 1e-300), np.maximum(q, 1e-300)
    m = 0.5 * (p + q)
    out: np.ndarray = 0.5 * (p * np.log2(p / m) + q * np.log2(q / m))
    return out


Term = Callable[[np.ndarray, np.ndarray, float], np.ndarray]


def _term_range(
    term: Term, p: np.ndarray, q: np.ndarray, dp: float, dq: float, eps: float
) -> np.ndarray:
    """Per bin, the largest |term(p', q') − term(p, q)| over |p' − p| ≤ dp, |q' − q| ≤ dq.

    Both per-bin terms are 0 on the diagonal p = q and monotone in p and in q on either
    side of it, so over a box that misses the diagonal the extremes are at its corners;
    a box that meets it can also reach 0."""
    now = term(p, q, eps)
    worst = np.zeros_like(now)
    for a in (-dp, dp):
        for b in (-dq, dq):
            corner = term(np.clip(p + a, 0, 1), np.clip(q + b, 0, 1), eps)
            worst = np.maximum(worst, np.abs(corner - now))
    meets = np.abs(q - p) <= dp + dq
    out: np.ndarray = np.where(meets, np.maximum(worst, now), worst)
    return out


def _error_bounds(
    p: np.ndarray, q: np.ndarray, dp: float, dq: float, eps: float
) -> tuple[float, float]:
    """Bounds on |PSI − PSI_exact| and |JS − JS_exact| from per-bin share errors.

    ``p``, ``q``: the shares the statistics were computed from; ``dp``, ``dq``: bounds
    on each share's error (KLL's double-sided 99% PMF error; 0 for exact counts). The
    per-bin ranges add up (a bound, not an estimate); the smoothing's renormalization
    (shares rescaled by at most 1 + B·eps) adds 1% of the value. docs/STATISTICS.md."""
    psi_hat = float(_psi_term(p, q, eps).sum())
    psi_b = float(_term_range(_psi_term, p, q, dp, dq, eps).sum()) + 0.01 * psi_hat
    d_hat = float(_jsd_term(p, q, eps).sum())
    d_b = float(_term_range(_jsd_term, p, q, dp, dq, eps).sum())
    js_hat = math.sqrt(max(d_hat, 0.0))
    js_b = max(math.sqrt(d_hat + d_b) - js_hat, js_hat - math.sqrt(max(d_hat - d_b, 0.0)))
    return psi_b, js_b


def _pmf_error(k: int) -> float:
    return float(ds.kll_doubles_sketch.get_normalized_rank_error(k, True))


CASES = {
    "normal_unshifted": lambda r: (r.normal(0, 1, N), r.normal(0, 1, N)),
    "normal_shifted": lambda r: (r.normal(0, 1, N), r.normal(0.5, 1.2, N)),
    "normal_far_shifted": lambda r: (r.normal(0, 1, N), r.normal(2, 1, N)),
    "pareto": lambda r: (r.pareto(1.5, N), r.pareto(1.2, N)),
    "cauchy": lambda r: (r.standard_cauchy(N), r.standard_cauchy(N) + 0.3),
    "poisson": lambda r: (r.poisson(3, N).astype(float), r.poisson(3.5, N).astype(float)),
    "constant_vs_shifted": lambda r: (np.full(N, 2.0), r.normal(2, 0.1, N)),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_numeric_statistics_match_exact(case: str) -> None:
    rng = np.random.default_rng(sorted(CASES).index(case))
    a, b = CASES[case](rng)
    ref = _reference(a)
    edges = psi_edges(ref, DEFAULT_THRESHOLDS.psi_bins)  # memoized, as build_delta uses it
    cur = _window(b, edges=edges)
    res = compare_features(ref, cur, name=case)
    st = res.statistics
    nd = numeric_drift(ref, cur, bins=DEFAULT_THRESHOLDS.psi_bins, eps=EPS)
    assert nd is not None and nd.exact_current_bins

    exact_ks = float(stats.ks_2samp(a, b).statistic)
    assert st["ks"] is not None and abs(st["ks"] - exact_ks) <= 0.01
    assert st["ks_error_bound"] is not None
    assert abs(st["ks"] - exact_ks) <= st["ks_error_bound"]

    np.testing.assert_array_equal(edges, reference_edges(ref, DEFAULT_THRESHOLDS.psi_bins))
    pa_, pb_ = _exact_shares(a, edges), _exact_shares(b, edges)
    assert cur.bin_counts is not None
    np.testing.assert_array_equal(cur.bin_counts, np.rint(pb_ * N).astype(np.int64))
    exact_psi, exact_js = psi(pa_, pb_, EPS), js_distance(pa_, pb_)
    assert st["psi"] is not None and _close(st["psi"], exact_psi), (st["psi"], exact_psi)
    assert st["js"] is not None and _close(st["js"], exact_js), (st["js"], exact_js)
    # the remaining error is the reference sketch's alone, within its bound
    p_hat = bin_shares(ref.kll, edges)
    psi_b, js_b = _error_bounds(p_hat, pb_, _pmf_error(REFERENCE_K), 0.0, EPS)
    assert abs(st["psi"] - exact_psi) <= psi_b and abs(st["js"] - exact_js) <= js_b

    assert st["mean_shift"] is None or np.isfinite(st["mean_shift"])
    assert res.n_reference == N and res.n_current == N


@pytest.mark.slow
def test_sketch_path_psi_js_within_the_sketch_error_bound() -> None:
    """A window without the reference's edges falls back to its KLL sketch: PSI/JS are
    then only good to the bound the sketches' PMF errors imply, which for a far-shifted
    current (bins holding 0.05-0.2% of it) is loose. Measured errors: STATISTICS.md."""
    rng = np.random.default_rng(sorted(CASES).index("normal_far_shifted"))
    a, b = CASES["normal_far_shifted"](rng)
    ref, cur = _reference(a), _window(b)
    assert cur.bin_counts is None
    nd = numeric_drift(ref, cur, bins=DEFAULT_THRESHOLDS.psi_bins, eps=EPS)
    assert nd is not None and not nd.exact_current_bins
    edges = psi_edges(ref, DEFAULT_THRESHOLDS.psi_bins)
    pa_, pb_ = _exact_shares(a, edges), _exact_shares(b, edges)
    exact_psi, exact_js = psi(pa_, pb_, EPS), js_distance(pa_, pb_)
    p_hat, q_hat = bin_shares(ref.kll, edges), bin_shares(cur.kll, edges)
    assert nd.psi == pytest.approx(psi(p_hat, q_hat, EPS), rel=1e-12)
    psi_b, js_b = _error_bounds(p_hat, q_hat, _pmf_error(REFERENCE_K), _pmf_error(WINDOW_K), EPS)
    assert abs(nd.psi - exact_psi) <= psi_b, (nd.psi, exact_psi, psi_b)
    assert abs(nd.js - exact_js) <= js_b, (nd.js, exact_js, js_b)


@pytest.mark.slow
def test_wasserstein_close_to_scipy() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.normal(0, 2, N), rng.normal(0.6, 2.5, N)
    st = compare_features(_reference(a), _window(b), name="w").statistics
    exact = stats.wasserstein_distance(a, b) / a.std()
    assert st["wasserstein"] == pytest.approx(exact, rel=0.03)
    assert st["mean_shift"] == pytest.approx((b.mean() - a.mean()) / a.std(), rel=1e-9)


def test_out_of_range_share() -> None:
    rng = np.random.default_rng(3)
    a = rng.uniform(0, 1, 100_000)
    b = rng.uniform(0.5, 1.5, 100_000)
    st = compare_features(_reference(a), _window(b, 10), name="u").statistics
    exact = float(np.mean((b < a.min()) | (b > a.max())))
    assert st["out_of_range_share"] == pytest.approx(exact, abs=0.01)


def _categorical(values: np.ndarray) -> FeatureProfile:
    p = FeatureProfile.new(FeatureKind.CATEGORICAL)
    for chunk in np.array_split(values, 7):
        p.update(chunk)
    return p


@pytest.mark.parametrize("shift", [False, True])
def test_chi2_is_exact_under_the_cap(shift: bool) -> None:
    rng = np.random.default_rng(11)
    cats = np.array([f"c{i}" for i in range(50)], dtype=object)
    w_ref = rng.dirichlet(np.ones(50))
    w_cur = rng.dirichlet(np.ones(50)) if shift else w_ref
    a = cats[rng.choice(50, 200_000, p=w_ref)]
    b = cats[rng.choice(50, 150_000, p=w_cur)]
    res = compare_features(_categorical(a), _categorical(b), name="c")
    ua, ca = np.unique(a, return_counts=True)
    ub, cb = np.unique(b, return_counts=True)
    universe = sorted(set(ua) | set(ub))
    ra = dict(zip(ua, ca, strict=True))
    rb = dict(zip(ub, cb, strict=True))
    table = np.array([[ra.get(c, 0) for c in universe], [rb.get(c, 0) for c in universe]])
    exp = stats.chi2_contingency(table, correction=False)
    assert res.statistics["chi2"] == pytest.approx(exp.statistic, rel=1e-12)
    assert res.statistics["chi2_pvalue"] == pytest.approx(exp.pvalue, rel=1e-9, abs=1e-300)
    p, q = table[0] / table[0].sum(), table[1] / table[1].sum()
    assert res.statistics["psi"] == pytest.approx(psi(p, q, EPS), rel=1e-12)
    assert res.statistics["js"] == pytest.approx(js_distance(p, q), rel=1e-12)


def test_js_matches_scipy_definition() -> None:
    from scipy.spatial.distance import jensenshannon

    rng = np.random.default_rng(5)
    for _ in range(20):
        p, q = rng.dirichlet(np.ones(8)), rng.dirichlet(np.ones(8))
        assert js_distance(p, q) == pytest.approx(jensenshannon(p, q, base=2), abs=1e-12)


def test_new_categories_share_and_top() -> None:
    ref = _categorical(np.array(["a", "b"] * 1000, dtype=object))
    cur = _categorical(np.array(["a"] * 1000 + ["x"] * 300 + ["y"] * 100, dtype=object))
    res = compare_features(ref, cur, name="c")
    assert res.statistics["new_category_share"] == pytest.approx(400 / 1400)
    assert res.top_new_categories == [("x", 300), ("y", 100)]
    assert res.status == "critical"
    assert {b.statistic for b in res.breaches} >= {"new_category_share", "psi", "js"}


def test_categorical_over_cap_uses_sketch_with_other_tail() -> None:
    rng = np.random.default_rng(2)
    p = FeatureProfile.new(FeatureKind.CATEGORICAL, max_categories=100)
    heavy = np.array(["h1"] * 30_000 + ["h2"] * 20_000, dtype=object)
    tail = np.array([f"t{i}" for i in rng.integers(0, 5000, 50_000)], dtype=object)
    p.update(np.concatenate([heavy, tail]))
    assert p.categories is not None and not p.categories.is_exact
    top = dict(p.top_categories(2))
    assert abs(top["h1"] - 30_000) <= 0.004 * 100_000
    head, other = p.categories.counts()
    assert sum(head.values()) + other == 100_000
    assert p.distinct_estimate() == pytest.approx(5002, rel=0.05)


def test_sorted_view_cdf_equals_kll_get_cdf_and_reference_is_memoized() -> None:
    from streamproc.core.numeric_drift import _cdf_at, numeric_drift, sorted_view

    rng = np.random.default_rng(8)
    ref = _reference(np.round(rng.normal(0, 1, 200_000), 2))  # ties across levels
    assert ref.kll is not None
    pts = np.union1d(sorted_view(ref.kll)[0], rng.normal(0, 2, 500))
    exact = np.asarray(ref.kll.get_cdf(pts, inclusive=True))[:-1]
    np.testing.assert_array_equal(_cdf_at(sorted_view(ref.kll), pts), exact)

    cur = _window(rng.normal(0.3, 1, 50_000), 5)
    first = numeric_drift(ref, cur, bins=10, eps=EPS)
    assert ref._derived  # reference edges/shares/sorted view are cached
    assert numeric_drift(ref, cur, bins=10, eps=EPS) == first
    ref.update(rng.normal(5, 1, 200_000))  # an update invalidates the cache
    assert not ref._derived
    moved = numeric_drift(ref, cur, bins=10, eps=EPS)
    assert first is not None and moved is not None and moved.ks != first.ks
