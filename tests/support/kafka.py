"""A real Apache Kafka broker for the integration tests and benchmarks, and small
confluent-kafka helpers around it.

Broker, in order of preference (:func:`acquire`): ``KAFKA_BOOTSTRAP_SERVERS``;
testcontainers' Kafka module when a Docker engine answers; the local KRaft broker from
the official jars on a free port with a temporary data directory. Each source returns a
bootstrap address and a stop callable. The benchmarks (``benchmarks/_common.py``) use
:func:`from_environment` or :func:`from_local_jars`.

Helpers: :func:`create_topic` (and wait until its partitions are there),
:func:`produce_all` (keyed records, delivery checked), :func:`consume_n` (through a
consumer group), :func:`latest_values` (the latest value per key, as compaction keeps).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streamproc.broker.jars import BrokerSetupError
from streamproc.broker.local import LocalBroker, free_port, wait_ready


@dataclass
class Broker:
    bootstrap_servers: str
    source: str
    stop: Callable[[], None]
    pid: int | None = None
    """The broker process this session started (None for one it did not start)."""


def kafka_required() -> bool:
    """In CI (or when asked) a missing broker fails the test instead of skipping it."""
    return os.environ.get("CI", "").lower() == "true" or os.environ.get(
        "STREAMPROC_REQUIRE_KAFKA"
    ) in {"1", "true", "yes"}


def from_environment() -> Broker | None:
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not servers:
        return None
    wait_ready(servers.split(",")[0], timeout_s=30)
    return Broker(servers, "KAFKA_BOOTSTRAP_SERVERS", lambda: None)


def docker_answers() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        result = subprocess.run([docker, "info"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def from_testcontainers() -> Broker | None:
    if not docker_answers():
        return None
    from testcontainers.kafka import KafkaContainer

    container = KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft()
    container.start()
    return Broker(container.get_bootstrap_server(), "testcontainers", container.stop)


def from_local_jars(attempts: int = 3, prefix: str = "streamproc-test-kafka-") -> Broker:
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    broker = LocalBroker(data_dir)
    last: Exception | None = None
    for _ in range(attempts):  # a free port can be taken by someone else before we bind it
        try:
            info = broker.start(free_port())
        except BrokerSetupError as exc:
            last = exc
            if "already in use" not in str(exc) and "not ready" not in str(exc):
                raise
            continue

        def stop() -> None:
            broker.stop()
            shutil.rmtree(data_dir, ignore_errors=True)

        return Broker(info.bootstrap_servers, f"local jars ({info.log_file})", stop, info.pid)
    raise BrokerSetupError(f"could not start a local broker after {attempts} attempts: {last}")


def acquire() -> Broker:
    """A running broker, or BrokerSetupError saying why none could be had."""
    reasons = []
    for source in (from_environment, from_testcontainers):
        try:
            broker = source()
        except Exception as exc:
            reasons.append(f"{source.__name__}: {exc}")
            continue
        if broker is not None:
            return broker
    try:
        return from_local_jars()
    except Exception as exc:
        reasons.append(f"from_local_jars: {exc}")
    raise BrokerSetupError("no Kafka broker available: " + "; ".join(reasons))


# ----------------------------------------------------------------------------- helpers


def create_topic(bootstrap: str, name: str, partitions: int = 1, **config: str) -> None:
    """Create ``name`` and wait until the broker reports all its partitions."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, partitions, 1, config=config)])
    for future in futures.values():
        future.result(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        meta = admin.list_topics(name, timeout=5).topics.get(name)
        if meta is not None and meta.error is None and len(meta.partitions) == partitions:
            return
        time.sleep(0.1)
    raise TimeoutError(f"topic {name} not ready")


def produce_all(bootstrap: str, topic: str, records: Iterable[tuple[bytes, bytes]]) -> int:
    """Produce ``(key, value)`` records and flush; raises if any was not delivered."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})
    errors: list[str] = []

    def on_delivery(err: object, _msg: Message) -> None:
        if err is not None:
            errors.append(str(err))

    count = 0
    for key, value in records:
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
        producer.poll(0)
    remaining = producer.flush(30)
    if remaining or errors:
        raise KafkaException(f"{remaining} undelivered, errors: {errors[:3]}")
    return count


def consume_n(
    bootstrap: str,
    topic: str,
    group: str,
    n: int,
    timeout_s: float = 60.0,
    commit: bool = True,
    linger_s: float = 0.0,
) -> list[Message]:
    """Consume ``n`` messages (or until timeout) through a consumer group.

    With ``linger_s`` the consumer keeps polling that long after reaching ``n``, so a
    test can see duplicates or extras that should not exist. Read committed, as a
    downstream consumer reads: the worker's stages write dead-letters, alerts and retrain
    events in transactions, and an aborted one must not count.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    out: list[Message] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < n and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=min(1000, n - len(out)), timeout=0.5):
                if msg.error():
                    raise KafkaException(msg.error())
                out.append(msg)
        linger_until = time.monotonic() + linger_s
        while time.monotonic() < linger_until:
            for msg in consumer.consume(num_messages=1000, timeout=0.2):
                if not msg.error():
                    out.append(msg)
        if commit and out:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return out


def latest_values(
    bootstrap: str,
    topic: str,
    *,
    timeout_s: float = 30.0,
    config: Mapping[str, Any] | None = None,
) -> dict[bytes, bytes | None]:
    """The latest value per key (None for a tombstone) of every partition of ``topic``,
    read committed from the beginning to the end offsets at the start: what a compacted
    topic keeps. ``config`` adds consumer settings (e.g. ``max.partition.fetch.bytes``)."""
    consumer = Consumer(
        {
            **(config or {}),
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}.read.{time.monotonic_ns()}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    latest: dict[bytes, bytes | None] = {}
    try:
        partitions = list(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        ends = {}
        for p in partitions:
            lo, hi = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if hi > lo:
                ends[p] = hi
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        deadline = time.monotonic() + timeout_s
        while ends and time.monotonic() < deadline:
            for msg in consumer.consume(1000, timeout=0.3):
                if msg.error() is None:
                    latest[msg.key() or b""] = msg.value()
            positions = consumer.position([TopicPartition(topic, p) for p in ends])
            if all(tp.offset >= ends[tp.partition] for tp in positions):
                break
    finally:
        consumer.close()
    return latest
