"""The labels stage: label events → the label join (stateful mode), or → window
performance deltas from the predictions they embed (stateless mode).

One :class:`LabelsLoop` per worker, when a labels topic is configured. It consumes the
labels topic (group ``<group>-labels``, read_committed), decodes label events
(:func:`~streamproc.contracts.label.decode_labels`), and for every event that embeds
the prediction it judges (``prediction: {label?, score?, model_version?, timestamp?}``)
adds the row to a realized performance accumulator of the prediction's (model, version,
event-time window) — binary classification with the reference's positive class and
threshold, or regression when the reference's performance says so. Every
``flush_interval_s`` it publishes one :class:`PerformanceDelta` per window to the
profiles topic, keyed by model (so it lands on the aggregate partition that owns the
model's windows), in one Kafka transaction with the dead-letters and the consumed
offsets — exactly as ingest does with profile deltas.

With the label join (``[join] mode = "stateful"``, the default) every decoded label
event goes to it (:mod:`streamproc.monitor.join_stage`) through its labels repartition
topic, in the same transaction, and is matched against the stored prediction there.
In stateless mode, events without an embedded prediction are dead-lettered
(``no_prediction``).

With a ``[labels_mapping]`` (:mod:`streamproc.contracts.label_mapping`) the records are
first mapped to label events (a constant model, the Kafka key as request id, the record
timestamp, a label derived from a business event); a business event whose value is not
in ``label.map`` is no label event: counted in ``streamproc_non_label_events_total``,
committed, not dead-lettered.

Dead-lettered once, with a reason: decoder rejects (the prediction log's codes), and repeated
(model, request_id) pairs (``duplicate_label``: the first label counts). Duplicates are
recognised within one worker's memory (the committed first copies of the last
``dedupe_capacity`` label events); a duplicate of a label committed before a restart, or
consumed by another worker, is counted again — the stateful join dedupes durably.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from streamproc.contracts.framing import deadletter_headers
from streamproc.contracts.label import LabelBatch, decode_labels
from streamproc.contracts.label_mapping import decode_mapped_labels
from streamproc.contracts.limits import DecodeLimits
from streamproc.contracts.mapped_decode import timestamps_ms
from streamproc.contracts.mapping import RecordMapping
from streamproc.core.errors import ProfileFormatError
from streamproc.core.kinds import FeatureKind
from streamproc.core.model_profile import ModelProfile
from streamproc.core.performance import ClassificationPerformance
from streamproc.core.reference_performance import ReferencePerformance
from streamproc.core.regression_performance import RegressionPerformance
from streamproc.labels.repartition import encode_label
from streamproc.monitor.authorization import raise_if_refused
from streamproc.monitor.clients import (
    KafkaClients,
    bytes_headers,
    close_clients,
    exactly_once_consumer,
    produce_waiting,
    stage_identity,
    transactional_producer,
)
from streamproc.monitor.lag import report_lag
from streamproc.monitor.metrics import Metrics
from streamproc.monitor.performance_delta import (
    KIND_HEADER,
    KIND_PERFORMANCE,
    Performance,
    PerformanceDelta,
)
from streamproc.monitor.references import ReferenceSet
from streamproc.monitor.supervisor import raise_if_fatal, supervise
from streamproc.monitor.txn import Patience, abort, commit_or_abort, positions_of

log = logging.getLogger(__name__)

NO_PREDICTION: Final = "no_prediction"
"""A label event without an embedded prediction (the stateful join is not built yet)."""
DUPLICATE_LABEL: Final = "duplicate_label"
"""A second label event for a (model, request_id) this worker already counted."""
LABEL_REASONS: Final = (NO_PREDICTION, DUPLICATE_LABEL)
"""Dead-letter reasons the labels stage adds to the decoder's."""

WindowKey = tuple[str, str, int]
"""(model, version, prediction window start ms)."""


