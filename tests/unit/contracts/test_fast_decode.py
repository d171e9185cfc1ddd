"""The pyarrow fast path either declines (saying why) or gives exactly what the orjson decoder
gives."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamproc.contracts.fast_decode import DECLINE_REASONS, FastPathDeclined, fast_decode
from streamproc.contracts.limits import DecodeLimits
from streamproc.contracts.prediction import DecodeResult, decode_predictions
from streamproc.core.kinds import FeatureKind
from streamproc.core.model_profile import ModelProfile
from streamproc.monitor.metrics import create
from streamproc.monitor.window_buffer import BufferedChunk, WindowBuffer, build_delta

WINDOW_MS = 60_000
T0 = 1_700_000_040.0
KINDS = {
    "x": FeatureKind.NUMERIC,
    "y": FeatureKind.NUMERIC,
    "c": FeatureKind.CATEGORICAL,
    "b": FeatureKind.BOOLEAN,
}


def _reference(model: str) -> ModelProfile:
    rng = np.random.default_rng(0)
    n = 500
    return ModelProfile.build_reference(
        model,
        "1",
        {
            "x": rng.normal(size=n),
            "y": rng.integers(0, 9, size=n).astype(np.float64),
            "c": rng.choice(["a", "b"], size=n).astype(object),
            "b": rng.random(n) < 0.5,
        },
        predictions=rng.random(n),
        predicted_labels=rng.choice(["yes", "no"], size=n).astype(object),
    )


REFS = {"m": _reference("m"), "n": _reference("n")}


def kinds_for(model: str, version: str) -> dict[str, Any] | None:
    ref = REFS.get(model)
    return None if ref is None else {k: p.kind for k, p in ref.features.items()}


def record(i: int, **overrides: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "model": "m",
        "model_version": "1",
        "request_id": f"r{i}",
        "timestamp": T0 + i,
        "features": {"x": i * 0.5, "y": i % 4, "c": "ab"[i % 2], "b": i % 3 == 0},
        "prediction": {"label": "yes" if i % 3 else "no", "score": (i % 10) / 10},
        "latency_ms": float(i % 7),
    }
    rec.update(overrides)
    return {k: v for k, v in rec.items() if v is not DROP}


DROP = object()


def _deltas(result: DecodeResult) -> dict[Any, Any]:
    out = {}
    for key, batch in result.batches.items():
        buf = WindowBuffer(batch.model, batch.model_version, key[2], key[2] + WINDOW_MS)
        append = batch.timestamps + 1.0
        buf.add(BufferedChunk(batch, append, 1.8e9), np.zeros(batch.n, np.int64), batch.indices)
        # a second chunk of the same rows: concatenation of (arrow or list) parts
        buf.add(BufferedChunk(batch, append, 1.8e9), np.zeros(batch.n, np.int64), batch.indices)
        out[key] = build_delta(buf, REFS[batch.model], topic="t", producer_id="p")
    return out


def check(
    values: list[bytes],
    *,
    window_ms: int = WINDOW_MS,
    limits: DecodeLimits | None = None,
    max_event_ms: int | None = None,
) -> bool:
    """Assert equivalence; True when the fast path took the batch."""
    options: dict[str, Any] = {
        "window_ms": window_ms,
        "keep_request_ids": True,
        "limits": limits,
        "max_event_ms": max_event_ms,
    }
    fast = fast_decode(values, kinds_for=kinds_for, **options)
    slow = decode_predictions(values, known_models=set(REFS), **options)
    if isinstance(fast, FastPathDeclined):
        assert fast.reason in DECLINE_REASONS
        return False
    assert fast.rejects == slow.rejects == []
    assert fast.truncated_values == slow.truncated_values == 0
    assert list(fast.batches) == list(slow.batches)
    for key, f in fast.batches.items():
        s = slow.batches[key]
        assert (f.model, f.model_version, f.window_start_ms) == (
            s.model,
            s.model_version,
            s.window_start_ms,
        )
        for name in (
            "indices",
            "timestamps",
            "prediction_score",
            "latency_ms",
            "fallback",
            "error",
            "features_as_of",
        ):
            np.testing.assert_array_equal(getattr(f, name), getattr(s, name), err_msg=name)
            assert getattr(f, name).dtype == getattr(s, name).dtype, name
        assert f.prediction_label == s.prediction_label
        assert f.segments == s.segments
        assert f.request_ids == s.request_ids
        assert f.missing == s.missing and f.missing_rows == s.missing_rows == {}
        assert list(f.features) == list(s.features)
        for name, col in f.features.items():
            assert isinstance(col, pa.Array)
            assert col.to_pylist() == [_as_float(v) for v in s.features[name]]
    fd, sd = _deltas(fast), _deltas(slow)
    assert fd.keys() == sd.keys()
    for key in fd:
        assert fd[key].profile == sd[key].profile
        assert fd[key].ops == sd[key].ops
    return True


def _as_float(v: Any) -> Any:
    """Arrow's view of a JSON value in a float column: ints become floats."""
    return float(v) if type(v) is int else v


