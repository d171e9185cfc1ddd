"""The hot-path prediction decoder: columns, reason codes, and no exceptions on any input."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.contracts import SchemaError, load_schema, validate
from streamproc.contracts.prediction import (
    BAD_TIMESTAMP,
    MALFORMED_JSON,
    MISSING_FIELD,
    NOT_AN_OBJECT,
    OVERSIZED,
    REASON_CODES,
    UNKNOWN_MODEL,
    WRONG_TYPE,
    decode_predictions,
    parse_timestamp,
)
from streamproc.contracts.wire_format import NOT_WIRE_FORMAT, SCHEMA_UNKNOWN, UNDECODABLE
from streamproc.labels.join import PAST_RETENTION
from streamproc.monitor.ingest import LATE_EVENT
from streamproc.monitor.join_stage import NOT_A_JOIN_RECORD
from streamproc.monitor.labels import LABEL_REASONS

T0 = 1714557603.25  # 2024-05-01T10:00:03.250Z


def record(**overrides: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "model": "fraud",
        "model_version": "17",
        "request_id": "r-1",
        "timestamp": "2024-05-01T10:00:03.250Z",
        "features": {"car_value": 23100.5, "country": "DE", "new": False, "age": None},
        "prediction": {"label": "legit", "score": 0.07},
    }
    rec.update(overrides)
    return {k: v for k, v in rec.items() if v is not _DROP}


_DROP = object()


def enc(*records: dict[str, Any]) -> list[bytes]:
    return [orjson.dumps(r) for r in records]


def test_reason_codes_match_deadletter_schema() -> None:
    enum = load_schema("deadletter")["properties"]["streamproc.reason"]["enum"]
    # the decoder's codes, then the one ingest adds after decoding (window lateness),
    # then the labels stage's (no embedded prediction, a repeated label), the label
    # join's, and the wire format's (schema registry)
    join = (PAST_RETENTION, NOT_A_JOIN_RECORD)
    wire = (NOT_WIRE_FORMAT, SCHEMA_UNKNOWN, UNDECODABLE)
    assert tuple(enum) == (*REASON_CODES, LATE_EVENT, *LABEL_REASONS, *join, *wire)


def test_schema_examples_decode_without_rejects() -> None:
    examples = load_schema("prediction_log")["examples"]
    result = decode_predictions(enc(*examples))
    assert result.rejects == []
    assert result.n_accepted == len(examples)
    assert set(result.batches) == {("fraud", "17"), ("eta", "2024-04-30"), ("churn", "3")}


def test_columns_of_one_group() -> None:
    recs = [
        record(request_id="a", latency_ms=12.5, fallback=True, segment={"ch": "web"}),
        record(
            request_id="b",
            timestamp=1714557603250,
            features={"car_value": 1.0, "country": "FR", "new": True, "age": 41},
            prediction={"label": "fraud"},
            error="timeout",
            features_as_of="2024-05-01T09:00:03.250Z",
        ),
        record(request_id="c", timestamp=T0, error=False),
    ]
    result = decode_predictions(enc(*recs), keep_request_ids=True)
    assert result.rejects == []
    b = result.batches["fraud", "17"]
    assert b.n == 3
    np.testing.assert_array_equal(b.indices, [0, 1, 2])
    np.testing.assert_allclose(b.timestamps, [T0, T0, T0])
    assert b.features["car_value"] == [23100.5, 1.0, 23100.5]
    assert b.features["country"] == ["DE", "FR", "DE"]
    assert b.features["age"] == [None, 41, None]
    assert b.missing == {"car_value": 0, "country": 0, "new": 0, "age": 0}
    assert b.prediction_label == ["legit", "fraud", "legit"]
    np.testing.assert_array_equal(b.prediction_score, [0.07, np.nan, 0.07])
    np.testing.assert_array_equal(b.latency_ms, [12.5, np.nan, np.nan])
    assert b.fallback.tolist() == [True, False, False]
    assert b.error.tolist() == [False, True, False]
    np.testing.assert_array_equal(b.features_as_of, [np.nan, T0 - 3600, np.nan])
    assert b.segments == [{"ch": "web"}, None, None]
    assert b.request_ids == ["a", "b", "c"]


def test_request_ids_dropped_by_default() -> None:
    assert decode_predictions(enc(record())).batches["fraud", "17"].request_ids is None


def test_plain_and_mixed_predictions() -> None:
    numeric = decode_predictions(enc(record(prediction=3), record(prediction=1.5)))
    b = numeric.batches["fraud", "17"]
    np.testing.assert_array_equal(b.prediction_score, [3.0, 1.5])
    assert b.prediction_label == [None, None]
    mixed = decode_predictions(
        enc(record(prediction=True), record(prediction=2.0), record(prediction={"label": 1}))
    )
    b = mixed.batches["fraud", "17"]
    assert b.prediction_label == [True, None, 1]
    np.testing.assert_array_equal(b.prediction_score, [np.nan, 2.0, np.nan])


def test_a_score_without_a_label_is_a_prediction() -> None:
    """Issue #10: ``{"score": 0.7}`` is valid (alone, or mixed with other shapes)."""
    alone = decode_predictions(enc(record(prediction={"score": 0.7}), record()))
    b = alone.batches["fraud", "17"]
    assert alone.rejects == []
    np.testing.assert_array_equal(b.prediction_score, [0.7, 0.07])
    assert b.prediction_label == [None, "legit"]
    mixed = decode_predictions(
        enc(
            record(prediction=True),
            record(prediction={"label": None, "score": 0.25}),
            record(prediction={"label": None}),
        )
    )
    b = mixed.batches["fraud", "17"]
    assert [(r.position, r.reason) for r in mixed.rejects] == [(2, WRONG_TYPE)]
    assert b.prediction_label == [True, None]
    np.testing.assert_array_equal(b.prediction_score, [np.nan, 0.25])
    validate("prediction_log", record(prediction={"score": 0.7}))


