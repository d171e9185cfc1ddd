"""Merge laws (Hypothesis): merge(A, B) is the profile of A ∪ B, associative,
non-mutating, and serialization round-trips."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamproc.core.feature_profile import FeatureProfile
from streamproc.core.kinds import FeatureKind
from streamproc.core.model_profile import ModelProfile

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

numeric_value = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.none(),
    st.just("oops"),
    st.integers(-1000, 1000),
)
categorical_value = st.one_of(
    st.sampled_from(["a", "b", "c", "d", "e"]),
    st.text(max_size=3),
    st.none(),
    st.integers(0, 5),
    st.just(2.5),
)
boolean_value = st.one_of(st.booleans(), st.none(), st.just("x"))
VALUES = {
    FeatureKind.NUMERIC: numeric_value,
    FeatureKind.CATEGORICAL: categorical_value,
    FeatureKind.BOOLEAN: boolean_value,
}


def column(kind: FeatureKind) -> st.SearchStrategy[list[object]]:
    return st.lists(VALUES[kind], max_size=300)


def build(kind: FeatureKind, values: list[object], max_categories: int = 8) -> FeatureProfile:
    p = FeatureProfile.new(kind, k=64, max_categories=max_categories)
    p.update(values)
    return p


def assert_equivalent(x: FeatureProfile, y: FeatureProfile) -> None:
    assert (x.count, x.null_count, x.invalid_count, x.nonfinite_count) == (
        y.count,
        y.null_count,
        y.invalid_count,
        y.nonfinite_count,
    )
    assert x.min == y.min and x.max == y.max
    assert x.sum == pytest.approx(y.sum, rel=1e-9, abs=1e-6)
    assert x.m2 == pytest.approx(y.m2, rel=1e-7, abs=1e-3)
    if x.categories is not None and y.categories is not None:
        assert x.categories.total == y.categories.total
        if x.categories.is_exact and y.categories.is_exact:
            assert x.categories.counts() == y.categories.counts()
    if x.kll is not None and y.kll is not None:
        assert x.kll.n == y.kll.n
        if not x.kll.is_empty():
            eps = 2 * x.kll.normalized_rank_error(False) if x.kll.is_estimation_mode() else 0
            for qv in (0.1, 0.5, 0.9):
                v = x.kll.get_quantile(qv)
                assert abs(y.kll.get_rank(v) - x.kll.get_rank(v)) <= eps + 2 / max(1, x.kll.n)
    if x.hll is not None and y.hll is not None:
        assert x.hll.get_estimate() == pytest.approx(y.hll.get_estimate(), rel=0.05)


@pytest.mark.parametrize("kind", list(FeatureKind))
@SETTINGS
@given(data=st.data())
def test_merge_equals_profile_of_union(kind: FeatureKind, data: st.DataObject) -> None:
    a, b = data.draw(column(kind)), data.draw(column(kind))
    pa, pb = build(kind, a), build(kind, b)
    before = (pa.to_bytes(), pb.to_bytes())
    merged = pa.merge(pb)
    assert (pa.to_bytes(), pb.to_bytes()) == before  # inputs unchanged
    assert_equivalent(merged, build(kind, a + b))


@pytest.mark.parametrize("kind", list(FeatureKind))
@SETTINGS
@given(data=st.data())
def test_merge_is_associative(kind: FeatureKind, data: st.DataObject) -> None:
    a, b, c = (build(kind, data.draw(column(kind))) for _ in range(3))
    assert_equivalent(a.merge(b).merge(c), a.merge(b.merge(c)))


@pytest.mark.parametrize("kind", list(FeatureKind))
@SETTINGS
@given(data=st.data())
def test_serialization_round_trip(kind: FeatureKind, data: st.DataObject) -> None:
    p = build(kind, data.draw(column(kind)))
    b = p.to_bytes()
    q = FeatureProfile.from_bytes(b)
    assert q == p
    assert FeatureProfile.from_bytes(q.to_bytes()) == p
    assert p.serialized_size() == len(b)


def test_numeric_merge_moments_exact_on_large_data() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(1e6, 1, 100_000), rng.normal(1e6 + 5, 3, 50_000)
    pa, pb = build(FeatureKind.NUMERIC, a), build(FeatureKind.NUMERIC, b)  # type: ignore[arg-type]
    m = pa.merge(pb)
    both = np.concatenate([a, b])
    assert m.mean == pytest.approx(both.mean(), rel=1e-12)
    assert m.variance == pytest.approx(both.var(), rel=1e-9)
    assert m.sum_of_squares == pytest.approx(np.square(both).sum(), rel=1e-12)


@SETTINGS
@given(
    a=st.lists(st.floats(-100, 100), min_size=1, max_size=100),
    b=st.lists(st.floats(-100, 100), max_size=100),
    labels=st.lists(st.sampled_from(["x", "y"]), min_size=1, max_size=1),
)
def test_model_profile_merge_and_round_trip(
    a: list[float], b: list[float], labels: list[str]
) -> None:
    def mk(vals: list[float]) -> ModelProfile:
        p = ModelProfile.new("m", "1", {"f": FeatureKind.NUMERIC, "g": FeatureKind.CATEGORICAL})
        if vals:
            n = len(vals)
            p.update_columns(
                {"f": np.array(vals), "g": np.array(labels * n, dtype=object)},
                predictions=np.array(vals),
                predicted_labels=np.array(labels * n, dtype=object),
                event_times=np.arange(n, dtype=float) + vals[0],
            )
        return p

    pa, pb = mk(a), mk(b)
    before = (pa.to_bytes(), pb.to_bytes())
    m = pa.merge(pb)
    assert (pa.to_bytes(), pb.to_bytes()) == before
    assert m.row_count == len(a) + len(b)
    assert m.features["f"].count == len(a) + len(b)
    assert m.prediction is not None and m.prediction.count == len(a) + len(b)
    assert ModelProfile.from_bytes(m.to_bytes()) == m
    assert m.serialized_size() == len(m.to_bytes())


def test_round_trip_equal_past_the_category_cap() -> None:
    """Frequent-items bytes are not canonical after a round trip; equality is by content."""
    p = build(FeatureKind.CATEGORICAL, ["a", "b", "c", "d", "e", "", "00", 0, 1])
    assert p.categories is not None and not p.categories.is_exact
    assert FeatureProfile.from_bytes(p.to_bytes()) == p
