"""Event time that one record cannot hijack: confirmed watermarks in ingest and aggregate."""

from __future__ import annotations

import time

import numpy as np

from streamproc.core.model_profile import ModelProfile
from streamproc.monitor.state import ModelKey, WindowKey
from streamproc.monitor.store import AggregateStore
from streamproc.monitor.watermark import (
    WATERMARK_HEADER,
    Watermarks,
    parse_watermark_header,
)
from tests.unit.monitor.test_evaluator import (
    LATENESS_MS,
    T0_MS,
    WINDOW_MS,
    _deltas,
    _harness,
    _records,
)
from tests.unit.monitor.test_evaluator import reference as reference  # a fixture

KEY = (0, "m", "1")
POISON_MS = 253_402_300_799_000  # 9999-12-31T23:59:59Z
WALL_MS = 1_800_000_000_000


def test_one_far_future_record_never_moves_the_confirmed_newest_event_time() -> None:
    marks = Watermarks()
    real = np.arange(T0_MS, T0_MS + 10_000, 1_000, dtype=np.int64)
    marks.advance(KEY, np.append(real[:5], POISON_MS))
    assert marks.newest_ms(KEY) == real[3]  # the 3rd largest: never 9999
    marks.advance(KEY, real[5:])
    assert marks.newest_ms(KEY) == real[-3]  # real data keeps moving it past the outlier
    marks.advance(KEY, np.array([POISON_MS - 1], np.int64))  # a second outlier
    assert marks.newest_ms(KEY) == real[-1]
    marks.advance(KEY, np.array([POISON_MS - 2], np.int64))  # a third confirms it
    assert marks.newest_ms(KEY) == POISON_MS - 2


def test_a_few_outliers_in_a_large_batch_never_confirm_each_other() -> None:
    marks = Watermarks(confirmations=3, confirm_share=0.01)
    real = np.arange(T0_MS, T0_MS + 2_000_000, 1_000, dtype=np.int64)  # 2,000 rows
    poison = np.full(19, T0_MS + 30 * 86_400_000, np.int64)  # < 1 % of the batch
    batch = np.concatenate([real, poison])
    after = marks.future_after_ms(KEY, batch)
    k = int(np.ceil(0.01 * len(batch)))  # the k-th largest decides
    assert after == int(np.sort(batch)[-k]) + marks.max_jump_ms
    assert marks.too_far_ahead(batch, after, WALL_MS).sum() == len(poison)
    marks.advance(KEY, real)
    assert marks.newest_ms(KEY) == int(np.sort(real)[-int(np.ceil(0.01 * len(real)))])


def test_nothing_is_confirmed_before_enough_records() -> None:
    marks = Watermarks(confirmations=3)
    marks.advance(KEY, np.array([T0_MS, T0_MS + 1], np.int64))
    assert marks.newest_ms(KEY) == 0
    assert marks.future_after_ms(KEY, np.array([POISON_MS], np.int64)) is not None
    assert Watermarks().future_after_ms(KEY, np.array([POISON_MS], np.int64)) is None


def test_rows_far_ahead_of_their_partition_are_flagged_unless_near_the_wall_clock() -> None:
    marks = Watermarks(max_jump_ms=3_600_000, skew_ms=300_000)
    history = np.arange(T0_MS, T0_MS + 60_000, 1_000, dtype=np.int64)
    marks.advance(KEY, history)
    batch = np.array(
        [
            T0_MS + 61_000,  # normal progress
            T0_MS + 2 * 3_600_000,  # two hours ahead of its partition: suspect
            WALL_MS - 60_000,  # near the wall clock (live data after an outage): kept
        ],
        np.int64,
    )
    after = marks.future_after_ms(KEY, batch)
    assert after == T0_MS + 61_000 + 3_600_000  # 3rd largest of history ∪ batch, + jump
    flagged = marks.too_far_ahead(batch, after, WALL_MS)
    assert flagged.tolist() == [False, True, False]

    # a burst of three confirms a real jump (a replay resuming after a gap)
    burst = np.full(3, T0_MS + 5 * 3_600_000, np.int64)
    after = marks.future_after_ms(KEY, burst)
    assert after is not None and not marks.too_far_ahead(burst, after, WALL_MS).any()


