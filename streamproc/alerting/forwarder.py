"""The forwarder loop: alerts topic → Alertmanager, at least once.

Each turn consumes up to ``batch_size`` messages, converts every valid alert with
:func:`streamproc.checks.alerts.to_alertmanager` (a resolved alert carries its
``endsAt``, so Alertmanager resolves it), posts them in one request, and only then
commits the batch's offsets synchronously. A post that fails is retried with backoff,
for as long as it takes: offsets stay uncommitted meanwhile, so stopping or crashing
while Alertmanager is down loses nothing — the next start re-reads the batch. Posting an
alert twice is harmless (Alertmanager merges alerts by label set).

While a post is being retried the consumer is paused and keeps polling, so it stays in
its group (``max.poll.interval.ms``) without fetching more. A message of the alerts topic
that is not a valid alert (``schemas/alert.schema.json``, typed as
:class:`~streamproc.checks.alerts.AlertMessage`) is logged and skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Protocol

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from streamproc.alerting import metrics as metrics_module
from streamproc.alerting.backoff import Backoff
from streamproc.alerting.client import AlertmanagerClient, AlertmanagerError, AlertsRejected
from streamproc.checks.alerts import DEFAULT_FIRING_TTL_MS, AlertMessage, to_alertmanager
from streamproc.contracts.schemas import SchemaError, validate

log = logging.getLogger(__name__)

DEFAULT_GROUP_ID = "streamproc-alerts-forwarder"


class Poster(Protocol):
    """What the forwarder needs from an Alertmanager client."""

    endpoint: str

    def post(self, alerts: Sequence[dict[str, Any]]) -> None: ...

    def probe(self) -> str | None: ...


@dataclass(frozen=True)
class ForwarderSettings:
    alertmanager_url: str
    bootstrap_servers: str
    alerts_topic: str = "streamproc-alerts"
    group_id: str = DEFAULT_GROUP_ID
    kafka_client: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Pass-through client settings (``security.protocol``, ``sasl.*``, ...)."""
    batch_size: int = 500
    poll_timeout_s: float = 1.0
    firing_ttl_ms: int = DEFAULT_FIRING_TTL_MS
    """``endsAt`` of a firing alert = ``emitted_at`` + this; must exceed the re-notify
    interval (see :func:`streamproc.checks.alerts.to_alertmanager`)."""
    request_timeout_s: float = 10.0
    generator_url: str = ""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.firing_ttl_ms <= 0:
            raise ValueError(f"firing_ttl_ms must be > 0, got {self.firing_ttl_ms}")

    def consumer_config(self) -> dict[str, Any]:
        return {
            **self.kafka_client,
            "bootstrap.servers": self.bootstrap_servers,
            "group.id": self.group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
        }


@dataclass
class Batch:
    """One consume's worth: what to post, and the offsets to commit once it is posted."""

    postable: list[dict[str, Any]] = field(default_factory=list)
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    messages: int = 0

    def commit_list(self) -> list[TopicPartition]:
        return [TopicPartition(t, p, o) for (t, p), o in sorted(self.next_offsets.items())]


def describe(postable: Sequence[dict[str, Any]], limit: int = 10) -> str:
    """One line for the log: ``firing StreamprocFeatureDrift credit/7 income (critical); ...``."""
    now = datetime.now(UTC)
    parts = []
    for alert in postable[:limit]:
        labels = alert["labels"]
        ends = datetime.fromisoformat(alert["endsAt"].replace("Z", "+00:00"))
        where = f"{labels.get('model', '?')}/{labels.get('model_version', '?')}"
        if "feature" in labels:
            where += f" {labels['feature']}"
        status = "resolved" if ends <= now else "firing"
        parts.append(f"{status} {labels['alertname']} {where} ({labels.get('severity', '?')})")
    if len(postable) > limit:
        parts.append(f"and {len(postable) - limit} more")
    return "; ".join(parts)


