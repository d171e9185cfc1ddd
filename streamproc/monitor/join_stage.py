"""The join stage: labels meet their stored predictions, by request id, exactly once.

Inputs are the two repartition topics of :mod:`streamproc.labels.repartition` (written
by ingest and by the labels stage, same partition count, keyed by request id). The
consumer group ``<group>-join`` uses the **range** assignor, so a worker owns the same
partition numbers of both topics: partition *p* of each is one join task with one
RocksDB store (:class:`~streamproc.labels.kv.RocksKV` under ``state_dir``) and one
:class:`~streamproc.labels.join.LabelJoin`.

**Exactly once.** Every store transaction's writes go to partition *p* of a compacted
changelog topic in the stage's Kafka transaction, together with the performance deltas
of the matched labels (to the profiles topic, as the labels stage's), the dead-letters of
unmatched labels and the consumed offsets of both inputs. On every assignment (start,
rebalance, restart after a fault) the store of *p* is wiped and rebuilt from changelog
*p* (read_committed, after this stage's ``init_transactions`` fenced any zombie), so the
store always equals what the committed transactions say; an aborted transaction is
handled the same way: stores rebuilt, consumer back to the committed offsets.

**Event time** of task *p* is the newest prediction event time it has seen
(:meth:`LabelJoin.advance` at every flush): labels wait ``grace`` for their prediction,
predictions wait ``horizon`` for their label, both by that clock.

A performance delta's source is ``<predictions repartition topic>`` with ranges
``(p, seq, seq)``: ``seq`` is task *p*'s flush sequence number, kept in its store (so in
its changelog), so the aggregate's offset-range dedupe drops a re-delivered delta.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import orjson
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from streamproc.contracts.framing import deadletter_headers
from streamproc.core.labeled_slices import LabeledSlices
from streamproc.core.model_profile import ModelProfile
from streamproc.core.performance import ClassificationPerformance
from streamproc.core.shadow import ShadowPairs
from streamproc.core.slice_profiles import SliceSpec
from streamproc.labels.join import JoinOutput, JoinPolicy, LabelJoin, Matched
from streamproc.labels.kv import RocksKV
from streamproc.labels.repartition import decode_labels, decode_predictions
from streamproc.labels.store import Pending, PendingStore
from streamproc.monitor.authorization import raise_if_refused
from streamproc.monitor.clients import (
    KafkaClients,
    close_clients,
    exactly_once_consumer,
    produce_waiting,
    stage_identity,
    transactional_producer,
)
from streamproc.monitor.join_slices import (
    labeled_slices,
    positive_class,
    shadow_update,
    shadow_update_labeled,
    update_performance,
)
from streamproc.monitor.labels import new_performance, regression_value
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
from streamproc.monitor.txn import Patience, commit_or_abort, positions_of

log = logging.getLogger(__name__)

RESTORE_TIMEOUT_S: Final = 300.0
NOT_A_JOIN_RECORD: Final = "not_a_join_record"
"""Dead-letter reason of a repartition record that is not one (a foreign writer)."""

WindowKey = tuple[str, str, int]


def join_topic_names(profiles_topic: str) -> tuple[str, str, str]:
    """(predictions repartition, labels repartition, changelog) topics of a deployment."""
    return (
        f"{profiles_topic}-join-predictions",
        f"{profiles_topic}-join-labels",
        f"{profiles_topic}-join-changelog",
    )


@dataclass(frozen=True)
class JoinSettings:
    predictions_topic: str
    """Repartition topic of the predictions (written by ingest)."""
    labels_topic: str
    """Repartition topic of the labels (written by the labels stage)."""
    changelog_topic: str
    profiles_topic: str
    deadletter_topic: str
    source_labels_topic: str
    """The user's labels topic (named in dead-letters of unmatched labels)."""
    group_id: str
    window_ms: int
    state_dir: Path
    policy: JoinPolicy = field(default_factory=JoinPolicy)
    instance_id: str = ""
    flush_interval_s: float = 0.5
    batch_size: int = 5_000
    kafka: dict[str, str] = field(default_factory=dict)
    slices_for: Callable[[str], SliceSpec | None] = field(default=lambda _model: None)
    """Per model: how its labeled rows are sliced (None: not)."""