def test_the_header_round_trips_and_tolerates_garbage() -> None:
    assert parse_watermark_header([(WATERMARK_HEADER, b"1700000000000")]) == 1_700_000_000_000
    assert parse_watermark_header({WATERMARK_HEADER: b"12"}) == 12
    assert parse_watermark_header([(WATERMARK_HEADER, b"x")]) is None
    assert parse_watermark_header(None) is None


def _feed_with_watermark(
    store: AggregateStore,
    reference: ModelProfile,
    records: list[bytes],
    watermark_ms: int,
    offset: int,
) -> None:
    for delta in _deltas(records, reference, offset):
        store.apply(delta, 0, WALL_MS, watermark_ms)


def test_a_poison_delta_neither_purges_nor_blocks_real_windows(reference: ModelProfile) -> None:
    h = _harness(reference, replay=True)
    h.store.state.retention_ms = 10 * WINDOW_MS
    first, _ = _records(T0_MS, WINDOW_MS, 600, seed=1)
    _feed_with_watermark(h.store, reference, first, T0_MS + WINDOW_MS - 20, 0)
    poison = _records(POISON_MS - 1_000, 10, 1, seed=2)[0]  # one record in year 9999
    confirmed = T0_MS + WINDOW_MS - 20  # ingest's watermark did not move
    _feed_with_watermark(h.store, reference, poison, confirmed, 600)
    h.store.evaluate(wall_ms=WALL_MS)
    mkey = ModelKey("m", "1")
    assert h.store.state.clocks[mkey].newest_event_ms == confirmed
    assert WindowKey("m", "1", T0_MS) in h.store.state.windows  # not purged
    assert not h.store.state.windows[WindowKey("m", "1", T0_MS)].final  # not closed early

    second, _ = _records(T0_MS + WINDOW_MS + LATENESS_MS, 2_000, 600, seed=3)
    newest = T0_MS + WINDOW_MS + LATENESS_MS + 2_000 - 2_000 // 600
    _feed_with_watermark(h.store, reference, second, newest, 601)
    h.store.evaluate(wall_ms=WALL_MS)
    assert h.store.state.windows[WindowKey("m", "1", T0_MS)].final  # closes as it should
    assert h.store.state.open_window(mkey).start_ms == T0_MS + WINDOW_MS  # type: ignore[union-attr]


def test_the_checkpointed_clock_wins_over_a_restored_poison_window(
    reference: ModelProfile,
) -> None:
    h = _harness(reference, replay=True)
    first, _ = _records(T0_MS, WINDOW_MS, 600, seed=4)
    _feed_with_watermark(h.store, reference, first, T0_MS + 5_000, 0)
    _feed_with_watermark(
        h.store, reference, _records(POISON_MS, 10, 1, seed=5)[0], T0_MS + 5_000, 600
    )
    plan = h.store.checkpoint()

    restored = _harness(reference, replay=True).store
    assert restored.restore_records(reversed(plan.records)) == len(plan.records)
    assert restored.state.clocks[ModelKey("m", "1")].newest_event_ms == T0_MS + 5_000


def test_the_model_watermark_waits_for_the_slowest_partition_unless_it_is_idle() -> None:
    marks = Watermarks(idle_s=5.0)
    fast, slow = (0, "m", "1"), (1, "m", "1")
    marks.advance(fast, np.arange(T0_MS, T0_MS + 30_000, 100, dtype=np.int64))
    marks.advance(slow, np.arange(T0_MS, T0_MS + 10_000, 100, dtype=np.int64))
    fast_newest, slow_newest = marks.newest_ms(fast), marks.newest_ms(slow)
    assert slow_newest < fast_newest
    now = time.monotonic()
    assert marks.model_watermark_ms("m", "1", now_s=now) == slow_newest  # both active
    # the slow partition stops moving while the fast one goes on: after 5 s it is idle
    marks.advance(fast, np.arange(T0_MS + 30_000, T0_MS + 40_000, 100, dtype=np.int64))
    marks._advanced_at[fast] = now + 6.0
    assert marks.model_watermark_ms("m", "1", now_s=now + 6.0) == marks.newest_ms(fast)
    assert marks.model_watermark_ms("x", "1", now_s=now) == 0
