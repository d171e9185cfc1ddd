"""Hostile prediction-log records, each with the outcome the worker owes it.

Schema-led: every case starts from a valid record of ``schemas/prediction_log.schema.json``
(built by ``tests.integration.monitor_harness.records``) and breaks one rule of it, or
stays valid while pushing a value to an extreme. Each :class:`Sample` says what must
happen: ``"count"`` (accepted into exactly one window) or the set of dead-letter reasons
that are acceptable (dead-lettered exactly once). The reasons are written from the
schema and the README's rules, not read from the decoder.

Cases (the data-safety issue's list): random bytes, truncated JSON, far-future and
ancient timestamps, future ``features_as_of``, ISO week dates, 900 KB category values,
50 random feature names, random model names, NaN/Infinity literals, wrong types,
duplicate keys, non-UTF-8 bytes, tombstones, 5,000-feature records, 400-deep nesting,
odd feature names, huge numbers.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

ANY_REJECT = frozenset(
    {
        "malformed_json",
        "not_an_object",
        "missing_field",
        "bad_timestamp",
        "wrong_type",
        "oversized",
        "unknown_model",
        "future_timestamp",
        "duplicate_key",
        "too_many_features",
    }
)
COUNT = "count"
EITHER = ANY_REJECT | {COUNT}
"""Counted or dead-lettered, but exactly one of the two."""


@dataclass(frozen=True)
class Sample:
    key: bytes | None
    value: bytes | None
    expect: str | frozenset[str]
    """``"count"`` or the acceptable dead-letter reasons."""
    case: str
    ts: float | None = None
    """Event time (epoch s) when counted."""


def _body(valid: bytes) -> dict[str, object]:
    body: dict[str, object] = orjson.loads(valid)
    return body


def _dump(body: dict[str, object]) -> bytes:
    return orjson.dumps(body)


def _word(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(n))


def case_builders(now_s: float) -> dict[str, Callable[[random.Random, bytes], Sample]]:
    """Each hostile case: a function of (rng, a valid record) → its :class:`Sample`."""

    def reject(case: str, value: bytes | None, *reasons: str) -> Sample:
        return Sample(b"k", value, frozenset(reasons) or ANY_REJECT, case)

    def counted(case: str, body: dict[str, object]) -> Sample:
        ts = body["timestamp"]
        assert isinstance(ts, float | int)
        return Sample(b"k", _dump(body), COUNT, case, float(ts))

    def random_bytes(rng: random.Random, valid: bytes) -> Sample:
        junk = b"\xff" + bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300)))
        return reject("random_bytes", junk, "malformed_json")

    def truncated(rng: random.Random, valid: bytes) -> Sample:
        return reject("truncated_json", valid[: rng.randint(1, len(valid) - 2)], "malformed_json")

    def far_future(rng: random.Random, valid: bytes) -> Sample:
        body = _body(valid)
        body["timestamp"] = rng.choice(["9999-12-31T23:59:59Z", 253402300799, 7258118400000])
        return reject("far_future_timestamp", _dump(body), "bad_timestamp")

    def ahead_of_clock(rng: random.Random, valid: bytes) -> Sample:
        body = _body(valid)
        body["timestamp"] = now_s + rng.uniform(3_600, 30 * 86_400)  # in range, in the future
        return reject("future_timestamp", _dump(body), "future_timestamp")

    def future_as_of(rng: random.Random, valid: bytes) -> Sample:
        body = _body(valid)
        body["features_as_of"] = now_s + rng.uniform(3_600, 86_400)  # that field is invalid
        return counted("future_features_as_of", body)

    def ancient(rng: random.Random, valid: bytes) -> Sample:
        body = _body(valid)
        body["timestamp"] = rng.choice(
            ["1900-01-01T00:00:00Z", "2024-W18-3T00:00:00Z", "2024-123T00:00:00Z", -1]
        )
        return reject("ancient_or_odd_timestamp", _dump(body), "bad_timestamp")

    def huge_category(rng: random.Random, valid: bytes) -> Sample:
        body = _body(valid)
        features = body["features"]
        assert isinstance(features, dict)
        features["country"] = _word(rng, 8) * 112_500  # 900 KB, distinct per record
        return counted("900kb_category", body)

    def random_features(rng: random.Random, valid: bytes) -> Sample:
        body = _body(valid)
        features = body["features"]
        assert isinstance(features, dict)
        for _ in range(50):
            features[_word(rng, 12)] = rng.random()
        return counted("50_random_feature_names", body)

    def random_model(rng: random.Random, valid: bytes) -> Sample:
        body = _body(valid)
        body["model"] = _word(rng, 16)
        return reject("random_model_name", _dump(body), "unknown_model")

    def nan_literal(rng: random.Random, valid: bytes) -> Sample:
        text = valid.replace(
            b'"num_0":', b'"num_0":' + rng.choice([b"NaN", b"Infinity"]) + b',"x":', 1
        )
        return reject("nan_infinity_literal", text, "malformed_json")

    def wrong_type(rng: random.Random, valid: bytes) -> Sample:
        body = _body(valid)
        field, value = rng.choice(
            [
                ("features", "not an object"),
                ("model", 12),
                ("prediction", [1, 2]),
                ("timestamp", [1]),
            ]
        )
        body[field] = value
        return reject("wrong_type", _dump(body))

    def duplicate_key(rng: random.Random, valid: bytes) -> Sample:
        if rng.random() < 0.5:  # a second "model" would silently re-route the record
            text = valid.replace(b'{"model":', b'{"model":"other","model":', 1)
        else:
            text = valid.replace(b'"num_0":', b'"num_0":1.0,"num_0":', 1)
        return reject("duplicate_key", text, "duplicate_key")

    def non_utf8(rng: random.Random, valid: bytes) -> Sample:
        text = valid.replace(b'"credit"', b'"cr\xc3\x28dit"', 1)
        return reject("non_utf8", text, "malformed_json")

    def tombstone(rng: random.Random, valid: bytes) -> Sample:
        return reject("tombstone", None)

    def many_features(rng: random.Random, valid: bytes) -> Sample:
        body = _body(valid)
        body["features"] = {f"f{i}": float(i) for i in range(5_000)}
        return reject("5000_features", _dump(body), "too_many_features", "oversized")

    def deep_nesting(rng: random.Random, valid: bytes) -> Sample:
        if rng.random() < 0.5:  # the whole value: a JSON document, but not an object
            return reject("400_deep_nesting", b"[" * 400 + b"]" * 400, "not_an_object")
        nested = b'{"a":' * 400 + b"1" + b"}" * 400  # a feature value 400 objects deep
        text = re.sub(rb'"num_2":[^,}]+', b'"num_2":' + nested, valid, count=1)
        body = orjson.loads(text)
        return Sample(b"k", text, EITHER, "400_deep_nesting", float(body["timestamp"]))

    def odd_feature_names(rng: random.Random, valid: bytes) -> Sample:
        body = _body(valid)
        features = body["features"]
        assert isinstance(features, dict)
        for name in ("", " ", "a\u0000b", "ü∂ñ", "x" * 300, "__prediction__", "num_0 "):
            features[name] = rng.random()
        # the schema does not say whether such names are allowed: either outcome, once
        ts = body["timestamp"]
        assert isinstance(ts, float | int)
        return Sample(b"k", _dump(body), EITHER, "odd_feature_names", float(ts))

    def huge_numbers(rng: random.Random, valid: bytes) -> Sample:
        body = _body(valid)
        features = body["features"]
        assert isinstance(features, dict)
        for name in ("num_0", "num_1", "num_2"):
            features[name] = rng.choice([1e308, -1e308, 1.7e308, 1e200, -5e-324])
        body["latency_ms"] = rng.choice([1e308, 0.0])
        sample = counted("huge_numbers", body)
        # an integer beyond 64 bits (orjson cannot write one, a producer can)
        big = re.sub(
            rb'"num_3":[^,}]+', b'"num_3":123456789012345678901234567890', sample.value or b""
        )
        return Sample(sample.key, big, COUNT, sample.case, sample.ts)

    return {
        "random_bytes": random_bytes,
        "truncated_json": truncated,
        "far_future_timestamp": far_future,
        "future_timestamp": ahead_of_clock,
        "future_features_as_of": future_as_of,
        "ancient_or_odd_timestamp": ancient,
        "900kb_category": huge_category,
        "50_random_feature_names": random_features,
        "random_model_name": random_model,
        "nan_infinity_literal": nan_literal,
        "wrong_type": wrong_type,
        "duplicate_key": duplicate_key,
        "non_utf8": non_utf8,
        "tombstone": tombstone,
        "5000_features": many_features,
        "400_deep_nesting": deep_nesting,
        "odd_feature_names": odd_feature_names,
        "huge_numbers": huge_numbers,
    }


RARE = {"900kb_category": 40, "5000_features": 100}
"""Cases whose records are large: a fixed number of them, not a share of the stream."""


def hostile_mix(
    valid: list[tuple[bytes, bytes]], n_hostile: int, *, seed: int, now_s: float
) -> list[Sample]:
    """``valid`` records (all expected counted) with ``n_hostile`` hostile ones interleaved
    at random positions; each hostile one is built from the valid record before it, so its
    event time is in step with the stream."""
    rng = random.Random(seed)
    cases = case_builders(now_s)
    common = [c for c in cases if c not in RARE]
    kinds = [c for c, n in RARE.items() for _ in range(n)]
    kinds += [rng.choice(common) for _ in range(n_hostile - len(kinds))]
    rng.shuffle(kinds)
    positions = sorted(rng.randrange(len(valid)) for _ in kinds)
    out: list[Sample] = []
    j = 0
    for i, (key, value) in enumerate(valid):
        out.append(Sample(key, value, COUNT, "valid", float(orjson.loads(value)["timestamp"])))
        while j < len(positions) and positions[j] == i:
            sample = cases[kinds[j]](rng, value)
            out.append(Sample(key, sample.value, sample.expect, sample.case, sample.ts))
            j += 1
    return out


def hypothesis_samples(pool: list[tuple[bytes, bytes]], now_s: float) -> Any:
    """A Hypothesis strategy of samples: pool records as they are, each hostile case built
    from a drawn pool record, and schema-led valid-but-extreme records (any JSON values
    for features, extreme latencies, odd names) keeping a pool record's envelope."""
    from hypothesis import strategies as st

    cases = case_builders(now_s)
    small = sorted(c for c in cases if c not in RARE)
    index = st.integers(0, len(pool) - 1)

    def as_is(i: int) -> Sample:
        key, value = pool[i]
        return Sample(key, value, COUNT, "valid", float(orjson.loads(value)["timestamp"]))

    def hostile(case: str, seed: int, i: int) -> Sample:
        built = cases[case](random.Random(seed), pool[i][1])
        return Sample(pool[i][0], built.value, built.expect, built.case, built.ts)

    known = ["num_0", "num_1", "num_2", "country", "device"]
    value = st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(-(2**63), 2**63 - 1),
        st.text(max_size=300),
        st.booleans(),
        st.none(),
    )

    def extreme(i: int, features: dict[str, Any], latency: float, prediction: Any) -> Sample:
        key, raw = pool[i]
        body = _body(raw)
        body["features"] = features
        body["latency_ms"] = latency
        body["prediction"] = prediction
        expect: str | frozenset[str] = COUNT if set(features) <= set(known) else EITHER
        ts = body["timestamp"]
        assert isinstance(ts, float | int)
        return Sample(key, _dump(body), expect, "schema_led_extreme", float(ts))

    prediction = st.one_of(
        st.floats(0, 1),
        st.sampled_from(["approve", "deny"]),
        st.fixed_dictionaries(
            {"label": st.sampled_from(["approve", "deny"]), "score": st.floats(0, 1)}
        ),
    )
    names = st.one_of(st.sampled_from(known), st.text(min_size=1, max_size=40))
    return st.one_of(
        index.map(as_is),
        st.builds(hostile, st.sampled_from(small), st.integers(0, 2**32), index),
        st.builds(
            extreme,
            index,
            st.dictionaries(names, value, max_size=30),
            st.floats(0, 1e300),
            prediction,
        ),
    )
