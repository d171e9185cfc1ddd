"""Kafka transaction steps with librdkafka's retry rules applied."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import KafkaException

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