@dataclass
class _Window:
    """The matches of one (model, version, prediction window) since the last flush."""

    performance: Performance
    reference: ModelProfile
    tasks: set[int] = field(default_factory=set)
    truth: list[Any] = field(default_factory=list)
    predicted: list[Any] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    lag_s: list[float] = field(default_factory=list)
    segments: list[Mapping[str, str] | None] = field(default_factory=list)
    pairs: list[tuple[Pending, Pending]] = field(default_factory=list)
    """Shadow pairs (champion, challenger) formed since the last flush."""
    labeled_pairs: list[tuple[Pending, Pending, Any, int]] = field(default_factory=list)

    def settle(self, spec: SliceSpec | None) -> tuple[Performance, LabeledSlices | None]:
        """The accumulator with every match added (one vectorised update), and the
        window's slices (``spec``), labeled fairness counts and shadow pairs."""
        slices: LabeledSlices | None = None
        scores, lag = np.asarray(self.scores, dtype=np.float64), np.asarray(self.lag_s)
        if self.truth:
            update_performance(
                self.performance, self.truth, self.predicted, scores, lag, regression_value
            )
        if spec is not None and self.truth:
            slices = labeled_slices(
                spec,
                self.performance,
                lambda: new_performance(self.reference),
                regression_value,
                self.truth,
                self.predicted,
                scores,
                lag,
                self.segments,
            )
        if self.pairs or self.labeled_pairs:
            perf = self.performance
            threshold = perf.threshold if isinstance(perf, ClassificationPerformance) else 0.5
            shadow = shadow_update(ShadowPairs(threshold=threshold), self.pairs)
            positive = positive_class(spec, self.performance)
            if positive is not None:
                shadow = shadow_update_labeled(shadow, self.labeled_pairs, positive)
            slices = slices or LabeledSlices()
            slices.shadow = shadow
        self.truth, self.predicted, self.scores, self.lag_s = [], [], [], []
        self.segments, self.pairs, self.labeled_pairs = [], [], []
        return self.performance, slices


