"""Kafka transaction steps with librdkafka's retry rules applied, shared by both stages."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaException, Producer, TopicPartition

log = logging.getLogger(__name__)


def retrying(step: Callable[[], None], what: str, attempts: int = 5) -> None:
    """Run a transactional ``step`` (commit, send offsets), retrying while librdkafka says
    the error is retriable; abortable and fatal errors propagate to the caller."""
    for attempt in range(1, attempts + 1):
        try:
            step()
            return
        except KafkaException as exc:
            err = exc.args[0]
            if not getattr(err, "retriable", lambda: False)() or attempt == attempts:
                raise
            log.warning("%s: retriable error (%s), attempt %d/%d", what, err, attempt, attempts)
            time.sleep(min(0.2 * 2**attempt, 5.0))


def requires_abort(exc: KafkaException) -> bool:
    """True when librdkafka says the open transaction must be aborted (then retried)."""
    return bool(getattr(exc.args[0], "txn_requires_abort", lambda: False)())


def commit_or_abort(
    producer: Producer, consumer: Consumer, positions: list[TopicPartition]
) -> bool:
    """Commit the open transaction with the consumer's ``positions``, then open the next.

    The consume–produce exactly-once step shared by ingest and aggregate: send the
    offsets (when any) and commit, each retried while librdkafka says retriable. When
    the transaction must be aborted, abort it, open the next one and return False: the
    caller decides what the lost work means (ingest rewinds, aggregate keeps its state
    dirty). Fatal errors (fenced, unrecoverable) propagate.
    """
    try:
        if positions:
            group = consumer.consumer_group_metadata()
            retrying(
                lambda: producer.send_offsets_to_transaction(positions, group, 30),
                "send offsets",
            )
        retrying(lambda: producer.commit_transaction(60), "commit transaction")
    except KafkaException as exc:
        if not requires_abort(exc):
            raise
        log.warning("transaction aborted (%s); its work is redone", exc.args[0])
        abort(producer)
        return False
    producer.begin_transaction()
    return True


def abort(producer: Producer) -> None:
    """Abort the open transaction (an error here is logged) and open the next one."""
    try:
        producer.abort_transaction(30)
    except KafkaException as exc:
        log.warning("abort_transaction: %s", exc)
    producer.begin_transaction()


def positions_of(consumer: Consumer, only: set[int] | None = None) -> list[TopicPartition]:
    """The consumer's current positions on its assignment (``only`` some partitions),
    skipping partitions it has not consumed from yet."""
    return [
        tp
        for tp in consumer.position(consumer.assignment())
        if tp.offset != OFFSET_INVALID and (only is None or tp.partition in only)
    ]
