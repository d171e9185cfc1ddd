"""Decode → window buffers → deltas → aggregate state, without Kafka."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from streamproc.contracts.prediction import decode_predictions
from streamproc.core import ops
from streamproc.core.errors import ProfileFormatError
from streamproc.core.kinds import FeatureKind
from streamproc.core.model_profile import ModelProfile
from streamproc.monitor.delta import ProfileDelta
from streamproc.monitor.state import AggregateState, WindowState
from streamproc.monitor.window_buffer import BufferedChunk, WindowBuffer, build_delta

WINDOW_MS = 60_000
T0 = 1_700_000_040.0  # epoch seconds on a minute boundary


def _record(i: int, t: float, **features: object) -> bytes:
    return orjson.dumps(
        {
            "model": "m",
            "model_version": "1",
            "request_id": f"r{i}",
            "timestamp": t,
            "features": features,
            "prediction": {"label": "yes" if i % 3 else "no", "score": (i % 10) / 10},
            "latency_ms": float(i % 7),
            "features_as_of": t - 30,
        }
    )


@pytest.fixture(scope="module")
def reference() -> ModelProfile:
    rng = np.random.default_rng(0)
    n = 2_000
    return ModelProfile.build_reference(
        "m",
        "1",
        {"x": rng.normal(size=n), "c": rng.choice(["a", "b"], size=n).astype(object)},
        predictions=rng.random(n),
        predicted_labels=rng.choice(["yes", "no"], size=n).astype(object),
    )


def test_windowed_decode_splits_by_event_time() -> None:
    values = [_record(i, T0 + i * 15, x=float(i), c="a") for i in range(10)]  # 4 per minute
    result = decode_predictions(values, window_ms=WINDOW_MS)
    starts = {b.window_start_ms: b.n for b in result.batches.values()}
    assert starts == {int(T0 * 1000): 4, int(T0 * 1000) + 60_000: 4, int(T0 * 1000) + 120_000: 2}
    for batch in result.batches.values():
        assert (batch.timestamps * 1000 // WINDOW_MS * WINDOW_MS == batch.window_start_ms).all()


def test_take_keeps_missing_counts_exact() -> None:
    values = [
        _record(0, T0, x=1.0, c="a"),
        _record(1, T0, x=None, c="b"),  # x null, not missing
        _record(2, T0, c="a"),  # x missing
        _record(3, T0, x=2.0, c="b", extra=1),
    ]
    (batch,) = decode_predictions(values).batches.values()
    assert batch.missing["x"] == 1 and batch.missing["extra"] == 3
    sub = batch.take(np.array([1, 2]))
    assert sub.features["x"] == [None, None]
    assert sub.missing["x"] == 1 and sub.missing["extra"] == 2
    assert list(sub.indices) == [1, 2]
    assert batch.take(np.array([0, 3])).missing["x"] == 0


def test_delta_counts_every_row_and_ops(reference: ModelProfile) -> None:
    values = [_record(i, T0 + i * 0.01, x=float(i), c="a") for i in range(50)]
    values.append(_record(50, T0 + 0.5, c="b", surprise="z"))  # x missing, one unexpected
    (batch,) = decode_predictions(values, window_ms=WINDOW_MS).batches.values()
    buf = WindowBuffer("m", "1", batch.window_start_ms, batch.window_start_ms + WINDOW_MS)
    append_s = batch.timestamps + 2.0  # Kafka appended each record 2 s after its event time
    buf.add(
        BufferedChunk(batch, append_s, received_s=T0 + 10),
        partitions=np.zeros(batch.n, dtype=np.int64),
        offsets=np.arange(100, 100 + batch.n),
    )
    delta = ProfileDelta.from_bytes(
        build_delta(buf, reference, topic="p", producer_id="t").to_bytes()
    )
    assert delta.ranges == [(0, 100, 150)]
    assert delta.profile.row_count == 51
    x = delta.profile.features["x"]
    assert (x.count, x.null_count, x.valid_count) == (51, 1, 50)
    assert x.mean == pytest.approx(np.mean(np.arange(50.0)))
    assert delta.profile.prediction is not None and delta.profile.prediction.count == 51
    lag = delta.ops.features[ops.PIPELINE_LAG]
    assert lag.min == pytest.approx(2.0) and lag.max == pytest.approx(2.0)
    assert delta.ops.features[ops.DATA_LAG].mean == pytest.approx(30.0)
    assert dict(delta.ops.features[ops.MISSING_FEATURE].top_categories(5)) == {"x": 1}
    assert dict(delta.ops.features[ops.UNEXPECTED_FEATURE].top_categories(5)) == {"surprise": 1}


def test_aggregate_merges_and_drops_duplicate_deltas(reference: ModelProfile) -> None:
    state = AggregateState(WINDOW_MS, allowed_lateness_ms=10_000, retention_ms=600_000)
    deltas = []
    for part, first in ((0, 0), (1, 0), (0, 20)):
        values = [_record(i, T0 + i, x=float(i), c="a") for i in range(first, first + 20)]
        (batch,) = decode_predictions(values, window_ms=WINDOW_MS).batches.values()
        buf = WindowBuffer("m", "1", batch.window_start_ms, batch.window_start_ms + WINDOW_MS)
        buf.add(
            BufferedChunk(batch, batch.timestamps, T0),
            np.full(batch.n, part),
            np.arange(first, first + 20),
        )
        deltas.append(build_delta(buf, reference, topic="p", producer_id="t"))
    assert all(state.apply(d, arrival_ms=0) for d in deltas)
    assert not state.apply(deltas[0], arrival_ms=0)  # replayed delta: skipped
    (window,) = state.windows.values()
    assert window.profile.row_count == 60
    assert window.applied == {"p:0": 39, "p:1": 19}
    restored = WindowState.from_bytes(window.to_bytes())
    assert restored.profile == window.profile and restored.applied == window.applied


def test_windows_close_by_event_time_and_purge_by_retention(reference: ModelProfile) -> None:
    state = AggregateState(WINDOW_MS, allowed_lateness_ms=10_000, retention_ms=180_000)
    for minute in range(6):
        t = T0 + minute * 60 + 30
        (batch,) = decode_predictions(
            [_record(minute, t, x=1.0, c="a")], window_ms=WINDOW_MS
        ).batches.values()
        buf = WindowBuffer("m", "1", batch.window_start_ms, batch.window_start_ms + WINDOW_MS)
        buf.add(BufferedChunk(batch, batch.timestamps, t), np.zeros(1), np.array([minute]))
        state.apply(build_delta(buf, reference, topic="p", producer_id="t"), arrival_ms=0)
    key = ("m", "1")
    # newest event: minute 5 + 30 s; watermark 20 s into minute 5 → minutes 0..4 closed
    assert [w.start_ms for w in state.newly_closed(key)] == [
        int(T0 * 1000) + m * 60_000 for m in range(5)
    ]
    open_window = state.open_window(key)
    assert open_window is not None and open_window.start_ms == int(T0 * 1000) + 300_000
    gone = state.purge()  # retention 3 min from the newest event: minutes 0..1 end too early
    assert sorted(k[2] for k in gone) == [int(T0 * 1000), int(T0 * 1000) + 60_000]
    profile, _ops, start = state.horizon(key, horizon_ms=120_000)
    # windows ending after newest − horizon (T0+210 s): minutes 3, 4 and 5
    assert start == int(T0 * 1000) + 180_000 and profile.row_count == 3


def test_corrupt_delta_is_a_format_error() -> None:
    with pytest.raises(ProfileFormatError):
        ProfileDelta.from_bytes(b"\x00\x00\x00\x05{}")
    with pytest.raises(ProfileFormatError):
        ProfileDelta.from_bytes(b"\x00\x00\x00\x02{}")


def test_reference_kinds_route_columns(reference: ModelProfile) -> None:
    assert reference.features["c"].kind is FeatureKind.CATEGORICAL


def test_delta_header_follows_its_schema(reference: ModelProfile) -> None:
    from streamproc.contracts import validate
    from streamproc.contracts.framing import decode_profile_delta

    values = [_record(i, T0 + i, x=float(i), c="a") for i in range(5)]
    (batch,) = decode_predictions(values, window_ms=WINDOW_MS).batches.values()
    buf = WindowBuffer("m", "1", batch.window_start_ms, batch.window_start_ms + WINDOW_MS)
    buf.add(BufferedChunk(batch, batch.timestamps, T0), np.zeros(5), np.arange(5))
    header, _body = decode_profile_delta(
        build_delta(buf, reference, topic="p", producer_id="t").to_bytes()
    )
    validate("profile_delta", header)


def test_alert_schema_names_every_check() -> None:
    from streamproc.checks.result import CHECK_NAMES
    from streamproc.contracts import load_schema

    assert set(load_schema("alert")["properties"]["check"]["enum"]) == set(CHECK_NAMES)


def test_recent_profile_covers_the_last_seconds_of_event_time(reference: ModelProfile) -> None:
    state = AggregateState(WINDOW_MS, 1_000, 600_000, recent_ms=15_000)
    for second in range(40):  # one delta per second of event time, 10 rows each
        values = [_record(second * 10 + i, T0 + second + i / 10, x=1.0, c="a") for i in range(10)]
        (batch,) = decode_predictions(values, window_ms=WINDOW_MS).batches.values()
        buf = WindowBuffer("m", "1", batch.window_start_ms, batch.window_start_ms + WINDOW_MS)
        buf.add(BufferedChunk(batch, batch.timestamps, T0), np.zeros(10), np.arange(10) + second)
        state.apply(build_delta(buf, reference, topic="p", producer_id="t"), arrival_ms=0)
    recent = state.recent_profile(("m", "1"), min_rows=100)
    assert recent is not None
    profile, _ops, start = recent
    # newest event: T0 + 39.9 s; deltas whose newest event is within 15 s of it: seconds 25..39
    assert profile.row_count == 150
    assert start == int((T0 + 25) * 1000)
    assert state.recent_profile(("m", "1"), min_rows=151) is None
