"""The cold path: merge deltas into event-time windows, evaluate, publish alerts.

Consumes the profiles topic (read_committed: only deltas whose ingest transaction
committed) in its own consumer group, keyed by model so each model version lives on
one aggregate worker. Window state and alert states are checkpointed to a compacted
state topic that mirrors the profiles topic's partitions, in one Kafka transaction
with the consumed offsets; after a restart or rebalance, a worker restores a
partition's state from that topic and resumes from the committed offset, so deltas
are applied exactly once. Alerts go out as soon as they are decided, keyed by
fingerprint (at-least-once: after a crash, an alert decided after the last
checkpoint may be sent again with the same ``alert_id``).

The loop is a thin shell: every state transition (apply, evaluate, which records a
checkpoint writes, mark clean, restore, revoke) is an operation of
:class:`~streamproc.monitor.store.AggregateStore`; the loop consumes, calls them and
writes the bytes they return, with clients built by the :class:`KafkaClients` it is
handed.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import (
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

from streamproc.checks.result import RETRAIN
from streamproc.checks.retrain import retrain_event
from streamproc.core.errors import ProfileFormatError
from streamproc.monitor.authorization import raise_if_refused
from streamproc.monitor.clients import (
    KafkaClients,
    close_clients,
    stage_identity,
    static_membership,
)
from streamproc.monitor.delta import ProfileDelta
from streamproc.monitor.evaluator import Alert, Evaluator
from streamproc.monitor.lag import report_lag
from streamproc.monitor.metrics import Metrics
from streamproc.monitor.performance_delta import PerformanceDelta, is_performance_delta
from streamproc.monitor.state import AggregateState
from streamproc.monitor.state_reader import StateReadTimeout, read_latest, reader_settings
from streamproc.monitor.store import AggregateStore, StateRecord
from streamproc.monitor.supervisor import raise_if_fatal, supervise
from streamproc.monitor.txn import Interrupted, Patience, Stalled, commit_or_abort, positions_of
from streamproc.monitor.watermark import parse_watermark_header

log = logging.getLogger(__name__)


STALENESS_INTERVAL_S = 0.25
"""How often the staleness timer runs between evaluations (wall clock)."""


@dataclass(frozen=True)
class AggregateSettings:
    profiles_topic: str
    state_topic: str
    alerts_topic: str
    group_id: str
    window_ms: int
    allowed_lateness_ms: int
    retention_ms: int
    evaluation_interval_s: float = 0.5
    checkpoint_interval_s: float = 5.0
    instance_id: str = ""
    """Static membership and a stable transactional id (see ``KafkaConfig.instance_id``)."""
    kafka: dict[str, str] = field(default_factory=dict)
    """Connection settings (see IngestSettings.kafka); the stage sets its own group id."""
    retrain_topic: str | None = None
    """Where ``retrain`` lifecycle messages go (:mod:`streamproc.checks.retrain`)."""
    rollouts_topic: str | None = None
    """Where rollout comparisons go (:mod:`streamproc.monitor.rollout_eval`)."""


class AggregateLoop:
    def __init__(
        self,
        settings: AggregateSettings,
        evaluator: Evaluator,
        metrics: Metrics,
        on_alert: Callable[[Alert], None] | None = None,
        clients: KafkaClients | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.on_alert = on_alert
        """Optional callable(alert), e.g. the demo's console."""
        self.clients = clients or KafkaClients()
        self.store = AggregateStore(
            AggregateState(settings.window_ms, settings.allowed_lateness_ms, settings.retention_ms),
            evaluator,
        )
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._alerts: Producer | None = None
        self._txn_id = stage_identity(settings.group_id, settings.instance_id, "aggregate")
        self.ready = threading.Event()
        self._last_staleness = time.monotonic()
        self.patience = Patience()
        """How long commits wait for Kafka (until stop, then a grace; see :mod:`.txn`)."""
        metrics.commit_waiting_seconds.labels("aggregate").set_function(self.patience.waited_s)

    @property
    def state(self) -> AggregateState:
        return self.store.state

    @property
    def evaluator(self) -> Evaluator:
        return self.store.evaluator

    # ------------------------------------------------------------------ clients

    def open(self) -> None:
        """Build the clients: the profiles consumer, the transactional state producer
        (with its first transaction open) and the alerts producer."""
        s, base = self.settings, dict(self.settings.kafka)
        self._consumer = self.clients.consumer(
            {
                **base,
                "group.id": s.group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 100,
                **static_membership(s.instance_id),
                "max.partition.fetch.bytes": 32 * 1024 * 1024,
            }
        )
        producer = self.clients.producer(
            {
                **base,
                "transactional.id": self._txn_id,
                "message.max.bytes": 32 * 1024 * 1024,
                "compression.type": "lz4",
                "linger.ms": 5,
            }
        )
        producer.init_transactions(30)
        producer.begin_transaction()
        self._producer = producer
        # Kafka answered: the commit clock starts here (an idle stage commits nothing)
        self.metrics.last_commit_timestamp_seconds.labels("aggregate").set_to_current_time()
        self._alerts = self.clients.producer(
            # an alert waits out any outage: the checkpoint that records it is committed
            # only once it is delivered (see checkpoint)
            {
                **base,
                "enable.idempotence": True,
                "linger.ms": 0,
                "message.timeout.ms": 0,
                "on_delivery": self._alert_delivered,
            }
        )

    def _alert_delivered(self, err: KafkaError | None, _msg: Message) -> None:
        """An alert the broker refuses (no WRITE on the alerts topic) stops the worker
        with a :class:`~.authorization.Refusal` instead of being dropped silently."""
        raise_if_refused(err, operation="WRITE", topic=self.settings.alerts_topic)

    def close(self, *, failed: bool = False) -> None:
        """Close the clients; after a failure nothing waits for Kafka (see
        :func:`~streamproc.monitor.clients.close_clients`)."""
        consumer, producer, alerts = self._consumer, self._producer, self._alerts
        self._consumer = self._producer = self._alerts = None  # a revoke during close is a no-op
        close_clients(consumer, alerts, producer, failed=failed)

    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set, checkpointing before returning. A Kafka fault drops
        the state of every partition (it is restored from the last checkpoint when the
        rebuilt consumer is assigned again; see :mod:`.supervisor`)."""
        self.patience.stop = stop
        supervise(
            "aggregate",
            lambda: self._run_clients(stop),
            self._drop_uncommitted,
            stop,
            lambda reason: self.metrics.stage_restarts_total.labels("aggregate", reason).inc(),
        )

    def _drop_uncommitted(self) -> None:
        """Forget all partitions' state: the rebuilt consumer resumes from the offsets of
        the last checkpoint, so state applied since then must not be kept."""
        self.store.revoke(set(self.store.partition_of.values()))

    def _run_clients(self, stop: threading.Event) -> None:
        s = self.settings
        self.open()
        consumer = self._consumer
        assert consumer is not None
        consumer.subscribe([s.profiles_topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        last_eval = last_ckpt = time.monotonic()
        try:
            while not stop.is_set():
                for msg in consumer.consume(num_messages=500, timeout=0.1):
                    self._apply(msg)
                now = time.monotonic()
                if now - last_eval >= s.evaluation_interval_s:
                    last_eval = now
                    self.evaluate()
                    report_lag(consumer, "aggregate", self.metrics.consumer_lag)
                elif now - self._last_staleness >= STALENESS_INTERVAL_S:
                    # A timer, not data: checked often so the alert lands close to the
                    # threshold (two breaching checks fire it, ~2 × 0.25 s after).
                    self._last_staleness = now
                    self.publish(self.store.staleness(_wall_ms()))
                if now - last_ckpt >= s.checkpoint_interval_s:
                    last_ckpt = now
                    self.checkpoint()
            self.evaluate()
            self.checkpoint()
        except BaseException:
            self.close(failed=True)
            raise
        self.close()

    # ------------------------------------------------------------------ deltas

    def _apply(self, msg: Message) -> None:
        err = msg.error()
        if err is not None:
            if err.code() != KafkaError._PARTITION_EOF:
                raise_if_fatal(err)
                s = self.settings
                raise_if_refused(err, topic=s.profiles_topic, group=s.group_id)
                log.warning("profiles consume error: %s", err)
            return
        if is_performance_delta(msg.value()):
            self._apply_performance(msg)
            return
        try:
            delta = ProfileDelta.from_bytes(msg.value() or b"")
        except ProfileFormatError as exc:
            # Ingest must never write one (its deltas are tested to round-trip); one seen
            # here is a bug or a foreign writer: counted, and alerted on by the
            # StreamprocUnreadableDelta Prometheus rule, never just a log line.
            log.error(
                "unreadable profile delta at %s[%s]@%s: %s",
                msg.topic(),
                msg.partition(),
                msg.offset(),
                exc,
            )
            self.metrics.unreadable_deltas_total.inc()
            return
        watermark = parse_watermark_header(msg.headers())
        if self.store.apply(delta, msg.partition() or 0, _wall_ms(), watermark):
            self.metrics.deltas_applied_total.inc()
        else:
            self.metrics.deltas_duplicate_total.inc()

    def _apply_performance(self, msg: Message) -> None:
        """A labels-stage delta: merged into its window's performance, deduplicated by
        its label offsets as profile deltas are by theirs."""
        try:
            delta = PerformanceDelta.from_bytes(msg.value() or b"")
        except ProfileFormatError as exc:
            log.error(
                "unreadable performance delta at %s[%s]@%s: %s",
                msg.topic(),
                msg.partition(),
                msg.offset(),
                exc,
            )
            self.metrics.unreadable_deltas_total.inc()
            return
        if self.store.apply_performance(delta, msg.partition() or 0, _wall_ms()):
            self.metrics.performance_deltas_applied_total.inc()
        else:
            self.metrics.performance_deltas_duplicate_total.inc()

    # ------------------------------------------------------------------ evaluation

    def evaluate(self) -> list[Alert]:
        alerts = self.store.evaluate(_wall_ms())
        self._last_staleness = time.monotonic()
        self.publish(alerts)
        return alerts

    def publish(self, alerts: list[Alert]) -> None:
        producer = self._alerts
        if producer is None:
            return
        rollouts = self.evaluator.take_rollout_messages()
        if rollouts and self.settings.rollouts_topic is not None:
            for message in rollouts:
                producer.produce(
                    self.settings.rollouts_topic,
                    key=str(message["model"]).encode(),
                    value=orjson.dumps(message),
                )
            self.metrics.rollout_comparisons_total.inc(len(rollouts))
        if not alerts:
            producer.poll(0)
            return
        for alert in alerts:
            if alert["check"] == RETRAIN:  # a retraining trigger, not an alert
                self._publish_retrain(producer, alert)
                continue
            producer.produce(
                self.settings.alerts_topic,
                key=alert["fingerprint"].encode(),
                value=orjson.dumps(alert),
            )
            if self.on_alert is not None:
                self.on_alert(alert)
        producer.poll(0)

    def _publish_retrain(self, producer: Producer, message: Alert) -> None:
        topic, policy = self.settings.retrain_topic, self.evaluator.retrain
        if topic is None or policy is None:
            return
        reference = self.evaluator.references.get(message["model"], message["model_version"])
        described: dict[str, Any] = {"model_version": message["model_version"]}
        if reference is not None:
            described = {
                "model_version": reference.model_version,
                "rows": reference.row_count,
                "created_at": reference.metadata.get("created_at"),
                "source": reference.metadata.get("source"),
            }
        event = retrain_event(
            message, reference=described, window_ms=self.settings.window_ms, policy=policy
        )
        producer.produce(topic, key=message["fingerprint"].encode(), value=orjson.dumps(event))
        self.metrics.retrain_events_total.labels(message["status"]).inc()

    # ------------------------------------------------------------------ checkpoints

    def checkpoint(self, only: set[int] | None = None) -> bool:
        """Write what the store says a checkpoint holds, with the consumed offsets, in one
        transaction; ``only`` limits it to some profiles partitions (revocation). False
        when the transaction was aborted (nothing is marked clean: it is written again)."""
        consumer, producer = self._consumer, self._producer
        if consumer is None or producer is None:
            return False
        plan = self.store.checkpoint(only)
        self._deliver_alerts()
        for record in plan.records:
            producer.produce(
                self.settings.state_topic,
                key=record.key,
                value=record.value,
                partition=record.partition,
            )
        if not commit_or_abort(producer, consumer, positions_of(consumer, only), self.patience):
            return False
        self.store.committed(plan)
        self.metrics.last_commit_timestamp_seconds.labels("aggregate").set_to_current_time()
        return True

    def _deliver_alerts(self) -> None:
        """Wait until every published alert is delivered (as long as Kafka is away, like
        a commit): a checkpoint never records an alert state whose message is lost."""
        alerts = self._alerts
        if alerts is None:
            return
        while alerts.flush(max(0.0, self.patience.remaining_s())) > 0:
            if self.patience.remaining_s() <= 0:
                raise Interrupted("alerts undelivered at shutdown")
            if self.patience.waiting_since is None:
                self.patience.waiting_since = time.monotonic()
            if self.patience.waited_s() >= self.patience.stall_s:
                self.patience.waiting_since = None
                raise Stalled(f"alerts undelivered after {self.patience.stall_s:.0f} s")
        self.patience.waiting_since = None

    # ------------------------------------------------------------------ rebalances

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        parts = [tp.partition for tp in partitions]
        log.info("aggregate assigned %s: restoring state", parts)
        restored = self.restore(parts)
        log.info("aggregate restored %d state records", restored)
        self.ready.set()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        parts = {tp.partition for tp in partitions}
        self.checkpoint(only=parts)
        self.store.revoke(parts)

    def restore(self, partitions: list[int]) -> int:
        """Load the checkpointed windows and alert states of ``partitions``; returns the
        number of distinct state records read."""
        if not partitions:
            return 0
        latest = self._read_state(partitions)
        return self.store.restore_records(
            StateRecord(part, key, value) for key, (part, value) in latest.items()
        )

    def _read_state(self, partitions: list[int]) -> dict[bytes, tuple[int, bytes | None]]:
        """The latest (partition, value) of every key in the state topic's ``partitions``.
        A restore that cannot reach the end in 120 s (Kafka went away) restarts the stage:
        going on with part of the state would count its windows wrong."""
        reader = self.clients.consumer(
            reader_settings(
                self.settings.kafka, f"{self.settings.group_id}-restore-{uuid.uuid4().hex[:8]}"
            )
        )
        try:
            return dict(read_latest(reader, self.settings.state_topic, partitions, timeout_s=120))
        except StateReadTimeout as exc:
            raise Stalled(f"state restore: {exc}") from exc
        finally:
            reader.close()


def _wall_ms() -> int:
    return int(time.time() * 1000)
