"""The repartition records: what ingest and the labels stage write, the join reads."""

from __future__ import annotations

import math

import numpy as np
import orjson

from streamproc.contracts.prediction import decode_predictions as decode_log
from streamproc.labels.repartition import (
    decode_labels,
    decode_predictions,
    encode_label,
    encode_predictions,
    join_key,
)
from streamproc.labels.store import record_id


def _log(i: int, **extra: object) -> bytes:
    return orjson.dumps(
        {
            "model": "m",
            "model_version": "2",
            "request_id": f"r{i}",
            "timestamp": 1_700_000_000 + i / 10,
            "features": {"x": i},
            "prediction": {"label": "yes" if i % 2 else "no", "score": i / 10},
            **extra,
        }
    )


def test_predictions_round_trip_with_their_window_and_segment() -> None:
    values = [_log(i) for i in range(3)] + [_log(3, segment={"country": "DE"})]
    result = decode_log(values, keep_request_ids=True, window_ms=10_000)
    (batch,) = result.batches.values()
    records = encode_predictions(batch)
    assert [k for k, _ in records] == [join_key("m", f"r{i}") for i in range(4)]
    assert join_key("m", "r0") == record_id("m", "r0")
    rows = decode_predictions([v for _, v in records]).rows
    assert list(rows.request_ids) == ["r0", "r1", "r2", "r3"]
    assert list(rows.event_ms) == [1_700_000_000_000 + 100 * i for i in range(4)]
    assert set(rows.window_start_ms) == {1_700_000_000_000 // 10_000 * 10_000}
    assert list(rows.predicted) == ["no", "yes", "no", "yes"]
    assert np.allclose(rows.scores, [0.0, 0.1, 0.2, 0.3])
    assert rows.segments is not None and rows.segments[3] == {"country": "DE"}


def test_a_missing_score_is_nan_and_foreign_records_are_reported_by_position() -> None:
    value = orjson.dumps(["m", "r", 5, 0, "1", "a", None, None])
    decoded = decode_predictions([b"junk", value, orjson.dumps([1, 2])])
    assert decoded.bad == [0, 2]
    assert math.isnan(decoded.rows.scores[0]) and decoded.rows.request_ids == ["r"]


def test_labels_round_trip_and_foreign_records_are_reported() -> None:
    key, value = encode_label("m", "r9", 1234, True)
    assert key == join_key("m", "r9")
    out = decode_labels([value, None, b"[1]"])
    assert (out.models, out.request_ids, out.label_ms, out.labels) == (
        ["m"],
        ["r9"],
        [1234],
        [True],
    )
    assert out.bad == [1, 2]
