"""Co-moments of numeric features: exact against numpy on the raw rows, mergeable,
serialized with the model profile, built by the reference and by the streaming path."""

from __future__ import annotations

import base64

import numpy as np
import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.contracts.prediction import decode_predictions
from streamproc.core import codec
from streamproc.core.comoments import (
    JOINT_BUCKETS,
    JOINT_MAX_FEATURES,
    CoMoments,
    JointMoments,
    row_values,
)
from streamproc.core.errors import ProfileFormatError
from streamproc.core.kinds import FeatureKind
from streamproc.core.model_profile import ModelProfile
from streamproc.monitor.state import AggregateState
from streamproc.monitor.window_buffer import BufferedChunk, WindowBuffer, build_delta

NAMES = ("a", "b", "c", "d")


def _data(rng: np.random.Generator, n: int, missing: float = 0.0) -> np.ndarray:
    cov = np.array([[4, 1.5, 0, 0.3], [1.5, 1, 0.2, 0], [0, 0.2, 2, -0.9], [0.3, 0, -0.9, 1]])
    x = rng.multivariate_normal([100.0, -3.0, 0.0, 1e4], cov, size=n)
    if missing:
        x[rng.random(x.shape) < missing] = np.nan
    return x


def _columns(x: np.ndarray) -> dict[str, np.ndarray]:
    return {name: x[:, i] for i, name in enumerate(NAMES)}


def _assert_matches_numpy(m: CoMoments, x: np.ndarray) -> None:
    """Every pair against numpy on the rows where both are valid."""
    d = x.shape[1]
    for i in range(d):
        for j in range(d):
            rows = ~np.isnan(x[:, i]) & ~np.isnan(x[:, j])
            xi, xj = x[rows, i], x[rows, j]
            assert m.n[i, j] == rows.sum()
            assert m.mean[i, j] == pytest.approx(xi.mean(), rel=1e-12, abs=1e-9)
            assert m.m2[i, j] == pytest.approx(((xi - xi.mean()) ** 2).sum(), rel=1e-9)
            cov = np.cov(xi, xj, ddof=1)[0, 1]
            assert m.covariance()[i, j] == pytest.approx(cov, rel=1e-9, abs=1e-12)
            if i != j:
                assert m.correlation()[i, j] == pytest.approx(np.corrcoef(xi, xj)[0, 1], abs=1e-12)


@pytest.mark.parametrize("missing", [0.0, 0.2])
def test_merged_chunks_match_numpy_on_the_concatenated_rows(missing: float) -> None:
    rng = np.random.default_rng(1)
    x = _data(rng, 5_000, missing)
    cuts = np.sort(rng.choice(np.arange(1, 5_000), size=30, replace=False))
    parts = [JointMoments.new(NAMES) for _ in range(31)]
    for part, rows in zip(parts, np.split(x, cuts), strict=True):
        part.update(_columns(rows), rows.shape[0])
    merged = parts[0]
    for p in parts[1:]:
        merged = merged.merge(p)
    _assert_matches_numpy(merged.total(), x)
    if not missing:  # complete rows: the whole matrices, as numpy gives them
        np.testing.assert_allclose(merged.total().covariance(), np.cov(x.T), rtol=1e-9)
        np.testing.assert_allclose(merged.total().correlation(), np.corrcoef(x.T), atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 300),
    st.lists(st.integers(0, 300), max_size=4),
    st.floats(0.0, 0.6),
)
def test_any_split_merges_to_one_update(seed: int, n: int, cuts: list[int], missing: float) -> None:
    x = _data(np.random.default_rng(seed), n, missing)
    whole = JointMoments.new(NAMES)
    whole.update(_columns(x), n)
    merged = JointMoments.new(NAMES)
    for rows in np.split(x, sorted(c % (n + 1) for c in cuts)):
        part = JointMoments.new(NAMES)
        part.update(_columns(rows), rows.shape[0])
        before = part.to_meta()
        merged = merged.merge(part)
        assert part.to_meta() == before  # merge does not mutate its inputs
    a, b = whole.total(), merged.total()
    np.testing.assert_array_equal(a.n, b.n)
    for u, v in ((a.mean, b.mean), (a.m2, b.m2), (a.cross, b.cross)):
        np.testing.assert_allclose(u, v, rtol=1e-8, atol=1e-6)