@dataclass(frozen=True)
class LabelsSettings:
    labels_topic: str
    profiles_topic: str
    deadletter_topic: str
    group_id: str
    window_ms: int
    limits: DecodeLimits = field(default_factory=DecodeLimits)
    max_future_skew_ms: int = 300_000
    instance_id: str = ""
    flush_interval_s: float = 0.5
    batch_size: int = 5_000
    dedupe_capacity: int = 1_000_000
    """How many (model, request_id) pairs of committed labels are remembered (≈100 B each)."""
    kafka: dict[str, str] = field(default_factory=dict)
    join_topic: str | None = None
    """The label join's labels repartition topic (``[join] mode = "stateful"``): every
    decoded label event goes there, in the same transaction, and the join counts it
    against its stored prediction; None: stateless mode (embedded predictions only)."""
    mapping: RecordMapping | None = None
    """Where the label-event fields come from (``[labels_mapping]``); None: the records
    are label events."""


@dataclass
class _Window:
    performance: Performance
    ranges: dict[int, list[int]] = field(default_factory=dict)
    """partition → [first, last] offset of the label records in it."""


def new_performance(reference: ModelProfile) -> Performance:
    """An empty accumulator for the reference's task: its performance's positive class
    and threshold; regression when it says so (or, without one, for a numeric output)."""
    try:
        ref = ReferencePerformance.from_metadata(reference.metadata)
    except ProfileFormatError as exc:
        log.warning("%s: %s; judged as multiclass", reference.model, exc)
        ref = None
    if ref is None:
        if reference.label_kind == FeatureKind.NUMERIC and reference.predicted_label is None:
            return RegressionPerformance()
        return ClassificationPerformance()
    if isinstance(ref.perf, RegressionPerformance):
        return RegressionPerformance()
    return ClassificationPerformance(positive=ref.perf.positive, threshold=ref.perf.threshold)


