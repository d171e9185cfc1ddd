"""StreamProfiler without a broker: the deltas it produces, and what the aggregate's
offset dedupe makes of them when they are sent again (the module's guarantee, stated
case by case)."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from streamproc.embed.profiler import DeliveryFailed, StreamProfiler
from streamproc.monitor.delta import ProfileDelta
from streamproc.monitor.state import AggregateState
from streamproc.monitor.watermark import WATERMARK_HEADER, parse_watermark_header
from tests.integration.monitor_harness import expected_counts, records, reference_profile

WINDOW_MS = 10_000


class FakeProducer:
    """confluent-kafka's produce/flush/poll, delivering (or failing) at flush."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, Any]] = []
        self.fail_next = 0
        self._queue: list[tuple[Any, tuple[str, bytes, bytes, Any]]] = []

    def produce(self, topic: str, value: bytes, key: bytes, headers: Any, on_delivery: Any) -> None:
        self._queue.append((on_delivery, (topic, key, value, headers)))

    def poll(self, _timeout: float) -> int:
        return 0

    def flush(self, _timeout: float) -> int:
        queue, self._queue = self._queue, []
        for callback, msg in queue:
            if self.fail_next:
                self.fail_next -= 1
                callback("broker down", None)
            else:
                self.sent.append(msg)
                callback(None, None)
        return 0

    def deltas(self) -> list[tuple[ProfileDelta, int | None]]:
        return [
            (ProfileDelta.from_bytes(v), parse_watermark_header(h)) for _t, _k, v, h in self.sent
        ]


@pytest.fixture(scope="module")
def reference() -> Any:
    return reference_profile(n=5_000)


def profiler(reference: Any, producer: FakeProducer, **kw: Any) -> StreamProfiler:
    return StreamProfiler(
        bootstrap_servers="unused:9092",
        profiles_topic="p.profiles",
        references=[reference],
        source_topic="faust-in",
        window="10s",
        allowed_lateness="2s",
        producer=producer,
        **kw,
    )


def feed(
    prof: StreamProfiler, recs: list[tuple[bytes, bytes]], partitions: int = 3, start: int = 0
) -> None:
    """Record i goes to partition i % partitions at offset i // partitions."""
    for i, (_key, value) in enumerate(recs):
        if i >= start:
            prof.observe(value, partition=i % partitions, offset=i // partitions)


def apply_all(state: AggregateState, producer: FakeProducer) -> list[bool]:
    now = int(time.time() * 1000)
    return [state.apply(d, now, w) for d, w in producer.deltas()]


def counts(state: AggregateState) -> dict[int, int]:
    return {k.start_ms: w.profile.row_count for k, w in state.windows.items()}


def new_state() -> AggregateState:
    return AggregateState(WINDOW_MS, 2_000, 3_600_000)


def test_deltas_are_ingests_per_window_and_partition(reference: Any) -> None:
    recs = records(600, start_s=time.time() - 60, rate=20, seed=1)
    producer = FakeProducer()
    prof = profiler(reference, producer)
    feed(prof, recs)
    assert prof.flush() == len(producer.sent)
    assert prof.stats.accepted == prof.stats.rows_sent == 600
    seen = set()
    for (topic, key, _v, headers), (delta, watermark) in zip(
        producer.sent, producer.deltas(), strict=True
    ):
        assert topic == "p.profiles" and key == b"credit"
        assert [h[0] for h in headers] == [WATERMARK_HEADER] and watermark and watermark > 0
        assert delta.topic == "faust-in" and len(delta.ranges) == 1  # one source partition
        seen.add((delta.window_start_ms, delta.ranges[0][0]))
    assert len(seen) == len(producer.sent)  # one delta per (window, partition)
    state = new_state()
    assert all(apply_all(state, producer))
    assert counts(state) == expected_counts(recs, WINDOW_MS)
    assert prof.flush() == 0  # nothing left


def test_a_resent_delta_and_a_full_reprocessing_are_dropped(reference: Any) -> None:
    recs = records(600, start_s=time.time() - 60, rate=20, seed=2)
    first = FakeProducer()
    prof = profiler(reference, first)
    feed(prof, recs)
    prof.flush()
    state = new_state()
    apply_all(state, first)
    assert not any(apply_all(state, first))  # the same deltas again: all dropped
    again = FakeProducer()  # a restarted app reading everything again, flushing once
    profiler_again = profiler(reference, again)
    feed(profiler_again, recs)
    profiler_again.flush()
    assert not any(apply_all(state, again))
    assert counts(state) == expected_counts(recs, WINDOW_MS)


def test_a_reprocessing_that_runs_past_the_applied_offsets_counts_the_overlap_twice(
    reference: Any,
) -> None:
    """The documented limit: a delta mixing re-read and new rows is merged whole."""
    start_s = time.time() // 10 * 10 - 20  # 600 records in 0.6 s: one window
    recs = records(600, start_s=start_s, rate=1000, seed=3)
    first = FakeProducer()
    prof = profiler(reference, first)
    feed(prof, recs[:300], partitions=1)
    prof.flush()
    state = new_state()
    apply_all(state, first)
    after_crash = FakeProducer()
    prof2 = profiler(reference, after_crash)
    feed(prof2, recs, partitions=1, start=200)  # committed at 200, flushed up to 299
    prof2.flush()
    apply_all(state, after_crash)
    assert counts(state) == {int(start_s * 1000): 600 + 100}  # offsets 200..299 twice


def test_in_process_redelivery_is_skipped(reference: Any) -> None:
    recs = records(300, start_s=time.time() - 60, rate=20, seed=4)
    producer = FakeProducer()
    prof = profiler(reference, producer)
    feed(prof, recs)
    prof.flush()
    feed(prof, recs)  # the consumer reads the same offsets again
    assert prof.stats.duplicates == 300
    assert prof.flush() == 0
    assert prof.stats.rows_sent == 300


def test_a_failed_flush_sends_the_same_deltas_again(reference: Any) -> None:
    recs = records(300, start_s=time.time() - 60, rate=20, seed=5)
    producer = FakeProducer()
    prof = profiler(reference, producer)
    feed(prof, recs)
    producer.fail_next = 1
    with pytest.raises(DeliveryFailed):
        prof.flush()
    delivered = [v for _t, _k, v, _h in producer.sent]
    feed(prof, records(30, start_s=time.time() - 5, rate=20, seed=6), start=0)  # skipped
    prof.flush()
    resent = [v for _t, _k, v, _h in producer.sent[len(delivered) :]]
    assert len(resent) == 1 and resent[0] not in delivered  # only the failed one, as it was
    state = new_state()
    assert all(apply_all(state, producer))
    assert counts(state) == expected_counts(recs, WINDOW_MS)


def test_rejects_are_counted_and_reported(reference: Any) -> None:
    got: list[tuple[int, int, str]] = []
    prof = profiler(
        reference, FakeProducer(), on_reject=lambda _v, p, o, reason, _d: got.append((p, o, reason))
    )
    rec = orjson.loads(records(1, start_s=time.time() - 5, rate=1, seed=7)[0][1])
    prof.observe({**rec, "model": "nobody"}, partition=0, offset=0)
    prof.observe(b"not json", partition=0, offset=1)
    prof.observe(rec, partition=0, offset=2)  # a decoded dict is accepted too
    prof.flush()
    assert [(p, o) for p, o, _ in got] == [(0, 0), (0, 1)]
    assert prof.stats.accepted == 1 and sum(prof.stats.rejected.values()) == 2
