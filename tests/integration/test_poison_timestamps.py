"""A poisoned timestamp, live or in a replay, neither purges nor blocks real windows."""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson

from streamproc.monitor.worker import state_topic_name
from tests.integration.monitor_harness import (
    Feed,
    accounted,
    expected_counts,
    monitor_config,
    records,
    reference_profile,
    running_worker,
    wait_until,
    window_counts,
)

RATE = 1_000.0
DAY_S = 86_400


def _with_timestamp(rec: tuple[bytes, bytes], ts: float | str) -> tuple[bytes, bytes]:
    key, value = rec
    body = orjson.loads(value)
    body["timestamp"] = ts
    body["request_id"] = f"poison-{body['request_id']}"
    return key, orjson.dumps(body)


def _run(
    bootstrap: str, prefix: str, real: list[tuple[bytes, bytes]], poison: list[tuple[bytes, bytes]]
) -> tuple[dict[int, int], dict[str, float], int]:
    config = monitor_config(bootstrap, prefix, windows={"size": "5s", "allowed_lateness": "1s"})
    # poison records interleaved after the partitions have real data (every 97th record)
    stream = list(real[:2_000])
    rest = real[2_000:]
    for i, rec in enumerate(poison):
        stream += [*rest[i * 97 : (i + 1) * 97], rec]
    stream += rest[len(poison) * 97 :]
    with running_worker(config, [reference_profile()]) as run:
        Feed(bootstrap, config.topics.predictions).send(stream)
        registry = run.worker.metrics.registry

        def value(name: str, labels: dict[str, str]) -> float:
            return registry.get_sample_value(name, labels) or 0.0

        def settled() -> bool:
            published = value("streamproc_deltas_published_total", {})
            applied = value("streamproc_deltas_applied_total", {})
            return sum(accounted(run.worker)) >= len(stream) and applied >= published > 0

        if not wait_until(settled, 120):
            snapshot = {
                s.name + str(s.labels): s.value
                for m in registry.collect()
                for s in m.samples
                if "events" in s.name or "deadletter" in s.name or "deltas" in s.name
            }
            raise AssertionError(f"not settled after 120 s: {snapshot}, {len(stream)} sent")
        time.sleep(6)  # a checkpoint interval: the state topic holds the latest windows
        reasons = {
            s.labels["reason"]: s.value
            for m in registry.collect()
            if m.name == "streamproc_deadletter"
            for s in m.samples
            if s.name.endswith("_total")
        }
        counted = int(value("streamproc_events_total", {"model": "credit"}))
    counts = window_counts(bootstrap, state_topic_name(config.topics.profiles))
    return counts, reasons, counted


def test_poison_in_a_replay_is_dead_lettered_and_real_windows_are_exact(
    bootstrap_servers: str, unique_topic: Callable[[str], str]
) -> None:
    start = time.time() - 365 * DAY_S  # last year's data, replayed at full speed
    real = records(int(RATE * 20), start_s=start, rate=RATE, seed=61)
    # ahead of the data by a month, yet long before the wall clock: only the partition's
    # own event time can tell these are wrong
    poison = [_with_timestamp(real[i], start + 30 * DAY_S + i) for i in range(20)]
    counts, reasons, counted = _run(bootstrap_servers, unique_topic("poison-replay"), real, poison)

    assert counts == expected_counts(real, 5_000)  # every real window, exactly
    assert counted == len(real)
    assert reasons.get("future_timestamp") == len(poison)  # each poison once, with a reason
