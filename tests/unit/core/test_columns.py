"""Column inputs: nulls, NaN, type-invalid values, pyarrow/numpy/object, kinds."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from streamproc.core.feature_profile import FeatureProfile
from streamproc.core.kinds import FeatureKind, infer_kind
from streamproc.core.model_profile import ModelProfile


def counts(p: FeatureProfile) -> tuple[int, int, int, int, int]:
    return p.count, p.null_count, p.invalid_count, p.nonfinite_count, p.valid_count


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (np.array([1.0, np.nan, np.inf, -np.inf, 2.0]), (5, 0, 0, 3, 2)),
        (pa.array([1.0, None, 3.0]), (3, 1, 0, 0, 2)),
        (pa.chunked_array([[1, 2], [None]]), (3, 1, 0, 0, 2)),
        (np.array([1, None, "3.5", 2.5, float("nan")], dtype=object), (5, 1, 1, 1, 2)),
        (np.ma.masked_array([1.0, 2.0, 3.0], mask=[0, 1, 0]), (3, 1, 0, 0, 2)),
        (pa.array(["a", None]), (2, 1, 1, 0, 0)),
        (np.array(["1", "2"]), (2, 0, 2, 0, 0)),
        ([1, 2, True], (3, 0, 0, 0, 3)),
    ],
)
def test_numeric_counts(values: object, expected: tuple[int, ...]) -> None:
    p = FeatureProfile.new(FeatureKind.NUMERIC)
    p.update(values)
    assert counts(p) == expected


def test_numeric_moments_and_quantiles() -> None:
    x = np.random.default_rng(0).normal(5, 2, 10_000)
    p = FeatureProfile.new(FeatureKind.NUMERIC)
    p.update(pa.array(x))
    assert p.mean == pytest.approx(x.mean()) and p.std == pytest.approx(x.std())
    assert p.min == x.min() and p.max == x.max()
    assert p.quantiles([0.5])[0] == pytest.approx(np.median(x), abs=0.05)
    assert p.distinct_estimate() == pytest.approx(10_000, rel=0.05)


@pytest.mark.parametrize(
    ("values", "expected", "top"),
    [
        (np.array(["a", "b", None, "a"], dtype=object), (4, 1, 0, 0, 3), ("a", 2)),
        (pa.array(["a", None, "a"]).dictionary_encode(), (3, 1, 0, 0, 2), ("a", 2)),
        (np.array([3, 3, 4]), (3, 0, 0, 0, 3), ("3", 2)),
        (np.array([3.0, np.nan, 3.0, 2.5]), (4, 1, 1, 0, 2), ("3", 2)),
        (np.array(["a", 1, 1.0, 2.5, [1], None], dtype=object), (6, 1, 2, 0, 3), ("1", 2)),
        (pa.array([1, 1, None]), (3, 1, 0, 0, 2), ("1", 2)),
    ],
)
def test_categorical_counts(values: object, expected: tuple[int, ...], top: tuple) -> None:
    p = FeatureProfile.new(FeatureKind.CATEGORICAL)
    p.update(values)
    assert counts(p) == expected
    assert p.top_categories(1) == [top]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (np.array([True, False, True]), (3, 0, 0, 0, 3)),
        (pa.array([True, None]), (2, 1, 0, 0, 1)),
        ([True, None, 2, "yes", 0], (5, 1, 2, 0, 2)),
        (np.array([1.0, np.nan, 0.0, 0.5]), (4, 1, 1, 0, 2)),
    ],
)
def test_boolean_counts(values: object, expected: tuple[int, ...]) -> None:
    p = FeatureProfile.new(FeatureKind.BOOLEAN)
    p.update(values)
    assert counts(p) == expected


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        (np.array([1.0, 2.0]), FeatureKind.NUMERIC),
        (np.array([1, 2]), FeatureKind.NUMERIC),
        (np.array([True]), FeatureKind.BOOLEAN),
        (pa.array(["a"]), FeatureKind.CATEGORICAL),
        (pa.array(["a"]).dictionary_encode(), FeatureKind.CATEGORICAL),
        ([None, 1, 2.5], FeatureKind.NUMERIC),
        ([None, True], FeatureKind.BOOLEAN),
        (["a", 1], FeatureKind.CATEGORICAL),
        ([], FeatureKind.NUMERIC),
    ],
)
def test_infer_kind(values: object, kind: FeatureKind) -> None:
    assert infer_kind(values) is kind


def test_model_profile_update_columns() -> None:
    p = ModelProfile.new("m", "3", {"x": FeatureKind.NUMERIC, "missing": FeatureKind.BOOLEAN})
    p.update_columns(
        {"x": np.array([1, "bad", 3], dtype=object), "undeclared": [1, 2, 3]},
        predictions=np.array([0.1, 0.2, 0.9]),
        predicted_labels=["a", "b", "a"],
        latency_ms=pa.array([5.0, None, 7.0]),
        event_times=np.array([100.0, 50.0, 75.0]),
    )
    assert p.row_count == 3
    assert p.features["x"].invalid_count == 1
    assert p.features["missing"].null_count == 3
    assert p.prediction is not None and p.prediction.valid_count == 3
    assert p.predicted_label is not None and p.predicted_label.top_categories(1) == [("a", 2)]
    assert p.latency_ms is not None and p.latency_ms.null_count == 1
    assert (p.event_time_min, p.event_time_max) == (50.0, 100.0)
    with pytest.raises(ValueError, match="differ in length"):
        p.update_columns({"x": [1.0]}, predictions=[1.0, 2.0])


def test_reference_learns_schema_and_overrides_kinds() -> None:
    ref = ModelProfile.build_reference(
        "m",
        "1",
        {"age": np.array([20.0, 30.0]), "zip": np.array([10115, 10117])},
        feature_kinds={"zip": FeatureKind.CATEGORICAL},
        source="training set v1",
    )
    assert ref.schema["age"].kind is FeatureKind.NUMERIC
    assert (ref.schema["age"].min, ref.schema["age"].max) == (20.0, 30.0)
    assert ref.schema["zip"].kind is FeatureKind.CATEGORICAL
    assert set(ref.schema["zip"].categories) == {"10115", "10117"}
    assert ref.metadata["source"] == "training set v1"
    assert ModelProfile.from_bytes(ref.to_bytes()).schema == ref.schema
