"""Bad input never wins, on both decoders: duplicate keys, too many features, future and
out-of-range timestamps, long category values.

Expected values come from ``datetime``, ``hashlib`` and ``json``, or are literals."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.contracts import load_schema
from streamproc.contracts.batch import DecodeResult
from streamproc.contracts.fast_decode import FastPathDeclined, fast_decode
from streamproc.contracts.limits import DecodeLimits
from streamproc.contracts.prediction import (
    BAD_TIMESTAMP,
    DUPLICATE_KEY,
    FUTURE_TIMESTAMP,
    REASON_CODES,
    TOO_MANY_FEATURES,
    decode_predictions,
)

NOW = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)  # 1714557600000
KINDS = {"x": "numeric", "y": "numeric", "c": "categorical"}


def kinds_for(model: str, version: str) -> dict[str, Any] | None:
    return KINDS if model == "m" else None


def record(i: int = 0, **overrides: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "model": "m",
        "model_version": "1",
        "request_id": f"r{i}",
        "timestamp": "2024-05-01T09:59:00Z",
        "features": {"x": 1.5, "y": 2, "c": "ab"},
        "prediction": {"label": "yes", "score": 0.5},
    }
    rec.update(overrides)
    return rec


def enc(*records: dict[str, Any]) -> list[bytes]:
    return [orjson.dumps(r) for r in records]


def reasons(result: DecodeResult) -> list[tuple[int, str]]:
    return [(r.position, r.reason) for r in result.rejects]


def declined(values: list[bytes], **kwargs: Any) -> str | None:
    out = fast_decode(values, kinds_for=kinds_for, **kwargs)
    return out.reason if isinstance(out, FastPathDeclined) else None


def test_new_reason_codes_are_in_both_schema_copies() -> None:
    for code in (FUTURE_TIMESTAMP, DUPLICATE_KEY, TOO_MANY_FEATURES):
        assert code in REASON_CODES
        assert code in load_schema("deadletter")["properties"]["streamproc.reason"]["enum"]


# ---------------------------------------------------------------- duplicate keys

GOOD = (
    '"model":"m","model_version":"1","request_id":"r","timestamp":"2024-05-01T09:59:00Z",'
    '"features":{"x":1.5,"y":2,"c":"ab"},"prediction":{"label":"yes","score":0.5}'
)

DUPLICATES = [
    ('{"model":"m",' + GOOD + "}", "model"),  # top level
    ("{" + GOOD.replace('"x":1.5', '"x":1.5,"x":2') + "}", "x"),  # features
    ("{" + GOOD.replace('"label":"yes"', '"label":"yes","label":"no"') + "}", "label"),
    ("{" + GOOD + ',"segment":{"s":"a","s":"b"}}', "s"),
    ("{" + GOOD + ',"meta":{"a":{"k":1,"k":2}}}', "k"),  # deeper, in an extra field
    ("{" + GOOD.replace('"x":1.5', '"x":{"k":1,"k":[]}') + "}", "k"),  # in a feature value
    ("{" + GOOD.replace('"x":1.5', '"x":1.5,"\\u0078":2') + "}", "x"),  # same key escaped
    ("{" + GOOD.replace('"x":1.5', '"x" :1.5, "x"\n:\t2') + "}", "x"),  # spaced colons
    ("{" + GOOD.replace('"r"', '"a\\"b:c"').replace('"y":2', '"y":2,"y":3') + "}", "y"),
    ("{" + GOOD.replace('"timestamp"', '"request_id":"s","timestamp"') + "}", "request_id"),
    ("{" + GOOD.replace('"ab"', '"a:b:c"').replace('"y":2', '"y":2,"y":3') + "}", "y"),
    # a broken envelope as well: the duplicate is the reason
    ('{"features":1,' + GOOD.replace('"request_id":"r",', "") + "}", "features"),
]


@pytest.mark.parametrize(("text", "key"), DUPLICATES)
def test_duplicate_keys_are_rejected(text: str, key: str) -> None:
    raw = text.encode()
    with pytest.raises(ValueError, match="dup"):  # the duplicate, seen by json itself
        json.loads(raw, object_pairs_hook=_no_duplicates)
    good = ("{" + GOOD + "}").encode()
    result = decode_predictions([good, raw, good])
    assert reasons(result) == [(1, DUPLICATE_KEY)]
    assert repr(key) in result.rejects[0].detail
    assert result.batches["m", "1"].indices.tolist() == [0, 2]


@pytest.mark.parametrize(("text", "key"), DUPLICATES)
def test_fast_path_declines_duplicate_keys(text: str, key: str) -> None:
    good = ("{" + GOOD + "}").encode()
    assert declined([good, text.encode()]) is not None
    assert declined([text.encode(), good]) is not None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("dup")
    return dict(pairs)


NOT_DUPLICATES = [
    "{" + GOOD.replace('"ab"', '"a:b\\":\\"c\\":"') + "}",  # '":' inside a string value
    "{" + GOOD.replace('"r"', '"\\":\\":\\":"') + "}",
    "{" + GOOD.replace('"x":1.5', '"a:b":1,"x":1.5') + "}",  # a key with colons
    "{" + GOOD + ',"meta":{"a":{"k":1},"b":[{"k":1},{"k":2}],"model":"z"}}',  # other objects
    "{" + GOOD.replace('"x":1.5', '"x":1.5,"model":1') + "}",  # a feature named like a field
    "{" + GOOD.replace('"x":1.5', '"x":1.5,"X":2') + "}",  # keys are case-sensitive
    "{" + GOOD.replace('"x":1.5', '"x":1.5,"\\u0079y":2') + "}",  # "yy", not "y"
    "{" + GOOD.replace('":', '" : ') + "}",
    "{" + GOOD + ',"segment":{"s":"a:b","t":"c"},"error":"at 10:00:03: boom"}',
]


@pytest.mark.parametrize("text", NOT_DUPLICATES)
def test_colons_and_equal_keys_in_other_objects_are_no_duplicates(text: str) -> None:
    json.loads(text, object_pairs_hook=_no_duplicates)  # valid, no duplicate
    result = decode_predictions([text.encode()])
    assert result.rejects == []
    assert result.n_accepted == 1


def test_fast_path_takes_a_batch_without_duplicates() -> None:
    values = enc(record(0), record(1))
    out = fast_decode(values, kinds_for=kinds_for)
    assert isinstance(out, DecodeResult)
    assert out.n_accepted == 2


# A generator of JSON texts that may repeat keys, with the expectation computed on the
# generator's own pairs (not by parsing).
_keys = st.sampled_from(["a", "b", "a:", '"', "\\", ":", "é", "model"])
_strings = st.text(alphabet=st.sampled_from('ab:"\\é {},'), max_size=6)
_leaf = st.one_of(st.integers(-3, 3), _strings, st.booleans(), st.none())


def _pairs_tree(depth: int) -> st.SearchStrategy[Any]:
    if depth == 0:
        return _leaf
    inner = _pairs_tree(depth - 1)
    return st.one_of(
        _leaf,
        st.lists(st.tuples(_keys, inner), max_size=4).map(_Obj),
        st.lists(inner, max_size=3),
    )


class _Obj(list[tuple[str, Any]]):
    """A JSON object as its list of pairs (keys may repeat)."""


def _text(node: Any, space: str) -> str:
    if isinstance(node, _Obj):
        body = ",".join(f"{json.dumps(k)}{space}:{space}{_text(v, space)}" for k, v in node)
        return "{" + body + "}"
    if isinstance(node, list):
        return "[" + ",".join(_text(v, space) for v in node) + "]"
    return json.dumps(node, ensure_ascii=False)


def _has_duplicate(node: Any) -> bool:
    if isinstance(node, _Obj):
        keys = [k for k, _ in node]
        return len(set(keys)) < len(keys) or any(_has_duplicate(v) for _, v in node)
    if isinstance(node, list):
        return any(_has_duplicate(v) for v in node)
    return False


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(_keys, _pairs_tree(2)), max_size=4).map(_Obj),
    st.lists(st.tuples(_keys, _pairs_tree(1)), max_size=3).map(_Obj),
    st.sampled_from(["", " ", "\n"]),
    st.sampled_from(["2024-05-01T09:59:00Z", 1714557540, "2024-05-01T11:59:00+02:00"]),
)
def test_duplicate_detection_is_exact(extra: _Obj, features: _Obj, space: str, ts: Any) -> None:
    top = _Obj(
        [
            ("model", "m"),
            ("model_version", "1"),
            ("request_id", "r:1"),
            ("timestamp", ts),
            ("features", features),
            ("prediction", 0.5),
            ("other", extra),
        ]
    )
    raw = _text(top, space).encode()
    result = decode_predictions([raw])
    if _has_duplicate(top):
        assert reasons(result) == [(0, DUPLICATE_KEY)]
        assert declined([raw]) is not None
    else:
        assert result.rejects == []


# ------------------------------------------------------------ too many features


def test_too_many_features_on_both_paths() -> None:
    feats4 = {"x": 1.0, "y": 2.0, "c": "a", "z": 1}
    result = decode_predictions(
        enc(record(0), record(1, features=feats4)), limits=DecodeLimits(max_features=3)
    )
    assert reasons(result) == [(1, TOO_MANY_FEATURES)]
    assert result.rejects[0].detail == "4 features > limit 3"
    values = enc(record(0), record(1))  # three features each
    assert declined(values, limits=DecodeLimits(max_features=2)) == "needs_validation"
    taken = fast_decode(values, kinds_for=kinds_for, limits=DecodeLimits(max_features=3))
    assert isinstance(taken, DecodeResult) and taken.n_accepted == 2


def test_default_feature_limit_is_1000() -> None:
    many = {f"f{i}": i for i in range(1001)}
    fewer = {f"f{i}": i for i in range(1000)}
    result = decode_predictions(enc(record(0, features=fewer), record(1, features=many)))
    assert reasons(result) == [(1, TOO_MANY_FEATURES)]


# ------------------------------------------------------------------- timestamps

OUT_OF_RANGE = ["1900-01-01T00:00:00Z", "9999-12-31T23:59:59Z", 253402300799, 7258118400000]


@pytest.mark.parametrize("ts", OUT_OF_RANGE)
def test_out_of_range_timestamps_on_both_paths(ts: Any) -> None:
    result = decode_predictions(enc(record(0), record(1, timestamp=ts)))
    assert reasons(result) == [(1, BAD_TIMESTAMP)]
    assert declined(enc(record(0, timestamp=ts), record(1, timestamp=ts))) == "bad_timestamp"


@pytest.mark.parametrize("asof", OUT_OF_RANGE)
def test_out_of_range_features_as_of_rejects_the_record(asof: Any) -> None:
    result = decode_predictions(enc(record(0), record(1, features_as_of=asof)))
    assert reasons(result) == [(1, BAD_TIMESTAMP)]
    assert "features_as_of" in result.rejects[0].detail
    if not isinstance(asof, str):  # string features_as_of: the fast path never takes it
        values = enc(record(0, features_as_of=1714557540), record(1, features_as_of=asof))
        assert declined(values) == "bad_timestamp"


@pytest.mark.parametrize(
    ("ts", "future"),
    [
        ("2024-05-01T10:00:00Z", False),  # exactly max_event_ms: allowed
        ("2024-05-01T10:00:00.001Z", True),
        ("2024-05-01T12:00:00.001+02:00", True),
        (NOW_MS, False),
        (NOW_MS + 1, True),
        (NOW.timestamp(), False),
        (NOW.timestamp() + 0.001, True),
        ("2099-12-31T23:59:59Z", True),
    ],
)
def test_future_timestamps_on_both_paths(ts: Any, future: bool) -> None:
    values = enc(record(0), record(1, timestamp=ts))
    result = decode_predictions(values, max_event_ms=NOW_MS)
    assert reasons(result) == ([(1, FUTURE_TIMESTAMP)] if future else [])
    if future:
        assert "timestamp" in result.rejects[0].detail
    assert decode_predictions(values).rejects == []  # no bound without max_event_ms
    same_form = enc(record(0, timestamp=ts), record(1, timestamp=ts))
    fast = fast_decode(same_form, kinds_for=kinds_for, max_event_ms=NOW_MS)
    if future:
        assert fast == FastPathDeclined("bad_timestamp")
    else:
        assert isinstance(fast, DecodeResult) and fast.n_accepted == 2


@pytest.mark.parametrize(
    ("asof", "future"),
    [(NOW_MS, False), (NOW_MS + 1, True), ("2024-05-01T10:00:01Z", True), (1714557540, False)],
)
def test_future_features_as_of_is_invalid_for_that_field_only(asof: Any, future: bool) -> None:
    values = enc(record(0), record(1, features_as_of=asof))
    result = decode_predictions(values, max_event_ms=NOW_MS)
    assert reasons(result) == []  # the record is counted ...
    assert result.future_features_as_of == (1 if future else 0)  # ... the field is not
    (batch,) = result.batches.values()
    assert bool(np.isnan(batch.features_as_of[1])) is future
    if not isinstance(asof, str):
        both = enc(record(0, features_as_of=1714557540), record(1, features_as_of=asof))
        fast = fast_decode(both, kinds_for=kinds_for, max_event_ms=NOW_MS)
        assert (fast == FastPathDeclined("bad_timestamp")) is future


# ------------------------------------------------------------------ long values


def _token(value: str) -> str:
    """The last 16 hex digits of the capped form, from hashlib."""
    return "…#" + hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]


@pytest.mark.parametrize(
    ("value", "expected_head"),
    [
        ("a" * 300, "a" * 236),  # 256 - len("…#") (4 bytes) - 16 hex digits = 236 bytes
        ("é" * 200, "é" * 118),  # 2-byte characters: 236 bytes exactly
        ("€" * 100, "€" * 78),  # 3-byte characters: 234 bytes, cut on a boundary
        ("a" + "😀" * 70, "a" + "😀" * 58),  # 1 + 4*58 = 233 bytes
    ],
)
def test_long_feature_values_are_capped(value: str, expected_head: str) -> None:
    result = decode_predictions(enc(record(0, features={"c": value, "x": 1.0})))
    capped = result.batches["m", "1"].features["c"][0]
    assert capped == expected_head + _token(value)
    assert len(capped.encode("utf-8")) <= 256
    assert result.truncated_values == 1


def test_values_within_the_limit_are_kept() -> None:
    at_limit = "é" * 128  # 256 bytes
    result = decode_predictions(enc(record(0, features={"c": at_limit, "d": "a" * 64})))
    assert result.batches["m", "1"].features["c"] == [at_limit]
    assert result.truncated_values == 0
    over = "é" * 128 + "a"  # 257 bytes
    result = decode_predictions(enc(record(0, features={"c": over})))
    assert result.batches["m", "1"].features["c"] == ["é" * 118 + _token(over)]


def test_capping_keeps_long_values_distinct_and_is_idempotent() -> None:
    a, b = "p" * 300 + "a", "p" * 300 + "b"
    result = decode_predictions(enc(record(0, features={"c": a}), record(1, features={"c": b})))
    capped = result.batches["m", "1"].features["c"]
    assert capped == ["p" * 236 + _token(a), "p" * 236 + _token(b)]
    assert capped[0] != capped[1]
    again = decode_predictions(enc(record(0, features={"c": capped[0]})))
    assert again.batches["m", "1"].features["c"] == [capped[0]]
    assert again.truncated_values == 0


def test_long_labels_are_capped_and_counted_other_values_are_not() -> None:
    long = "L" * 100
    recs = [
        record(0, prediction={"label": long, "score": 0.1}),
        record(1, prediction=long),
        record(2, features={"c": long, "x": None, "n": 12345678901234567890}),
        record(3, segment={"s": long}, request_id=long),  # not categories: kept
    ]
    limits = DecodeLimits(max_category_bytes=64)
    result = decode_predictions(enc(*recs), limits=limits, keep_request_ids=True)
    b = result.batches["m", "1"]
    cut = "L" * 44 + _token(long)  # 64 - 20
    assert b.prediction_label == [cut, cut, "yes", "yes"]
    assert b.features["c"] == ["ab", "ab", cut, "ab"]
    assert b.segments[3] == {"s": long}
    assert b.request_ids is not None and b.request_ids[3] == long
    assert result.truncated_values == 3


def test_truncations_are_counted_over_all_batches() -> None:
    long = "z" * 40
    recs = [record(0, features={"c": long}), record(1, model="n", features={"c": long, "d": long})]
    result = decode_predictions(enc(*recs), limits=DecodeLimits(max_category_bytes=32))
    assert result.truncated_values == 3


@pytest.mark.parametrize(
    "rec",
    [
        record(1, features={"x": 1.0, "y": 2, "c": "c" * 65}),
        record(1, prediction={"label": "l" * 65, "score": 0.5}),
    ],
)
def test_fast_path_declines_long_values(rec: dict[str, Any]) -> None:
    limits = DecodeLimits(max_category_bytes=64)
    first = record(0, prediction=rec["prediction"])
    assert declined(enc(first, rec), limits=limits) == "long_value"
    assert declined(enc(first, rec)) is None  # within the default 256 bytes
    at_limit = record(1, features={"x": 1.0, "y": 2, "c": "é" * 32})  # 64 bytes
    assert declined(enc(record(0), at_limit), limits=limits) is None


def test_fast_path_declines_a_long_plain_string_prediction() -> None:
    values = enc(record(0, prediction="yes"), record(1, prediction="n" * 40))
    assert declined(values, limits=DecodeLimits(max_category_bytes=32)) == "long_value"


# ---------------------------------------------------------------------- limits


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_category_bytes": 31},
        {"max_features": -1},
        {"max_message_bytes": -1},
        {"max_features": 1.5},
        {"max_features": True},
    ],
)
def test_decode_limits_are_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        DecodeLimits(**kwargs)


def test_limits_defaults() -> None:
    assert DecodeLimits() == DecodeLimits(
        max_message_bytes=1 << 20, max_features=1000, max_category_bytes=256
    )


def test_max_message_bytes_alone_still_works_and_not_with_limits() -> None:
    values = enc(record(0))
    assert decode_predictions(values, max_message_bytes=10).rejects[0].reason == "oversized"
    assert declined(values, max_message_bytes=10) == "needs_validation"
    with pytest.raises(TypeError):
        decode_predictions(values, max_message_bytes=10, limits=DecodeLimits())
    with pytest.raises(TypeError):
        fast_decode(values, kinds_for=kinds_for, max_message_bytes=10, limits=DecodeLimits())
    limited = decode_predictions(values, limits=DecodeLimits(max_message_bytes=10))
    assert limited.rejects[0].reason == "oversized"


def test_bytearray_and_memoryview_values() -> None:
    raw = ("{" + GOOD + "}").encode()
    dup = ('{"model":"m",' + GOOD + "}").encode()
    result = decode_predictions([bytearray(raw), memoryview(raw), memoryview(dup)])
    assert result.n_accepted == 2
    assert reasons(result) == [(2, DUPLICATE_KEY)]