def enc(*records: dict[str, Any]) -> list[bytes]:
    return [orjson.dumps(r) for r in records]


# ---------------------------------------------------------------------- taken


@pytest.mark.parametrize(
    "records",
    [
        [record(i) for i in range(20)],
        [record(i, timestamp=int((T0 + i * 30) * 1000)) for i in range(20)],  # ms, 10 windows
        [record(i, timestamp=int(T0) + i) for i in range(5)],
        [record(i, timestamp=f"2024-05-01T10:{i:02d}:03.{i}Z") for i in range(60)],
        [record(i, timestamp=f"1969-12-31T23:59:5{i}.999999-05:30") for i in range(5)],
        [record(i, timestamp="2000-02-29T23:59:59+23:59") for i in range(2)],
        [record(i, prediction=i * 0.1) for i in range(5)],
        [record(i, prediction=f"l{i % 2}") for i in range(5)],
        [record(i, prediction=bool(i % 2)) for i in range(5)],
        [record(i, prediction={"label": "a"}) for i in range(5)],
        [record(i, prediction={"label": True, "score": None}) for i in range(5)],
        [
            record(i, latency_ms=DROP, fallback=bool(i % 2), error="" if i % 2 else "boom")
            for i in range(6)
        ],
        [record(i, error=i % 2 == 0, features_as_of=T0 - i) for i in range(6)],
        [record(i, features_as_of=None if i % 2 else (T0 - i) * 1000) for i in range(6)],
        [record(i, latency_ms=None if i % 2 else 3) for i in range(6)],
        [record(i, features={"x": None, "y": None, "c": None, "b": None}) for i in range(4)],
        [
            record(i, features={"x": None if i % 2 else 1, "y": 2**60 + i, "c": ":x", "b": True})
            for i in range(6)
        ],
        [record(i, features={"y": 1.5, "x": True, "c": False, "b": None}) for i in range(4)],
        [record(i, features={"x": 1.0, "c": 7}) for i in range(4)],  # int categories
        [record(i, features={"x": -0.0, "c": "é"}) for i in range(3)],
        [record(0, features={"x": 1})],
    ],
)
def test_clean_batches_take_the_fast_path(records: list[dict[str, Any]]) -> None:
    assert check(enc(*records))


def test_spaced_json_and_absent_optional_fields_take_the_fast_path() -> None:
    values = [
        b'{"model": "m", "model_version": "1", "request_id": "r", "timestamp": 1700000040,'
        b' "features": {"x": null, "y": 2, "c": "a", "b": false}, "prediction": 0.5,'
        b' "latency_ms": 1.5}',
        b'{"model":"m","model_version":"1","request_id":"s","timestamp":1700000041,'
        b'"features":{"x":1,"y":null,"c":null,"b":null},"prediction":0.5}',
    ]
    assert check(values)


# --------------------------------------------------------------------- declined

