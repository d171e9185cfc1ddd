"""The hot path: consume prediction logs, sketch them per window, ship deltas.

One :class:`IngestLoop` per worker process. It consumes the predictions topic in large
batches (``Consumer.consume``), decodes them column-wise, buffers rows per (model,
version, event-time window), and every ``flush_interval_s`` sketches each buffer
into a :class:`ProfileDelta` and publishes it to the profiles topic — inside a Kafka
transaction that also carries the dead-letter records and the consumer offsets
(``send_offsets_to_transaction``). So a record is either in exactly one committed
delta or dead-lettered, and its offset is committed only with it: a crash re-reads
from the last commit and loses nothing. Scale out by starting more workers with the
same group id: the group spreads the partitions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from streamproc.contracts.fast_decode import FastPathDeclined, fast_decode
from streamproc.contracts.framing import deadletter_headers
from streamproc.contracts.limits import DecodeLimits
from streamproc.contracts.mapped_decode import Mapped, map_records, timestamps_ms
from streamproc.contracts.mapping import RecordMapping
from streamproc.contracts.prediction import DecodeResult, PredictionBatch, decode_predictions
from streamproc.contracts.registry import RegistryMapping, WireDecoded, WireDecoder
from streamproc.contracts.start_from import StartFrom, choose_offset
from streamproc.core.slice_profiles import SliceSpec
from streamproc.labels.repartition import encode_predictions
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
from streamproc.monitor.references import ReferenceSet
from streamproc.monitor.supervisor import raise_if_fatal, supervise
from streamproc.monitor.txn import Patience, abort, commit_or_abort, positions_of
from streamproc.monitor.watermark import WATERMARK_HEADER, SourceKey, Watermarks
from streamproc.monitor.window_buffer import (
    MAX_DELTA_BYTES,
    BufferedChunk,
    WindowBuffer,
    build_deltas,
)

log = logging.getLogger(__name__)

LATE_EVENT = "late_event"
MAX_LOGGED_UNKNOWN = 100
FUTURE_TIMESTAMP = "future_timestamp"

CONSUMER_DEFAULTS: dict[str, str | int] = {
    "fetch.min.bytes": 65536,
    "fetch.wait.max.ms": 100,
    # A deeper prefetch queue keeps the decode loop busy instead of waiting on fetches
    # (librdkafka defaults: 100k messages / 64 MiB; measured +29% events/s on one core).
    "queued.min.messages": 500_000,
    "queued.max.messages.kbytes": 262_144,
}
"""Consumer tuning for the hot path; any of it can be overridden by Kafka pass-through
settings (``[kafka.client]`` or ``STREAMPROC_KAFKA_*``)."""


@dataclass(frozen=True)
class IngestSettings:
    predictions_topic: str
    profiles_topic: str
    deadletter_topic: str
    group_id: str
    window_ms: int
    allowed_lateness_ms: int
    limits: DecodeLimits = field(default_factory=DecodeLimits)
    """Record size, feature count and category value length (see contracts.limits)."""
    max_future_skew_ms: int = 300_000
    """Event time allowed ahead of the wall clock; also the wall-clock band in which a
    record is never taken as too far ahead of its partition (see :mod:`.watermark`)."""
    instance_id: str = ""
    """Static membership and a stable transactional id (see ``KafkaConfig.instance_id``)."""
    flush_interval_s: float = 0.5
    batch_size: int = 10_000
    kafka: dict[str, str] = field(default_factory=dict)
    """Connection settings: bootstrap.servers and pass-through (security, SASL, SSL, ...);
    the stage sets its own group id."""
    mapping: RecordMapping | None = None
    """Where the envelope fields come from (``[mapping]``); None: records are envelopes."""
    start_from: StartFrom = field(default_factory=lambda: StartFrom("earliest"))
    """Where partitions without a committed offset start (``[kafka] start_from``)."""
    join_topic: str | None = None
    """The label join's predictions repartition topic (a labels topic is configured):
    every accepted prediction with a request id is written there too, in the same
    transaction (:mod:`streamproc.labels.repartition`)."""
    slices_for: Callable[[str], SliceSpec | None] = field(default=lambda _model: None)
    """Per model: how its deltas are sliced (``[models.<model>.slices]``; None: not)."""


class IngestLoop:
    """Consume → decode → buffer per window → (every flush interval) publish + commit."""

    def __init__(
        self,
        settings: IngestSettings,
        references: ReferenceSet,
        metrics: Metrics,
        clients: KafkaClients | None = None,
    ) -> None:
        self.settings = settings
        self.clients = clients or KafkaClients()
        self.references = references
        self.metrics = metrics
        self.producer_id = stage_identity(settings.group_id, settings.instance_id, "ingest")
        self._buffers: dict[tuple[str, str, int], WindowBuffer] = {}
        self.watermarks = Watermarks(skew_ms=settings.max_future_skew_ms)
        """Confirmed newest event time per (partition, model, version)."""
        self._unknown_logged: set[str] = set()
        self._pending_rejects = 0
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._last_flush = time.monotonic()
        self.ready = threading.Event()
        """Set once the consumer has its first assignment."""
        self._first_offsets: dict[tuple[str, int], int] = {}
        """Offsets the first start chose for partitions the group never committed."""
        self.patience = Patience()
        """How long commits wait for Kafka (until stop, then a grace; see :mod:`.txn`)."""
        metrics.commit_waiting_seconds.labels("ingest").set_function(self.patience.waited_s)
        self._wire: WireDecoder | None = None
        """Avro/Protobuf/JSON Schema through a registry (:mod:`~streamproc.contracts.registry`)."""
        if isinstance(settings.mapping, RegistryMapping):
            self._wire = WireDecoder(settings.mapping.wire, limits=settings.limits)
        self._held: list[TopicPartition] = []
        """Partitions paused until the registry answers again (:meth:`_hold_back`)."""
        self._held_at: dict[tuple[str, int], int] = {}
        """Where a held-back partition resumes: what its commit says until it is read again
        (a seek leaves no consumer position to commit)."""

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> None:
        """Build the consumer and the transactional producer (first transaction open)."""
        s = self.settings
        base = s.kafka
        # the operator's settings win over the tuning defaults, but not over what
        # exactly-once and replay depend on
        consumer = self.clients.consumer(
            exactly_once_consumer({**CONSUMER_DEFAULTS, **base}, s.group_id, s.instance_id)
        )
        producer = transactional_producer(self.clients, base, self.producer_id)
        self._consumer, self._producer = consumer, producer
        self._held = []  # a new consumer has nothing paused
        # Kafka answered: the commit clock starts here (an idle stage commits nothing)
        self.metrics.last_commit_timestamp_seconds.labels("ingest").set_to_current_time()

    def close(self, *, failed: bool = False) -> None:
        """Close the clients; after a failure, drop what the producer still holds (its
        transaction is uncommitted: the coordinator or the next producer aborts it)."""
        consumer, producer = self._consumer, self._producer
        self._consumer = self._producer = None  # a revoke during close has nothing to do
        close_clients(consumer, producer, failed=failed)

    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set; flushes and commits what it holds before returning.
        A Kafka fault rebuilds the clients and redoes the uncommitted work
        (:mod:`.supervisor`); a stop while Kafka does not answer returns within
        :data:`~streamproc.monitor.txn.SHUTDOWN_GRACE_S`, committing nothing more."""
        self.patience.stop = stop
        supervise(
            "ingest",
            lambda: self._run_clients(stop),
            self._drop_uncommitted,
            stop,
            lambda reason: self.metrics.stage_restarts_total.labels("ingest", reason).inc(),
        )

    def _run_clients(self, stop: threading.Event) -> None:
        self.open()
        consumer = self._consumer
        assert consumer is not None
        consumer.subscribe(
            [self.settings.predictions_topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        try:
            while not stop.is_set():
                messages = consumer.consume(num_messages=self.settings.batch_size, timeout=0.1)
                if messages:
                    self.process(messages)
                if time.monotonic() - self._last_flush >= self.settings.flush_interval_s:
                    self.flush()
                    report_lag(consumer, "ingest", self.metrics.consumer_lag)
                if self._held:
                    self._resume_held(consumer)
            self.flush()
        except BaseException:
            self.close(failed=True)
            raise
        self.close()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("ingest assigned %s", [p.partition for p in partitions])
        self._place_first_start(consumer, partitions)
        self.ready.set()

    def _place_first_start(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions the group never committed start at ``start_from`` (a committed offset
        always wins; see :mod:`streamproc.contracts.start_from`)."""
        start = self.settings.start_from
        if not partitions or start.kind == "earliest":  # auto.offset.reset does it
            return
        committed = {
            (tp.topic, tp.partition): tp.offset for tp in consumer.committed(partitions, 30)
        }
        fresh = [tp for tp in partitions if committed.get((tp.topic, tp.partition), -1) < 0]
        if not fresh:
            return
        # The end offsets are read before the time lookup: a record produced between the
        # two has a timestamp at or after the instant, so "no record that late" means
        # "start at the end as it was before the lookup", never at a later end that
        # would skip it.
        ends = {
            (tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=30)[1]
            for tp in fresh
        }
        looked_up: dict[tuple[str, int], int] = {}
        when = start.timestamp_ms(int(time.time() * 1000))
        if when is not None:
            query = [TopicPartition(tp.topic, tp.partition, when) for tp in fresh]
            for tp in consumer.offsets_for_times(query, timeout=30):
                if tp.error is not None:
                    raise KafkaException(tp.error)
                looked_up[(tp.topic, tp.partition)] = tp.offset
        for tp in partitions:
            key = (tp.topic, tp.partition)
            offset = choose_offset(committed.get(key, -1), looked_up.get(key), start)
            if offset is not None:
                if offset == OFFSET_END:  # a concrete offset, so a rewind returns here
                    offset = ends[key]
                tp.offset = offset
                if committed.get(key, -1) < 0:
                    self._first_offsets[key] = offset  # where a rewind returns to
        log.info(
            "ingest first start (%s): %s",
            self.settings.start_from,
            {tp.partition: tp.offset for tp in fresh},
        )
        consumer.incremental_assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Commit what we hold for these partitions before another worker takes them.
        log.info("ingest revoked %s: flushing", [p.partition for p in partitions])
        self.flush()

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning(
            "ingest lost %s: dropping uncommitted buffers", [p.partition for p in partitions]
        )
        if self._producer is not None:
            abort(self._producer, self.patience)
        self._rewind()

    # ------------------------------------------------------------------ hot path

    def process(self, messages: list[Message]) -> None:
        """Decode one consumed batch into window buffers; dead-letter what is bad."""
        began = time.perf_counter()
        good: list[Message] = []
        for msg in messages:
            err = msg.error()
            if err is None:
                good.append(msg)
            elif err.code() != KafkaError._PARTITION_EOF:
                raise_if_fatal(err)
                settings = self.settings
                raise_if_refused(err, topic=settings.predictions_topic, group=settings.group_id)
                log.warning("consume error: %s", err)
        if not good:
            return
        s = self.settings
        values = [m.value() for m in good]
        mapped: Mapped | None = None
        if s.mapping is not None:  # other record shapes: mapped to envelopes first
            mapping = s.mapping
            wire: WireDecoded | None = None
            picked = good
            if self._wire is not None:  # Avro/Protobuf/JSON Schema → JSON objects first
                good, wire = self._wire_decode(self._wire, good, values)
                values = wire.values  # type: ignore[assignment]
                picked = [good[i] for i in wire.positions]
            mapped = map_records(
                mapping,
                values,
                keys=[m.key() for m in picked] if mapping.uses_key else None,
                timestamps_ms=timestamps_ms(map(Message.timestamp, picked))
                if mapping.uses_timestamp
                else None,
                headers=[m.headers() for m in picked] if mapping.uses_headers else None,
                limits=s.limits,
            )
            if wire is not None:  # positions in `good`, plus the decoder's rejects
                mapped = wire.compose(mapped)
            values = mapped.values  # type: ignore[assignment]
        max_event_ms = int(time.time() * 1000) + s.max_future_skew_ms
        # Clean batches of one (model, version) parse in one pyarrow call; anything else
        # (and any record that would be rejected) goes through the orjson decoder.
        result: DecodeResult | FastPathDeclined = DecodeResult({})
        if values:
            result = fast_decode(
                values,
                kinds_for=self._feature_kinds,
                limits=s.limits,
                max_event_ms=max_event_ms,
                window_ms=s.window_ms,
                keep_request_ids=s.join_topic is not None,
            )
        if isinstance(result, FastPathDeclined):
            self.metrics.fast_path_declined_total.labels(result.reason).inc()
            result = decode_predictions(
                values,
                known_models=self.references.is_known,
                limits=s.limits,
                max_event_ms=max_event_ms,
                window_ms=s.window_ms,
                keep_request_ids=s.join_topic is not None,
            )
        if mapped is not None:  # rows and rejects back at their positions in `good`
            result = mapped.restore(result)
        if result.truncated_values:
            self.metrics.truncated_values_total.inc(result.truncated_values)
        if result.future_features_as_of:
            self.metrics.future_features_as_of_total.inc(result.future_features_as_of)
        for reject in result.rejects:
            self._dead_letter(good[reject.position], reject.reason, reject.detail)
            if reject.reason == "unknown_model":
                self._log_unknown(reject.detail)
        if not result.batches:
            self.metrics.ingest_batch_seconds.observe(time.perf_counter() - began)
            return
        partitions = np.fromiter(map(Message.partition, good), np.int64, len(good))
        offsets = np.fromiter(map(Message.offset, good), np.int64, len(good))
        append_s = np.array([t[1] for t in map(Message.timestamp, good)], np.float64) / 1e3
        received = time.time()
        wall_ms = int(received * 1000)
        batches = list(result.batches.values())
        rows_of = [partitions[b.indices] for b in batches]
        ts_of = [(b.timestamps * 1000).astype(np.int64) for b in batches]
        future_after = self._future_thresholds(batches, rows_of, ts_of)
        accepted: dict[SourceKey, list[np.ndarray]] = {}
        for batch, rows_p, ts_ms in zip(batches, rows_of, ts_of, strict=True):
            model, version, window_start = batch.model, batch.model_version, batch.window_start_ms
            rows_o = offsets[batch.indices]
            window_end = window_start + s.window_ms
            future = self._future_rows(model, version, rows_p, ts_ms, future_after, wall_ms)
            late = self._late_rows(model, version, window_end, rows_p)
            drop = _either(future, late)
            if drop is not None:
                only_late = late & ~future if late is not None and future is not None else late
                for mask, reason, detail in (
                    (future, FUTURE_TIMESTAMP, "too far ahead of its partition's event time"),
                    (only_late, LATE_EVENT, "older than the allowed lateness"),
                ):
                    for pos in batch.indices[mask] if mask is not None else ():
                        self._dead_letter(good[pos], reason, detail)
                if only_late is not None:
                    self.metrics.late_events_total.labels(model).inc(int(only_late.sum()))
                keep = ~drop
                if not keep.any():
                    continue
                batch = batch.take(np.flatnonzero(keep))
                rows_p, rows_o, ts_ms = rows_p[keep], rows_o[keep], ts_ms[keep]
            for p in np.unique(rows_p):
                accepted.setdefault((int(p), model, version), []).append(ts_ms[rows_p == p])
            key = (model, version, window_start)
            buf = self._buffers.get(key)
            if buf is None:
                buf = self._buffers[key] = WindowBuffer(model, version, window_start, window_end)
            buf.add(BufferedChunk(batch, append_s[batch.indices], received), rows_p, rows_o)
            self.metrics.events_total.labels(model).inc(batch.n)
            if s.join_topic is not None:  # to the label join, keyed by request id
                for join_key, value in encode_predictions(batch):
                    self._produce(s.join_topic, join_key, value)
        for source, chunks in accepted.items():
            self.watermarks.advance(source, np.concatenate(chunks))
        self.metrics.ingest_batch_seconds.observe(time.perf_counter() - began)

    def _wire_decode(
        self, wire: WireDecoder, good: list[Message], values: list[Any]
    ) -> tuple[list[Message], WireDecoded]:
        """Decode wire-format values; records whose schema the registry cannot give now
        are held back (not counted, not dead-lettered) with the rest of their partition."""
        topic = self.settings.predictions_topic
        decoded = wire.decode(values, topic)
        for change in decoded.changes:
            if change.previous_id is None:  # the first schema since the start
                log.info("%s", change.describe())
                continue
            log.warning("schema change: %s", change.describe())
            self.metrics.schema_changes_total.labels(topic).inc()
        if decoded.schema_ids:
            self.metrics.schema_id.labels(topic).set(decoded.schema_ids[-1])
        if not decoded.unavailable:
            return good, decoded
        keep = self._hold_back(good, decoded.unavailable)
        return [m for m, k in zip(good, keep, strict=True) if k], decoded.keep(keep)

    def _hold_back(self, good: list[Message], unavailable: list[int]) -> np.ndarray:
        """Seek each partition of an ``unavailable`` record back to its first such record
        and pause it until the registry's back-off has passed; the mask of the records
        that stay in this batch (those before it on their partition)."""
        first: dict[tuple[str, int], int] = {}
        for i in unavailable:
            msg = good[i]
            key = (msg.topic() or "", msg.partition() or 0)
            first[key] = min(first.get(key, msg.offset() or 0), msg.offset() or 0)
        keep = np.ones(len(good), dtype=bool)
        for i, msg in enumerate(good):
            at = first.get((msg.topic() or "", msg.partition() or 0))
            if at is not None and (msg.offset() or 0) >= at:
                keep[i] = False
        consumer = self._consumer
        assert consumer is not None
        tps = [TopicPartition(t, p, o) for (t, p), o in first.items()]
        for tp in tps:
            consumer.seek(tp)
        consumer.pause(tps)
        self._held.extend(tps)
        self._held_at.update(first)
        self.metrics.registry_waits_total.inc(int((~keep).sum()))
        return keep

    def _commit_positions(self, consumer: Consumer) -> list[TopicPartition]:
        """The positions to commit: the consumer's, and for a held-back partition not read
        since, the offset it resumes at (:meth:`_hold_back`)."""
        positions = positions_of(consumer)
        if not self._held_at:
            return positions
        have = {(tp.topic, tp.partition) for tp in positions}
        assigned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        self._held_at = {k: o for k, o in self._held_at.items() if k in assigned and k not in have}
        return positions + [TopicPartition(t, p, o) for (t, p), o in self._held_at.items()]

    def _resume_held(self, consumer: Consumer) -> None:
        """Resume the held-back partitions once the registry may be asked again."""
        if self._wire is not None and self._wire.registry_down:
            return
        held, self._held = self._held, []
        assigned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        still = [tp for tp in held if (tp.topic, tp.partition) in assigned]
        if still:
            consumer.resume(still)

    def _feature_kinds(self, model: str, version: str) -> dict[str, Any] | None:
        """The fast decoder's view of the references: None exactly for unknown models."""
        if not self.references.is_known(model):
            return None
        return self.references.feature_kinds(model, version) or None

    def _future_thresholds(
        self, batches: list[PredictionBatch], rows_of: list[np.ndarray], ts_of: list[np.ndarray]
    ) -> dict[SourceKey, int]:
        """Per (partition, model, version) of this consumed batch, the event time beyond
        which a row is too far ahead of its partition (see :mod:`.watermark`)."""
        by_source: dict[SourceKey, list[np.ndarray]] = {}
        for batch, rows_p, ts_ms in zip(batches, rows_of, ts_of, strict=True):
            for p in np.unique(rows_p):
                source = (int(p), batch.model, batch.model_version)
                by_source.setdefault(source, []).append(ts_ms[rows_p == p])
        out = {}
        for source, chunks in by_source.items():
            after = self.watermarks.future_after_ms(source, np.concatenate(chunks))
            if after is not None:
                out[source] = after
        return out

    def _future_rows(
        self,
        model: str,
        version: str,
        parts: np.ndarray,
        ts_ms: np.ndarray,
        future_after: dict[SourceKey, int],
        wall_ms: int,
    ) -> np.ndarray | None:
        mask: np.ndarray | None = None
        for p in np.unique(parts):
            after = future_after.get((int(p), model, version))
            if after is None:
                continue
            sel = (parts == p) & self.watermarks.too_far_ahead(ts_ms, after, wall_ms)
            mask = sel if mask is None else (mask | sel)
        return mask if mask is not None and mask.any() else None

    def _late_rows(
        self, model: str, version: str, window_end: int, parts: np.ndarray
    ) -> np.ndarray | None:
        """Rows whose window closed more than the allowed lateness before the confirmed
        newest event time of their partition in earlier batches (rows of one batch are
        never late relative to each other: windows of a batch are visited in no order)."""
        late_mask: np.ndarray | None = None
        for p in np.unique(parts):
            newest = self.watermarks.newest_ms((int(p), model, version))
            if window_end + self.settings.allowed_lateness_ms <= newest:
                sel = parts == p
                late_mask = sel if late_mask is None else (late_mask | sel)
        return late_mask

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

    def _log_unknown(self, detail: str) -> None:
        """Log each unknown model once, the first ``MAX_LOGGED_UNKNOWN`` of them: random
        model names from the data must not grow memory or the log without bound (all are
        counted in ``streamproc_deadletter_total{reason="unknown_model"}``)."""
        if detail in self._unknown_logged or len(self._unknown_logged) > MAX_LOGGED_UNKNOWN:
            return
        self._unknown_logged.add(detail)
        if len(self._unknown_logged) > MAX_LOGGED_UNKNOWN:
            log.warning(
                "more than %d unknown models: no longer logged one by one", MAX_LOGGED_UNKNOWN
            )
        else:
            log.warning("%s: no reference profile; its records are dead-lettered", detail)

    def _produce(
        self, topic: str, key: bytes | str | None, value: bytes | None, headers: Any = None
    ) -> None:
        assert self._producer is not None
        produce_waiting(self._producer, topic, key, value, headers)

    # ------------------------------------------------------------------ flush

    def flush(self) -> None:
        """Publish a delta per buffered window and commit the consumed offsets, atomically."""
        self._last_flush = time.monotonic()
        consumer, producer = self._consumer, self._producer
        if consumer is None or producer is None:
            return
        positions = self._commit_positions(consumer)
        if not self._buffers and not self._pending_rejects and not positions:
            return
        began = time.perf_counter()
        s = self.settings
        for buf in self._buffers.values():
            reference = self.references.get(buf.model, buf.model_version)
            assert reference is not None  # unknown models never reach a buffer
            watermark = self.watermarks.model_watermark_ms(buf.model, buf.model_version)
            headers = [(WATERMARK_HEADER, str(watermark).encode())]
            # split in (partition, offset) order when one delta would be too large
            for delta in build_deltas(
                buf,
                reference,
                topic=s.predictions_topic,
                producer_id=self.producer_id,
                max_bytes=MAX_DELTA_BYTES,
                slices=s.slices_for(buf.model),
            ):
                self._produce(s.profiles_topic, buf.model.encode(), delta.to_bytes(), headers)
                self.metrics.deltas_published_total.inc()
        if not commit_or_abort(producer, consumer, positions, self.patience):
            self._rewind()
            return
        self._buffers.clear()
        self._pending_rejects = 0
        self.metrics.ingest_flush_seconds.observe(time.perf_counter() - began)
        self.metrics.last_commit_timestamp_seconds.labels("ingest").set_to_current_time()

    def _drop_uncommitted(self) -> None:
        """Forget what no committed transaction holds (it is read again)."""
        self._buffers.clear()
        self._pending_rejects = 0
        self.watermarks.clear()
        self._held_at.clear()  # a rewind seeks the held partitions back to their commit

    def _rewind(self) -> None:
        """Drop uncommitted work and seek back to the committed offsets (its transaction
        was aborted: everything since the last commit is read again)."""
        self._drop_uncommitted()
        consumer = self._consumer
        if consumer is None:
            return
        assignment = consumer.assignment()
        if assignment:
            for tp in consumer.committed(assignment, timeout=30):
                # never committed: back to where the first start placed it, not to 0
                first = self._first_offsets.get((tp.topic, tp.partition), OFFSET_BEGINNING)
                offset = tp.offset if tp.offset >= 0 else first
                consumer.seek(TopicPartition(tp.topic, tp.partition, offset))


def _either(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return b
    return a if b is None else (a | b)
