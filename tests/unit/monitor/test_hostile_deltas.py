"""Every delta ingest writes decodes, whatever schema-valid records it was built from.

Records go through the real path: ``decode_predictions`` → ``WindowBuffer`` →
``build_delta`` → ``to_bytes`` → ``ProfileDelta.from_bytes`` → ``AggregateState.apply``
→ ``WindowState`` checkpoint bytes. Expected counts come from the raw values.
Before the ±1e100 bound, an overflowing sum or sum of squares (1e308 + 1e308,
(1e200)²) was written by orjson as JSON ``null`` and the aggregate skipped the delta:
"corrupt content (float() argument must be a string or a real number, not 'NoneType')".
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamproc.checks.evaluate import evaluate_window
from streamproc.contracts.prediction import decode_predictions
from streamproc.core import ops
from streamproc.core.model_profile import ModelProfile
from streamproc.monitor.delta import ProfileDelta
from streamproc.monitor.state import AggregateState, WindowState
from streamproc.monitor.window_buffer import (
    MAX_DELTA_BYTES,
    BufferedChunk,
    WindowBuffer,
    build_delta,
    build_deltas,
)

WINDOW_MS = 60_000
T0 = 1_700_000_040.0
HUGE = sys.float_info.max
BOUND = 1e100


@pytest.fixture(scope="module")
def reference() -> ModelProfile:
    rng = np.random.default_rng(3)
    n = 1_000
    return ModelProfile.build_reference(
        "m",
        "1",
        {
            "x": rng.normal(size=n),
            "c": rng.choice(["a", "b", "c"], size=n).astype(object),
            "flag": rng.random(n) < 0.5,
        },
        predictions=rng.random(n),
        predicted_labels=rng.choice(["yes", "no"], size=n).astype(object),
        latency_ms=rng.random(n) * 10,
    )


def record(i: int, features: dict[str, Any], **envelope: Any) -> bytes:
    obj = {
        "model": "m",
        "model_version": "1",
        "request_id": f"r{i}",
        "timestamp": T0 + i * 0.001,
        "features": features,
        "prediction": {"label": "yes", "score": 0.5},
        "latency_ms": 1.0,
        **envelope,
    }
    return orjson.dumps(obj)


def buffer_of(values: list[bytes], partition: int = 0, first_offset: int = 0) -> WindowBuffer:
    result = decode_predictions(values, window_ms=WINDOW_MS)
    assert not result.rejects, result.rejects  # schema-valid: every record accepted
    (batch,) = result.batches.values()
    buf = WindowBuffer("m", "1", batch.window_start_ms, batch.window_start_ms + WINDOW_MS)
    offsets = first_offset + np.arange(batch.n)
    buf.add(
        BufferedChunk(batch, batch.timestamps + 1.0, T0 + 5), np.full(batch.n, partition), offsets
    )
    return buf


def through_aggregate(deltas: list[ProfileDelta]) -> WindowState:
    """Bytes → delta → aggregate state → checkpoint bytes → window, as the services do."""
    state = AggregateState(WINDOW_MS, allowed_lateness_ms=10_000, retention_ms=600_000)
    for delta in deltas:
        decoded = ProfileDelta.from_bytes(delta.to_bytes())
        assert decoded.profile == delta.profile and decoded.ops == delta.ops
        assert state.apply(decoded, arrival_ms=0)
    (window,) = state.windows.values()
    restored = WindowState.from_bytes(window.to_bytes())
    assert restored.profile == window.profile and restored.ops == window.ops
    return restored


def valid_numbers(values: list[Any]) -> np.ndarray:
    nums = [float(v) for v in values if isinstance(v, int | float)]  # bools count as 0/1
    x = np.array(nums, dtype=np.float64)
    return x[np.abs(x) <= BOUND]


HOSTILE = {
    "sum_overflows": [HUGE, HUGE],
    "opposite_extremes": [1e308, -1e308],
    "squares_overflow": [1e200, -1e200, 3.0],
    "deviations_overflow": [1e155, -1e155, 0.0],
    "integers_u64_i64": [2**64 - 1, -(2**63), 0],
    "subnormals": [5e-324, -5e-324],
    "mixed_types": [1e308, "1e308", None, True, 2.5, [1], {"a": 1}],
}


@pytest.mark.parametrize("xs", HOSTILE.values(), ids=list(HOSTILE))
def test_hostile_feature_values_decode_merge_and_checkpoint(
    reference: ModelProfile, xs: list[Any]
) -> None:
    values = [record(i, {"x": x, "c": "a", "flag": True}) for i, x in enumerate(xs)]
    delta = build_delta(buffer_of(values), reference, topic="p", producer_id="t")
    window = through_aggregate([delta])
    x = window.profile.features["x"]
    valid = valid_numbers(xs)
    assert x.count == len(xs)
    assert x.valid_count == valid.size
    assert x.null_count == sum(v is None for v in xs)
    assert x.invalid_count == sum(isinstance(v, str | list | dict) for v in xs)
    assert math.isfinite(x.sum) and math.isfinite(x.m2)
    if valid.size:
        assert (x.min, x.max) == (valid.min(), valid.max())
        assert x.mean == pytest.approx(valid.mean(), rel=1e-12)


@pytest.mark.parametrize(
    "envelope",
    [
        {"prediction": {"label": "yes", "score": HUGE}},
        {"prediction": -1e308},
        {"latency_ms": HUGE},
        {"latency_ms": 1e200},
    ],
    ids=["score", "numeric_prediction", "latency_max", "latency_squares"],
)
def test_hostile_envelope_numbers_decode(reference: ModelProfile, envelope: dict[str, Any]) -> None:
    values = [record(i, {"x": 1.0, "c": "a", "flag": False}, **envelope) for i in range(3)]
    window = through_aggregate(
        [build_delta(buffer_of(values), reference, topic="p", producer_id="t")]
    )
    special = window.profile.latency_ms if "latency_ms" in envelope else window.profile.prediction
    assert special is not None
    assert (special.count, special.valid_count, special.nonfinite_count) == (3, 0, 3)


def test_huge_strings_many_names_and_wide_records_decode(reference: ModelProfile) -> None:
    rng = np.random.default_rng(11)
    big = "z" * 900_000
    wide = {f"w{j}": float(j) for j in range(990)}  # as wide as the decoder accepts
    values = [
        record(0, {"x": 1.0, "c": big, "flag": True}),
        record(1, {"x": 2.0, "c": big + "y", "flag": False, big[:1000]: 1}),
        record(2, {"x": 3.0, "c": "a", "flag": True, **wide}),
    ]
    names = ["".join(rng.choice(list("abcdefgh\x00é€"), size=12)) for _ in range(2_000)]
    values += [
        record(3 + i, {"x": 0.0, "c": "b", "flag": True, name: None})
        for i, name in enumerate(names)
    ]
    deltas = build_deltas(
        buffer_of(values), reference, topic="p", producer_id="t", max_bytes=MAX_DELTA_BYTES
    )
    window = through_aggregate(deltas)
    c = window.profile.features["c"]
    assert c.count == len(values) and c.valid_count == len(values)
    assert c.categories is not None
    counts, tail = c.categories.counts()
    assert tail == 0 and counts.pop("b") == len(names) and counts.pop("a") == 1
    assert sorted(counts.values()) == [1, 1]  # the two long values stay distinct
    unexpected = window.ops.features[ops.UNEXPECTED_FEATURE].top_categories(10_000)
    assert len(unexpected) <= ops.MAX_UNEXPECTED_FEATURES + 1
    assert all(len(n.encode()) <= ops.MAX_EVENT_NAME_BYTES for n, _ in unexpected)
    # every record but the first carries an unexpected name: kept ones plus the bucket
    shares = dict(unexpected)
    assert shares.pop(ops.OTHER_FEATURES) + sum(shares.values()) >= len(values) - 1


# ------------------------------------------------------------------ property

json_number = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([HUGE, -HUGE, 1e308, 1e200, 1e155, BOUND, -BOUND, 5e-324]),
    st.integers(-(2**63), 2**64 - 1),
)
numeric_value = st.one_of(json_number, st.none(), st.booleans(), st.text(max_size=3))
category_value = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", "\x00", "a" * 100_000, "é" * 5_000]),
    st.none(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
)
extra_name = st.text(min_size=1, max_size=30).filter(lambda s: s not in {"x", "c", "flag"})
row = st.fixed_dictionaries(
    {"x": numeric_value, "c": category_value, "score": json_number, "latency": json_number},
    optional={"extra": st.dictionaries(extra_name, numeric_value, max_size=3)},
)
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(rows=st.lists(row, min_size=1, max_size=30), split=st.integers(0, 30))
def test_any_schema_valid_records_make_deltas_that_decode_and_merge(
    reference: ModelProfile, rows: list[dict[str, Any]], split: int
) -> None:
    values = [
        record(
            i,
            {"x": r["x"], "c": r["c"], "flag": True, **r.get("extra", {})},
            prediction={"label": "yes", "score": r["score"]},
            latency_ms=abs(r["latency"]),
        )
        for i, r in enumerate(rows)
    ]
    cut = min(split, len(values) - 1)
    halves = [values[: cut + 1], values[cut + 1 :]]
    deltas = [
        build_delta(buffer_of(part, partition=p), reference, topic="p", producer_id="t")
        for p, part in enumerate(halves)
        if part
    ]
    window = through_aggregate(deltas)
    xs = [r["x"] for r in rows]
    x = window.profile.features["x"]
    valid = valid_numbers(xs)
    assert window.profile.row_count == len(rows)
    assert (x.count, x.valid_count) == (len(rows), valid.size)
    assert x.null_count == sum(v is None for v in xs)
    if valid.size:
        assert (x.min, x.max) == (valid.min(), valid.max())
    c = window.profile.features["c"]
    assert c.count == len(rows) and c.null_count == sum(r["c"] is None for r in rows)
    scores = valid_numbers([r["score"] for r in rows])
    assert window.profile.prediction is not None
    assert window.profile.prediction.valid_count == scores.size
    names = Counter(n for r in rows for n in r.get("extra", {}))
    unexpected = dict(window.ops.features[ops.UNEXPECTED_FEATURE].top_categories(1_000))
    assert unexpected == dict(names)


# ------------------------------------------------------------------ unexpected-name cap


def test_unexpected_names_are_capped_with_a_records_bucket(reference: ModelProfile) -> None:
    rng = np.random.default_rng(5)
    n, n_names = 600, 300
    # name k appears in a record with probability falling in k: distinct counts
    present = rng.random((n, n_names)) < np.linspace(0.5, 0.001, n_names)
    names = [f"extra_{k:03d}" for k in range(n_names)]
    values = [
        record(
            i,
            {"x": 1.0, "c": "a", "flag": True, **{names[k]: 1 for k in np.flatnonzero(present[i])}},
        )
        for i in range(n)
    ]
    delta = build_delta(buffer_of(values), reference, topic="p", producer_id="t")
    window = through_aggregate([delta])
    got, _tail = window.ops.features[ops.UNEXPECTED_FEATURE].categories.counts()  # type: ignore[union-attr]

    per_name = present.sum(axis=0)
    ranked = sorted(
        ((names[k], int(per_name[k])) for k in range(n_names) if per_name[k]),
        key=lambda kv: (-kv[1], kv[0]),
    )
    kept = dict(ranked[: ops.MAX_UNEXPECTED_FEATURES])
    rest = [names.index(name) for name, _ in ranked[ops.MAX_UNEXPECTED_FEATURES :]]
    records_with_rest = int(present[:, rest].any(axis=1).sum())
    assert got == {**kept, ops.OTHER_FEATURES: records_with_rest}
    assert records_with_rest <= n  # still a number of records: a share once divided

    results = evaluate_window(
        reference,
        window.profile,
        window.ops,
        window_start_ms=window.start_ms,
        window_end_ms=window.end_ms,
    )
    (schema,) = [r for r in results if r.check == "schema" and r.feature is None]
    assert isinstance(schema.evidence, list)
    evidence = {e["feature"]: e["records"] for e in schema.evidence}
    assert evidence[ops.OTHER_FEATURES] == records_with_rest
    assert schema.value == pytest.approx(max(max(kept.values()), records_with_rest) / n)


def test_cap_is_a_parameter_and_long_names_are_shortened(reference: ModelProfile) -> None:
    long_a, long_b = "a" * 5_000, "a" * 4_999 + "b"
    values = [
        record(0, {"x": 1.0, "c": "a", "flag": True, long_a: 1, "u1": 1, "u2": 1}),
        record(1, {"x": 1.0, "c": "a", "flag": True, long_b: 1, "u1": 1}),
        record(2, {"x": 1.0, "c": "a", "flag": True, long_a: 1, "u3": 1}),
    ]
    buf = buffer_of(values)
    capped = build_delta(buf, reference, topic="p", producer_id="t", max_unexpected_features=2)
    got = dict(capped.ops.features[ops.UNEXPECTED_FEATURE].top_categories(10))
    # by count: long_a 2, u1 2 (ties by name: "a…" < "u1"); rest (long_b, u2, u3) in 3 records
    assert sorted(got.values()) == [2, 2, 3] and got[ops.OTHER_FEATURES] == 3
    assert got["u1"] == 2
    full = build_delta(buf, reference, topic="p", producer_id="t")
    names = dict(full.ops.features[ops.UNEXPECTED_FEATURE].top_categories(10))
    shortened = [n for n in names if n.startswith("aaaa")]
    assert len(shortened) == 2  # long_a and long_b stay distinct
    assert all(len(n.encode()) <= ops.MAX_EVENT_NAME_BYTES for n in shortened)
    assert sorted(names[n] for n in shortened) == [1, 2]


def test_aggregate_stays_bounded_when_capped_deltas_differ(reference: ModelProfile) -> None:
    """Merging capped deltas with ever new names: the window's name set stays bounded by
    the category sketch (exact up to 1000 names, then a fixed-size frequent-items map)."""
    state = AggregateState(WINDOW_MS, allowed_lateness_ms=10_000, retention_ms=600_000)
    sizes, kept_names = [], set()
    n_deltas = 200
    for d in range(n_deltas):
        names = [f"d{d}_n{k}" for k in range(150)]  # 150 fresh names per delta
        kept_names.update(names[: ops.MAX_UNEXPECTED_FEATURES])  # the most frequent ones
        values = [
            record(i, {"x": 1.0, "c": "a", "flag": True, **dict.fromkeys(names[: 150 - i], 1)})
            for i in range(10)
        ]
        buf = buffer_of(values, first_offset=10 * d)
        delta = build_delta(buf, reference, topic="p", producer_id="t")
        assert state.apply(ProfileDelta.from_bytes(delta.to_bytes()), arrival_ms=0)
        (window,) = state.windows.values()
        cats = window.ops.features[ops.UNEXPECTED_FEATURE].categories
        assert cats is not None
        if cats.exact is not None:
            assert len(cats.exact) <= ops.MAX_UNEXPECTED_FEATURES + 1  # the window's cap
        else:
            assert cats.sketch is not None
            assert cats.sketch.num_active_items <= 3 * 2**cats.lg_max_map_size // 4
        sizes.append(len(window.ops.to_bytes()))
    name_bytes = sum(len(n) for n in kept_names)  # what keeping every name would take
    assert max(sizes) < name_bytes / 4
    (window,) = state.windows.values()
    head, _tail = window.ops.features[ops.UNEXPECTED_FEATURE].categories.counts()  # type: ignore[union-attr]
    # every record had a name beyond its delta's cap; folding at merge adds a lower bound
    assert head[ops.OTHER_FEATURES] >= n_deltas * 10
    restored = WindowState.from_bytes(window.to_bytes())
    assert restored.ops == window.ops
