"""Label-event decoding: accepted columns, and a reason for every reject."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.contracts.label import decode_labels
from streamproc.contracts.limits import DecodeLimits
from streamproc.contracts.schemas import validate


def _raw(**fields: object) -> bytes:
    base: dict[str, object] = {
        "model": "fraud",
        "request_id": "r1",
        "timestamp": "2024-05-03T08:12:00Z",
        "label": "fraud",
    }
    base.update(fields)
    return orjson.dumps({k: v for k, v in base.items() if v is not ...})


def test_accepts_the_schema_examples() -> None:
    ok = [
        {"model": "fraud", "request_id": "a", "timestamp": "2024-05-03T08:12:00Z", "label": "x"},
        {"model": "eta", "request_id": "r-99", "timestamp": 1714558603000, "label": 19.0},
        {"model": "m", "request_id": "b", "timestamp": 1714558603, "label": True},
    ]
    for doc in ok:
        validate("label_event", doc)
    out = decode_labels([orjson.dumps(d) for d in ok])
    assert out.rejects == []
    b = out.batch
    assert b.n == 3 and b.models == ["fraud", "eta", "m"]
    assert b.label_ms.tolist() == [1714723920000, 1714558603000, 1714558603000]
    assert b.labels == ["x", 19.0, True]
    assert not b.has_prediction.any()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "malformed_json"),
        (b"{not json", "malformed_json"),
        (b"[1, 2]", "not_an_object"),
        (_raw(label=...), "missing_field"),
        (_raw(label=None), "missing_field"),
        (_raw(model=""), "wrong_type"),
        (_raw(model=3), "wrong_type"),
        (_raw(request_id=7), "wrong_type"),
        (_raw(label={"a": 1}), "wrong_type"),
        (_raw(label=[1]), "wrong_type"),
        (_raw(timestamp="2024-05-03T08:12:00"), "bad_timestamp"),
        (_raw(timestamp=-1), "bad_timestamp"),
        (_raw(timestamp=5e9), "bad_timestamp"),
        (_raw(timestamp="2999-01-01T00:00:00Z"), "bad_timestamp"),
        (b'{"model":"m","model":"n","request_id":"r","timestamp":1,"label":1}', "duplicate_key"),
        (_raw(prediction=5), "wrong_type"),
        (_raw(prediction={"score": "high"}), "wrong_type"),
        (_raw(prediction={"timestamp": "yesterday"}), "bad_timestamp"),
        (b'{"model":"m","request_id":"r","timestamp":1,"label":' + b"[" * 5000, "malformed_json"),
    ],
)
def test_rejects_carry_a_reason(raw: bytes | None, reason: str) -> None:
    out = decode_labels([raw])
    assert out.batch.n == 0
    assert [r.reason for r in out.rejects] == [reason]


def test_limits_future_and_unknown_models() -> None:
    values = [
        _raw(),
        _raw(model="other"),
        _raw(timestamp=1714723920000 + 10 * 60_000),
        b"{" + b" " * 2000 + b"}",
        _raw(label="x" * 1000),
    ]
    out = decode_labels(
        values,
        known_models={"fraud"},
        limits=DecodeLimits(max_message_bytes=1500, max_category_bytes=64),
        max_event_ms=1714723920000 + 60_000,
    )
    assert [(r.position, r.reason) for r in out.rejects] == [
        (1, "unknown_model"),
        (2, "future_timestamp"),
        (3, "oversized"),
    ]
    assert out.batch.positions.tolist() == [0, 4]
    assert len(out.batch.labels[1].encode()) <= 64 and out.truncated_values == 1


def test_stateless_prediction_columns() -> None:
    out = decode_labels(
        [
            _raw(
                prediction={
                    "label": "ok",
                    "score": 0.2,
                    "model_version": "v3",
                    "timestamp": "2024-05-03T08:00:00Z",
                }
            ),
            _raw(),
            _raw(prediction={"score": 1}),
        ]
    )
    b = out.batch
    assert b.has_prediction.tolist() == [True, False, True]
    assert b.prediction_label == ["ok", None, None]
    assert b.prediction_score[0] == 0.2 and b.prediction_score[2] == 1.0
    assert b.prediction_version == ["v3", None, None]
    assert b.prediction_ms.tolist()[0] == 1714723200000
    assert b.prediction_ms.tolist()[1] == b.label_ms.tolist()[1]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=200),
            st.none(),
            st.builds(
                lambda d: orjson.dumps(d),
                st.dictionaries(
                    st.sampled_from(
                        ["model", "request_id", "timestamp", "label", "prediction", "x"]
                    ),
                    st.recursive(
                        st.none()
                        | st.booleans()
                        | st.integers(-(2**63), 2**63 - 1)
                        | st.floats(allow_nan=False, allow_infinity=False)
                        | st.text(max_size=30),
                        lambda inner: (
                            st.lists(inner, max_size=3)
                            | st.dictionaries(st.text(max_size=5), inner, max_size=3)
                        ),
                        max_leaves=6,
                    ),
                ),
            ),
        ),
        max_size=20,
    )
)
def test_hostile_input_never_raises(values: list[bytes | None]) -> None:
    out = decode_labels(values)
    assert sorted([*out.batch.positions.tolist(), *(r.position for r in out.rejects)]) == list(
        range(len(values))
    )