def test_a_subset_of_features_keeps_exact_moments() -> None:
    x = _data(np.random.default_rng(2), 2_000, 0.3)
    jm = JointMoments.new(NAMES)
    jm.update(_columns(x), 2_000)
    _assert_matches_numpy(jm.select(["d", "b"]).total(), x[:, [3, 1]])


def test_row_values_mark_every_invalid_value_missing() -> None:
    arrow = pa.array([1, None, 3], type=pa.int64())
    assert np.array_equal(row_values(arrow, 3), [1.0, np.nan, 3.0], equal_nan=True)
    masked = np.ma.masked_array([1.0, 2.0, 3.0], mask=[False, True, False])
    assert np.array_equal(row_values(masked, 3), [1.0, np.nan, 3.0], equal_nan=True)
    mixed = np.array([1, "3.5", None, True, np.inf, 1e101, 10**400, 2.5], dtype=object)
    expected = [1.0, np.nan, np.nan, 1.0, np.nan, np.nan, np.nan, 2.5]
    assert np.array_equal(row_values(mixed, 8), expected, equal_nan=True)
    assert np.isnan(row_values(pa.array(["a", "b"]), 2)).all()
    assert np.isnan(row_values(None, 4)).all() and row_values(None, 4).size == 4
    with pytest.raises(ValueError, match="expected 5"):
        row_values(np.arange(3.0), 5)


# ------------------------------------------------------------------- in the model profile


def _kinds(names: list[str]) -> dict[str, FeatureKind]:
    return {n: FeatureKind.NUMERIC for n in names}


def test_reference_tracks_the_first_numeric_features_by_name_in_parts() -> None:
    rng = np.random.default_rng(3)
    cols: dict[str, object] = {f"x{i:02d}": rng.normal(size=1_000) for i in range(25)}
    cols["cat"] = rng.choice(["u", "v"], size=1_000).astype(object)
    ref = ModelProfile.build_reference("m", "1", cols)  # type: ignore[arg-type]
    assert ref.joint_features() == tuple(f"x{i:02d}" for i in range(JOINT_MAX_FEATURES))
    assert ref.joint is not None and len(ref.joint.parts) == JOINT_BUCKETS
    sizes = [int(p.n[0, 0]) for p in ref.joint.parts]
    assert sum(sizes) == 1_000 and min(sizes) > 20  # spread over the parts by row index
    x = np.column_stack([cols[n] for n in ref.joint_features()])
    # winsorized at the fences q10 - (q90 - q10), q90 + (q90 - q10) of each feature
    q10, q90 = np.quantile(x, [0.1, 0.9], axis=0, method="higher")
    lo, hi = q10 - (q90 - q10), q90 + (q90 - q10)
    bounds = ref.joint_bounds()
    assert bounds is not None
    assert np.array([bounds[n] for n in ref.joint_features()]) == pytest.approx(
        np.column_stack([lo, hi]), abs=1e-12
    )
    assert (x < lo).any() or (x > hi).any()  # some values clipped
    _assert_matches_numpy(ref.joint.total(), np.clip(x, lo, hi))
    window = ModelProfile.new("m", "1", {n: f.kind for n, f in ref.features.items()})
    assert window.joint is not None and len(window.joint.parts) == 1
    assert window.joint_features() == ref.joint_features()
    assert ModelProfile.new("m", "1", {"x": FeatureKind.NUMERIC}).joint is None  # one feature
    assert ModelProfile.new("m", "1", _kinds(["p", "q"]), joint_features=()).joint is None


def test_profile_merge_keeps_co_moments_only_when_every_row_has_them() -> None:
    rng = np.random.default_rng(4)
    x = _data(rng, 600, 0.1)
    a = ModelProfile.new("m", "1", _kinds(list(NAMES)))
    b = ModelProfile.new("m", "1", _kinds(list(NAMES)))
    a.update_columns(_columns(x[:250]))
    b.update_columns(_columns(x[250:]))
    merged = a.merge(b)
    assert merged.joint is not None
    _assert_matches_numpy(merged.joint.total(), x)
    empty_old = ModelProfile.new("m", "1", _kinds(list(NAMES)), joint_features=())
    assert a.merge(empty_old).joint == a.joint  # no rows: nothing missing
    old = ModelProfile.new("m", "1", _kinds(list(NAMES)), joint_features=())
    old.update_columns(_columns(x[:10]))
    assert a.merge(old).joint is None and old.merge(a).joint is None
    fewer = ModelProfile.new("m", "1", _kinds(list(NAMES)), joint_features=["b", "d"])
    fewer.update_columns(_columns(x[250:]))
    both = a.merge(fewer).joint
    assert both is not None and both.names == ("b", "d")
    _assert_matches_numpy(both.total(), x[:, [1, 3]])