class JoinLoop:
    """Consume both repartition topics → join per partition → publish + commit."""

    def __init__(
        self,
        settings: JoinSettings,
        references: ReferenceSet,
        metrics: Metrics,
        clients: KafkaClients | None = None,
    ) -> None:
        self.settings = settings
        self.references = references
        self.metrics = metrics
        self.clients = clients or KafkaClients()
        self.producer_id = stage_identity(settings.group_id, settings.instance_id, "join")
        self.joins: dict[int, LabelJoin] = {}
        self._windows: dict[WindowKey, _Window] = {}
        self._event_ms: dict[int, int] = {}
        """Task → newest prediction event time consumed since the last flush."""
        self._touched: set[int] = set()
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._last_flush = time.monotonic()
        self.ready = threading.Event()
        self.patience = Patience()
        metrics.commit_waiting_seconds.labels("join").set_function(self.patience.waited_s)

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> None:
        s = self.settings
        consumer_settings = exactly_once_consumer(
            {"fetch.wait.max.ms": 100, **s.kafka}, s.group_id, s.instance_id
        )
        # the same partition numbers of both inputs on one member: range, not sticky
        consumer_settings["partition.assignment.strategy"] = "range"
        producer = transactional_producer(self.clients, s.kafka, self.producer_id)
        self._producer = producer  # fenced first: a zombie's changelog writes are aborted
        self._consumer = self.clients.consumer(consumer_settings)
        self.metrics.last_commit_timestamp_seconds.labels("join").set_to_current_time()

    def close(self, *, failed: bool = False) -> None:
        consumer, producer = self._consumer, self._producer
        self._consumer = self._producer = None
        close_clients(consumer, producer, failed=failed)
        self._close_stores()

    def run(self, stop: threading.Event) -> None:
        self.patience.stop = stop
        supervise(
            "join",
            lambda: self._run_clients(stop),
            self._drop_uncommitted,
            stop,
            lambda reason: self.metrics.stage_restarts_total.labels("join", reason).inc(),
        )

    def _run_clients(self, stop: threading.Event) -> None:
        self.open()
        consumer = self._consumer
        assert consumer is not None
        s = self.settings
        consumer.subscribe(
            [s.predictions_topic, s.labels_topic],
            on_assign=self._on_assign,
            on_revoke=lambda _c, _parts: self._on_revoke(),
            on_lost=lambda _c, _parts: self._drop_uncommitted(),
        )
        try:
            while not stop.is_set():
                messages = consumer.consume(num_messages=s.batch_size, timeout=0.1)
                if messages:
                    self.process(messages)
                if time.monotonic() - self._last_flush >= s.flush_interval_s:
                    self.flush()
                    report_lag(consumer, "join", self.metrics.consumer_lag)
            self.flush()
        except BaseException:
            self.close(failed=True)
            raise
        self.close()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        tasks = sorted({tp.partition for tp in partitions})
        log.info("join assigned tasks %s", tasks)
        self._restore(tasks)
        consumer.assign(partitions)
        self.ready.set()

    def _on_revoke(self) -> None:
        self.flush()
        self._close_stores()

    def _close_stores(self) -> None:
        for join in self.joins.values():
            join.store.kv.close()
        self.joins.clear()

    # ------------------------------------------------------------------ restore

    def _restore(self, tasks: list[int]) -> None:
        """Wipe and rebuild the stores of ``tasks`` from their changelog partitions."""
        began = time.monotonic()
        self._close_stores()
        s = self.settings
        settings = {
            **s.kafka,
            "group.id": f"{s.group_id}-restore",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 10,  # the end of a partition shows at once, not in 0.5 s
        }
        for task in tasks:
            path = s.state_dir / f"task-{task}"
            shutil.rmtree(path, ignore_errors=True)
            kv = RocksKV(path)
            # a reader per task: nothing of one partition's read (a late end-of-partition
            # event) can reach another's, which would end its restore early
            reader = self.clients.consumer(settings)
            try:
                store = PendingStore(kv)
                restored = _read_changelog(reader, s.changelog_topic, task, store)
            except BaseException:
                kv.close()  # a restart opens it again
                raise
            finally:
                reader.close()
            self.joins[task] = LabelJoin(store, s.policy)
            log.info("join task %d: %d changelog records restored", task, restored)
        self.metrics.join_restore_seconds.set(time.monotonic() - began)
        self._report_sizes()

    # ------------------------------------------------------------------ process

    def process(self, messages: list[Message]) -> None:
        """Apply one consumed batch, task by task, in each task's order."""
        s = self.settings
        runs: list[tuple[int, str, list[Message]]] = []
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    raise_if_fatal(err)
                    raise_if_refused(err, topic=msg.topic() or "", group=s.group_id)
                    log.warning("join consume error: %s", err)
                continue
            task, topic = msg.partition() or 0, msg.topic() or ""
            if runs and runs[-1][0] == task and runs[-1][1] == topic:
                runs[-1][2].append(msg)
            else:
                runs.append((task, topic, [msg]))
        for task, topic, run in runs:
            join = self.joins.get(task)
            if join is None:  # revoked meanwhile: its records are read again elsewhere
                continue
            values = [m.value() for m in run]
            if topic == s.predictions_topic:
                preds = decode_predictions(values)
                self._bad(run, preds.bad)
                if preds.rows.event_ms:
                    newest = max(preds.rows.event_ms)
                    self._event_ms[task] = max(self._event_ms.get(task, 0), newest)
                self._handle(task, join.apply_predictions(preds.rows))
            else:
                labels = decode_labels(values)
                self._bad(run, labels.bad)
                out = join.apply_labels(
                    labels.models, labels.request_ids, labels.label_ms, labels.labels
                )
                self._handle(task, out)

    def _bad(self, run: list[Message], positions: list[int]) -> None:
        for pos in positions:
            msg = run[pos]
            self._dead_letter(
                msg.value(),
                NOT_A_JOIN_RECORD,
                "not a repartitioned prediction or label",
                msg.topic() or "",
                msg.partition() or 0,
                msg.offset() or 0,
            )

    def _handle(self, task: int, out: JoinOutput) -> None:
        """Produce a store transaction's changelog; account for its outcomes."""
        s = self.settings
        self._touched.add(task)
        for key, value in out.changelog:
            self._produce(s.changelog_topic, key, value, partition=task)
        for m in out.matched:
            self._accumulate(task, m)
        for a, b in out.pairs:
            window = self._window(task, a)
            if window is not None:
                window.pairs.append((a, b))
        for a, b, label, label_ms in out.labeled_pairs:
            window = self._window(task, a)
            if window is not None:
                window.labeled_pairs.append((a, b, label, label_ms))
        for u in out.unmatched:
            self._dead_letter(
                orjson.dumps(u.to_event()),
                u.reason,
                "no prediction with this request id within the grace period"
                if u.reason == "no_prediction"
                else "the label is older than the label horizon",
                s.source_labels_topic,
                -1,
                -1,
            )
        counts = {
            "duplicate_label": out.duplicates,
            "correction": len(out.corrections),
            "duplicate_prediction": out.duplicate_predictions,
            "late_prediction": out.late_predictions,
            "sampled_out_prediction": out.sampled_out_predictions,
            "sampled_out_label": out.sampled_out_labels,
            "expired_unlabeled": sum(out.expired.values()),
            "swept": out.swept,
        }
        for outcome, n in counts.items():
            if n:
                self.metrics.join_events_total.labels(outcome).inc(n)

    def _window(self, task: int, p: Pending) -> _Window | None:
        """The flush's accumulator of ``p``'s (model, version, window); None when the
        model has no reference (dropped since)."""
        key = (p.model, p.model_version, p.window_start_ms)
        window = self._windows.get(key)
        if window is None:
            reference = self.references.get(p.model, p.model_version) or self.references.get(
                p.model, ""
            )
            if reference is None:  # a model dropped from the references since
                return None
            window = self._windows[key] = _Window(new_performance(reference), reference)
        window.tasks.add(task)
        return window

    def _accumulate(self, task: int, m: Matched) -> None:
        p = m.prediction
        window = self._window(task, p)
        if window is None:
            return
        window.truth.append(m.label)
        window.predicted.append(p.predicted)
        window.scores.append(p.score)
        window.lag_s.append(m.lag_ms / 1000.0)
        window.segments.append(p.segment)
        self.metrics.labels_total.labels(p.model).inc()

    def _dead_letter(
        self, value: bytes | None, reason: str, detail: str, topic: str, part: int, off: int
    ) -> None:
        headers = deadletter_headers(reason, detail, topic, part, off, [])
        self._produce(self.settings.deadletter_topic, None, value, headers=headers)
        self.metrics.deadletter_total.labels(reason).inc()

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        *,
        headers: Any = None,
        partition: int | None = None,
    ) -> None:
        assert self._producer is not None
        produce_waiting(self._producer, topic, key, value, headers, partition)

    # ------------------------------------------------------------------ flush

    def flush(self) -> None:
        """Advance event time, publish the windows' deltas, commit everything at once."""
        self._last_flush = time.monotonic()
        consumer, producer = self._consumer, self._producer
        if consumer is None or producer is None:
            return
        positions = positions_of(consumer)
        # expiry where something happened: new event time, or a label that may already
        # be past its grace (it arrived after the predictions that pass it)
        for task in sorted(self._touched | set(self._event_ms)):
            join = self.joins.get(task)
            if join is not None:
                self._handle(task, join.advance(self._event_ms.get(task, join.watermark_ms)))
        self._event_ms.clear()
        if not self._touched and not positions:
            return
        s = self.settings
        seq: dict[int, int] = {}
        for task in sorted(self._touched):
            join = self.joins.get(task)
            if join is None:
                continue
            # strictly above the last committed one, and a wall-clock ms: a delta's
            # dedupe range never repeats one the aggregate applied, even across owners
            seq[task] = max(int(join.store.meta.get("seq", 0)) + 1, int(time.time() * 1000))
            join.store.meta["seq"] = seq[task]
            for key, value in join.store.commit():
                self._produce(s.changelog_topic, key, value, partition=task)
        for (model, version, start), window in self._windows.items():
            performance, slices = window.settle(s.slices_for(model))
            delta = PerformanceDelta(
                model,
                version,
                start,
                start + s.window_ms,
                s.predictions_topic,
                sorted((t, seq[t], seq[t]) for t in window.tasks if t in seq),
                self.producer_id,
                performance,
                slices,
            )
            headers = [(KIND_HEADER, KIND_PERFORMANCE)]
            self._produce(s.profiles_topic, model.encode(), delta.to_bytes(), headers=headers)
            self.metrics.performance_deltas_published_total.inc()
        if not commit_or_abort(producer, consumer, positions, self.patience):
            self._reset_to_committed()
            return
        self._windows.clear()
        self._touched.clear()
        self._report_sizes()
        self.metrics.last_commit_timestamp_seconds.labels("join").set_to_current_time()

    def _report_sizes(self) -> None:
        metas = [j.store.meta for j in self.joins.values()]
        self.metrics.join_pending.set(sum(int(m["pending"]) for m in metas))
        self.metrics.join_waiting_labels.set(sum(int(m["waiting"]) for m in metas))
        self.metrics.join_sample_rate.set(min((j.rate for j in self.joins.values()), default=1))

    def _drop_uncommitted(self) -> None:
        self._windows.clear()
        self._touched.clear()
        self._event_ms.clear()
        self._close_stores()

    def _reset_to_committed(self) -> None:
        """After an aborted transaction: stores rebuilt from the changelog (the aborted
        writes are not in it), the consumer back at the committed offsets."""
        tasks = sorted(self.joins)
        self._drop_uncommitted()
        self._restore(tasks)
        consumer = self._consumer
        if consumer is None:
            return
        assignment = consumer.assignment()
        if assignment:
            for tp in consumer.committed(assignment, timeout=30):
                consumer.seek(TopicPartition(tp.topic, tp.partition, max(tp.offset, 0)))