class Forwarder:
    """Consumes the alerts topic and posts to Alertmanager; :meth:`run` until ``stop``."""

    def __init__(
        self,
        settings: ForwarderSettings,
        *,
        client: Poster | None = None,
        backoff: Backoff | None = None,
        metrics: metrics_module.ForwarderMetrics | None = None,
        consumer_factory: Callable[[dict[str, Any]], Any] = Consumer,
    ) -> None:
        self.settings = settings
        self.client: Poster = client or AlertmanagerClient(
            settings.alertmanager_url, timeout_s=settings.request_timeout_s
        )
        self.backoff = backoff or Backoff()
        self.metrics = metrics or metrics_module.create()
        self.consumer_factory = consumer_factory

    def run(self, stop: threading.Event) -> None:
        """Forward until ``stop`` is set; a batch not yet posted is left uncommitted."""
        s = self.settings
        problem = self.client.probe()
        if problem:
            log.warning("alertmanager not ready (%s); alerts will be held and retried", problem)
        log.info(
            "forwarding alerts from %s (group %s at %s) to %s",
            s.alerts_topic,
            s.group_id,
            s.bootstrap_servers,
            self.client.endpoint,
        )
        consumer = self.consumer_factory(s.consumer_config())
        try:
            consumer.subscribe([s.alerts_topic])
            while not stop.is_set():
                messages = consumer.consume(num_messages=s.batch_size, timeout=s.poll_timeout_s)
                batch = self.decode(messages)
                if batch.messages == 0:
                    continue
                if not self.deliver(consumer, batch.postable, stop):
                    log.info("stopping with %d alert(s) unposted; not committed", batch.messages)
                    return
                self.commit(consumer, batch)
        finally:
            consumer.close()

    # --- steps ---------------------------------------------------------------------

    def decode(self, messages: Sequence[Message]) -> Batch:
        """Postable alerts of ``messages`` (invalid ones logged and skipped) and the
        offsets that committing them means."""
        batch = Batch()
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise KafkaException(err)
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("alerts consumer: %s", err.str())
                continue
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            assert topic is not None and partition is not None and offset is not None
            batch.next_offsets[(topic, partition)] = offset + 1
            batch.messages += 1
            self.metrics.messages_total.inc()
            value = msg.value()
            if value is None:  # a tombstone: nothing to forward
                continue
            try:
                alert: AlertMessage = orjson.loads(value)
                validate("alert", alert)
            except (orjson.JSONDecodeError, SchemaError) as exc:
                self.metrics.invalid_messages_total.inc()
                log.error(
                    "skipping message %s[%d]@%d: not a valid alert: %s",
                    topic,
                    partition,
                    offset,
                    str(exc)[:300],
                )
                continue
            batch.postable.extend(
                to_alertmanager(
                    alert,
                    firing_ttl_ms=self.settings.firing_ttl_ms,
                    generator_url=self.settings.generator_url,
                )
            )
        return batch

    def deliver(self, consumer: Any, postable: list[dict[str, Any]], stop: threading.Event) -> bool:
        """Post until Alertmanager accepts (or rejects) the batch: True; False if
        ``stop`` was set first (the batch is then not posted)."""
        if not postable:
            return True
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                self.client.post(postable)
            except AlertsRejected as exc:
                self.metrics.rejected_total.inc()
                self.metrics.alertmanager_up.set(1)
                log.error(
                    "alertmanager rejected %d alert(s); skipping them: %s", len(postable), exc
                )
                return True
            except AlertmanagerError as exc:
                self.metrics.post_failures_total.inc()
                self.metrics.alertmanager_up.set(0)
                delay = self.backoff.delay_s(attempt)
                attempt += 1
                log.warning(
                    "alertmanager post failed (attempt %d, %d alert(s) held, offsets not "
                    "committed): %s; retrying in %.1fs",
                    attempt,
                    len(postable),
                    exc,
                    delay,
                )
                if not self._hold(consumer, delay, stop):
                    return False
                continue
            self.metrics.post_seconds.observe(time.monotonic() - started)
            self.metrics.alerts_posted_total.inc(len(postable))
            self.metrics.alertmanager_up.set(1)
            self.metrics.last_success_timestamp_seconds.set(time.time())
            if attempt:
                log.info("alertmanager reachable again after %d failed attempt(s)", attempt)
            log.info("posted %d alert(s): %s", len(postable), describe(postable))
            return True

    def commit(self, consumer: Any, batch: Batch) -> None:
        """Commit ``batch``'s offsets synchronously. A failure (e.g. a rebalance took the
        partitions) is logged: the alerts may be posted again, never lost."""
        try:
            consumer.commit(offsets=batch.commit_list(), asynchronous=False)
        except KafkaException as exc:
            log.warning("offset commit failed; these alerts may be posted again: %s", exc)

    def _hold(self, consumer: Any, delay_s: float, stop: threading.Event) -> bool:
        """Wait ``delay_s`` with the consumer paused but polling (so it stays in the
        group); False if ``stop`` was set meanwhile."""
        deadline = time.monotonic() + delay_s
        try:
            while not stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                assignment = consumer.assignment()
                if assignment:
                    consumer.pause(assignment)  # also partitions assigned during the hold
                msg = consumer.poll(min(left, 0.5))
                if msg is not None and msg.error() is None:
                    # fetched before its partition was paused: rewind so it is read later
                    tp = TopicPartition(msg.topic(), msg.partition(), msg.offset())
                    consumer.seek(tp)
                    consumer.pause([tp])
        finally:
            assignment = consumer.assignment()
            if assignment:
                consumer.resume(assignment)
        return not stop.is_set()
