"""The forwarder loop without a broker: what is posted, and when offsets are committed."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest
from confluent_kafka import KafkaException

from streamproc.alerting import Backoff, Forwarder, ForwarderSettings
from streamproc.alerting.client import AlertsRejected
from tests.unit.alerting.fakes import (
    FakeAlertmanager,
    FakeConsumer,
    FakeError,
    FakeMessage,
    lifecycle,
    messages,
)

FAST = Backoff(initial_s=0.001, cap_s=0.002, rng=random.Random(0))


def make(
    consumer: FakeConsumer, am: FakeAlertmanager, **settings: Any
) -> tuple[Forwarder, threading.Event]:
    stop = threading.Event()
    consumer.on_idle = stop.set  # run until the scripted batches are consumed
    forwarder = Forwarder(
        ForwarderSettings(
            alertmanager_url="http://am.test:9093", bootstrap_servers="kafka:9092", **settings
        ),
        client=am,
        backoff=FAST,
        consumer_factory=lambda config: consumer,
    )
    return forwarder, stop


def sample(forwarder: Forwarder, name: str) -> float | None:
    return forwarder.metrics.registry.get_sample_value(f"streamproc_forwarder_{name}")


def test_settings_make_a_manual_commit_consumer_group() -> None:
    settings = ForwarderSettings(
        alertmanager_url="http://am:9093",
        bootstrap_servers="k:9092",
        kafka_client={"security.protocol": "SSL", "enable.auto.commit": "true"},
    )
    config = settings.consumer_config()
    assert config["enable.auto.commit"] is False  # never overridden by client settings
    assert config["group.id"] == "streamproc-alerts-forwarder"
    assert config["security.protocol"] == "SSL"
    assert config["auto.offset.reset"] == "earliest"


def test_firing_and_resolved_are_posted_in_order_then_committed() -> None:
    fired, resolved = lifecycle([True, True, False, False, False])
    consumer = FakeConsumer([messages([fired, resolved], first_offset=41)])
    am = FakeAlertmanager()
    forwarder, stop = make(consumer, am)
    forwarder.run(stop)

    assert len(am.posts) == 1
    firing_post, resolved_post = am.posts[0]
    assert firing_post["labels"] == fired["labels"]
    assert firing_post["startsAt"] == fired["started_at"]
    assert firing_post["endsAt"] == "2024-05-01T13:10:00Z"  # emitted_at 10:10 + 3 h TTL
    assert resolved_post["endsAt"] == resolved["resolved_at"] == "2024-05-01T10:25:00Z"
    assert consumer.commits == [[("alerts", 0, 43)]]  # next offset after 41, 42
    assert consumer.closed
    order = [c for c, _ in consumer.calls if c in ("consume", "commit")]
    assert order[:3] == ["consume", "commit", "consume"]
    assert sample(forwarder, "messages_total") == 2
    assert sample(forwarder, "alerts_posted_total") == 2


def test_each_post_is_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    fired, resolved = lifecycle([True, True, False, False, False])
    consumer = FakeConsumer([messages([fired, resolved])])
    forwarder, stop = make(consumer, FakeAlertmanager(), firing_ttl_ms=10 * 365 * 86_400_000)
    caplog.set_level("INFO", logger="streamproc.alerting")
    forwarder.run(stop)
    assert (
        "posted 2 alert(s): firing StreamprocFeatureDrift fraud/17 car_value (warning); "
        "resolved StreamprocFeatureDrift fraud/17 car_value (warning)"
    ) in caplog.text


def test_escalation_also_resolves_the_previous_severity() -> None:
    _fired, escalated, _resolved = lifecycle([True, True, "critical", False, False, False])
    consumer = FakeConsumer([messages([escalated])])
    am = FakeAlertmanager()
    forwarder, stop = make(consumer, am)
    forwarder.run(stop)
    (posted,) = am.posts
    assert [p["labels"]["severity"] for p in posted] == ["critical", "warning"]
    assert posted[1]["endsAt"] == escalated["emitted_at"]


def test_failed_posts_are_retried_and_nothing_is_committed_before_success() -> None:
    fired, _ = lifecycle([True, True, False, False, False])
    consumer = FakeConsumer([messages([fired])])
    commits_at_attempt: list[int] = []
    am = FakeAlertmanager(failures=3)
    am.on_attempt = lambda n: commits_at_attempt.append(len(consumer.commits))
    forwarder, stop = make(consumer, am)
    forwarder.run(stop)

    assert am.attempts == 4
    assert commits_at_attempt == [0, 0, 0, 0]
    assert consumer.commits == [[("alerts", 0, 1)]]
    assert sample(forwarder, "post_failures_total") == 3
    assert sample(forwarder, "alertmanager_up") == 1
    calls = [c for c, _ in consumer.calls]
    assert "pause" in calls and "poll" in calls  # held, but still polling the group
    assert calls.index("resume") < calls.index("commit")
    assert not consumer.paused


def test_stop_while_alertmanager_is_down_commits_nothing() -> None:
    fired, _ = lifecycle([True, True, False, False, False])
    consumer = FakeConsumer([messages([fired])])
    am = FakeAlertmanager(failures=10**9)
    forwarder, stop = make(consumer, am)
    am.on_attempt = lambda n: stop.set() if n == 3 else None
    forwarder.run(stop)
    assert am.posts == []
    assert consumer.commits == []
    assert consumer.closed
    assert not consumer.paused  # resumed before close


def test_a_rejected_batch_is_logged_and_committed(caplog: pytest.LogCaptureFixture) -> None:
    fired, _ = lifecycle([True, True, False, False, False])
    consumer = FakeConsumer([messages([fired])])
    am = FakeAlertmanager(error=AlertsRejected("answered HTTP 400: bad label"))
    forwarder, stop = make(consumer, am)
    forwarder.run(stop)
    assert am.attempts == 1
    assert consumer.commits == [[("alerts", 0, 1)]]
    assert sample(forwarder, "rejected_total") == 1
    assert "alertmanager rejected 1 alert(s); skipping them: answered HTTP 400" in caplog.text


def test_invalid_messages_are_skipped_but_committed(caplog: pytest.LogCaptureFixture) -> None:
    fired, _ = lifecycle([True, True, False, False, False])
    broken = dict(fired, status="exploded")
    batch = messages([b"not json", broken, fired])
    batch.append(FakeMessage(3, None))  # tombstone
    consumer = FakeConsumer([batch])
    am = FakeAlertmanager()
    forwarder, stop = make(consumer, am)
    forwarder.run(stop)
    (posted,) = am.posts
    assert [p["labels"] for p in posted] == [fired["labels"]]
    assert consumer.commits == [[("alerts", 0, 4)]]
    assert sample(forwarder, "invalid_messages_total") == 2
    assert "skipping message alerts[0]@0: not a valid alert" in caplog.text
    assert "skipping message alerts[0]@1: not a valid alert" in caplog.text


def test_a_batch_of_only_invalid_messages_is_committed_without_a_post() -> None:
    consumer = FakeConsumer([messages([b"{}"])])
    am = FakeAlertmanager()
    forwarder, stop = make(consumer, am)
    forwarder.run(stop)
    assert am.attempts == 0
    assert consumer.commits == [[("alerts", 0, 1)]]


def test_offsets_per_partition_are_the_next_to_read() -> None:
    a, b = lifecycle([True, True, False, False, False])
    batch = [FakeMessage(7, messages([a])[0].value_, 0), FakeMessage(3, messages([b])[0].value_, 2)]
    consumer = FakeConsumer([batch, messages([a], first_offset=8)])
    forwarder, stop = make(consumer, FakeAlertmanager())
    forwarder.run(stop)
    assert consumer.commits == [[("alerts", 0, 8), ("alerts", 2, 4)], [("alerts", 0, 9)]]


def test_kafka_errors_are_logged_and_fatal_ones_raise(caplog: pytest.LogCaptureFixture) -> None:
    consumer = FakeConsumer([[FakeMessage(0, None, error_=FakeError(3))]])
    forwarder, stop = make(consumer, FakeAlertmanager())
    forwarder.run(stop)
    assert "alerts consumer: error 3" in caplog.text
    assert consumer.commits == []

    consumer = FakeConsumer([[FakeMessage(0, None, error_=FakeError(-150, fatal=True))]])
    forwarder, stop = make(consumer, FakeAlertmanager())
    with pytest.raises(KafkaException):
        forwarder.run(stop)
    assert consumer.closed


def test_settings_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        ForwarderSettings(alertmanager_url="http://a", bootstrap_servers="k", batch_size=0)
    with pytest.raises(ValueError, match="firing_ttl_ms"):
        ForwarderSettings(alertmanager_url="http://a", bootstrap_servers="k", firing_ttl_ms=0)
