"""Small confluent-kafka helpers shared by the integration tests."""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import Consumer, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def create_topic(bootstrap: str, name: str, partitions: int = 1, **config: str) -> None:
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
    test can see duplicates or extras that should not exist.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
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
