"""Kafka client factories, handed to the loops so tests can give them fakes.

A loop never constructs ``Consumer`` or ``Producer`` itself: it asks its
:class:`KafkaClients` with the configuration it needs, and the default factories are
confluent-kafka's own classes.
"""

from __future__ import annotations

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
