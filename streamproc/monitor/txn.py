"""Kafka transaction steps with librdkafka's retry rules applied, shared by both stages.

A retriable failure (the broker is down, the coordinator moved, a request timed out) is
retried for as long as the outage lasts: nothing is lost by waiting, and giving up
would stop the worker. What bounds the wait is shutdown: once the stage's ``stop`` is
set, a step gets :data:`SHUTDOWN_GRACE_S` more and then :class:`Interrupted` is raised,
with the transaction left open — uncommitted, so nothing is marked done that was not
delivered (the coordinator aborts it, or the restarted worker's ``init_transactions``
fences it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaException, Producer, TopicPartition

from streamproc.monitor.authorization import is_refusal

log = logging.getLogger(__name__)

STEP_TIMEOUT_S = 5.0
"""Longest single blocking call: a stop request is noticed within this (seconds)."""

SHUTDOWN_GRACE_S = 5.0
"""How long a step may still retry once stop is requested (seconds)."""

LOG_EVERY_S = 30.0
"""While a step keeps failing, one log line per this many seconds (seconds)."""


CALL_HANG_S = 10.0
"""A transactional call still blocked this long past its own timeout is taken as hung
(seconds; see :func:`_bounded`)."""

COMMIT_STALL_S = 60.0
"""A step retrying this long gives up with :class:`Stalled` (seconds): its transaction
has outlived the default ``transaction.timeout.ms`` and the coordinator aborts it
anyway; the stage's clients are rebuilt (:mod:`.supervisor`)."""


class Interrupted(Exception):
    """Stop was requested while a transactional step could not complete."""


class Stalled(KafkaException):
    """A transactional step kept failing for :data:`COMMIT_STALL_S`."""


@dataclass
class Patience:
    """How long transactional steps keep retrying: until ``stop`` is set, then
    ``grace_s`` more. ``waiting_since`` (monotonic s, or None) is when the step in
    progress began — the stage publishes its age as ``streamproc_commit_waiting_seconds``
    (milliseconds normally; it grows while Kafka is away)."""

    stop: threading.Event = field(default_factory=threading.Event)
    grace_s: float = SHUTDOWN_GRACE_S
    stall_s: float = COMMIT_STALL_S
    waiting_since: float | None = None
    _stop_seen: float | None = None

    def remaining_s(self) -> float:
        """Seconds a step may still block: ``STEP_TIMEOUT_S`` until stop is set, then
        what is left of the grace (≤ 0: give up)."""
        if not self.stop.is_set():
            return STEP_TIMEOUT_S
        now = time.monotonic()
        if self._stop_seen is None:
            self._stop_seen = now
        return min(STEP_TIMEOUT_S, self._stop_seen + self.grace_s - now)

    def waited_s(self) -> float:
        return 0.0 if self.waiting_since is None else time.monotonic() - self.waiting_since


def retrying(step: Callable[[float], None], what: str, patience: Patience) -> None:
    """Run ``step(timeout_s)`` (commit, send offsets), retrying while librdkafka says the
    error is retriable and ``patience`` lasts; abortable and fatal errors propagate, and
    :class:`Interrupted` when stop was requested and the step still cannot complete."""
    attempt = 0
    last_log = 0.0
    while True:
        timeout = patience.remaining_s()
        if timeout <= 0:
            raise Interrupted(f"{what}: stop requested while Kafka does not answer")
        attempt += 1
        if patience.waiting_since is None:
            patience.waiting_since = time.monotonic()  # a call can block past its timeout
        try:
            _bounded(step, timeout, patience, what)
            if attempt > 1:
                log.warning("%s: done after %.1f s of retries", what, patience.waited_s())
            patience.waiting_since = None
            return
        except KafkaException as exc:
            err = exc.args[0]
            if not getattr(err, "retriable", lambda: False)():
                patience.waiting_since = None
                raise
            now = time.monotonic()
            if patience.waited_s() >= patience.stall_s:
                patience.waiting_since = None
                raise Stalled(
                    f"{what}: still failing after {patience.stall_s:.0f} s ({err})"
                ) from exc
            if now - last_log >= LOG_EVERY_S:
                last_log = now
                log.warning(
                    "%s: retriable error (%s), attempt %d, retrying for %.0f s; waiting for Kafka",
                    what,
                    err,
                    attempt,
                    patience.waited_s(),
                )
            delay = min(0.2 * 2 ** min(attempt, 4), 2.0)
            if patience.stop.is_set():  # the grace: keep the pace, do not spin
                time.sleep(max(0.0, min(delay, patience.remaining_s())))
            else:
                patience.stop.wait(delay)