R = orjson.dumps(record(0))
R1 = orjson.dumps(record(1))
DECLINED: list[tuple[list[Any], str]] = [
    ([], "empty_batch"),
    ([None], "needs_validation"),
    ([b""], "needs_validation"),
    ([R, b""], "needs_validation"),
    (enc(record(0), record(1, request_id=None)), "needs_validation"),
    (enc(record(0, model="")), "needs_validation"),
    (enc(record(0, request_id=DROP)), "needs_validation"),
    (enc(record(0, fallback=1)), "needs_validation"),
    (enc(record(0, prediction={"score": 0.3})), "needs_validation"),
    (enc(record(0), record(1, latency_ms=-1)), "needs_validation"),
    (enc(record(0), record(1, prediction=None)), "needs_validation"),
    (enc(record(0), record(1, prediction={"score": 0.3})), "needs_validation"),
    (enc(record(0), record(1, prediction={"label": None, "score": 0.3})), "needs_validation"),
    (enc(record(0), record(1, features=None)), "needs_validation"),
    (enc(record(0), record(1, features=DROP)), "needs_validation"),
    ([b"[1]"], "parse_error"),
    ([b"{"], "parse_error"),
    ([b" " + R], "parse_error"),
    ([R, b" " + R1], "parse_error"),
    (
        enc(record(0), record(1, features={"x": 1.0, "y": 1, "c": "a", "b": True, "z": 1})),
        "parse_error",
    ),
    (enc(record(0), record(1, features={"x": "1", "y": 1, "c": "a", "b": True})), "parse_error"),
    (enc(record(0), record(1, features={"x": [1], "y": 1, "c": "a", "b": True})), "parse_error"),
    (
        enc(record(0), record(1, features={"x": {"a": 1}, "y": 1, "c": "a", "b": True})),
        "parse_error",
    ),
    (enc(record(0), record(1, timestamp="2024-05-01T10:00:03Z")), "parse_error"),
    (enc(record(0, timestamp="2024-05-01T10:00:03Z"), record(1, timestamp=T0)), "parse_error"),
    (enc(record(0), record(1, features_as_of=-5)), "parse_error"),  # not in the schema
    (enc(record(0), record(1, prediction={"label": "a", "score": 0.3, "x": 1})), "parse_error"),
    (enc(record(0), record(1, prediction=0.3)), "parse_error"),
    (enc(record(0), record(1, segment={"a": "b"})), "parse_error"),
    (enc(record(0), record(1, extra=1)), "parse_error"),
    (enc(record(0), record(1, c="x")), "parse_error"),
    ([R, b'{"model":"m"'], "parse_error"),
    ([R, R1 + b" " + orjson.dumps(record(2))], "parse_error"),
    ([R, R1.replace(b'"x":0.5', b'"x":1e400')], "parse_error"),
    ([R, R1.replace(b'"r1"', b'"r\xff"')], "parse_error"),
    ([R, R1.replace(b'"x":0.5', b'"x":1,"x":2')], "parse_error"),  # duplicate keys
    ([R, R1.replace(b'{"model":"m"', b'{"model":"m","model":"m"')], "parse_error"),
    ([R, R1.replace(b'"score"', b'"label":"no","score"')], "parse_error"),
    ([R, R1.replace(b'"x":0.5', b'"x":0.5,"\\u0078":2')], "parse_error"),
    ([R1.replace(b'"x":0.5', b'"x":1,"x":2'), R], "parse_error"),
    (enc(record(0, model="zzz")), "unknown_model"),
    (enc(record(0, segment={"a": "b"})), "unsupported_shape"),
    (enc(record(0, extra=1)), "unsupported_shape"),
    (enc(record(0, latency_ms=None)), "unsupported_shape"),
    (enc(record(0, features_as_of="2024-05-01T10:00:03Z")), "unsupported_shape"),
    (enc(record(0, prediction={"label": 1, "score": 0.3})), "unsupported_shape"),
    (enc(record(0, prediction={"label": "a", "x": 1})), "unsupported_shape"),
    (enc(record(0, features={"x": 1, "z": 2})), "unsupported_shape"),  # z: no reference
    (enc(record(0, features={"x": 1, "score": 2})), "unsupported_shape"),
    (enc(record(0, features={"x": [1]})), "unsupported_shape"),
    (enc(record(0), record(1, model="n")), "mixed_models"),
    (enc(record(0), record(1, model_version="2")), "mixed_models"),
    (enc(record(0), record(1, model="")), "mixed_models"),
    (enc(record(0), record(1, timestamp=-1)), "bad_timestamp"),
    (enc(record(0), record(1, timestamp=2e14)), "bad_timestamp"),
    (enc(record(0, timestamp="2023-02-29T10:00:03Z")), "bad_timestamp"),
    (enc(record(0, timestamp="2024-05-01T10:00:03.1234567Z")), "bad_timestamp"),
    (enc(record(0, timestamp="2024-05-01T10:00:03+00:75")), "bad_timestamp"),
    (enc(record(0, timestamp="2024-05-01 10:00:03Z")), "bad_timestamp"),  # valid, not strict
    (enc(record(0, timestamp="2024-05-01T10:00:03")), "bad_timestamp"),
    (enc(record(0, timestamp="0001-01-01T00:00:00Z")), "bad_timestamp"),
    (enc(record(0, timestamp="1969-12-31T23:59:59.999999Z")), "bad_timestamp"),
    (enc(record(0, timestamp="2100-01-01T00:00:00Z")), "bad_timestamp"),
    (enc(record(0), record(1, timestamp=253402300799)), "bad_timestamp"),  # 9999 in s
    (enc(record(0), record(1, timestamp=7258118400000)), "bad_timestamp"),  # 2200 in ms
    (enc(record(0), record(1, timestamp=4102444800)), "bad_timestamp"),
    (enc(record(0, features_as_of=T0), record(1, features_as_of=-5)), "bad_timestamp"),
    (enc(record(0, features_as_of=T0), record(1, features_as_of=1e11)), "bad_timestamp"),
    ([R, R1.replace(b'"x":0.5', b'"x":-0')], "unsupported_literal"),
    ([R, R1.replace(b'"x":0.5', b'"x":NaN')], "unsupported_literal"),
    (
        enc(record(0), record(1, features={"x": 1, "y": 1, "c": 'say "hi"', "b": True})),
        "unsupported_literal",
    ),
    # a missing key compensated by a string value that looks like a key
    (
        [
            orjson.dumps(record(0, features={"x": 1, "y": None, "c": "a", "b": True})),
            orjson.dumps(record(1, features={"x": 1, "c": '"y":', "b": True})),
        ],
        "unsupported_literal",
    ),
    (enc(record(0), record(1, features={"x": 1.0, "y": 1, "c": "a"})), "missing_feature"),
    ([R, R1.replace(b'"x":0.5,', b"")], "missing_feature"),
    (enc(record(0), record(1, features={"x": 1, "y": 1, "c": "é" * 129, "b": True})), "long_value"),
    (enc(record(0), record(1, prediction={"label": "y" * 257, "score": 0.1})), "long_value"),
]


