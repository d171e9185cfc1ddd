"""Kafka client factories, handed to the loops so tests can give them fakes.

A loop never constructs ``Consumer`` or ``Producer`` itself: it asks its
:class:`KafkaClients` with the configuration it needs, and the default factories are
confluent-kafka's own classes.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, Producer

ConsumerFactory = Callable[[dict[str, Any]], Consumer]
ProducerFactory = Callable[[dict[str, Any]], Producer]


@dataclass(frozen=True)
class KafkaClients:
    """How a loop builds its clients (confluent-kafka's by default)."""

    consumer: ConsumerFactory = Consumer
    producer: ProducerFactory = Producer


def stage_identity(group_id: str, instance_id: str, stage: str) -> str:
    """The transactional id of one stage of one worker. With an ``instance_id`` it is
    stable across restarts (``<group>-<instance>``), so the restarted producer's
    ``init_transactions`` fences the killed one and aborts its open transaction at once,
    instead of leaving read_committed readers blocked until ``transaction.timeout.ms``.
    Without one, a fresh id per process (host, pid, random)."""
    if instance_id:
        return f"{group_id}-{instance_id}"
    return f"{stage}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def static_membership(instance_id: str) -> dict[str, str]:
    """Consumer settings for static group membership (KIP-345) when ``instance_id`` is
    set: a restart with the same id takes its partitions back without a rebalance or a
    wait for the dead member's session to time out."""
    return {"group.instance.id": instance_id} if instance_id else {}