def _bounded(
    step: Callable[[float], None], timeout_s: float, patience: Patience, what: str
) -> None:
    """``step(timeout_s)`` on a thread of its own, waited for at most ``timeout_s +``
    :data:`CALL_HANG_S` (and never past the patience): librdkafka's transactional calls
    can block far past their timeout — a retried ``send_offsets_to_transaction`` after a
    broker restart was seen blocked for good. A call that hangs raises :class:`Stalled`
    (:class:`Interrupted` once stop is requested): the stage then drops that producer and
    builds a new one, whose ``init_transactions`` fences the stuck one."""
    outcome: list[BaseException] = []
    done = threading.Event()

    def call() -> None:
        try:
            step(timeout_s)
        except BaseException as exc:
            outcome.append(exc)
        finally:
            done.set()

    threading.Thread(target=call, name=f"kafka {what}", daemon=True).start()
    limit = timeout_s + CALL_HANG_S
    while not done.wait(min(limit, 0.25)):
        limit -= 0.25
        if patience.stop.is_set() and patience.remaining_s() <= 0:
            raise Interrupted(f"{what}: stop requested while Kafka does not answer")
        if limit <= 0:
            raise Stalled(f"{what}: blocked {timeout_s + CALL_HANG_S:.0f} s in librdkafka")
    if outcome:
        raise outcome[0]


def requires_abort(exc: KafkaException) -> bool:
    """True when librdkafka says the open transaction must be aborted (then retried)."""
    return bool(getattr(exc.args[0], "txn_requires_abort", lambda: False)())


def commit_or_abort(
    producer: Producer,
    consumer: Consumer,
    positions: list[TopicPartition],
    patience: Patience | None = None,
) -> bool:
    """Commit the open transaction with the consumer's ``positions``, then open the next.

    The consume–produce exactly-once step shared by ingest and aggregate: send the
    offsets (when any) and commit, each retried while librdkafka says retriable (see
    :func:`retrying`). When the transaction must be aborted, abort it, open the next one
    and return False: the caller decides what the lost work means (ingest rewinds,
    aggregate keeps its state dirty). Fatal errors (fenced, unrecoverable) and
    :class:`Interrupted` propagate.
    """
    patience = patience or Patience()
    try:
        if positions:
            group = consumer.consumer_group_metadata()
            retrying(
                lambda t: producer.send_offsets_to_transaction(positions, group, t),
                "send offsets",
                patience,
            )
        retrying(lambda t: producer.commit_transaction(t), "commit transaction", patience)
    except KafkaException as exc:
        # a refusal (no WRITE on a topic of the transaction) is not redone: it stops
        if not requires_abort(exc) or is_refusal(exc.args[0]):
            raise
        log.warning("transaction aborted (%s); its work is redone", exc.args[0])
        abort(producer, patience)
        return False
    producer.begin_transaction()
    return True


def abort(producer: Producer, patience: Patience | None = None) -> None:
    """Abort the open transaction and open the next one (retried like a commit)."""
    retrying(lambda t: producer.abort_transaction(t), "abort transaction", patience or Patience())
    producer.begin_transaction()


def positions_of(consumer: Consumer, only: set[int] | None = None) -> list[TopicPartition]:
    """The consumer's current positions on its assignment (``only`` some partitions),
    skipping partitions it has not consumed from yet."""
    return [
        tp
        for tp in consumer.position(consumer.assignment())
        if tp.offset != OFFSET_INVALID and (only is None or tp.partition in only)
    ]
