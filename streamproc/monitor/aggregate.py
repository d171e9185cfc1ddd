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
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from streamproc.checks.lifecycle import AlertState
from streamproc.core.errors import ProfileFormatError
from streamproc.monitor.delta import ProfileDelta
from streamproc.monitor.evaluator import Alert, Evaluator
from streamproc.monitor.lag import report_lag
from streamproc.monitor.metrics import Metrics
from streamproc.monitor.state import AggregateState, ModelKey, WindowState
from streamproc.monitor.txn import requires_abort, retrying

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
    kafka: dict[str, str] = field(default_factory=dict)
    """Connection settings (see IngestSettings.kafka); the stage sets its own group id."""


def _window_key(model: str, version: str, start_ms: int) -> bytes:
    return orjson.dumps(["w", model, version, start_ms])


def _alert_key(fingerprint: str) -> bytes:
    return orjson.dumps(["a", fingerprint])


class AggregateLoop:
    def __init__(
        self,
        settings: AggregateSettings,
        evaluator: Evaluator,
        metrics: Metrics,
        on_alert: Any = None,
    ) -> None:
        self.settings = settings
        self.evaluator = evaluator
        self.metrics = metrics
        self.on_alert = on_alert
        """Optional callable(alert dict), e.g. the demo's console."""
        self.state = AggregateState(
            settings.window_ms, settings.allowed_lateness_ms, settings.retention_ms
        )
        self.partition_of: dict[ModelKey, int] = {}
        self._purged: dict[tuple[str, str, int], int] = {}
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._alerts: Producer | None = None
        self._txn_id = f"aggregate-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.ready = threading.Event()
        self._last_staleness = time.monotonic()

    # ------------------------------------------------------------------ clients

    def _base(self) -> dict[str, Any]:
        return dict(self.settings.kafka)

    def run(self, stop: threading.Event) -> None:
        s = self.settings
        base = self._base()
        consumer = Consumer(
            {
                **base,
                "group.id": s.group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 100,
                "max.partition.fetch.bytes": 32 * 1024 * 1024,
            }
        )
        producer = Producer(
            {
                **base,
                "transactional.id": self._txn_id,
                "message.max.bytes": 32 * 1024 * 1024,
                "compression.type": "lz4",
                "linger.ms": 5,
            }
        )
        producer.init_transactions(30)
        alerts = Producer({**base, "enable.idempotence": True, "linger.ms": 0})
        self._consumer, self._producer, self._alerts = consumer, producer, alerts
        consumer.subscribe([s.profiles_topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        producer.begin_transaction()
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
                    self.publish(
                        self.evaluator.evaluate_staleness(self.state, int(time.time() * 1000))
                    )
                if now - last_ckpt >= s.checkpoint_interval_s:
                    last_ckpt = now
                    self.checkpoint()
            self.evaluate()
            self.checkpoint()
        finally:
            consumer.close()
            alerts.flush(10)
            producer.flush(10)
            self._consumer = self._producer = self._alerts = None

    # ------------------------------------------------------------------ deltas

    def _apply(self, msg: Message) -> None:
        err = msg.error()
        if err is not None:
            if err.code() != KafkaError._PARTITION_EOF:
                log.warning("profiles consume error: %s", err)
            return
        try:
            delta = ProfileDelta.from_bytes(msg.value() or b"")
        except ProfileFormatError as exc:
            log.error("skipping unreadable profile delta at offset %s: %s", msg.offset(), exc)
            self.metrics.deadletter_total.labels("bad_profile_delta").inc()
            return
        mkey = (delta.model, delta.model_version)
        self.partition_of[mkey] = msg.partition() or 0
        if self.state.apply(delta, arrival_ms=int(time.time() * 1000)):
            self.metrics.deltas_applied_total.inc()
        else:
            self.metrics.deltas_duplicate_total.inc()

    # ------------------------------------------------------------------ evaluation

    def evaluate(self) -> list[Alert]:
        alerts: list[Alert] = []
        changed = set(self.state.changed_models)
        self.state.changed_models.clear()
        for mkey in changed:
            alerts += self.evaluator.evaluate_model(self.state, mkey)
        alerts += self.evaluator.evaluate_staleness(self.state, int(time.time() * 1000))
        self._last_staleness = time.monotonic()
        for key in self.state.purge():
            part = self.partition_of.get((key[0], key[1]))
            if part is not None:
                self._purged[key] = part
        self.publish(alerts)
        return alerts

    def publish(self, alerts: list[Alert]) -> None:
        producer = self._alerts
        if producer is None or not alerts:
            return
        for alert in alerts:
            producer.produce(
                self.settings.alerts_topic,
                key=alert["fingerprint"].encode(),
                value=orjson.dumps(alert),
            )
            if self.on_alert is not None:
                self.on_alert(alert)
        producer.flush(10)

    # ------------------------------------------------------------------ checkpoints

    def checkpoint(self, only: set[int] | None = None) -> None:
        """Write dirty windows, purges and changed alert states with the consumed offsets,
        in one transaction. ``only`` limits it to some profiles partitions (revocation)."""
        consumer, producer = self._consumer, self._producer
        if consumer is None or producer is None:
            return
        topic = self.settings.state_topic
        written: list[tuple[str, str, int]] = []
        purged: list[tuple[str, str, int]] = []
        alerts: list[str] = []
        try:
            for key in list(self.state.dirty):
                window = self.state.windows.get(key)
                part = self.partition_of.get((key[0], key[1]))
                if window is None or part is None or (only is not None and part not in only):
                    continue
                producer.produce(
                    topic, key=_window_key(*key), value=window.to_bytes(), partition=part
                )
                written.append(key)
            for key, part in list(self._purged.items()):
                if only is None or part in only:
                    producer.produce(topic, key=_window_key(*key), value=None, partition=part)
                    purged.append(key)
            ev = self.evaluator
            for fp in list(ev.changed_alerts):
                owner = ev.owner.get(fp)
                part = self.partition_of.get(owner) if owner else None
                st = ev.alert_states.get(fp)
                if st is None or part is None or (only is not None and part not in only):
                    continue
                producer.produce(
                    topic, key=_alert_key(fp), value=orjson.dumps(st.to_dict()), partition=part
                )
                alerts.append(fp)
            positions = [
                tp
                for tp in consumer.position(consumer.assignment())
                if tp.offset != OFFSET_INVALID and (only is None or tp.partition in only)
            ]
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
            # Nothing was marked clean: the next checkpoint writes it all again.
            log.warning("checkpoint aborted (%s); the next one retries", exc.args[0])
            producer.abort_transaction(30)
        else:
            self.state.dirty.difference_update(written)
            for key in purged:
                self._purged.pop(key, None)
            self.evaluator.changed_alerts.difference_update(alerts)
        producer.begin_transaction()

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
        gone = {m for m, p in self.partition_of.items() if p in parts}
        for key in [k for k in self.state.windows if (k[0], k[1]) in gone]:
            del self.state.windows[key]
            self.state.dirty.discard(key)
        for m in gone:
            self.state.clocks.pop(m, None)
            self.state.recent.pop(m, None)
            self.state.changed_models.discard(m)
            self.partition_of.pop(m, None)
        self.evaluator.drop_models(gone)

    def restore(self, partitions: list[int]) -> int:
        """Load the checkpointed windows and alert states of ``partitions``."""
        if not partitions:
            return 0
        reader = Consumer(
            {
                **self._base(),
                "group.id": f"{self.settings.group_id}-restore-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "max.partition.fetch.bytes": 32 * 1024 * 1024,
            }
        )
        latest: dict[bytes, tuple[int, bytes | None]] = {}
        try:
            ends = {}
            for p in partitions:
                lo, hi = _watermarks(reader, TopicPartition(self.settings.state_topic, p))
                if hi > lo:
                    ends[p] = hi
            if not ends:
                return 0
            reader.assign(
                [TopicPartition(self.settings.state_topic, p, OFFSET_BEGINNING) for p in ends]
            )
            done: set[int] = set()
            deadline = time.monotonic() + 120
            while len(done) < len(ends) and time.monotonic() < deadline:
                for msg in reader.consume(num_messages=1000, timeout=0.5):
                    if msg.error():
                        continue
                    p = msg.partition() or 0
                    latest[msg.key() or b""] = (p, msg.value())
                    if (msg.offset() or 0) >= ends[p] - 1:
                        done.add(p)
                # transaction markers occupy offsets: stop at the end of each partition
                for p in ends:
                    if p not in done:
                        pos = reader.position([TopicPartition(self.settings.state_topic, p)])
                        if pos and pos[0].offset >= ends[p]:
                            done.add(p)
        finally:
            reader.close()
        for key, (part, value) in latest.items():
            if value is None:
                continue
            kind = orjson.loads(key)[0]
            if kind == "w":
                window = WindowState.from_bytes(value)
                self.state.restore(window)
                self.partition_of[(window.model, window.model_version)] = part
            elif kind == "a":
                st = AlertState.from_dict(orjson.loads(value))
                self.evaluator.alert_states[st.fingerprint] = st
                self.evaluator.owner[st.fingerprint] = (st.model, st.model_version)
        return len(latest)


def _watermarks(consumer: Consumer, tp: TopicPartition, timeout_s: float = 60) -> tuple[int, int]:
    """(low, high) offsets of ``tp``, retrying while the partition has no leader yet
    (a topic created moments ago) or the broker is briefly unavailable."""
    deadline = time.monotonic() + timeout_s
    delay = 0.1
    while True:
        try:
            lo, hi = consumer.get_watermark_offsets(tp, timeout=10)
            return int(lo), int(hi)
        except KafkaException as exc:
            err = exc.args[0]
            retriable = getattr(err, "retriable", lambda: False)() or err.code() in (
                KafkaError.NOT_LEADER_FOR_PARTITION,
                KafkaError.LEADER_NOT_AVAILABLE,
                KafkaError.UNKNOWN_TOPIC_OR_PART,
                KafkaError._TRANSPORT,
                KafkaError._TIMED_OUT,
            )
            if not retriable or time.monotonic() + delay > deadline:
                raise
            log.info("state topic %s[%d] not ready (%s); retrying", tp.topic, tp.partition, err)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
