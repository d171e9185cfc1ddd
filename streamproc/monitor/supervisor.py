"""Keep a stage running through Kafka faults: rebuild its clients instead of dying.

A broker restart or outage can leave a stage's clients unusable: a static consumer
rejoining after its session expired is fenced (librdkafka #3437), the coordinator aborts
a transaction that outlived ``transaction.timeout.ms`` and fences its producer, a commit
keeps timing out. Each of these is what a process restart cures, and a restart is safe
by design — offsets are committed only with the work they paid for. So a stage answers
a Kafka fault the same way, in process: it drops what it has not committed, closes its
clients, waits (1 s, doubling to :data:`MAX_BACKOFF_S`, for as long as the broker stays
away) and opens new ones, which resume from the committed offsets.

Errors no restart can cure stop the worker instead: authentication and authorization
failures, invalid configuration, and anything that is not a Kafka error (a bug).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException

from streamproc.monitor.authorization import Refusal, is_refusal
from streamproc.monitor.txn import Interrupted, Stalled

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0
"""Longest wait between two attempts to rebuild a stage's clients (seconds)."""

HEALTHY_RUN_S = 60.0
"""Clients that ran this long before failing had recovered: the back-off starts over."""

PERMANENT: frozenset[int] = frozenset(
    {
        KafkaError._INVALID_ARG,
        KafkaError._UNSUPPORTED_FEATURE,
        KafkaError.UNSUPPORTED_VERSION,
    }
)
"""Kafka error codes a restart cannot cure (the worker stops and says why), besides the
refusals of :func:`~.authorization.is_refusal` (authentication, ACLs). An
``_AUTHENTICATION`` error that is a connection dropped mid-handshake is not a refusal:
a broker restart causes it, and it is restarted like any fault."""


def restart_reason(exc: BaseException) -> str | None:
    """Why ``exc`` restarts the stage's clients (a metric label), or None when it must
    stop the worker."""
    if isinstance(exc, Refusal):
        return None
    if isinstance(exc, Stalled):
        return "commit_stalled"
    if not isinstance(exc, KafkaException) or not exc.args:
        return None
    err = exc.args[0]
    if not isinstance(err, KafkaError):
        return None
    if err.code() in PERMANENT or is_refusal(err):
        return None
    return str(err.name()).lstrip("_").lower() or "kafka_error"


def raise_if_fatal(err: KafkaError) -> None:
    """A consumed error that leaves the consumer unusable (fatal, e.g. a static member
    fenced after an outage) is raised, so the stage restarts; others are the caller's."""
    if err.fatal() or err.code() == KafkaError._FATAL:
        raise KafkaException(err)


def supervise(
    stage: str,
    run_clients: Callable[[], None],
    reset: Callable[[], None],
    stop: threading.Event,
    on_restart: Callable[[str], None],
) -> None:
    """Run ``run_clients`` (open, loop, close) until it returns or ``stop`` is set.

    On a Kafka fault (:func:`restart_reason`) ``reset`` drops the uncommitted work, and
    after a back-off the clients are opened again; other exceptions propagate.
    """
    backoff = 1.0
    down_since: float | None = None
    while not stop.is_set():
        began = time.monotonic()
        try:
            run_clients()
            return
        except Interrupted as exc:
            log.warning(
                "%s: stopped before Kafka answered (%s); uncommitted work dropped", stage, exc
            )
            return
        except BaseException as exc:
            reason = restart_reason(exc)
            if reason is None:
                raise
            now = time.monotonic()
            if now - began >= HEALTHY_RUN_S:  # it had recovered: a new fault
                backoff, down_since = 1.0, None
            down_since = down_since or now
            on_restart(reason)
            reset()
            log.warning(
                "%s: Kafka fault (%s: %s); reopening its clients in %.0f s "
                "(uncommitted work is redone; faulty for %.0f s)",
                stage,
                reason,
                exc.args[0] if exc.args else exc,
                backoff,
                now - down_since,
            )
            if stop.wait(backoff):
                return
            backoff = min(backoff * 2, MAX_BACKOFF_S)
            continue