def test_groups_by_model_and_version_and_keeps_positions() -> None:
    recs = [record(), record(model_version="18"), record(model="eta"), record()]
    result = decode_predictions(enc(*recs))
    assert {k: b.indices.tolist() for k, b in result.batches.items()} == {
        ("fraud", "17"): [0, 3],
        ("fraud", "18"): [1],
        ("eta", "17"): [2],
    }


def test_missing_features_are_none_and_counted() -> None:
    recs = [record(features={"a": 1.0}), record(features={"b": "x"}), record(features={})]
    b = decode_predictions(enc(*recs)).batches["fraud", "17"]
    assert b.features == {"a": [1.0, None, None], "b": [None, "x", None]}
    assert b.missing == {"a": 2, "b": 2}


def test_wrongly_typed_feature_value_passes_through() -> None:
    recs = [record(features={"a": {"nested": 1}, "b": [1, 2], "c": 3})]
    result = decode_predictions(enc(*recs))
    assert result.rejects == []
    b = result.batches["fraud", "17"]
    assert b.features == {"a": [{"nested": 1}], "b": [[1, 2]], "c": [3]}


@pytest.mark.parametrize(
    ("raw", "reason", "detail"),
    [
        (b"{not json", MALFORMED_JSON, ""),
        (b"", MALFORMED_JSON, ""),
        (None, MALFORMED_JSON, "tombstone"),
        (b"\xff\xfe", MALFORMED_JSON, ""),
        (b"[1, 2]", NOT_AN_OBJECT, "list"),
        (b'"text"', NOT_AN_OBJECT, "str"),
        (orjson.dumps(record(timestamp=_DROP)), MISSING_FIELD, "timestamp"),
        (orjson.dumps(record(model=_DROP)), MISSING_FIELD, "model"),
        (orjson.dumps(record(features=_DROP)), MISSING_FIELD, "features"),
        (orjson.dumps(record(prediction=_DROP)), MISSING_FIELD, "prediction"),
        (orjson.dumps(record(request_id=_DROP)), MISSING_FIELD, "request_id"),
        (orjson.dumps(record(timestamp="yesterday")), BAD_TIMESTAMP, "RFC 3339"),
        (orjson.dumps(record(timestamp="2024-05-01T10:00:00")), BAD_TIMESTAMP, "UTC offset"),
        (orjson.dumps(record(timestamp=-5)), BAD_TIMESTAMP, "range"),
        (orjson.dumps(record(timestamp=1714557603250000)), BAD_TIMESTAMP, "range"),
        (orjson.dumps(record(timestamp=None)), BAD_TIMESTAMP, ""),
        (orjson.dumps(record(timestamp=True)), BAD_TIMESTAMP, ""),
        (orjson.dumps(record(features_as_of="soon")), BAD_TIMESTAMP, "features_as_of"),
        (orjson.dumps(record(model=3)), WRONG_TYPE, "model"),
        (orjson.dumps(record(model="")), WRONG_TYPE, "model"),
        (orjson.dumps(record(model_version=17)), WRONG_TYPE, "model_version"),
        (orjson.dumps(record(request_id=None)), WRONG_TYPE, "request_id"),
        (orjson.dumps(record(features=[1.0])), WRONG_TYPE, "features"),
        (orjson.dumps(record(prediction=None)), WRONG_TYPE, "prediction"),
        (orjson.dumps(record(prediction=[0.1, 0.9])), WRONG_TYPE, "prediction"),
        (orjson.dumps(record(prediction={})), WRONG_TYPE, "label"),
        (orjson.dumps(record(prediction={"label": None, "score": None})), WRONG_TYPE, "score"),
        (orjson.dumps(record(prediction={"label": [1], "score": 0.3})), WRONG_TYPE, "label"),
        (orjson.dumps(record(prediction={"label": "a", "score": "x"})), WRONG_TYPE, "score"),
        (orjson.dumps(record(latency_ms="fast")), WRONG_TYPE, "latency_ms"),
        (orjson.dumps(record(latency_ms=-1)), WRONG_TYPE, "latency_ms"),
        (orjson.dumps(record(fallback="no")), WRONG_TYPE, "fallback"),
        (orjson.dumps(record(error=1)), WRONG_TYPE, "error"),
        (orjson.dumps(record(segment={"ch": 1})), WRONG_TYPE, "segment"),
        (orjson.dumps(record(segment="web")), WRONG_TYPE, "segment"),
    ],
)
def test_reject_reason_codes(raw: bytes | None, reason: str, detail: str) -> None:
    # a good record on each side: the bad one must not take its neighbours with it
    good = orjson.dumps(record())
    result = decode_predictions([good, raw, good])
    assert [(r.position, r.reason) for r in result.rejects] == [(1, reason)]
    assert detail in result.rejects[0].detail
    assert result.batches["fraud", "17"].indices.tolist() == [0, 2]