def _read_changelog(reader: Consumer, topic: str, task: int, store: PendingStore) -> int:
    """Replay changelog partition ``task`` into ``store``; returns the records applied."""
    low, high = reader.get_watermark_offsets(TopicPartition(topic, task), timeout=30)
    if high <= low:
        return 0
    reader.assign([TopicPartition(topic, task, low)])
    deadline = time.monotonic() + RESTORE_TIMEOUT_S
    applied = 0
    try:
        while True:
            batch: list[tuple[bytes, bytes | None]] = []
            at_end = False
            for msg in reader.consume(num_messages=10_000, timeout=0.1):
                if msg.topic() != topic or msg.partition() != task:
                    continue  # not this partition's (never expected; never trusted)
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        at_end = True  # past the last stable offset, markers included
                        continue
                    raise_if_fatal(err)
                    raise_if_refused(err, topic=topic)
                    continue
                key = msg.key()
                if key is not None:
                    batch.append((key, msg.value()))
            if batch:
                store.restore(batch)
                applied += len(batch)
            position = reader.position([TopicPartition(topic, task)])[0].offset
            if at_end or position >= high:
                return applied
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"restoring {topic}[{task}] took over {RESTORE_TIMEOUT_S:.0f} s "
                    f"(at {position} of {high})"
                )
    finally:
        reader.unassign()


__all__ = ["JoinLoop", "JoinSettings", "join_topic_names"]
