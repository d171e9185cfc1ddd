"""``build_deltas``: a buffer too big for one delta goes out as several, never fatally.

The chunks are contiguous runs of the rows in (partition, offset) order, so every chunk
brings offsets the aggregate has not applied yet, and together they count exactly the
rows of the single delta. Expected values come from the raw records.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from streamproc.contracts.prediction import decode_predictions
from streamproc.core import ops
from streamproc.core.feature_profile import FeatureProfile
from streamproc.core.model_profile import ModelProfile
from streamproc.monitor.delta import ProfileDelta
from streamproc.monitor.state import AggregateState, WindowState
from streamproc.monitor.window_buffer import (
    BufferedChunk,
    WindowBuffer,
    build_delta,
    build_deltas,
)

WINDOW_MS = 60_000
T0 = 1_700_000_040.0
FEATURES = [f"x{j}" for j in range(8)]


@pytest.fixture(scope="module")
def reference() -> ModelProfile:
    rng = np.random.default_rng(1)
    n = 2_000
    return ModelProfile.build_reference(
        "m",
        "1",
        {
            **{name: rng.normal(size=n) for name in FEATURES},
            "c": rng.choice(["a", "b", "c"], size=n).astype(object),
        },
        predictions=rng.random(n),
        predicted_labels=rng.choice(["yes", "no"], size=n).astype(object),
        latency_ms=rng.random(n),
    )


def record(i: int, features: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {
            "model": "m",
            "model_version": "1",
            "request_id": f"r{i}",
            "timestamp": T0 + (i % 50_000) * 0.001,
            "features": features,
            "prediction": {"label": "yes" if i % 3 else "no", "score": (i % 10) / 10},
            "latency_ms": float(i % 7),
        }
    )


def raw_rows(n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        feats: dict[str, Any] = {name: float(rng.normal()) for name in FEATURES}
        feats["c"] = f"cat{int(rng.integers(0, 40))}"
        if i % 11 == 0:
            feats["x0"] = None
        if i % 13 == 0:
            del feats["x1"]  # a missing expected feature
        if i % 17 == 0:
            feats[f"extra{i % 5}"] = 1  # an unexpected one (five names: under the cap)
        rows.append(feats)
    return rows


def interleaved_buffer(
    rows: list[dict[str, Any]], n_partitions: int = 3, per_poll: int = 70
) -> tuple[WindowBuffer, np.ndarray, np.ndarray]:
    """Rows spread round-robin over partitions, consumed in polls that each hold a slice
    of every partition (so a chunk's rows are not in (partition, offset) order)."""
    n = len(rows)
    parts = np.arange(n) % n_partitions
    offs = 1_000 * parts + np.arange(n) // n_partitions  # per partition: increasing
    buf: WindowBuffer | None = None
    for lo in range(0, n, per_poll):
        idx = np.arange(lo, min(n, lo + per_poll))
        idx = idx[np.argsort(-parts[idx], kind="stable")]  # a poll's own order
        values = [record(int(i), rows[i]) for i in idx]
        result = decode_predictions(values, window_ms=WINDOW_MS)
        assert not result.rejects
        (batch,) = result.batches.values()
        if buf is None:
            buf = WindowBuffer("m", "1", batch.window_start_ms, batch.window_start_ms + WINDOW_MS)
        append = batch.timestamps + 0.5
        buf.add(
            BufferedChunk(batch, append, T0 + 9),
            parts[idx][batch.indices],
            offs[idx][batch.indices],
        )
    assert buf is not None
    return buf, parts, offs


def apply_all(deltas: list[ProfileDelta]) -> WindowState:
    state = AggregateState(WINDOW_MS, allowed_lateness_ms=10_000, retention_ms=600_000)
    for d in deltas:
        assert state.apply(ProfileDelta.from_bytes(d.to_bytes()), arrival_ms=0), d.ranges
    for d in deltas:  # a replay of any of them is a duplicate
        assert not state.apply(ProfileDelta.from_bytes(d.to_bytes()), arrival_ms=0)
    (window,) = state.windows.values()
    return window


def counts_of(p: FeatureProfile) -> tuple[Any, ...]:
    cats = p.categories.counts() if p.categories is not None else None
    bins = p.bin_counts.tolist() if p.bin_counts is not None else None
    return (p.count, p.null_count, p.invalid_count, p.nonfinite_count, p.min, p.max, cats, bins)


def assert_same_counts(a: ModelProfile, b: ModelProfile) -> None:
    assert a.row_count == b.row_count
    assert a.features.keys() == b.features.keys()
    for name in a.features:
        assert counts_of(a.features[name]) == counts_of(b.features[name]), name
        assert a.features[name].sum == pytest.approx(b.features[name].sum, rel=1e-9, abs=1e-9)
    for special in ("prediction", "predicted_label", "latency_ms"):
        x, y = getattr(a, special), getattr(b, special)
        assert (x is None) == (y is None)
        if x is not None:
            assert counts_of(x) == counts_of(y), special
    assert (a.event_time_min, a.event_time_max) == (b.event_time_min, b.event_time_max)


def test_split_deltas_count_exactly_what_one_delta_counts(reference: ModelProfile) -> None:
    rows = raw_rows(1_500, seed=2)
    buf, parts, offs = interleaved_buffer(rows)
    whole = build_delta(buf, reference, topic="p", producer_id="t")
    size = len(whole.to_bytes())
    max_bytes = size // 5
    deltas = build_deltas(buf, reference, topic="p", producer_id="t", max_bytes=max_bytes)

    assert len(deltas) > 1
    assert all(len(d.to_bytes()) <= max_bytes for d in deltas)
    window = apply_all(deltas)
    assert_same_counts(window.profile, whole.profile)
    assert_same_counts(window.ops, whole.ops)
    # and the counts are those of the raw records
    x0 = window.profile.features["x0"]
    raw_x0 = np.array([r["x0"] for r in rows if r["x0"] is not None])
    assert (x0.count, x0.null_count, x0.valid_count) == (
        len(rows),
        len(rows) - raw_x0.size,
        raw_x0.size,
    )
    assert x0.mean == pytest.approx(raw_x0.mean(), rel=1e-9)
    assert (x0.min, x0.max) == (raw_x0.min(), raw_x0.max())
    missing = dict(window.ops.features[ops.MISSING_FEATURE].top_categories(10))
    assert missing == {"x1": sum("x1" not in r for r in rows)}
    unexpected = dict(window.ops.features[ops.UNEXPECTED_FEATURE].top_categories(10))
    expected_unexpected: dict[str, int] = {}
    for r in rows:
        for name in r.keys() - {*FEATURES, "c"}:
            expected_unexpected[name] = expected_unexpected.get(name, 0) + 1
    assert unexpected == expected_unexpected
    assert window.applied == {f"p:{p}": int(offs[parts == p].max()) for p in range(3)}


def test_chunks_are_contiguous_increasing_offset_runs(reference: ModelProfile) -> None:
    rows = raw_rows(900, seed=3)
    buf, parts, offs = interleaved_buffer(rows, n_partitions=4, per_poll=50)
    whole_size = len(build_delta(buf, reference, topic="p", producer_id="t").to_bytes())
    deltas = build_deltas(buf, reference, topic="p", producer_id="t", max_bytes=whole_size // 4)
    assert len(deltas) > 1
    # (partition, offset) runs, in order: no overlap, nothing skipped
    keys = sorted(zip(parts.tolist(), offs.tolist(), strict=True))
    pos = 0
    for d in deltas:
        n = d.profile.row_count
        run = keys[pos : pos + n]
        per_part: dict[int, list[int]] = {}
        for p, o in run:
            per_part.setdefault(p, []).append(o)
        assert d.ranges == [(p, min(v), max(v)) for p, v in sorted(per_part.items())]
        pos += n
    assert pos == len(rows)


def test_small_buffer_is_one_delta_equal_to_build_delta(reference: ModelProfile) -> None:
    buf, _, _ = interleaved_buffer(raw_rows(100, seed=4))
    whole = build_delta(buf, reference, topic="p", producer_id="t")
    (only,) = build_deltas(buf, reference, topic="p", producer_id="t", max_bytes=1 << 30)
    assert only.to_bytes() == whole.to_bytes()


def test_empty_buffer_gives_no_delta(reference: ModelProfile) -> None:
    buf = WindowBuffer("m", "1", 0, WINDOW_MS)
    assert build_deltas(buf, reference, topic="p", producer_id="t", max_bytes=1000) == []


def test_a_row_too_big_on_its_own_goes_out_alone(reference: ModelProfile) -> None:
    rows = [{k: v for k, v in r.items() if k in FEATURES or k == "c"} for r in raw_rows(300, 5)]
    # one record with 100 long unexpected names (kept, capped at 256 bytes): big alone
    big_row = 150
    rows[big_row] = {**rows[big_row], **{f"{k:03d}{'n' * 240}": 1 for k in range(100)}}
    buf, _, _ = interleaved_buffer(rows, n_partitions=1)
    alone = WindowBuffer("m", "1", buf.window_start_ms, buf.window_end_ms)
    one = decode_predictions([record(big_row, rows[big_row])], window_ms=WINDOW_MS)
    (batch,) = one.batches.values()
    alone.add(BufferedChunk(batch, batch.timestamps, T0), np.zeros(1), np.array([big_row]))
    single = len(build_delta(alone, reference, topic="p", producer_id="t").to_bytes())
    max_bytes = single // 2  # this row alone does not fit; the others do
    deltas = build_deltas(buf, reference, topic="p", producer_id="t", max_bytes=max_bytes)
    too_big = [d for d in deltas if len(d.to_bytes()) > max_bytes]
    assert len(too_big) == 1 and too_big[0].profile.row_count == 1
    assert too_big[0].ranges == [(0, big_row, big_row)]
    window = apply_all(deltas)
    assert window.profile.row_count == len(rows)


def test_fixed_part_over_the_limit_still_splits_by_content(reference: ModelProfile) -> None:
    """With a limit below an empty delta's size nothing fits; rows are still cut into
    runs whose content stays within the limit on top of the fixed part (not one delta per
    row), and all of them apply."""
    rows = raw_rows(400, seed=6)
    buf, _, _ = interleaved_buffer(rows, n_partitions=2)
    first = WindowBuffer("m", "1", buf.window_start_ms, buf.window_end_ms)
    c0 = buf.chunks[0]
    first.add(
        BufferedChunk(c0.batch.take(np.array([0])), c0.append_s[:1], c0.received_s),
        buf.partitions[0][:1],
        buf.offsets[0][:1],
    )
    one_row = len(build_delta(first, reference, topic="p", producer_id="t").to_bytes())
    max_bytes = one_row // 2  # below even the fixed part of a delta
    deltas = build_deltas(buf, reference, topic="p", producer_id="t", max_bytes=max_bytes)
    assert 1 < len(deltas) < len(rows) // 4
    assert all(len(d.to_bytes()) <= one_row + max_bytes for d in deltas)
    window = apply_all(deltas)
    assert window.profile.row_count == len(rows)
    x2 = window.profile.features["x2"]
    raw = np.array([r["x2"] for r in rows])
    assert x2.valid_count == raw.size and x2.mean == pytest.approx(raw.mean(), rel=1e-9)


def test_later_flush_of_the_same_window_still_applies(reference: ModelProfile) -> None:
    """Split deltas of flush 1, then of flush 2 (higher offsets), into one window."""
    rows = raw_rows(600, seed=7)
    first, _, _ = interleaved_buffer(rows[:300], n_partitions=2)
    state = AggregateState(WINDOW_MS, allowed_lateness_ms=10_000, retention_ms=600_000)
    size = len(build_delta(first, reference, topic="p", producer_id="t").to_bytes())
    for d in build_deltas(first, reference, topic="p", producer_id="t", max_bytes=size // 3):
        assert state.apply(d, arrival_ms=0)
    second = WindowBuffer("m", "1", first.window_start_ms, first.window_end_ms)
    for c, p, o in zip(first.chunks, first.partitions, first.offsets, strict=True):
        second.add(c, p, o + 500)  # the same rows again, as later records
    for d in build_deltas(second, reference, topic="p", producer_id="t", max_bytes=size // 3):
        assert state.apply(d, arrival_ms=0)
    (window,) = state.windows.values()
    assert window.profile.row_count == 600


def test_add_rejects_misaligned_offsets(reference: ModelProfile) -> None:
    one = decode_predictions([record(0, raw_rows(1, seed=8)[0])], window_ms=WINDOW_MS)
    (batch,) = one.batches.values()
    buf = WindowBuffer("m", "1", batch.window_start_ms, batch.window_start_ms + WINDOW_MS)
    with pytest.raises(ValueError, match="1 rows"):
        buf.add(BufferedChunk(batch, batch.timestamps, T0), np.zeros(2), np.zeros(2))
