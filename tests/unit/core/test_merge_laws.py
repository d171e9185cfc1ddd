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


# ---------------------------------------------------------------- exact bin counts

edges_strategy = st.lists(st.floats(-1e3, 1e3), max_size=6, unique=True).map(
    lambda xs: np.array(sorted(xs), dtype=np.float64)
)


def build_binned(values: list[object], edges: np.ndarray) -> FeatureProfile:
    p = FeatureProfile.new(FeatureKind.NUMERIC, k=64, bin_edges=edges)
    p.update(values)
    return p


def exact_bin_counts(values: list[object], edges: np.ndarray) -> np.ndarray:
    """Counts of the finite numbers per bin (-inf, e1), [e1, e2), ..., [em, inf)."""
    x = np.array(
        [
            float(v)
            for v in values
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        ],
        dtype=np.float64,
    )
    return np.bincount(np.searchsorted(edges, x, side="right"), minlength=edges.size + 1)


@SETTINGS
@given(a=column(FeatureKind.NUMERIC), b=column(FeatureKind.NUMERIC), edges=edges_strategy)
def test_bin_counts_of_merge_are_those_of_the_union(
    a: list[object], b: list[object], edges: np.ndarray
) -> None:
    pa, pb = build_binned(a, edges), build_binned(b, edges)
    assert pa.bin_counts is not None and pa.bin_counts.sum() == pa.valid_count
    np.testing.assert_array_equal(pa.bin_counts, exact_bin_counts(a, edges))
    before = (pa.to_bytes(), pb.to_bytes(), pa.bin_counts.copy())
    merged = pa.merge(pb)
    assert (pa.to_bytes(), pb.to_bytes()) == before[:2]  # inputs unchanged
    np.testing.assert_array_equal(pa.bin_counts, before[2])
    assert merged.bin_counts is not None and merged.bin_counts is not pa.bin_counts
    np.testing.assert_array_equal(merged.bin_counts, exact_bin_counts(a + b, edges))
    np.testing.assert_array_equal(merged.bin_edges, edges)
    assert_equivalent(merged, build_binned(a + b, edges))


@SETTINGS
@given(
    a=column(FeatureKind.NUMERIC),
    b=column(FeatureKind.NUMERIC),
    c=column(FeatureKind.NUMERIC),
    edges=edges_strategy,
)
def test_bin_merge_is_associative(
    a: list[object], b: list[object], c: list[object], edges: np.ndarray
) -> None:
    pa, pb, pc = (build_binned(v, edges) for v in (a, b, c))
    left, right = pa.merge(pb).merge(pc), pa.merge(pb.merge(pc))
    assert left.bin_counts is not None and right.bin_counts is not None
    np.testing.assert_array_equal(left.bin_counts, right.bin_counts)


@SETTINGS
@given(
    a=st.lists(st.floats(-100, 100), min_size=1, max_size=50),
    b=st.lists(st.floats(-100, 100), min_size=1, max_size=50),
    edges=edges_strategy,
    other=edges_strategy,
)
def test_merge_with_different_or_missing_edges_drops_the_bins(
    a: list[float], b: list[float], edges: np.ndarray, other: np.ndarray
) -> None:
    pa = build_binned(list(a), edges)
    differ = not (edges.shape == other.shape and np.array_equal(edges, other))
    m = pa.merge(build_binned(list(b), other))
    assert (m.bin_counts is None) == differ and (m.bin_edges is None) == differ
    plain = build(FeatureKind.NUMERIC, list(b))
    for merged in (pa.merge(plain), plain.merge(pa)):
        assert merged.bin_edges is None and merged.bin_counts is None
        assert merged.valid_count == len(a) + len(b)  # the sketch path still has it all
    # a side without finite values counts 0 in every bin of any edges: bins are kept
    empty = FeatureProfile.new(FeatureKind.NUMERIC, k=64)
    empty.update([None, math.nan, "x"])
    for merged in (pa.merge(empty), empty.merge(pa)):
        assert merged.bin_counts is not None
        np.testing.assert_array_equal(merged.bin_counts, exact_bin_counts(list(a), edges))


@SETTINGS
@given(values=column(FeatureKind.NUMERIC), edges=edges_strategy)
def test_serialization_round_trip_keeps_the_bins(values: list[object], edges: np.ndarray) -> None:
    p = build_binned(values, edges)
    q = FeatureProfile.from_bytes(p.to_bytes())
    assert q == p
    assert q.bin_edges is not None and q.bin_counts is not None and p.bin_counts is not None
    np.testing.assert_array_equal(q.bin_edges, edges)
    np.testing.assert_array_equal(q.bin_counts, p.bin_counts)
    assert q.bin_counts.dtype == np.int64 and q.bin_edges.dtype == np.float64
    assert q.merge(p).bin_counts is not None  # equal edges after the round trip
    assert p != build(FeatureKind.NUMERIC, values)  # the bins take part in equality


def test_bin_edges_are_validated_and_shared() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        FeatureProfile.new(FeatureKind.NUMERIC, bin_edges=np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="finite"):
        FeatureProfile.new(FeatureKind.NUMERIC, bin_edges=np.array([0.0, math.inf]))
    with pytest.raises(ValueError, match="numeric"):
        FeatureProfile.new(FeatureKind.CATEGORICAL, bin_edges=np.array([0.0]))
    mutable = np.array([0.0, 1.0])
    p = FeatureProfile.new(FeatureKind.NUMERIC, bin_edges=mutable)
    mutable[0] = 5.0  # the profile keeps its own read-only copy
    assert p.bin_edges is not None and p.bin_edges[0] == 0.0 and not p.bin_edges.flags.writeable

    rng = np.random.default_rng(1)
    ref = ModelProfile.build_reference(
        "m", "1", {"x": rng.normal(0, 1, 5000), "c": np.array(["a", "b"] * 2500, dtype=object)}
    )
    edges = ref.psi_edges()
    assert set(edges) == {"x"} and ref.psi_edges()["x"] is edges["x"]  # memoized
    w1, w2 = (
        ModelProfile.new(
            "m", "1", {"x": FeatureKind.NUMERIC, "c": FeatureKind.CATEGORICAL}, bin_edges=edges
        )
        for _ in range(2)
    )
    assert w1.features["x"].bin_edges is edges["x"] is w2.features["x"].bin_edges  # shared
    assert w1.features["c"].bin_edges is None
    w1.update_columns({"x": rng.normal(0, 1, 1000), "c": np.array(["a"] * 1000, dtype=object)})
    w = ModelProfile.from_bytes(w1.merge(w2).to_bytes())
    assert w.features["x"].bin_counts is not None and w.features["x"].bin_counts.sum() == 1000
