"""False alarms, bad input and staleness, on a real broker."""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson

from streamproc.contracts import validate
from streamproc.contracts.framing import deadletter_header_object
from streamproc.monitor.worker import state_topic_name
from tests.integration.monitor_harness import (
    AlertWatcher,
    Feed,
    expected_counts,
    monitor_config,
    records,
    reference_profile,
    running_worker,
    wait_drained,
    window_counts,
)
from tests.support.kafka import consume_n

YEAR_S = 365 * 86_400


def test_no_false_alarms_on_200k_reference_events(
    bootstrap_servers: str, unique_topic: Callable[[str], str]
) -> None:
    prefix = unique_topic("nofalse")
    config = monitor_config(bootstrap_servers, prefix)
    start = time.time() - YEAR_S  # historical: replayed at full speed
    recs = records(200_000, start_s=start, rate=1_000, seed=11)  # 200 s of events: 20 windows
    watcher = AlertWatcher(bootstrap_servers, config.topics.alerts)
    try:
        with running_worker(config, [reference_profile()]) as run:
            Feed(bootstrap_servers, config.topics.predictions).send(recs)
            assert wait_drained(run.worker, 200_000, 180)
            time.sleep(1.5)  # one more evaluation tick
            registry = run.worker.metrics.registry
            lags = [
                registry.get_sample_value(
                    "streamproc_consumer_lag_messages",
                    {"stage": "ingest", "topic": config.topics.predictions, "partition": str(p)},
                )
                for p in range(4)
            ]
            assert lags == [0.0, 0.0, 0.0, 0.0]
            assert registry.get_sample_value("streamproc_replaying", {"model": "credit"}) == 1
        # Also counted at the source, so an alert still in flight cannot hide from the test.
        for status in ("firing", "resolved"):
            assert not registry.get_sample_value(
                "streamproc_alerts_emitted_total", {"status": status}
            )
        counts = window_counts(bootstrap_servers, state_topic_name(config.topics.profiles))
    finally:
        watcher.close()
    assert counts == expected_counts(recs, config.windows.size_ms)
    assert len(counts) >= 20
    firing = [(a["check"], a.get("feature"), a["summary"]) for a in watcher.alerts]
    assert firing == []


def test_bad_records_are_dead_lettered_and_valid_ones_counted_once(
    bootstrap_servers: str, unique_topic: Callable[[str], str]
) -> None:
    prefix = unique_topic("badinput")
    config = monitor_config(bootstrap_servers, prefix, limits={"max_message_bytes": 4096})
    good = records(3_000, start_s=time.time(), rate=1_000, seed=3)
    valid = orjson.loads(good[0][1])
    bad: list[tuple[bytes, bytes | None, str]] = [
        (b"b1", b"{not json", "malformed_json"),
        (b"b2", b"[1, 2, 3]", "not_an_object"),
        (b"b3", orjson.dumps({k: v for k, v in valid.items() if k != "model"}), "missing_field"),
        (b"b4", orjson.dumps({**valid, "timestamp": "yesterday"}), "bad_timestamp"),
        (b"b5", orjson.dumps({**valid, "features": [1, 2]}), "wrong_type"),
        (b"b6", orjson.dumps({**valid, "pad": "x" * 5000}), "oversized"),
        (b"b7", orjson.dumps({**valid, "model": "nobody"}), "unknown_model"),
        (b"b8", None, "malformed_json"),
    ]
    stream: list[tuple[bytes, bytes | None]] = []
    for i, rec in enumerate(good):
        stream.append(rec)
        if i % 375 == 0 and i // 375 < len(bad):
            key, value, _reason = bad[i // 375]
            stream.append((key, value))
    with running_worker(config, [reference_profile()]) as run:
        Feed(bootstrap_servers, config.topics.predictions).send(stream)
        assert wait_drained(run.worker, len(good), 60)
        dlq = consume_n(
            bootstrap_servers, config.topics.deadletter, prefix + ".dlq", n=len(bad), linger_s=2
        )
        registry = run.worker.metrics.registry
        by_reason = {
            reason: registry.get_sample_value("streamproc_deadletter_total", {"reason": reason})
            for _k, _v, reason in bad
        }
        time.sleep(2)
    counts = window_counts(bootstrap_servers, state_topic_name(config.topics.profiles))

    assert counts == expected_counts(good, config.windows.size_ms)
    assert sum(counts.values()) == len(good)
    got = {m.key(): deadletter_header_object(m.headers() or []) for m in dlq}
    assert len(dlq) == len(bad)
    for key, _value, reason in bad:
        headers = got[key]
        validate("deadletter", headers)
        assert headers["streamproc.reason"] == reason, (key, headers)
        assert headers["streamproc.source.topic"] == config.topics.predictions
    assert {m.key(): m.value() for m in dlq} == {k: v for k, v, _ in bad}
    assert by_reason["malformed_json"] == 2
    assert all(by_reason[r] == 1 for _k, _v, r in bad if r != "malformed_json")


def test_staleness_fires_when_traffic_stops(
    bootstrap_servers: str, unique_topic: Callable[[str], str]
) -> None:
    prefix = unique_topic("stale")
    config = monitor_config(bootstrap_servers, prefix, freshness={"staleness": "4s"})
    watcher = AlertWatcher(bootstrap_servers, config.topics.alerts)
    try:
        with running_worker(config, [reference_profile()]):
            feed = Feed(bootstrap_servers, config.topics.predictions)
            feed.paced(records(3_000, start_s=time.time(), rate=1_000, seed=5), 1_000)
            stopped = time.time()
            alert = watcher.wait_for(
                lambda a: a["check"] == "staleness" and a["status"] == "firing", 20
            )
            assert alert is not None, watcher.alerts
            fired_after = watcher.received_at[watcher.alerts.index(alert)] - stopped
            assert 4.0 <= fired_after <= 10.0, fired_after
            assert alert["severity"] == "critical" and alert["model"] == "credit"

            feed.paced(records(2_000, start_s=time.time(), rate=1_000, seed=6), 1_000)
            resolved = watcher.wait_for(
                lambda a: a["check"] == "staleness" and a["status"] == "resolved", 20
            )
            assert resolved is not None, watcher.alerts
    finally:
        watcher.close()