@pytest.mark.parametrize(("values", "reason"), DECLINED)
def test_unusual_batches_are_declined_with_their_reason(values: list[Any], reason: str) -> None:
    declined = fast_decode(values, kinds_for=kinds_for, window_ms=WINDOW_MS)
    assert isinstance(declined, FastPathDeclined)
    assert declined.reason == reason


LIMITED: list[tuple[list[bytes], dict[str, Any], str]] = [
    (enc(record(0), record(1)), {"max_event_ms": int((T0 + 1) * 1000) - 1}, "bad_timestamp"),
    (
        enc(record(0, features_as_of=T0), record(1, features_as_of=(T0 + 5) * 1000)),
        {"max_event_ms": int((T0 + 4) * 1000)},
        "bad_timestamp",
    ),
    (enc(record(0), record(1)), {"limits": DecodeLimits(max_features=3)}, "needs_validation"),
    (
        enc(record(0), record(1, features={"x": 1, "y": 1, "c": "c" * 33, "b": True})),
        {"limits": DecodeLimits(max_category_bytes=32)},
        "long_value",
    ),
]


@pytest.mark.parametrize(("values", "options", "reason"), LIMITED)
def test_limits_decline_what_the_orjson_decoder_rejects_or_alters(
    values: list[bytes], options: dict[str, Any], reason: str
) -> None:
    declined = fast_decode(values, kinds_for=kinds_for, window_ms=WINDOW_MS, **options)
    assert declined == FastPathDeclined(reason)  # type: ignore[arg-type]
    slow = decode_predictions(values, window_ms=WINDOW_MS, **options)
    assert slow.rejects or slow.truncated_values or slow.future_features_as_of
    assert check(values)  # without the limits: taken, and equal


