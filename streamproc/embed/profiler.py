"""Profile a stream inside the application that consumes it, and ship ingest's deltas.

A team that already runs a consumer of its prediction logs (a Faust service, see
:mod:`streamproc.embed.faust`) can profile the records there instead of having a
streamproc worker read the topic a second time::

    profiler = StreamProfiler(
        bootstrap_servers="kafka:9092",
        profiles_topic="streamproc.profiles",
        references=["credit.profile"],
        source_topic="predictions",
        window="5m",
    )
    profiler.observe(value, partition=msg.partition, offset=msg.offset, timestamp_s=ts)
    if profiler.flush_due():
        profiler.flush()  # deltas delivered (or DeliveryFailed): now commit the offsets

Records are decoded with ingest's decoder (:func:`decode_predictions`, the envelope of
``schemas/prediction_log.schema.json``), checked for late and far-future event times as
ingest checks them, buffered per (model, version, event-time window, source partition)
and, on :meth:`StreamProfiler.flush`, sketched with :func:`build_deltas` into the
:class:`~streamproc.monitor.delta.ProfileDelta` records ingest writes: keyed by model,
with the ``streamproc.watermark_ms`` header, carrying the source topic and the
``(partition, first, last)`` offsets of their rows. A streamproc worker whose aggregate
stage reads the same profiles topic merges them like its own ingest's. ``window`` (and
``allowed_lateness``) must be the worker's ``[windows] size`` (and ``allowed_lateness``).
Records the decoder rejects are counted in :attr:`StreamProfiler.stats` and handed to
``on_reject``; there is no dead-letter topic here.

**What is counted once.** The producer is a plain idempotent one (``acks=all``, not
transactional): a record can reach the profiles topic in more than one delta, and the
aggregate dedupes by offsets. For each window it keeps, per source ``topic:partition``,
the highest ``last`` offset applied (``A``), drops a delta whose every ``last`` is at or
below its ``A`` and merges any other delta *whole*
(:meth:`~streamproc.monitor.state.AggregateState.apply`). This profiler writes one
delta per (window, source partition) and flush, so for a window ``W`` and partition
``p`` a re-sent row (offset at or below ``A``) is:

* dropped when its delta holds no row of ``W`` on ``p`` above ``A``: a delta sent again
  as it was (a producer retry, a flush re-sent after :class:`DeliveryFailed`, a replay
  of the profiles topic), and a re-processing whose rows of ``W`` on ``p`` end at or
  below ``A`` — e.g. an instance that reads a partition again from an older commit,
  for every window its predecessor had flushed to the end;
* **counted twice** when its delta also holds a row of ``W`` on ``p`` above ``A``: the
  delta is merged whole. This happens when the app dies (or hands a partition over
  without committing) after a delivered flush but before the offsets of its records
  were committed, and the next owner reads on past them into the same window before
  its first flush. The excess is at most the rows of ``W`` on ``p`` between the last
  commit and the last delivered flush: one flush interval's worth when offsets are
  committed right after each flush, as the Faust helper does
  (:mod:`streamproc.embed.faust`); windows the crash left behind are not affected.

And not at all guaranteed: a delta the aggregate receives *after* a later delta of the
same window and partition is dropped although it was never applied. One profiler's
deltas of a partition never overtake each other (idempotent producer, one profiles
partition per model, a failed delta re-sent before newer ones), but two writers of one
source partition at once can lose or double rows: a zombie owner still flushing after a
rebalance, or a streamproc ingest stage reading the same topic (never point both at one
topic). A flush that fails with some of a window's split deltas (only buffers over
:data:`MAX_DELTA_BYTES`) delivered and an earlier one not may lose that earlier one.
Deltas of windows the aggregate already dropped from retention are ignored.

Within one profiler, a record at or below the highest offset already observed on its
partition is skipped (``stats.duplicates``): consumers deliver a partition in offset
order, so it was observed before (a consumer re-reading after a rebalance). Records are
never lost as long as the caller commits a record's offset only after a :meth:`flush`
that covered it returned.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from confluent_kafka import KafkaException, Producer

from streamproc.config import parse_duration_ms
from streamproc.contracts.limits import DecodeLimits
from streamproc.contracts.prediction import decode_predictions
from streamproc.core.model_profile import ModelProfile
from streamproc.monitor.references import ReferenceSet
from streamproc.monitor.watermark import WATERMARK_HEADER, SourceKey, Watermarks
from streamproc.monitor.window_buffer import (
    MAX_DELTA_BYTES,
    BufferedChunk,
    WindowBuffer,
    build_deltas,
)

log = logging.getLogger(__name__)

LATE_EVENT = "late_event"
FUTURE_TIMESTAMP = "future_timestamp"

RejectCallback = Callable[[Any, int, int, str, str], None]
"""``on_reject(value, partition, offset, reason, detail)``."""


class DeliveryFailed(KafkaException):
    """A flush could not deliver every delta; they are sent again by the next flush
    (delivered copies are dropped by the aggregate). Do not commit the offsets."""


@dataclass
class ProfilerStats:
    observed: int = 0
    """Records passed to observe."""
    duplicates: int = 0
    """Records skipped: at or below the highest offset already observed on the partition."""
    accepted: int = 0
    """Records buffered into a window."""
    rejected: dict[str, int] = field(default_factory=dict)
    """Rejected records by reason (decoder reasons, ``late_event``, ``future_timestamp``)."""
    deltas_sent: int = 0
    rows_sent: int = 0
    """Rows in delivered deltas."""


@dataclass(eq=False)
class _Outgoing:
    """The encoded deltas of one frozen buffer, until all of them are delivered."""

    key: bytes
    payloads: list[bytes]
    headers: list[tuple[str, str | bytes | None]]
    rows: int


class StreamProfiler:
    """Observe prediction-log records, flush profile deltas to the profiles topic.

    Not thread-safe: observe and flush from one thread (or one event loop).
    """

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        profiles_topic: str,
        references: Iterable[ModelProfile | str | Path] | ReferenceSet,
        source_topic: str,
        window: str | int | float = "5m",
        allowed_lateness: str | int | float = "1m",
        flush_interval_s: float = 1.0,
        producer_id: str | None = None,
        kafka: Mapping[str, Any] | None = None,
        limits: DecodeLimits | None = None,
        max_future_skew: str | int | float = "5m",
        batch_size: int = 1000,
        on_reject: RejectCallback | None = None,
        producer: Any | None = None,
    ) -> None:
        """``window``, ``allowed_lateness``, ``max_future_skew``: durations (``"5m"``, or
        seconds), the worker's ``[windows] size``, ``allowed_lateness`` and ``[limits]
        max_future_skew``. ``source_topic``: the topic the records come from (the dedupe
        key with their partitions). ``kafka``: more producer settings (security, SASL).
        ``producer``: a confluent-kafka-like producer to use instead (tests)."""
        self.profiles_topic = profiles_topic
        self.source_topic = source_topic
        self.window_ms = parse_duration_ms(window)
        if self.window_ms <= 0:
            raise ValueError(f"window must be positive, got {window!r}")
        self.allowed_lateness_ms = parse_duration_ms(allowed_lateness)
        self.skew_ms = parse_duration_ms(max_future_skew)
        self.flush_interval_s = float(flush_interval_s)
        self.batch_size = max(1, int(batch_size))
        self.limits = limits or DecodeLimits()
        self.on_reject = on_reject
        self.references = _reference_set(references)
        self.producer_id = producer_id or (
            f"embed-{source_topic}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        )
        self.producer = producer or Producer(
            {
                "bootstrap.servers": bootstrap_servers,
                "enable.idempotence": True,  # acks=all; retries neither duplicate nor reorder
                "linger.ms": 5,
                "compression.type": "lz4",
                "message.max.bytes": 32 * 1024 * 1024,
                **dict(kafka or {}),
            }
        )
        self.stats = ProfilerStats()
        self.watermarks = Watermarks(skew_ms=self.skew_ms)
        self._buffers: dict[tuple[str, str, int, int], WindowBuffer] = {}
        self._outbox: list[_Outgoing] = []
        self._seen: dict[int, int] = {}
        """Highest offset observed per source partition."""
        self._values: list[bytes] = []
        self._meta: list[tuple[int, int, float]] = []
        """(partition, offset, timestamp_s) of each pending value."""
        self._last_flush = time.monotonic()

    # ------------------------------------------------------------------ observe

    def observe(
        self,
        value: bytes | bytearray | str | Mapping[str, Any] | None,
        *,
        partition: int,
        offset: int,
        timestamp_s: float | None = None,
    ) -> None:
        """Take one record: its value (the JSON bytes, or the decoded envelope dict) and
        where it was read from. ``timestamp_s``: the Kafka record timestamp (epoch
        seconds; for the pipeline-lag ops metric), None: now."""
        self.stats.observed += 1
        seen = self._seen.get(partition)
        if seen is not None and offset <= seen:
            self.stats.duplicates += 1
            return
        self._seen[partition] = offset
        self._values.append(_as_bytes(value))
        self._meta.append((partition, offset, time.time() if timestamp_s is None else timestamp_s))
        if len(self._values) >= self.batch_size:
            self._decode()

    def observe_many(
        self,
        values: Sequence[bytes | bytearray | str | Mapping[str, Any] | None],
        partitions: Sequence[int],
        offsets: Sequence[int],
        timestamps_s: Sequence[float | None] | None = None,
    ) -> None:
        """:meth:`observe` for each record of a batch."""
        stamps = timestamps_s if timestamps_s is not None else [None] * len(values)
        for v, p, o, t in zip(values, partitions, offsets, stamps, strict=True):
            self.observe(v, partition=p, offset=o, timestamp_s=t)

    def forget_partition(self, partition: int) -> None:
        """Stop skipping re-read offsets of ``partition`` (only for a consumer that
        deliberately seeks back to profile a range again: its deltas are then dropped
        or double-count as described in the module documentation)."""
        self._seen.pop(partition, None)

    def _decode(self) -> None:
        if not self._values:
            return
        values, meta = self._values, self._meta
        self._values, self._meta = [], []
        received = time.time()
        result = decode_predictions(
            values,
            known_models=self.references.is_known,
            limits=self.limits,
            max_event_ms=int(received * 1000) + self.skew_ms,
            window_ms=self.window_ms,
        )
        for reject in result.rejects:
            self._reject(values, meta, reject.position, reject.reason, reject.detail)
        if not result.batches:
            return
        parts = np.array([m[0] for m in meta], dtype=np.int64)
        offs = np.array([m[1] for m in meta], dtype=np.int64)
        append_s = np.array([m[2] for m in meta], dtype=np.float64)
        batches = list(result.batches.values())
        # the far-future bound of each (partition, model, version) of this batch, as ingest
        future_after: dict[SourceKey, int] = {}
        by_source: dict[SourceKey, list[np.ndarray]] = {}
        for b in batches:
            ts_ms = (b.timestamps * 1000).astype(np.int64)
            rows_p = parts[b.indices]
            for p in np.unique(rows_p):
                key = (int(p), b.model, b.model_version)
                by_source.setdefault(key, []).append(ts_ms[rows_p == p])
        for key, chunks in by_source.items():
            after = self.watermarks.future_after_ms(key, np.concatenate(chunks))
            if after is not None:
                future_after[key] = after
        accepted: dict[SourceKey, list[np.ndarray]] = {}
        wall_ms = int(received * 1000)
        for b in batches:
            ts_ms = (b.timestamps * 1000).astype(np.int64)
            rows_p = parts[b.indices]
            window_end = b.window_start_ms + self.window_ms
            for p in np.unique(rows_p):
                key = (int(p), b.model, b.model_version)
                rows = rows_p == p
                if window_end + self.allowed_lateness_ms <= self.watermarks.newest_ms(key):
                    for pos in b.indices[rows]:
                        self._reject(values, meta, int(pos), LATE_EVENT, "older than the lateness")
                    continue
                after = future_after.get(key)
                if after is not None:
                    future = rows & self.watermarks.too_far_ahead(ts_ms, after, wall_ms)
                    for pos in b.indices[future]:
                        self._reject(values, meta, int(pos), FUTURE_TIMESTAMP, "too far ahead")
                    rows &= ~future
                picked = np.flatnonzero(rows)
                if picked.size == 0:
                    continue
                sub = b if picked.size == b.n else b.take(picked)
                bkey = (b.model, b.model_version, b.window_start_ms, int(p))
                buf = self._buffers.get(bkey)
                if buf is None:
                    buf = WindowBuffer(b.model, b.model_version, b.window_start_ms, window_end)
                    self._buffers[bkey] = buf
                idx = sub.indices
                buf.add(BufferedChunk(sub, append_s[idx], received), parts[idx], offs[idx])
                accepted.setdefault(key, []).append(ts_ms[picked])
                self.stats.accepted += int(picked.size)
        for key, chunks in accepted.items():
            self.watermarks.advance(key, np.concatenate(chunks))

    def _reject(
        self,
        values: list[bytes],
        meta: list[tuple[int, int, float]],
        pos: int,
        reason: str,
        detail: str,
    ) -> None:
        self.stats.rejected[reason] = self.stats.rejected.get(reason, 0) + 1
        if self.on_reject is not None:
            partition, offset, _ = meta[pos]
            self.on_reject(values[pos], partition, offset, reason, detail)

    # ------------------------------------------------------------------ flush

    def flush_due(self) -> bool:
        """Whether ``flush_interval_s`` has passed since the last flush."""
        return time.monotonic() - self._last_flush >= self.flush_interval_s

    @property
    def pending(self) -> int:
        """Records observed and not yet in a delivered delta (rejected ones excluded)."""
        return (
            len(self._values)
            + sum(b.rows for b in self._buffers.values())
            + sum(o.rows for o in self._outbox)
        )

    def flush(self, timeout_s: float = 30.0) -> int:
        """Sketch every buffered window into deltas, produce them and wait for delivery;
        the number of deltas delivered. Raises :class:`DeliveryFailed` when some were
        not delivered within ``timeout_s`` (they are sent again, unchanged, by the next
        flush): commit the observed offsets only after a flush returned."""
        self._last_flush = time.monotonic()
        self._decode()
        for buf in self._buffers.values():  # frozen: new rows go to new buffers
            reference = self.references.get(buf.model, buf.model_version)
            assert reference is not None  # unknown models never reach a buffer
            watermark = self.watermarks.model_watermark_ms(buf.model, buf.model_version)
            deltas = build_deltas(
                buf,
                reference,
                topic=self.source_topic,
                producer_id=self.producer_id,
                max_bytes=MAX_DELTA_BYTES,
            )
            self._outbox.append(
                _Outgoing(
                    buf.model.encode(),
                    [d.to_bytes() for d in deltas],
                    [(WATERMARK_HEADER, str(watermark).encode())],
                    buf.rows,
                )
            )
        self._buffers.clear()
        if not self._outbox:
            return 0
        failed: list[set[int]] = [set() for _ in self._outbox]
        errors: list[str] = []
        for i, out in enumerate(self._outbox):
            for payload in out.payloads:
                self._produce(out, payload, failed[i], errors)
        remaining = self.producer.flush(timeout_s)
        sent, self._outbox = self._outbox, []
        if remaining:  # which were delivered is not known yet: all go again, in order
            self._outbox = sent
        elif errors:  # the failed ones go again (in order); the others are counted
            self._outbox = [o for o, f in zip(sent, failed, strict=True) if f]
        kept = {id(o) for o in self._outbox}
        delivered = [o for o in sent if id(o) not in kept]
        self._count(delivered)
        if remaining or errors:
            raise DeliveryFailed(
                f"{remaining} deltas undelivered after {timeout_s}s; errors: {errors[:3]}"
            )
        return sum(len(o.payloads) for o in delivered)

    def _produce(self, out: _Outgoing, payload: bytes, failed: set[int], errors: list[str]) -> None:
        def on_delivery(err: Any, _msg: Any) -> None:
            if err is not None:
                failed.add(1)
                errors.append(str(err))

        while True:
            try:
                self.producer.produce(
                    self.profiles_topic,
                    value=payload,
                    key=out.key,
                    headers=out.headers,
                    on_delivery=on_delivery,
                )
                return
            except BufferError:
                self.producer.poll(0.05)

    def _count(self, delivered: list[_Outgoing]) -> None:
        self.stats.deltas_sent += sum(len(o.payloads) for o in delivered)
        self.stats.rows_sent += sum(o.rows for o in delivered)

    def close(self, timeout_s: float = 30.0) -> None:
        """Flush what is buffered."""
        self.flush(timeout_s)


def _as_bytes(value: bytes | bytearray | str | Mapping[str, Any] | None) -> Any:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    return orjson.dumps(value)


def _reference_set(references: Iterable[ModelProfile | str | Path] | ReferenceSet) -> ReferenceSet:
    if isinstance(references, ReferenceSet):
        return references
    profiles: list[ModelProfile] = []
    paths: list[Path] = []
    for ref in references:
        if isinstance(ref, ModelProfile):
            profiles.append(ref)
        else:
            paths.append(Path(ref))
    if paths:
        profiles.extend(ReferenceSet.load(paths).by_version.values())
    if not profiles:
        raise ValueError("no reference profile given")
    return ReferenceSet.of(profiles)