def test_oversized() -> None:
    raw = orjson.dumps(record(features={f"f{i}": i for i in range(200)}))
    result = decode_predictions([raw], max_message_bytes=1000)
    assert [(r.position, r.reason) for r in result.rejects] == [(0, OVERSIZED)]
    assert str(len(raw)) in result.rejects[0].detail


@pytest.mark.parametrize("known", [{"fraud"}, frozenset({"fraud"}), lambda m: m == "fraud"])
def test_unknown_model_hook(known: Any) -> None:
    recs = [record(), record(model="eta"), record(model="eta"), record()]
    result = decode_predictions(enc(*recs), known_models=known)
    assert [(r.position, r.reason) for r in result.rejects] == [
        (1, UNKNOWN_MODEL),
        (2, UNKNOWN_MODEL),
    ]
    assert result.batches["fraud", "17"].indices.tolist() == [0, 3]


def test_a_group_with_only_bad_optionals_disappears() -> None:
    result = decode_predictions(enc(record(model="eta", fallback=1), record()))
    assert set(result.batches) == {("fraud", "17")}
    assert [(r.position, r.reason) for r in result.rejects] == [(0, WRONG_TYPE)]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T10:00:03.250Z", T0),
        ("2024-05-01T12:00:03.250+02:00", T0),
        (1714557603.25, T0),
        (1714557603, 1714557603.0),
        (1714557603250, T0),
        (4102444799, 4102444799.0),  # the last second before 2100
        (1e12, 1e9),  # the boundary is milliseconds
        (1000000000001, 1000000000.001),
        (0, 0.0),
    ],
)
def test_parse_timestamp(value: object, expected: float) -> None:
    assert math.isclose(parse_timestamp(value), expected, rel_tol=0, abs_tol=1e-6)


@pytest.mark.parametrize(
    "value",
    ["", "soon", "2024-05-01", -1, 2e14, 1e11, 4102444800, None, True, [1]],
)
def test_parse_timestamp_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(value)


def test_decoder_and_parse_timestamp_agree_on_epochs() -> None:
    values = [0, 1, 4102444799, 1e12, 1e12 + 1, 1714557603250, 1714557603.5]
    b = decode_predictions(enc(*(record(timestamp=v) for v in values))).batches["fraud", "17"]
    assert b.timestamps.tolist() == [parse_timestamp(v) for v in values]


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    [
        "model",
        "model_version",
        "request_id",
        "timestamp",
        "features",
        "prediction",
        "latency_ms",
        "fallback",
        "error",
        "segment",
        "features_as_of",
        "other",
    ]
)
envelopes = st.dictionaries(field_names, json_values, max_size=12)


def _check_accounting(values: list[bytes], result: Any) -> None:
    positions = [r.position for r in result.rejects]
    for b in result.batches.values():
        positions.extend(b.indices.tolist())
        assert len(b.timestamps) == b.n == len(b.prediction_label) == len(b.latency_ms)
        assert all(len(col) == b.n for col in b.features.values())
    assert sorted(positions) == list(range(len(values)))
    assert all(r.reason in REASON_CODES for r in result.rejects)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=8))
