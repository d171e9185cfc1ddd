"""Kafka client factories, handed to the loops so tests can give them fakes.

A loop never constructs ``Consumer`` or ``Producer`` itself: it asks its
:class:`KafkaClients` with the configuration it needs, and the default factories are
confluent-kafka's own classes.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer

from streamproc.monitor.kafka_log import KAFKA_LOG

log = logging.getLogger(__name__)

ConsumerFactory = Callable[[dict[str, Any]], Consumer]
ProducerFactory = Callable[[dict[str, Any]], Producer]


def logged_consumer(settings: dict[str, Any]) -> Consumer:
    """confluent-kafka's consumer, logging through :data:`KAFKA_LOG` (throttled)."""
    return Consumer({"logger": KAFKA_LOG, **settings})


def logged_producer(settings: dict[str, Any]) -> Producer:
    """confluent-kafka's producer, logging through :data:`KAFKA_LOG` (throttled)."""
    return Producer({"logger": KAFKA_LOG, **settings})


@dataclass(frozen=True)
class KafkaClients:
    """How a loop builds its clients (confluent-kafka's by default)."""

    consumer: ConsumerFactory = logged_consumer
    producer: ProducerFactory = logged_producer


def exactly_once_consumer(
    settings: dict[str, Any], group_id: str, instance_id: str
) -> dict[str, Any]:
    """Consumer settings of a consume–produce stage: ``settings`` (the operator's
    connection and tuning settings) under what exactly-once and replay depend on —
    manual commits through the transaction, read_committed, earliest for a new group,
    cooperative rebalancing and static membership with an ``instance_id``."""
    return {
        **settings,
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "partition.assignment.strategy": "cooperative-sticky",
        **static_membership(instance_id),
    }


def transactional_producer(
    clients: KafkaClients, settings: dict[str, Any], transactional_id: str
) -> Producer:
    """A stage's transactional producer (lz4, 20 ms linger unless ``settings`` say
    otherwise), fenced in and with its first transaction open."""
    producer = clients.producer(
        {
            "linger.ms": 20,
            "compression.type": "lz4",
            **settings,
            "transactional.id": transactional_id,
            "message.max.bytes": 32 * 1024 * 1024,
        }
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    return producer


def close_clients(
    consumer: Consumer | None, *producers: Producer | None, failed: bool = False
) -> None:
    """Close a stage's clients. After a failure nothing waits for Kafka: the producers'
    queued messages are purged (they belong to an uncommitted transaction, or to alerts
    whose deciding state was not checkpointed, so both are produced again)."""
    if consumer is not None:
        try:
            consumer.close()
        except (KafkaException, RuntimeError) as exc:
            log.warning("closing consumer: %s", exc)
    for producer in producers:
        if producer is None:
            continue
        if failed:
            try:
                producer.purge()
            except KafkaException as exc:
                log.debug("purge: %s", exc)
            producer.flush(0)
        else:
            producer.flush(5)


def stage_identity(group_id: str, instance_id: str, stage: str) -> str:
    """The transactional id of one stage of one worker. With an ``instance_id`` it is
    stable across restarts (``<group>-<instance>``), so the restarted producer's
    ``init_transactions`` fences the killed one and aborts its open transaction at once,
    instead of leaving read_committed readers blocked until ``transaction.timeout.ms``.
    Without one, a fresh id per process (host, pid, random). Either way it starts with
    the stage's group id (``<group>-ingest`` / ``<group>-aggregate``), so one PREFIXED
    transactional-id ACL on ``<group>-`` covers every worker of a deployment (README,
    "Secured Kafka"); ``stage`` names the stage when the group id is empty."""
    if instance_id:
        return f"{group_id}-{instance_id}"
    return f"{group_id or stage}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def static_membership(instance_id: str) -> dict[str, str]:
    """Consumer settings for static group membership (KIP-345) when ``instance_id`` is
    set: a restart with the same id takes its partitions back without a rebalance or a
    wait for the dead member's session to time out."""
    return {"group.instance.id": instance_id} if instance_id else {}


def produce_waiting(
    producer: Producer,
    topic: str,
    key: bytes | str | None,
    value: bytes | None,
    headers: Any = None,
    partition: int | None = None,
) -> None:
    """``producer.produce``, serving delivery reports (50 ms polls) while its local queue
    is full rather than failing: a stage's writes belong to its open transaction."""
    kwargs: dict[str, Any] = {"value": value, "key": key, "headers": headers}
    if partition is not None:
        kwargs["partition"] = partition
    while True:
        try:
            producer.produce(topic, **kwargs)
            return
        except BufferError:
            producer.poll(0.05)


def bytes_headers(headers: Any) -> list[tuple[str, bytes | None]]:
    """Kafka message headers as (name, bytes) pairs, whatever form the client gave."""
    if not headers:
        return []
    items = headers.items() if isinstance(headers, dict) else headers
    return [(k, v.encode() if isinstance(v, str) else v) for k, v in items]
