"""Window profiles keep no HLL for numeric features: everything a check reads is the same
as with one, references keep theirs, and merging never invents a distinct count."""

from __future__ import annotations

import numpy as np
import pytest

from streamproc.core.drift import compare_profiles
from streamproc.core.feature_profile import NO_DISTINCT, FeatureProfile
from streamproc.core.kinds import FeatureKind
from streamproc.core.model_profile import ModelProfile

KINDS = {"x": FeatureKind.NUMERIC, "n": FeatureKind.NUMERIC, "c": FeatureKind.CATEGORICAL}


def _columns(seed: int, n: int = 5000, shift: float = 0.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, n)
    x[rng.random(n) < 0.02] = np.nan
    return {
        "x": x,
        "n": rng.poisson(3.0, n).astype(np.float64),
        "c": rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1]).astype(object),
    }


def _window(cols: dict[str, np.ndarray], distinct: bool) -> ModelProfile:
    p = ModelProfile.new("m", "1", KINDS, numeric_distinct=distinct)
    p.update_columns(cols, predictions=np.clip(cols["x"] / 4 + 0.5, 0, 1))
    return p


def test_a_window_without_numeric_hll_reads_the_same_everywhere_a_check_looks() -> None:
    """Windows of 500 rows: under the KLL's k (512) the sketch is exact, so the two
    windows' statistics are comparable bit for bit (KLL compaction is randomized)."""
    cols = _columns(1)
    plain, lean = _window(cols, True), _window(cols, False)
    for name in ("x", "n"):
        f = lean.features[name]
        assert f.hll is None and f.lg_hll == NO_DISTINCT and f.distinct_estimate() is None
        valid = cols[name][np.isfinite(cols[name])]
        assert f.valid_count == valid.size
        assert f.min == valid.min() and f.max == valid.max()
        assert f.mean == pytest.approx(valid.mean(), rel=1e-12)
        assert f.std == pytest.approx(valid.std(), rel=1e-9)
    assert plain.features["x"].hll is not None
    cat = lean.features["c"]
    assert cat.hll is not None
    assert cat.distinct_estimate() == len(np.unique(cols["c"]))
    ref = ModelProfile.build_reference("m", "1", _columns(2, 20_000), feature_kinds=KINDS)
    for cur in (_columns(3, n=500), _columns(4, n=500, shift=0.4)):
        a = compare_profiles(ref, _window(cur, True)).to_dict()
        b = compare_profiles(ref, _window(cur, False)).to_dict()
        a.pop("current", None), b.pop("current", None)
        assert a["features"] == b["features"]


def test_bytes_round_trip_and_merges_never_invent_a_distinct_count() -> None:
    cols = _columns(5)
    lean = _window(cols, False)
    back = ModelProfile.from_bytes(lean.to_bytes())
    assert back.features["x"].hll is None and back.features["x"].lg_hll == NO_DISTINCT
    assert back.features["x"] == lean.features["x"]
    plain = _window(_columns(6), True)
    for merged in (lean.merge(plain), plain.merge(lean), lean.merge(lean)):
        assert merged.features["x"].hll is None
        assert merged.features["x"].distinct_estimate() is None
        assert merged.features["c"].hll is not None
    both = plain.merge(_window(_columns(7), True)).features["n"]
    exact = len(np.unique(np.concatenate([_columns(6)["n"], _columns(7)["n"]])))
    assert both.distinct_estimate() == pytest.approx(exact, rel=0.05)


def test_references_keep_their_hll_and_categoricals_always_do() -> None:
    cols = _columns(8)
    ref = ModelProfile.build_reference("m", "1", cols, feature_kinds=KINDS)
    assert ref.features["x"].distinct_estimate() == pytest.approx(
        len(np.unique(cols["x"][np.isfinite(cols["x"])])), rel=0.05
    )
    with pytest.raises(ValueError, match="categorical"):
        FeatureProfile(FeatureKind.CATEGORICAL, lg_hll=NO_DISTINCT)