@pytest.mark.parametrize(
    "options",
    [
        {"max_event_ms": int((T0 + 19) * 1000)},  # the last record is exactly at the bound
        {"limits": DecodeLimits(max_features=4, max_category_bytes=32)},
    ],
)
def test_batches_within_the_limits_take_the_fast_path(options: dict[str, Any]) -> None:
    assert check(enc(*(record(i) for i in range(20))), **options)


def test_each_decline_reason_is_produced_by_some_batch() -> None:
    assert {reason for _, reason in DECLINED} == set(DECLINE_REASONS)
    assert len(set(DECLINE_REASONS)) == len(DECLINE_REASONS)
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", r) for r in DECLINE_REASONS)


def test_declines_count_on_the_prometheus_counter() -> None:
    metrics = create()
    for reason in DECLINE_REASONS:
        metrics.fast_path_declined_total.labels(reason).inc()
    value = metrics.registry.get_sample_value(
        "streamproc_fast_path_declined_total", {"reason": "mixed_models"}
    )
    assert value == 1.0


def test_newline_inside_a_record_is_whitespace_on_both_paths() -> None:
    values = [orjson.dumps(record(0)), orjson.dumps(record(1)).replace(b',"c"', b',\n"c"')]
    assert check(values)


def test_oversized_is_declined() -> None:
    values = enc(record(0), record(1))
    declined = fast_decode(values, kinds_for=kinds_for, max_message_bytes=50)
    assert declined == FastPathDeclined("needs_validation")
    assert check(values)


# ------------------------------------------------------------------- hypothesis

_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.sampled_from('ab:"\\é ny0'), max_size=4),
    st.text(alphabet=st.sampled_from("abé€"), min_size=8, max_size=40),  # long: capped at 32
)
_feature_value = st.one_of(_scalar, st.lists(st.integers(-9, 9), max_size=2), st.just({"k": 1}))


@st.composite
def _rfc3339(draw: st.DrawFn) -> str:
    """Mostly valid RFC 3339 strings, sometimes with a bad field or another ISO form."""
    y = draw(st.integers(1600, 2300))
    mo, d = draw(st.integers(0, 13)), draw(st.integers(0, 32))
    h, mi, s = draw(st.integers(0, 24)), draw(st.integers(0, 60)), draw(st.integers(0, 60))
    frac = draw(st.sampled_from(["", ".5", ".25", ".123", ".999999", ".1234567", "."]))
    sign = draw(st.sampled_from("+-"))
    tz = draw(
        st.sampled_from(
            ["Z", "Z", f"{sign}05:30", f"{sign}00:00", f"{sign}23:59", f"{sign}00:75", "z", ""]
        )
    )
    sep = draw(st.sampled_from(["T", "T", "T", " ", "t"]))
    return f"{y:04d}-{mo:02d}-{d:02d}{sep}{h:02d}:{mi:02d}:{s:02d}{frac}{tz}"


