"""Field mappings: foreign record shapes → the envelope, then the ordinary decoders."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.config import ConfigError, MonitorConfig, config_from_mapping
from streamproc.contracts.batch import DecodeResult
from streamproc.contracts.limits import DecodeLimits
from streamproc.contracts.mapped_decode import map_records, timestamps_ms
from streamproc.contracts.mapping import MISSING, Meta, parse_pointer
from streamproc.contracts.mapping_config import compile_mapping, is_identity
from streamproc.contracts.prediction import decode_predictions

T0_MS = 1_714_557_603_250  # 2024-05-01T10:00:03.250Z

FLAT = {
    "model": "fraud",
    "model_version": "3",
    "request_id": "$key",
    "timestamp": "$timestamp",
    "features": ["amount", "country", "/user/age"],
    "prediction": {"score": "/score"},
}


def decode(mapping: dict[str, Any], values: list[Any], **meta: Any) -> DecodeResult:
    mapped = map_records(compile_mapping(mapping), values, **meta)
    return mapped.restore(decode_predictions(mapped.values))


def test_flat_record_with_constant_model_key_and_kafka_timestamp() -> None:
    values = [
        orjson.dumps({"amount": 12.5, "country": "DE", "user": {"age": 31}, "score": 0.7}),
        orjson.dumps({"amount": 3, "country": "FR", "score": 0.1, "debug": "x"}),
    ]
    result = decode(FLAT, values, keys=[b"r-1", "r-2"], timestamps_ms=[T0_MS, T0_MS + 1000])
    assert result.rejects == []
    b = result.batches["fraud", "3"]
    assert b.indices.tolist() == [0, 1]
    np.testing.assert_array_equal(b.timestamps, [T0_MS / 1000, T0_MS / 1000 + 1])
    assert b.features == {"amount": [12.5, 3], "country": ["DE", "FR"], "user.age": [31, None]}
    assert b.missing == {"amount": 0, "country": 0, "user.age": 1}
    np.testing.assert_array_equal(b.prediction_score, [0.7, 0.1])
    assert b.prediction_label == [None, None]


def test_identity_is_the_default_and_maps_the_envelope_to_itself() -> None:
    assert MonitorConfig().mapping.record_mapping() is None
    assert is_identity({}) and is_identity({"model": "/model"})
    assert not is_identity({"model": "fraud"})
    rec = {
        "model": "fraud",
        "model_version": "17",
        "request_id": "a",
        "timestamp": "2024-05-01T10:00:03.250Z",
        "features": {"x": 1.5, "c": "DE"},
        "prediction": {"label": "legit", "score": 0.07},
        "latency_ms": 12.4,
        "segment": {"channel": "web"},
    }
    assert compile_mapping({}).apply(rec, Meta()) == rec


def test_all_fields_except_and_pointers_into_nested_objects() -> None:
    mapping = {
        "model": "/meta/model/name",
        "model_version": "/meta/model/version",
        "request_id": "/id",
        "timestamp": "/ts_ms",
        "features": "*",
        "features_except": ["trace"],
        "prediction": {"label": "/decision", "score": "/p"},
        "latency_ms": "$header:latency",
    }
    rec = {
        "meta": {"model": {"name": "risk", "version": "v2"}},
        "id": "abc",
        "ts_ms": T0_MS,
        "amount": 5.0,
        "plan": "pro",
        "trace": "t-1",
        "decision": "deny",
        "p": 0.9,
    }
    env = compile_mapping(mapping).apply(rec, Meta(headers={"latency": b"12.5"}))
    assert env == {
        "model": "risk",
        "model_version": "v2",
        "request_id": "abc",
        "timestamp": T0_MS,
        "latency_ms": 12.5,
        "features": {"amount": 5.0, "plan": "pro"},
        "prediction": {"label": "deny", "score": 0.9},
    }


def test_json_pointer_escapes_and_array_indices() -> None:
    doc = {"a/b": {"c~d": [10, 20, {"e": "x"}]}, "": 1}
    assert parse_pointer("/a~1b/c~0d/1").get(doc) == 20
    assert parse_pointer("/a~1b/c~0d/2/e").get(doc) == "x"
    assert parse_pointer("/").get(doc) == 1
    assert parse_pointer("").get(doc) is doc
    for missing in ("/a~1b/c~0d/3", "/a~1b/c~0d/01", "/a~1b/c~0d/-", "/x", "/a~1b/c~0d/1/y"):
        assert parse_pointer(missing).get(doc) is MISSING
    with pytest.raises(ValueError, match="escape"):
        parse_pointer("/a~2")


def test_multiclass_top_class_its_score_and_per_class_features() -> None:
    mapping = {
        **FLAT,
        "features": ["x"],
        "prediction": {"probabilities": "/probs", "class_score_prefix": "p_"},
    }
    probs = [{"a": 0.2, "b": 0.5, "c": 0.3}, {"a": 0.4, "b": 0.2, "c": 0.4}]
    values = [orjson.dumps({"x": i, "probs": p}) for i, p in enumerate(probs)]
    result = decode(mapping, values, keys=[b"1", b"2"], timestamps_ms=[T0_MS] * 2)
    b = result.batches["fraud", "3"]
    assert b.prediction_label == ["b", "a"]  # ties: the first of the maxima
    np.testing.assert_array_equal(b.prediction_score, [0.5, 0.4])
    assert b.features == {"x": [0, 1], "p_a": [0.2, 0.4], "p_b": [0.5, 0.2], "p_c": [0.3, 0.4]}
    arrays = {**mapping, "prediction": {"probabilities": "/probs", "classes": ["no", "yes"]}}
    result = decode(
        arrays, [orjson.dumps({"x": 1, "probs": [0.3, 0.7]})], keys=[b"k"], timestamps_ms=[T0_MS]
    )
    assert result.batches["fraud", "3"].prediction_label == ["yes"]


def test_every_bad_record_is_rejected_once_with_a_reason() -> None:
    mapping = {
        **FLAT,
        "model": "$header:model",
        "prediction": {"probabilities": "/probs"},
    }
    good = {"amount": 1.0, "country": "DE", "probs": {"a": 0.9, "b": 0.1}}
    cases: list[tuple[bytes | None, bytes | None, int | None, Any, str]] = [
        (orjson.dumps(good), b"k", T0_MS, [("model", b"m")], ""),
        (None, b"k", T0_MS, [("model", b"m")], "malformed_json"),
        (b"{nope", b"k", T0_MS, [("model", b"m")], "malformed_json"),
        (b"[1]", b"k", T0_MS, [("model", b"m")], "not_an_object"),
        (b'{"probs": {"a": 1, "a": 2}}', b"k", T0_MS, [("model", b"m")], "duplicate_key"),
        (orjson.dumps({**good, "pad": "x" * 600}), b"k", T0_MS, [("model", b"m")], "oversized"),
        (orjson.dumps(good), None, T0_MS, [("model", b"m")], "missing_field"),
        (orjson.dumps(good), b"k", None, [("model", b"m")], "missing_field"),
        (orjson.dumps(good), b"k", T0_MS, None, "missing_field"),
        (orjson.dumps(good), b"k", T0_MS, [("model", b"\xff")], "wrong_type"),
        (orjson.dumps({**good, "probs": {}}), b"k", T0_MS, [("model", b"m")], "wrong_type"),
        (orjson.dumps({**good, "probs": {"a": "x"}}), b"k", T0_MS, [("model", b"m")], "wrong_type"),
        (orjson.dumps({"amount": 1}), b"k", T0_MS, [("model", b"m")], "missing_field"),
        (orjson.dumps(good), b"k", -5, [("model", b"m")], "bad_timestamp"),
        (orjson.dumps(good), b"k", T0_MS, [("model", b"")], "wrong_type"),
        (orjson.dumps(good), b"k", T0_MS, [("model", b"n"), ("model", b"m")], ""),
    ]
    values, keys, times, headers, reasons = map(list, zip(*cases, strict=True))
    mapped = map_records(
        compile_mapping(mapping),
        values,
        keys=keys,
        timestamps_ms=times,
        headers=headers,
        limits=DecodeLimits(max_message_bytes=500),
    )
    result = mapped.restore(decode_predictions(mapped.values))
    got = {r.position: r.reason for r in result.rejects}
    assert len(got) == len(result.rejects)
    rows = [int(i) for b in result.batches.values() for i in b.indices]
    assert sorted(rows) == [i for i, reason in enumerate(reasons) if not reason]
    assert got == {i: reason for i, reason in enumerate(reasons) if reason}
    assert result.batches["m", "3"].prediction_label == ["a", "a"]


def test_a_score_or_a_label_alone_is_enough_but_not_neither() -> None:
    mapping = {**FLAT, "prediction": {"score": "/s", "label": "/l"}}
    values = [orjson.dumps(r) for r in ({"s": 0.4}, {"l": "yes"}, {"s": 0.1, "l": "no"}, {})]
    result = decode(mapping, values, keys=[b"k"] * 4, timestamps_ms=[T0_MS] * 4)
    b = result.batches["fraud", "3"]
    assert b.prediction_label == [None, "yes", "no"]
    np.testing.assert_array_equal(b.prediction_score, [0.4, np.nan, 0.1])
    assert [(r.position, r.reason) for r in result.rejects] == [(3, "missing_field")]


@pytest.mark.parametrize(
    ("table", "mentions"),
    [
        ({"modle": "x"}, "unknown key"),
        ({"model": "$offset"}, "unknown source"),
        ({"model": [1]}, "model"),
        ({"prediction": {"probabilities": "/p", "score": "/s"}}, "not both"),
        ({"prediction": {}}, "score, label"),
        ({"prediction": {"score": "/s", "classes": ["a"]}}, "probabilities"),
        ({"features_except": ["id"]}, 'features = "*"'),
        ({"features": ["a", "a"]}, "two sources"),
        ({"timestamp": "/ts~9"}, "escape"),
    ],
)
def test_unusable_mappings_are_config_errors(table: dict[str, Any], mentions: str) -> None:
    with pytest.raises(ConfigError, match="mapping") as info:
        config_from_mapping({"mapping": table})
    assert mentions in str(info.value)


def test_config_section_compiles_the_mapping() -> None:
    config = config_from_mapping({"mapping": {"model": "fraud", "request_id": "$key"}})
    compiled = config.mapping.record_mapping()
    assert compiled is not None and compiled.uses_key and not compiled.uses_timestamp
    assert dict(compiled.fields)["model_version"] == parse_pointer("/model_version")


def test_kafka_timestamps_without_a_time_are_none() -> None:
    assert timestamps_ms([(1, T0_MS), (0, -1), (2, 5)]) == [T0_MS, None, 5]


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False)
    | st.integers(-(2**63), 2**63 - 1)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    records=st.lists(
        st.one_of(
            _json,
            st.fixed_dictionaries(
                {"amount": _json, "score": _json, "probs": _json},
                optional={"country": _json, "user": _json},
            ),
        ),
        max_size=8,
    ),
    keys=st.lists(st.none() | st.binary(max_size=4), min_size=8, max_size=8),
    times=st.lists(st.none() | st.integers(-(2**40), 2**45), min_size=8, max_size=8),
    multiclass=st.booleans(),
)
def test_any_json_and_metadata_is_accounted_once_and_never_raises(
    records: list[Any], keys: list[bytes | None], times: list[int | None], multiclass: bool
) -> None:
    pred = (
        {"probabilities": "/probs", "class_score_prefix": "p"} if multiclass else FLAT["prediction"]
    )
    mapping = compile_mapping({**FLAT, "features": "*", "prediction": pred})
    values = [orjson.dumps(r) for r in records]
    n = len(values)
    mapped = map_records(mapping, values, keys=keys[:n], timestamps_ms=times[:n])
    result = mapped.restore(decode_predictions(mapped.values))
    rows = [int(i) for b in result.batches.values() for i in b.indices]
    positions = rows + [r.position for r in result.rejects]
    assert sorted(positions) == list(range(n))
