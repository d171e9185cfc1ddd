"""Bad input never wins: 100,000 hostile records through the worker on real Kafka.

Every produced record is counted in exactly one window or dead-lettered exactly once
(never both, never neither), with the reason its case promises; the worker never
exits; and a clean phase after the hostile one is counted exactly and its drift is
alerted on. Record by record: each record's (partition, offset) comes from its
delivery report, each dead-letter names its source (partition, offset) in headers,
and the windows' counts must equal the event times of exactly the records that were
not dead-lettered.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime

import orjson
from confluent_kafka import Consumer, Message, Producer
from hypothesis import strategies as st

from streamproc.monitor.worker import state_topic_name
from tests.integration.monitor_harness import (
    AlertWatcher,
    accounted,
    monitor_config,
    records,
    reference_profile,
    running_worker,
    wait_until,
    window_counts,
)
from tests.support.hostile import COUNT, Sample, hostile_mix, hypothesis_samples

N_VALID = 40_000
N_HOSTILE = 100_000
N_CLEAN = 60_000
WINDOW_MS = 10_000
DRIFTED = "num_1"


def _produce(bootstrap: str, topic: str, samples: list[Sample]) -> list[tuple[int, int]]:
    """Produce every sample; returns each one's (partition, offset)."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all"})
    where: list[tuple[int, int]] = [(-1, -1)] * len(samples)
    errors: list[str] = []

    def delivered(i: int) -> Callable[[object, Message], None]:
        def on_delivery(err: object, msg: Message) -> None:
            if err is not None:
                errors.append(str(err))
            else:
                where[i] = (msg.partition() or 0, msg.offset() or 0)

        return on_delivery

    for i, s in enumerate(samples):
        while True:
            try:
                producer.produce(topic, key=s.key, value=s.value, on_delivery=delivered(i))
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(60) == 0 and not errors, errors[:3]
    return where


def _dead_letters(bootstrap: str, topic: str, expect: int) -> list[tuple[int, int, str]]:
    """(source partition, source offset, reason) of every committed dead-letter."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}.read.{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    out: list[tuple[int, int, str]] = []
    deadline = time.monotonic() + 120
    quiet_until = None
    try:
        while time.monotonic() < deadline:
            batch = consumer.consume(num_messages=5_000, timeout=0.5)
            for msg in batch:
                assert msg.error() is None, msg.error()
                h = {k: (v or b"").decode() for k, v in msg.headers() or []}
                out.append(
                    (
                        int(h["streamproc.source.partition"]),
                        int(h["streamproc.source.offset"]),
                        h["streamproc.reason"],
                    )
                )
            if len(out) >= expect:  # keep reading a little: a duplicate would show
                quiet_until = quiet_until or time.monotonic() + 3
                if time.monotonic() > quiet_until:
                    break
    finally:
        consumer.close()
    return out


def test_hostile_stream_every_record_once_and_the_clean_phase_exact(
    bootstrap_servers: str, unique_topic: Callable[[str], str]
) -> None:
    now = time.time()
    start = now - 140  # live data: all within the last minutes, none later than now
    valid = records(N_VALID, start_s=start, rate=N_VALID / 60, seed=71)
    hostile = hostile_mix(valid, N_HOSTILE, seed=72, now_s=now)
    clean_start = start + 70
    clean = records(N_CLEAN, start_s=clean_start, rate=N_CLEAN / 60, seed=73, shift={DRIFTED: 1.5})
    samples = hostile + [
        Sample(k, v, COUNT, "clean", float(orjson.loads(v)["timestamp"])) for k, v in clean
    ]
    config = monitor_config(
        bootstrap_servers,
        unique_topic("hostile"),
        windows={"size": "10s", "allowed_lateness": "2s", "rolling_horizon": "30s"},
    )
    watcher = AlertWatcher(bootstrap_servers, config.topics.alerts)
    try:
        with running_worker(config, [reference_profile()]) as run:
            where = _produce(bootstrap_servers, config.topics.predictions, samples)
            registry = run.worker.metrics.registry
            assert wait_until(lambda: sum(accounted(run.worker)) >= len(samples), 240)
            assert run.thread.is_alive() and not run.worker.errors  # the worker never exits
            drift = watcher.wait_for(
                lambda a: (
                    a["check"] == "feature_drift"
                    and a.get("feature") == DRIFTED
                    and a["status"] == "firing"
                    and _epoch_s(a["window"]["start"]) >= clean_start - WINDOW_MS / 1000
                ),
                60,
            )
            assert drift is not None, "the clean phase's drift was not alerted"
            unreadable = registry.get_sample_value("streamproc_unreadable_deltas_total", {})
            assert unreadable == 0

            _counted, n_dead = accounted(run.worker)
            dead = _dead_letters(bootstrap_servers, config.topics.deadletter, n_dead)
            assert len(dead) == n_dead
            rejected = _check_once(samples, where, dead)

            # counted exactly: the windows hold exactly the records not dead-lettered
            expected: Counter[int] = Counter()
            for i, s in enumerate(samples):
                if i not in rejected:
                    assert s.ts is not None
                    expected[int(s.ts * 1000) // WINDOW_MS * WINDOW_MS] += 1
            state = state_topic_name(config.topics.profiles)
            assert wait_until(
                lambda: window_counts(bootstrap_servers, state) == dict(expected), 60, every_s=2
            ), (window_counts(bootstrap_servers, state), dict(expected))
            assert len(rejected) + sum(expected.values()) == len(samples)
            assert sum(1 for s in samples if s.case != "valid" and s.case != "clean") == N_HOSTILE
    finally:
        watcher.close()


def _epoch_s(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def _check_once(
    samples: list[Sample], where: list[tuple[int, int]], dead: list[tuple[int, int, str]]
) -> dict[int, str]:
    """Each sample's outcome matches its promise; returns sample index → reason."""
    index = {w: i for i, w in enumerate(where)}
    places = Counter((p, o) for p, o, _r in dead if (p, o) in index)
    assert not places or max(places.values()) == 1  # dead-lettered at most once
    rejected = {index[(p, o)]: reason for p, o, reason in dead if (p, o) in index}
    wrong = Counter()
    for i, s in enumerate(samples):
        outcome = rejected.get(i, COUNT)
        ok = outcome == s.expect if isinstance(s.expect, str) else outcome in s.expect
        if not ok:
            wrong[(s.case, outcome)] += 1
    assert not wrong, wrong
    return rejected


