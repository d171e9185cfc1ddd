"""Slice profiles: rows per slice, fairness counts, merge, cap and bytes, against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from streamproc.core.model_profile import ModelProfile
from streamproc.core.segments import OTHER, SlicingPolicy, slice_key
from streamproc.core.slice_profiles import SliceProfiles, SliceSpec, segments_of


def _reference() -> ModelProfile:
    rng = np.random.default_rng(0)
    n = 5000
    return ModelProfile.build_reference(
        "m",
        "1",
        {"x": rng.normal(0, 1, n), "region": rng.choice(["n", "s"], n).astype(object)},
        predictions=rng.random(n),
        predicted_labels=rng.choice(["a", "b"], n).astype(object),
    )


def _batch(seed: int, n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    values = np.array(["DE", "FR", "US", "IT", "ES"])
    return {
        "country": values[rng.choice(5, n, p=[0.4, 0.3, 0.2, 0.07, 0.03])],
        "gender": rng.choice(["f", "m"], n),
        "x": rng.normal(0, 1, n),
        "region": rng.choice(["n", "s"], n).astype(object),
        "score": rng.random(n),
        "label": rng.choice(["a", "b"], n).astype(object),
    }


def _build(spec: SliceSpec, b: dict[str, np.ndarray]) -> SliceProfiles:
    segs = [
        {"country": str(c), "gender": str(g)}
        for c, g in zip(b["country"], b["gender"], strict=True)
    ]
    cols = {"x": b["x"], "region": list(b["region"])}
    segments = segments_of(segs, cols, spec.dimension_features(_reference()))
    return SliceProfiles.build(
        spec, _reference(), "m", "1", segments, cols,
        predictions=b["score"], predicted_labels=list(b["label"]),
        scores=b["score"], labels=list(b["label"]),
    )  # fmt: skip


def test_each_slice_holds_exactly_its_rows() -> None:
    spec = SliceSpec(SlicingPolicy(("country", "region"), top_k=3), feature_dimensions=("region",))
    b = _batch(1, 4000)
    got = _build(spec, b)
    rows = {k: p.row_count for k, p in got.profiles.items()}
    want = {slice_key([("country", c)]): int((b["country"] == c).sum()) for c in ("DE", "FR", "US")}
    want[slice_key([("country", OTHER)])] = int(np.isin(b["country"], ["IT", "ES"]).sum())
    for r in ("n", "s"):
        want[slice_key([("region", r)])] = int((b["region"] == r).sum())
    want[slice_key([("region", OTHER)])] = 0
    assert {k: v for k, v in rows.items() if v} == {k: v for k, v in want.items() if v}
    de = got.profiles[slice_key([("country", "DE")])]
    mask = b["country"] == "DE"
    assert de.features["x"].mean == pytest.approx(b["x"][mask].mean(), rel=1e-12)
    assert de.prediction is not None
    assert de.prediction.mean == pytest.approx(b["score"][mask].mean(), rel=1e-12)
    assert de.joint is None and "region" in de.features  # key features default: all (≤ 10)


def test_fairness_counts_equal_numpy_selection() -> None:
    spec = SliceSpec(SlicingPolicy(("country",)), protected=("gender",), positive="a")
    b = _batch(2, 3000)
    fc = _build(spec, b).fairness["gender"]
    for g in ("f", "m"):
        mask = b["gender"] == g
        assert fc.groups[g].n == int(mask.sum())
        assert fc.groups[g].selected == int((b["label"][mask] == "a").sum())


def test_merge_equals_one_build_and_survives_bytes() -> None:
    spec = SliceSpec(SlicingPolicy(("country",)), protected=("gender",), threshold=0.5)
    a, c = _batch(3, 1500), _batch(4, 2500)
    both = {k: np.concatenate([a[k], c[k]]) for k in a}
    merged = _build(spec, a).merge(_build(spec, c))
    whole = _build(spec, both)
    assert {k: p.row_count for k, p in merged.profiles.items()} == {
        k: p.row_count for k, p in whole.profiles.items()
    }
    assert merged.fairness == whole.fairness  # exact counters
    for k, p in merged.profiles.items():
        assert p.features["x"].sum == pytest.approx(whole.profiles[k].features["x"].sum)
    assert SliceProfiles.from_bytes(merged.to_bytes()) == merged


def test_cap_moves_evicted_values_into_other() -> None:
    spec = SliceSpec(SlicingPolicy(("country",), max_slices=3))
    b = _batch(5, 4000)
    one = _build(spec, b)
    total = sum(p.row_count for p in one.profiles.values())
    merged = one.merge(_build(spec, _batch(6, 10)))
    assert len(merged.profiles) <= 3
    assert slice_key([("country", OTHER)]) in merged.profiles
    assert sum(p.row_count for p in merged.profiles.values()) == total + 10
