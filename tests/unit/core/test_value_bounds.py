"""Hostile numbers: moments stay finite and every profile's bytes load again.

Values beyond ±1e100 count as non-finite (streamproc.core.columns), so sums and squared
deviations cannot overflow; expected values here come from numpy on the raw input.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamproc.core import codec
from streamproc.core.columns import MAX_MAGNITUDE, categorical_batch, numeric_batch
from streamproc.core.errors import ProfileFormatError
from streamproc.core.feature_profile import FeatureProfile
from streamproc.core.kinds import FeatureKind
from streamproc.core.model_profile import ModelProfile

HUGE = sys.float_info.max

HOSTILE_COLUMNS = {
    "two_max": [HUGE, HUGE],
    "plus_minus_max": [1e308, -1e308, 1.0],
    "squares_overflow": [1e200, -1e200],
    "deviation_squares_overflow": [1e155, -1e155, 0.0],
    "at_the_bound": [MAX_MAGNITUDE, -MAX_MAGNITUDE, MAX_MAGNITUDE],
    "just_beyond": [np.nextafter(MAX_MAGNITUDE, np.inf), 2.0],
    "subnormal": [5e-324, -5e-324, 0.0],
    "u64_and_i64": [float(2**64 - 1), float(-(2**63)), 3.0],
    "mixed": [1e308, 2.5, np.nan, np.inf, -np.inf, -1e300, 7.0],
}


def expected_valid(values: list[float]) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    return x[np.isfinite(x) & (np.abs(x) <= 1e100)]


@pytest.mark.parametrize("values", HOSTILE_COLUMNS.values(), ids=list(HOSTILE_COLUMNS))
def test_hostile_numbers_keep_finite_moments_and_round_trip(values: list[float]) -> None:
    valid = expected_valid(values)
    p = FeatureProfile.new(FeatureKind.NUMERIC, bin_edges=np.array([-1.0, 0.0, 1.0]))
    p.update(np.array(values, dtype=np.float64))
    assert (p.count, p.valid_count, p.nonfinite_count) == (
        len(values),
        valid.size,
        len(values) - valid.size,
    )
    assert math.isfinite(p.sum) and math.isfinite(p.m2)
    back = FeatureProfile.from_bytes(p.to_bytes())
    assert back == p
    merged = back.merge(p).merge(back)  # three times the rows: still finite
    assert math.isfinite(merged.sum) and math.isfinite(merged.m2)
    assert FeatureProfile.from_bytes(merged.to_bytes()) == merged
    if valid.size:
        assert (back.min, back.max) == (valid.min(), valid.max())
        assert back.mean == pytest.approx(valid.mean(), rel=1e-12, abs=1e-300)
        assert back.variance == pytest.approx(valid.var(), rel=1e-9, abs=1e-300)
        assert back.bin_counts is not None and int(back.bin_counts.sum()) == valid.size
    else:
        assert back.min is None and back.mean is None


def test_arrow_and_object_columns_apply_the_same_bound() -> None:
    values = [1e308, 1.0, None, -2e100, 3.0]
    arrow = numeric_batch(pa.array(values, type=pa.float64()))
    obj = numeric_batch(np.array([*values, "x"], dtype=object))
    assert (arrow.n, arrow.nulls, arrow.nonfinite, arrow.finite.tolist()) == (5, 1, 2, [1.0, 3.0])
    assert (obj.invalid, obj.nonfinite, obj.finite.tolist()) == (1, 2, [1.0, 3.0])


def test_python_int_beyond_float64_is_non_finite_not_an_error() -> None:
    batch = numeric_batch(np.array([10**400, -(10**400), 5, None], dtype=object))
    assert (batch.n, batch.nulls, batch.nonfinite, batch.finite.tolist()) == (4, 1, 2, [5.0])


def test_integral_floats_beyond_int64_are_exact_categories() -> None:
    values = [1e308, 2.0**63, 2.0**63, -(2.0**63), 3.0, 3.5]
    batch = categorical_batch(np.array(values))
    got = dict(zip(batch.categories, batch.counts.tolist(), strict=True))
    # the category of an integral float is the decimal of its exact integer value
    assert got == {
        str(int(1e308)): 1,
        "9223372036854775808": 2,
        "-9223372036854775808": 1,
        "3": 1,
    }
    assert batch.invalid == 1
    as_objects = categorical_batch(np.array(values, dtype=object))  # the per-value path
    assert dict(zip(as_objects.categories, as_objects.counts.tolist(), strict=True)) == got


@pytest.mark.parametrize(
    ("moment", "value", "written"),
    [("sum", math.inf, HUGE), ("sum", -math.inf, -HUGE), ("m2", math.nan, 0.0)],
)
def test_non_finite_moment_is_written_saturated_never_as_null(
    moment: str, value: float, written: float
) -> None:
    p = FeatureProfile.new(FeatureKind.NUMERIC)
    p.update(np.array([1.0, 2.0]))
    setattr(p, moment, value)  # only reachable by merging bytes written before the bound
    data = p.to_bytes()
    back = FeatureProfile.from_bytes(data)
    assert getattr(back, moment) == written
    assert b"null" not in data.split(b"categories")[0]


def test_null_moment_from_old_bytes_is_a_format_error() -> None:
    p = FeatureProfile.new(FeatureKind.NUMERIC)
    p.update(np.array([1.0]))
    meta, blobs = p._state()
    meta["sum"] = None  # what orjson wrote for an overflowed sum before the bound
    with pytest.raises(ProfileFormatError, match="corrupt content"):
        FeatureProfile.from_bytes(codec.pack(codec.MAGIC_FEATURE, meta, blobs))


# ------------------------------------------------------------------ property

json_number = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),  # everything JSON can carry
    st.sampled_from([HUGE, -HUGE, 1e308, 1e200, 1e155, MAX_MAGNITUDE, 5e-324, -0.0]),
    st.integers(-(2**63), 2**64 - 1),
)
hostile_value = st.one_of(json_number, st.none(), st.booleans(), st.text(max_size=4))
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def as_number(v: object) -> float | None:
    if isinstance(v, bool | int | float):
        return float(v)
    return None


@SETTINGS
@given(a=st.lists(hostile_value, max_size=60), b=st.lists(hostile_value, max_size=60))
def test_any_json_numbers_round_trip_and_merge(a: list[object], b: list[object]) -> None:
    """Columns of anything JSON can hold (as orjson decodes it) always serialize to
    bytes that load, and merges of those stay loadable."""
    profiles = []
    for values in (a, b):
        values = orjson.loads(orjson.dumps(values))
        p = FeatureProfile.new(FeatureKind.NUMERIC, k=64)
        p.update(values)
        back = FeatureProfile.from_bytes(p.to_bytes())
        assert back == p
        profiles.append(back)
    merged = profiles[0].merge(profiles[1])
    assert FeatureProfile.from_bytes(merged.to_bytes()) == merged
    nums = [x for x in map(as_number, a + b) if x is not None]
    valid = expected_valid(nums)
    assert merged.count == len(a) + len(b)
    assert merged.valid_count == valid.size
    assert merged.null_count == sum(v is None for v in a + b)
    assert math.isfinite(merged.sum) and math.isfinite(merged.m2)
    if valid.size:
        assert (merged.min, merged.max) == (valid.min(), valid.max())
        tol = 1e-12 * float(np.abs(valid).max())  # cancellation: relative to the largest
        assert merged.mean == pytest.approx(float(np.mean(valid)), rel=1e-9, abs=tol)


@SETTINGS
@given(
    numeric=st.lists(json_number, max_size=40),
    labels=st.lists(st.one_of(st.text(max_size=50), st.none()), max_size=40),
)
def test_model_profile_of_hostile_columns_round_trips(
    numeric: list[float], labels: list[str | None]
) -> None:
    n = min(len(numeric), len(labels))
    cols = {"x": np.array(numeric[:n], dtype=np.float64), "c": labels[:n]}
    p = ModelProfile.new("m", "1", {"x": FeatureKind.NUMERIC, "c": FeatureKind.CATEGORICAL})
    p.update_columns(cols, predictions=np.array(numeric[:n], dtype=np.float64))
    back = ModelProfile.from_bytes(p.to_bytes())
    assert back == p
    assert ModelProfile.from_bytes(back.merge(p).to_bytes()) == back.merge(p)