def test_hypothesis_drawn_records_through_one_live_worker(
    bootstrap_servers: str, unique_topic: Callable[[str], str]
) -> None:
    """Schema-led Hypothesis strategies against the running worker: each drawn list of
    records (valid, hostile, valid-but-extreme) is accounted for record by record, and
    at the end the windows hold exactly the records never dead-lettered."""
    from hypothesis import HealthCheck, given, settings

    now = time.time()
    pool = records(3_000, start_s=now - 90, rate=3_000 / 60, seed=81)
    # one-minute windows and two minutes of lateness: the drawn order is never late
    config = monitor_config(
        bootstrap_servers,
        unique_topic("hypothesis"),
        windows={"size": "1m", "allowed_lateness": "2m", "rolling_horizon": "5m"},
    )
    produced: list[Sample] = []
    places: list[tuple[int, int]] = []
    with running_worker(config, [reference_profile()]) as run:

        @settings(
            max_examples=8,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(st.lists(hypothesis_samples(pool, now), min_size=1, max_size=120))
        def check(samples: list[Sample]) -> None:
            where = _produce(bootstrap_servers, config.topics.predictions, samples)
            produced.extend(samples)
            places.extend(where)
            assert wait_until(lambda: sum(accounted(run.worker)) >= len(produced), 60)
            assert run.thread.is_alive() and not run.worker.errors
            _counted, n_dead = accounted(run.worker)
            dead = _dead_letters(bootstrap_servers, config.topics.deadletter, n_dead)
            _check_once(samples, where, dead)

        check()
        _counted, n_dead = accounted(run.worker)
        dead = _dead_letters(bootstrap_servers, config.topics.deadletter, n_dead)
        rejected = _check_once(produced, places, dead)
        expected: Counter[int] = Counter(
            int((s.ts or 0) * 1000) // 60_000 * 60_000
            for i, s in enumerate(produced)
            if i not in rejected
        )
        state = state_topic_name(config.topics.profiles)
        assert wait_until(
            lambda: window_counts(bootstrap_servers, state) == dict(expected), 60, every_s=2
        ), (window_counts(bootstrap_servers, state), dict(expected))