def test_arbitrary_bytes_never_raise(values: list[bytes]) -> None:
    result = decode_predictions(values, max_message_bytes=150)
    _check_accounting(values, result)


@settings(max_examples=300, deadline=None)
@given(st.lists(envelopes, max_size=6), st.booleans())
def test_arbitrary_json_objects_never_raise(docs: list[dict[str, Any]], base: bool) -> None:
    # start from a valid record half the time so many cases get past the first checks
    values = [orjson.dumps({**record(), **d} if base else d) for d in docs]
    result = decode_predictions(values)
    _check_accounting(values, result)
    # the decoder is at most as strict as the contract: schema-valid records are accepted
    # (but for the event-time range, which the schema does not state)
    rejected = {r.position for r in result.rejects}
    for i, doc in enumerate(docs):
        full = {**record(), **doc} if base else doc
        try:
            validate("prediction_log", full)
        except SchemaError:
            continue
        if _out_of_range(full.get("timestamp")) or _out_of_range(full.get("features_as_of")):
            continue
        assert i not in rejected, (full, result.rejects)


_LOW = datetime(1970, 1, 1, tzinfo=UTC).timestamp()
_HIGH = datetime(2100, 1, 1, tzinfo=UTC).timestamp()


def _out_of_range(value: object) -> bool:
    """A timestamp outside 1970-2099 (or an epoch number between seconds and ms)."""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, int | float):
        return not (_LOW <= value < _HIGH or 1e12 <= value < _HIGH * 1000)
    try:
        return not (_LOW <= datetime.fromisoformat(str(value)).timestamp() < _HIGH)
    except ValueError:
        return False


def test_batch_feeds_the_core_model_profile() -> None:
    from streamproc.core.kinds import FeatureKind
    from streamproc.core.model_profile import ModelProfile

    recs = [
        record(features={"car_value": 10.0, "country": "DE"}, latency_ms=5.0),
        record(features={"car_value": None, "country": "FR"}, prediction={"label": "fraud"}),
        record(features={"car_value": {"bad": 1}, "country": "DE"}),
    ]
    batch = decode_predictions(enc(*recs)).batches["fraud", "17"]
    kinds = {"car_value": FeatureKind.NUMERIC, "country": FeatureKind.CATEGORICAL}
    profile = ModelProfile.new("fraud", "17", kinds)
    profile.update_columns(**batch.profile_columns())
    assert profile.row_count == 3
    car = profile.features["car_value"]
    assert (car.count, car.null_count, car.invalid_count, car.nonfinite_count) == (3, 1, 1, 0)
    assert profile.latency_ms is not None
    assert (profile.latency_ms.null_count, profile.latency_ms.nonfinite_count) == (2, 0)
    assert profile.prediction is not None and profile.prediction.null_count == 1
    assert profile.predicted_label is not None and profile.predicted_label.null_count == 0


def test_typed_columns_profile_exactly_like_raw_lists() -> None:
    from streamproc.contracts.prediction import typed_columns
    from streamproc.core.kinds import FeatureKind
    from streamproc.core.model_profile import ModelProfile

    rows = [
        {"num": 1.5, "int_cat": 10, "cat": "DE", "flag": True, "mixed": 1.0},
        {"num": None, "int_cat": 11, "cat": None, "flag": False, "mixed": "x"},
        {"num": 3, "int_cat": None, "cat": "FR", "flag": True, "mixed": None},
        {"num": 2.25, "int_cat": 10, "cat": "DE", "flag": False, "mixed": [1]},
    ]
    batch = decode_predictions(enc(*(record(features=f) for f in rows))).batches["fraud", "17"]
    kinds = {
        "num": FeatureKind.NUMERIC,
        "int_cat": FeatureKind.CATEGORICAL,
        "cat": FeatureKind.CATEGORICAL,
        "flag": FeatureKind.BOOLEAN,
        "mixed": FeatureKind.NUMERIC,
    }
    typed = typed_columns(batch.features)
    assert isinstance(typed["num"], np.ma.MaskedArray) and isinstance(typed["mixed"], list)
    a = ModelProfile.new("fraud", "17", kinds, metadata={"created_at": 0})
    b = ModelProfile.new("fraud", "17", kinds, metadata={"created_at": 0})
    a.update_columns(typed)
    b.update_columns(batch.features)
    for name in kinds:
        fa, fb = a.features[name], b.features[name]
        assert (fa.count, fa.null_count, fa.invalid_count, fa.nonfinite_count) == (
            fb.count,
            fb.null_count,
            fb.invalid_count,
            fb.nonfinite_count,
        ), name
        assert fa.top_categories(10) == fb.top_categories(10), name
    assert a == b
