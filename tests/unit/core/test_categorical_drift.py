"""Categorical drift past the distinct-value cap: both sides are compared on the same
bins (the reference's reliably counted head plus one "other" bin), so an unshifted
high-cardinality feature is not flagged and a re-weighted one still is."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from streamproc.core.categorical_drift import OTHER, aligned_counts
from streamproc.core.drift import compare_features
from streamproc.core.feature_profile import REFERENCE_K, WINDOW_K, FeatureProfile
from streamproc.core.kinds import FeatureKind

ROWS = 200_000


def _zipf(n_categories: int, s: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n_categories + 1) ** s
    return w / w.sum()


WEIGHTS = {"cat_10k": _zipf(10_000, 0.8), "zipf_1.2_50k": _zipf(50_000, 1.2)}


def _draw(rng: np.random.Generator, w: np.ndarray, n: int) -> pa.Array:
    codes = rng.choice(w.size, size=n, p=w).astype(np.int32)
    vocab = pa.array([f"v{i}" for i in range(w.size)], type=pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(codes), vocab).dictionary_decode()


def _reference(values: pa.Array) -> FeatureProfile:
    p = FeatureProfile.new(FeatureKind.CATEGORICAL, k=REFERENCE_K)
    p.update(values)
    return p


def _window(values: pa.Array, deltas: int = 10) -> FeatureProfile:
    """Merged from small deltas, as the streaming path builds a window."""
    out = FeatureProfile.new(FeatureKind.CATEGORICAL, k=WINDOW_K)
    step = -(-len(values) // deltas)
    for i in range(0, len(values), step):
        d = FeatureProfile.new(FeatureKind.CATEGORICAL, k=WINDOW_K)
        d.update(values[i : i + step])
        out = out.merge(d)
    return out


@pytest.mark.parametrize("name", sorted(WEIGHTS))
def test_unshifted_high_cardinality_is_not_drift(name: str) -> None:
    rng = np.random.default_rng(sorted(WEIGHTS).index(name))
    w = WEIGHTS[name]
    ref, cur = _reference(_draw(rng, w, ROWS)), _window(_draw(rng, w, ROWS))
    assert ref.categories is not None and not ref.categories.is_exact
    res = compare_features(ref, cur, name=name)
    st = res.statistics
    assert res.status == "ok", res.breaches
    assert st["psi"] is not None and st["psi"] < 0.1
    assert st["js"] is not None and st["js"] < 0.1
    assert st["new_category_share"] is None
    assert res.top_new_categories == []


def _moved(w: np.ndarray) -> np.ndarray:
    """30% of the total mass moves from the head (the most frequent categories holding
    half the mass) to the other categories, evenly."""
    head = int(np.searchsorted(np.cumsum(w), 0.5)) + 1
    out = w.copy()
    out[:head] *= 1 - 0.3 / w[:head].sum()
    out[head:] += 0.3 / (w.size - head)
    return out


@pytest.mark.parametrize("name", sorted(WEIGHTS))
@pytest.mark.parametrize("change", ["moved", "reversed"])
def test_reweighted_high_cardinality_still_fires(name: str, change: str) -> None:
    rng = np.random.default_rng(10 + sorted(WEIGHTS).index(name))
    w = WEIGHTS[name]
    shifted = _moved(w) if change == "moved" else w[::-1].copy()
    assert shifted.sum() == pytest.approx(1.0)
    ref, cur = _reference(_draw(rng, w, ROWS)), _window(_draw(rng, shifted, ROWS))
    res = compare_features(ref, cur, name=name)
    assert res.status in ("warning", "critical")
    assert {b.statistic for b in res.breaches} & {"psi", "js"}
    if change == "reversed":
        assert res.status == "critical"


def test_common_support_bins_add_up_on_both_sides() -> None:
    rng = np.random.default_rng(4)
    w = WEIGHTS["cat_10k"]
    ref, cur = _reference(_draw(rng, w, ROWS)), _window(_draw(rng, w, 50_000))
    cats, r, c = aligned_counts(ref, cur)
    assert cats[-1] == OTHER and len(set(cats)) == len(cats)
    assert ref.categories is not None and cur.categories is not None
    assert r.sum() == pytest.approx(ref.categories.total)
    assert c.sum() == pytest.approx(cur.categories.total)
    assert (r > 0).all()  # every bin but "other" is a category the reference counts
    head, _ = ref.categories.counts()
    assert set(cats[:-1]) <= set(head)


def test_new_categories_with_exact_reference_and_overflowed_current() -> None:
    """An exact reference still names unseen categories when the window overflowed."""
    rng = np.random.default_rng(5)
    base = np.array([f"a{i}" for i in range(20)], dtype=object)
    ref = _reference(pa.array(base[rng.integers(0, 20, 50_000)].tolist()))
    new = np.array([f"n{i}" for i in range(3000)], dtype=object)
    cur_vals = np.concatenate(
        [base[rng.integers(0, 20, 40_000)], np.array(["n_big"] * 6_000, dtype=object),
         new[rng.integers(0, 3000, 4_000)]]
    )  # fmt: skip
    cur = _window(pa.array(rng.permutation(cur_vals).tolist()))
    assert cur.categories is not None and not cur.categories.is_exact
    res = compare_features(ref, cur, name="c")
    share = res.statistics["new_category_share"]
    assert share is not None
    # at least the heavy new category, at most all new rows (0.2)
    assert 0.12 - 0.01 <= share <= 0.2
    assert res.top_new_categories[0][0] == "n_big"
    assert res.status == "critical"


def test_under_the_cap_new_category_share_is_exact() -> None:
    ref = _reference(pa.array(["a", "b"] * 1000))
    cur = _window(pa.array(["a"] * 1000 + ["x"] * 300 + ["y"] * 100))
    st = compare_features(ref, cur, name="c").statistics
    assert st["new_category_share"] == pytest.approx(400 / 1400)