_valid_rfc3339 = st.builds(
    lambda t, tz: datetime.fromtimestamp(t, timezone(timedelta(minutes=tz))).isoformat(),
    st.one_of(st.floats(-5e9, 8e9), st.floats(-1e5, 4.2e9)).map(lambda t: round(t, 6)),
    st.sampled_from([0, 330, -480, 1439]),
)
_timestamp = st.one_of(
    _rfc3339(),
    _valid_rfc3339,
    st.floats(min_value=-10, max_value=2e14, allow_nan=False),
    st.integers(min_value=0, max_value=10**14),
    st.sampled_from([T0, T0 + 59.5, (T0 + 61) * 1000, "2024-05-01T10:00:03Z", None]),
    st.sampled_from(  # the range bounds, and the examples of out-of-range input
        [
            0,
            4102444799.999999,
            4102444800,
            1e12 - 1,
            1e12,
            4102444799999,
            4102444800000,
            253402300799,
            7258118400000,
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59.999999Z",
            "2099-12-31T23:59:59.999999Z",
            "2100-01-01T00:00:00Z",
            "1900-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2024-W18-3T00:00:00Z",
        ]
    ),
)
MAX_EVENT_MS = st.sampled_from(  # around T0: some of the drawn times are in the future
    [None, None, int(T0 * 1000), int((T0 + 30) * 1000), int((T0 + 61) * 1000), 1714557603000]
)
LIMITS = st.builds(
    DecodeLimits,
    max_features=st.sampled_from([1000, 4, 3, 2]),
    max_category_bytes=st.sampled_from([256, 32]),
)
_prediction = st.one_of(
    st.floats(0, 1),
    st.sampled_from(["yes", "no", True, False, None]),
    st.fixed_dictionaries(
        {"label": st.sampled_from(["yes", "no", True, 1, None])},
        optional={"score": st.one_of(st.none(), st.floats(0, 1))},
    ),
)


@st.composite
def _record(draw: st.DrawFn) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "model": draw(st.sampled_from(["m", "m", "m", "n", "zzz", ""])),
        "model_version": draw(st.sampled_from(["1", "1", "1", "2"])),
        "request_id": draw(st.sampled_from(["r", "s", ":t"])),
        "timestamp": draw(_timestamp),
        "features": draw(
            st.dictionaries(st.sampled_from(["x", "y", "c", "b", "z"]), _feature_value)
        ),
        "prediction": draw(_prediction),
    }
    optional = {
        "latency_ms": st.one_of(st.none(), st.floats(-1, 100), st.integers(0, 9)),
        "fallback": st.one_of(st.none(), st.booleans()),
        "error": st.one_of(st.none(), st.booleans(), st.sampled_from(["", "x"])),
        "features_as_of": st.one_of(st.none(), _timestamp),
        "segment": st.just({"a": "b"}),
    }
    for name, strategy in optional.items():
        if draw(st.integers(0, 4)) == 0:
            rec[name] = draw(strategy)
    for name in list(rec):
        if draw(st.integers(0, 30)) == 0:
            del rec[name]
    return rec