class LabelsLoop:
    """Consume labels → accumulate per prediction window → (every flush) publish + commit."""

    def __init__(
        self,
        settings: LabelsSettings,
        references: ReferenceSet,
        metrics: Metrics,
        clients: KafkaClients | None = None,
    ) -> None:
        self.settings = settings
        self.references = references
        self.metrics = metrics
        self.clients = clients or KafkaClients()
        self.producer_id = stage_identity(settings.group_id, settings.instance_id, "labels")
        self._windows: dict[WindowKey, _Window] = {}
        self._seen: dict[int, None] = {}
        """Committed (model, request_id) hashes, oldest first (bounded)."""
        self._pending_seen: set[int] = set()
        self._pending_rejects = 0
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._last_flush = time.monotonic()
        self.ready = threading.Event()
        self.patience = Patience()
        metrics.commit_waiting_seconds.labels("labels").set_function(self.patience.waited_s)

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> None:
        s = self.settings
        consumer = self.clients.consumer(
            exactly_once_consumer({"fetch.wait.max.ms": 100, **s.kafka}, s.group_id, s.instance_id)
        )
        producer = transactional_producer(self.clients, s.kafka, self.producer_id)
        self._consumer, self._producer = consumer, producer
        self.metrics.last_commit_timestamp_seconds.labels("labels").set_to_current_time()

    def close(self, *, failed: bool = False) -> None:
        consumer, producer = self._consumer, self._producer
        self._consumer = self._producer = None
        close_clients(consumer, producer, failed=failed)

    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set (Kafka faults rebuild the clients; see ingest)."""
        self.patience.stop = stop
        supervise(
            "labels",
            lambda: self._run_clients(stop),
            self._drop_uncommitted,
            stop,
            lambda reason: self.metrics.stage_restarts_total.labels("labels", reason).inc(),
        )

    def _run_clients(self, stop: threading.Event) -> None:
        self.open()
        consumer = self._consumer
        assert consumer is not None
        consumer.subscribe(
            [self.settings.labels_topic],
            on_assign=lambda _c, parts: self._on_assign(parts),
            on_revoke=lambda _c, _parts: self.flush(),
            on_lost=lambda _c, _parts: self._on_lost(),
        )
        try:
            while not stop.is_set():
                messages = consumer.consume(num_messages=self.settings.batch_size, timeout=0.1)
                if messages:
                    self.process(messages)
                if time.monotonic() - self._last_flush >= self.settings.flush_interval_s:
                    self.flush()
                    report_lag(consumer, "labels", self.metrics.consumer_lag)
            self.flush()
        except BaseException:
            self.close(failed=True)
            raise
        self.close()

    def _on_assign(self, partitions: list[TopicPartition]) -> None:
        log.info("labels assigned %s", [p.partition for p in partitions])
        self.ready.set()

    def _on_lost(self) -> None:
        if self._producer is not None:
            abort(self._producer, self.patience)
        self._rewind()

    # ------------------------------------------------------------------ decode

    def process(self, messages: list[Message]) -> None:
        """Decode one consumed batch into window accumulators; dead-letter the rest."""
        good: list[Message] = []
        for msg in messages:
            err = msg.error()
            if err is None:
                good.append(msg)
            elif err.code() != KafkaError._PARTITION_EOF:
                raise_if_fatal(err)
                s = self.settings
                raise_if_refused(err, topic=s.labels_topic, group=s.group_id)
                log.warning("labels consume error: %s", err)
        if not good:
            return
        s = self.settings
        max_event_ms = int(time.time() * 1000) + s.max_future_skew_ms
        if s.mapping is None:
            result = decode_labels(
                [m.value() for m in good],
                known_models=self.references.is_known,
                limits=s.limits,
                max_event_ms=max_event_ms,
            )
        else:  # other record shapes (business events): mapped to label events first
            mapping = s.mapping
            result = decode_mapped_labels(
                mapping,
                [m.value() for m in good],
                keys=[m.key() for m in good] if mapping.uses_key else None,
                timestamps_ms=timestamps_ms(m.timestamp() for m in good)
                if mapping.uses_timestamp
                else None,
                headers=[m.headers() for m in good] if mapping.uses_headers else None,
                known_models=self.references.is_known,
                limits=s.limits,
                max_event_ms=max_event_ms,
            )
            if result.not_labels:  # committed with the batch, never dead-lettered
                self.metrics.non_label_events_total.inc(len(result.not_labels))
        for reject in result.rejects:
            self._dead_letter(good[reject.position], reject.reason, reject.detail)
        groups = self._group(result.batch, good)
        for key, rows in groups.items():
            self._accumulate(key, result.batch, rows, good)

    def _group(self, batch: LabelBatch, good: list[Message]) -> dict[WindowKey, list[int]]:
        """Rows of ``batch`` by prediction window; label events without a prediction and
        repeated (model, request_id) pairs are dead-lettered here."""
        w = self.settings.window_ms
        groups: dict[WindowKey, list[int]] = {}
        for row in range(batch.n):
            msg = good[int(batch.positions[row])]
            model = batch.models[row]
            join_topic = self.settings.join_topic
            if join_topic is not None:  # the join counts or dead-letters it, once
                key, value = encode_label(
                    model, batch.request_ids[row], int(batch.label_ms[row]), batch.labels[row]
                )
                self._produce(join_topic, key, value, None)
                self.metrics.labels_forwarded_total.inc()
                continue
            if not batch.has_prediction[row]:
                detail = "label event without an embedded prediction ([join] mode = stateless)"
                self._dead_letter(msg, NO_PREDICTION, detail)
                continue
            seen = hash((model, batch.request_ids[row]))
            if seen in self._pending_seen or seen in self._seen:
                self._dead_letter(msg, DUPLICATE_LABEL, "request_id already labeled")
                continue
            self._pending_seen.add(seen)
            version = batch.prediction_version[row]
            if version is None:
                reference = self.references.get(model, "")
                assert reference is not None  # unknown models are decoder rejects
                version = reference.model_version
            start = int(batch.prediction_ms[row]) // w * w
            groups.setdefault((model, version, start), []).append(row)
        return groups

    def _accumulate(
        self, key: WindowKey, batch: LabelBatch, rows: list[int], good: list[Message]
    ) -> None:
        model, version, _start = key
        window = self._windows.get(key)
        if window is None:
            reference = self.references.get(model, version)
            assert reference is not None
            window = self._windows[key] = _Window(new_performance(reference))
        idx = np.asarray(rows, dtype=np.int64)
        truth = [batch.labels[i] for i in rows]
        scores = batch.prediction_score[idx]
        lag_s = (batch.label_ms[idx] - batch.prediction_ms[idx]) / 1000.0
        perf = window.performance
        if isinstance(perf, RegressionPerformance):
            predicted = [
                regression_value(batch.prediction_label[i], float(scores[j]))
                for j, i in enumerate(rows)
            ]
            perf.update(truth, predicted, lag_s)
        else:
            perf.update(truth, [batch.prediction_label[i] for i in rows], scores, lag_s)
        for i in rows:
            msg = good[int(batch.positions[i])]
            part, offset = msg.partition() or 0, msg.offset() or 0
            span = window.ranges.setdefault(part, [offset, offset])
            span[0], span[1] = min(span[0], offset), max(span[1], offset)
        self.metrics.labels_total.labels(model).inc(len(rows))

    def _dead_letter(self, msg: Message, reason: str, detail: str) -> None:
        headers = deadletter_headers(
            reason,
            detail,
            msg.topic() or "",
            msg.partition() or 0,
            msg.offset() or 0,
            bytes_headers(msg.headers()),
        )
        self._produce(self.settings.deadletter_topic, msg.key(), msg.value(), headers)
        self._pending_rejects += 1
        self.metrics.deadletter_total.labels(reason).inc()

    def _produce(self, topic: str, key: Any, value: bytes | None, headers: Any) -> None:
        assert self._producer is not None
        produce_waiting(self._producer, topic, key, value, headers)

    # ------------------------------------------------------------------ flush

    def flush(self) -> None:
        """Publish a performance delta per window and commit the offsets, atomically."""
        self._last_flush = time.monotonic()
        consumer, producer = self._consumer, self._producer
        if consumer is None or producer is None:
            return
        positions = positions_of(consumer)
        if not self._windows and not self._pending_rejects and not positions:
            return
        s = self.settings
        for (model, version, start), window in self._windows.items():
            delta = PerformanceDelta(
                model,
                version,
                start,
                start + s.window_ms,
                s.labels_topic,
                sorted((p, a, b) for p, (a, b) in window.ranges.items()),
                self.producer_id,
                window.performance,
            )
            headers = [(KIND_HEADER, KIND_PERFORMANCE)]
            self._produce(s.profiles_topic, model.encode(), delta.to_bytes(), headers)
            self.metrics.performance_deltas_published_total.inc()
        if not commit_or_abort(producer, consumer, positions, self.patience):
            self._rewind()
            return
        self._windows.clear()
        self._pending_rejects = 0
        self._remember(self._pending_seen)
        self._pending_seen = set()
        self.metrics.last_commit_timestamp_seconds.labels("labels").set_to_current_time()

    def _remember(self, hashes: set[int]) -> None:
        seen = self._seen
        for h in hashes:
            seen[h] = None
        excess = len(seen) - self.settings.dedupe_capacity
        if excess > 0:
            for h in list(seen)[:excess]:
                del seen[h]

    def _drop_uncommitted(self) -> None:
        self._windows.clear()
        self._pending_rejects = 0
        self._pending_seen = set()

    def _rewind(self) -> None:
        """Drop uncommitted work and seek back to the committed offsets."""
        self._drop_uncommitted()
        consumer = self._consumer
        if consumer is None:
            return
        assignment = consumer.assignment()
        if assignment:
            for tp in consumer.committed(assignment, timeout=30):
                consumer.seek(TopicPartition(tp.topic, tp.partition, max(tp.offset, 0)))


def regression_value(label: Any, score: float) -> float:
    """The predicted value of a regression row: its score, else a numeric label."""
    if np.isfinite(score):
        return score
    if isinstance(label, int | float) and not isinstance(label, bool):
        return float(label)
    return float("nan")
