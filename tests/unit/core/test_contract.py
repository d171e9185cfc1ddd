"""One contract over every feature kind and every statistic: identical profiles give
~0 (p-value ~1), disjoint ones give large values, outputs stay in their documented
ranges, and empty / all-null / constant features never crash."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from streamproc.core.drift import STATISTICS, compare_features
from streamproc.core.feature_profile import FeatureProfile
from streamproc.core.kinds import FeatureKind

N = 5000
RANGES: dict[str, tuple[float, float]] = {
    "psi": (0, math.inf),
    "ks": (0, 1),
    "ks_critical_value": (0, math.inf),
    "ks_error_bound": (0, 1),
    "js": (0, 1),
    "wasserstein": (0, math.inf),
    "mean_shift": (-math.inf, math.inf),
    "out_of_range_share": (0, 1),
    "chi2": (0, math.inf),
    "chi2_pvalue": (0, 1),
    "chi2_dof": (0, math.inf),
    "new_category_share": (0, 1),
    "expected_new_share": (0, 1),
    "expected_new_share_se": (0, 1),
    "ks_pvalue": (0, 1),
    "bins": (0, math.inf),
    "distinct_ratio": (0, math.inf),
    "null_rate_ratio": (0, math.inf),
    "invalid_rate_reference": (0, 1),
    "invalid_rate_current": (0, 1),
    "nonfinite_rate_reference": (0, 1),
    "nonfinite_rate_current": (0, 1),
}
# statistics that measure distance between distributions, per kind
DISTANCES = {
    FeatureKind.NUMERIC: ("psi", "ks", "js", "wasserstein", "out_of_range_share"),
    FeatureKind.CATEGORICAL: ("psi", "js", "chi2", "new_category_share"),
    FeatureKind.BOOLEAN: ("psi", "js", "chi2"),
}
NOT_APPLICABLE = {
    FeatureKind.NUMERIC: ("chi2", "chi2_pvalue", "chi2_dof", "new_category_share"),
    FeatureKind.CATEGORICAL: ("ks", "wasserstein", "mean_shift", "out_of_range_share"),
    FeatureKind.BOOLEAN: ("ks", "wasserstein", "mean_shift", "out_of_range_share"),
}


def sample(kind: FeatureKind, which: str, rng: np.random.Generator) -> object:
    if kind is FeatureKind.NUMERIC:
        return rng.normal(0, 1, N) if which == "a" else rng.normal(100, 1, N)
    if kind is FeatureKind.CATEGORICAL:
        cats = ["a", "b", "c"] if which == "a" else ["x", "y"]
        return np.array(cats, dtype=object)[rng.integers(0, len(cats), N)]
    return np.full(N, which == "a")


def profile(kind: FeatureKind, values: object) -> FeatureProfile:
    p = FeatureProfile.new(kind)
    p.update(values)
    return p


def check_ranges(stats: dict[str, float | None]) -> None:
    assert set(stats) == set(STATISTICS)
    for name, value in stats.items():
        if value is None:
            continue
        lo, hi = RANGES[name]
        assert lo <= value <= hi or (math.isinf(value) and name != "js"), (name, value)


@pytest.mark.parametrize("kind", list(FeatureKind))
def test_identical_profiles_show_no_drift(kind: FeatureKind) -> None:
    p = profile(kind, sample(kind, "a", np.random.default_rng(1)))
    res = compare_features(p, p, name="f")
    check_ranges(res.statistics)
    for stat in DISTANCES[kind]:
        assert res.statistics[stat] == pytest.approx(0, abs=1e-9), stat
    if kind is not FeatureKind.NUMERIC:
        assert res.statistics["chi2_pvalue"] == pytest.approx(1.0)
    for stat in NOT_APPLICABLE[kind]:
        assert res.statistics[stat] is None, stat
    assert res.status == "ok" and not res.breaches


@pytest.mark.parametrize("kind", list(FeatureKind))
def test_disjoint_distributions_are_critical(kind: FeatureKind) -> None:
    rng = np.random.default_rng(2)
    ref, cur = profile(kind, sample(kind, "a", rng)), profile(kind, sample(kind, "b", rng))
    res = compare_features(ref, cur, name="f")
    check_ranges(res.statistics)
    st = res.statistics
    assert st["psi"] is not None and st["psi"] > 1.0
    # numeric bins come from reference quantiles, so a disjoint current lands in an
    # edge bin that holds 10% of the reference: JS = 0.87 there, 1.0 for categories
    assert st["js"] is not None and st["js"] > (0.85 if kind is FeatureKind.NUMERIC else 0.99)
    if kind is FeatureKind.NUMERIC:
        assert st["ks"] == pytest.approx(1.0)
        assert st["out_of_range_share"] == pytest.approx(1.0, abs=0.01)
        assert st["wasserstein"] == pytest.approx(100, rel=0.05)
        assert st["mean_shift"] == pytest.approx(100, rel=0.05)
    else:
        assert st["chi2_pvalue"] == pytest.approx(0.0, abs=1e-12)
    if kind is FeatureKind.CATEGORICAL:
        assert st["new_category_share"] == 1.0
    assert res.status == "critical"
    orjson.dumps(res.to_dict())


EDGE = {
    "empty": lambda kind: [],
    "all_null": lambda kind: [None] * N,
    "constant": lambda kind: (
        np.full(N, 3.0)
        if kind is FeatureKind.NUMERIC
        else (["k"] * N if kind is FeatureKind.CATEGORICAL else [True] * N)
    ),
    "all_invalid": lambda kind: [{"not": "a value"}] * N,
}


@pytest.mark.parametrize("kind", list(FeatureKind))
@pytest.mark.parametrize("left", sorted(EDGE))
@pytest.mark.parametrize("right", sorted(EDGE))
def test_edge_features_never_crash(kind: FeatureKind, left: str, right: str) -> None:
    ref, cur = profile(kind, EDGE[left](kind)), profile(kind, EDGE[right](kind))
    res = compare_features(ref, cur, name="f")
    check_ranges(res.statistics)
    assert res.status in {"ok", "warning", "critical", "insufficient_data"}
    if "empty" in (left, right):
        assert res.status == "insufficient_data"
    if left == right == "constant":
        assert res.status == "ok"
    if left == "constant" and right == "all_null":
        assert res.status == "critical"
        assert [b.statistic for b in res.breaches] == ["null_rate"]
    if left == "constant" and right == "all_invalid":
        assert "invalid_rate" in [b.statistic for b in res.breaches]
    orjson.dumps(res.to_dict())