@st.composite
def _batch(draw: st.DrawFn) -> list[bytes]:
    template = draw(_record())
    out = []
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.booleans()):  # mostly like the template: the fast path's case
            rec = dict(template)
            rec["features"] = dict(template.get("features") or {})
            for name in list(rec["features"]):
                if draw(st.integers(0, 3)) == 0:
                    rec["features"][name] = draw(st.one_of(st.none(), _scalar))
            if draw(st.integers(0, 3)) == 0:
                rec["timestamp"] = draw(_timestamp)
        else:
            rec = draw(_record())
        raw = orjson.dumps(rec, option=orjson.OPT_NON_STR_KEYS) if rec else b"{}"
        if draw(st.integers(0, 8)) == 0:
            raw = draw(
                st.sampled_from(
                    [
                        raw.replace(b":", b": "),
                        raw.replace(b":", b" :"),
                        raw.replace(b"0", b"-0"),
                        raw.replace(b"1", b"NaN"),
                        raw[:-1],
                        raw + b" ",
                        raw + b"\n",
                        b"\n" + raw,
                        raw + raw,
                        # duplicate keys: top level, in features, in prediction, escaped
                        raw.replace(b'{"model"', b'{"model":"m","model"', 1),
                        raw.replace(b'"features":{', b'"features":{"x":1,', 1),
                        raw.replace(b'"prediction":{', b'"prediction":{"label":"no",', 1),
                        raw.replace(b'"y":', b'"y":0,"\\u0079":', 1),
                        raw.replace(b'"c":', b'"c":"v:w","c":', 1),
                    ]
                )
            )
        out.append(raw)
    return out


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_batch(), LIMITS, MAX_EVENT_MS)
def test_fast_path_declines_or_matches_the_orjson_decoder(
    values: list[bytes], limits: DecodeLimits, max_event_ms: int | None
) -> None:
    check(values, limits=limits, max_event_ms=max_event_ms)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.floats(-1e6, 1e6), st.integers(-5, 5)),
            st.one_of(st.none(), st.sampled_from(["a", "b", ":c", "null", "é" * 129])),
            st.one_of(st.none(), st.booleans()),
            _timestamp,
        ),
        min_size=1,
        max_size=30,
    )
)
def test_template_batches_match(rows: list[tuple[Any, Any, Any, Any]]) -> None:
    values = enc(
        *(
            record(i, timestamp=t, features={"x": x, "y": 1, "c": c, "b": b})
            for i, (x, c, b, t) in enumerate(rows)
        )
    )
    check(values)
    check(values, max_event_ms=int((T0 + 30) * 1000))


_DUPLICATING: list[tuple[bytes, bytes]] = [
    (b'{"model":"m"', b'{"model":"m","model":"m"'),
    (b'"features":{', b'"features":{"x":1,'),
    (b'"prediction":{', b'"prediction":{"label":"no",'),
    (b'"y":1', b'"y":1,"\\u0079":1'),
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.floats(-1e6, 1e6)),
            st.sampled_from(["a", "b", "ab:", "a", "b", "é" * 16, "€" * 11, "x" * 33]),
            st.sampled_from(  # mostly in range and at most 30 s after T0
                [T0, T0 + 1, T0 + 29.999, T0 + 30, (T0 + 2) * 1000, T0 + 30.001, 4102444800]
            ),
            st.sampled_from([None, None, None, T0 - 5, T0 + 31, 1e11]),  # features_as_of
        ),
        min_size=1,
        max_size=12,
    ),
    st.sampled_from([None, int((T0 + 30) * 1000)]),
    st.builds(
        DecodeLimits,
        max_features=st.sampled_from([1000, 4, 3]),
        max_category_bytes=st.sampled_from([256, 32]),
    ),
    st.one_of(st.none(), st.none(), st.tuples(st.integers(0, 11), st.sampled_from(_DUPLICATING))),
)
def test_template_batches_with_limits_match(
    rows: list[tuple[Any, str, Any, Any]],
    max_event_ms: int | None,
    limits: DecodeLimits,
    duplicate: tuple[int, tuple[bytes, bytes]] | None,
) -> None:
    values = enc(
        *(
            record(
                i,
                timestamp=t,
                features={"x": x, "y": 1, "c": c, "b": True},
                features_as_of=DROP if a is None else a,
            )
            for i, (x, c, t, a) in enumerate(rows)
        )
    )
    if duplicate is not None:
        at, (old, new) = duplicate
        at %= len(values)
        values[at] = values[at].replace(old, new, 1)
    took = check(values, limits=limits, max_event_ms=max_event_ms)
    slow = decode_predictions(values, limits=limits, max_event_ms=max_event_ms)
    if slow.rejects or slow.truncated_values:
        assert not took


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_rfc3339(), _valid_rfc3339), min_size=1, max_size=8), st.booleans())
def test_rfc3339_timestamps_match(stamps: list[str], one_form: bool) -> None:
    if one_form:  # all but the first from the valid generator: mostly taken
        stamps = [
            s if i == 0 or "T" in s[10:11] else "2024-05-01T10:00:03Z" for i, s in enumerate(stamps)
        ]
    check(enc(*(record(i, timestamp=t) for i, t in enumerate(stamps))))