@pytest.mark.parametrize("missing", [0.0, 0.25])
def test_serialized_with_the_profile(missing: float) -> None:
    x = _data(np.random.default_rng(5), 400, missing)
    p = ModelProfile.new("m", "1", _kinds(list(NAMES)))
    p.update_columns(_columns(x))
    again = ModelProfile.from_bytes(p.to_bytes())
    assert again == p and again.joint is not None
    _assert_matches_numpy(again.joint.total(), x)
    meta, _ = codec.unpack(p.to_bytes(), codec.MAGIC_MODEL, "t")
    size = len(base64.b64decode(meta["joint"]["parts"][0]))
    d = len(NAMES)
    expected = 1 + 8 * ((1 + 2 * d + d * (d + 1) // 2) if not missing else 3 * d * d + d)
    assert size == expected  # compact when every row was complete


def test_profiles_without_co_moments_still_load_and_bad_ones_are_format_errors() -> None:
    x = _data(np.random.default_rng(6), 100)
    p = ModelProfile.new("m", "1", _kinds(list(NAMES)))
    p.update_columns(_columns(x))
    meta, blobs = codec.unpack(p.to_bytes(), codec.MAGIC_MODEL, "t")
    old = {k: v for k, v in meta.items() if k != "joint"}  # as written before co-moments
    loaded = ModelProfile.from_bytes(codec.pack(codec.MAGIC_MODEL, old, blobs))
    assert loaded.joint is None and loaded.features == p.features
    part = bytearray(base64.b64decode(meta["joint"]["parts"][0]))
    for bad in (part[:-8], b"\x07" + part[1:], part[:1] + b"\xff" * 8 + part[9:]):
        joint = {**meta["joint"], "parts": [base64.b64encode(bytes(bad)).decode()]}
        data = codec.pack(codec.MAGIC_MODEL, {**meta, "joint": joint}, blobs)
        with pytest.raises(ProfileFormatError, match="corrupt content"):
            ModelProfile.from_bytes(data)


# ------------------------------------------------------------------------ streaming path


def test_streaming_deltas_merge_to_the_co_moments_of_all_rows() -> None:
    rng = np.random.default_rng(7)
    ref_x = _data(rng, 3_000)
    reference = ModelProfile.build_reference("m", "1", _columns(ref_x))
    t0 = 1_700_000_040.0
    x = _data(rng, 900, 0.1)
    state = AggregateState(60_000, allowed_lateness_ms=10_000, retention_ms=600_000)
    for part in range(3):
        rows = range(part * 300, (part + 1) * 300)
        values = []
        for i in rows:
            feats = {
                n: (None if np.isnan(x[i, j]) else float(x[i, j])) for j, n in enumerate(NAMES)
            }
            values.append(
                orjson.dumps(
                    {
                        "model": "m",
                        "model_version": "1",
                        "request_id": f"r{i}",
                        "timestamp": t0 + i * 0.01,
                        "features": feats,
                        "prediction": {"label": "y", "score": 0.5},
                    }
                )
            )
        (batch,) = decode_predictions(values, window_ms=60_000).batches.values()
        buf = WindowBuffer("m", "1", batch.window_start_ms, batch.window_start_ms + 60_000)
        buf.add(BufferedChunk(batch, batch.timestamps, t0), np.full(batch.n, part), np.arange(300))
        delta = build_delta(buf, reference, topic="p", producer_id="t")
        assert delta.profile.joint_features() == NAMES
        state.apply(type(delta).from_bytes(delta.to_bytes()), arrival_ms=0)
    (window,) = state.windows.values()
    assert window.profile.joint is not None and len(window.profile.joint.parts) == 1
    _assert_matches_numpy(window.profile.joint.total(), x)
