"""Read the compacted state topic back, and say what its records hold.

Two halves:

* :func:`read_latest` reads ``read_committed`` from the beginning of the given
  partitions to their end offsets (taken first) and keeps the latest value of every key
  (``None``: a tombstone) — what a compacted topic means. It stops at the end offsets
  even when transaction markers (which occupy offsets but are never delivered) sit
  there. It is the worker's restore read (``AggregateLoop._read_state``) and
  ``streamproc inspect``'s.
* :func:`decode_state` is pure: the latest records → :class:`StateSnapshot`, one
  :class:`WindowRow` per window record (``["w", model, version, start_ms]`` →
  :meth:`WindowState.to_bytes`) and one :class:`AlertRow` per alert state
  (``["a", fingerprint]`` → :meth:`AlertState.to_dict` as JSON), sorted; tombstones are
  counted, records of other kinds (a model version's clock, ``["c", ...]``) are counted
  by kind, and records that do not decode are listed (never raised).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from streamproc.checks.lifecycle import AlertState
from streamproc.monitor.authorization import raise_if_refused
from streamproc.monitor.state import WindowState
from streamproc.monitor.store import ALERT_RECORD, WINDOW_RECORD

log = logging.getLogger(__name__)

DEFAULT_READ_TIMEOUT_S = 120.0

LatestRecords = dict[bytes, tuple[int, bytes | None]]
"""Key → (partition, latest value); ``None`` is a tombstone."""


def reader_settings(kafka: Mapping[str, Any], group_id: str) -> dict[str, Any]:
    """Consumer settings for a state read: ``kafka`` (connection settings) plus a group
    id that is never joined or committed, read_committed, large fetches."""
    return {
        **kafka,
        "group.id": group_id,
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "max.partition.fetch.bytes": 32 * 1024 * 1024,
    }


def watermarks(consumer: Consumer, tp: TopicPartition, timeout_s: float = 60) -> tuple[int, int]:
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


def topic_partitions(consumer: Consumer, topic: str, timeout_s: float = 10) -> list[int] | None:
    """The partition ids of ``topic``, or None when the broker does not know it.
    (A consumer's metadata request never auto-creates the topic.)"""
    meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
    if meta is None or meta.error is not None or not meta.partitions:
        return None
    return sorted(meta.partitions)


class StateReadTimeout(TimeoutError):
    """The read did not reach the end offsets in time; ``partial`` holds what it read."""

    def __init__(self, message: str, partial: LatestRecords) -> None:
        super().__init__(message)
        self.partial = partial


def read_latest(
    consumer: Consumer,
    topic: str,
    partitions: list[int],
    *,
    timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    partial_ok: bool = False,
) -> LatestRecords:
    """The latest (partition, value) of every key in ``topic``'s ``partitions``, from the
    beginning to the end offsets at the start of the call.

    ``consumer`` should be built with :func:`reader_settings` (read_committed); it is
    assigned here and left open (the caller closes it). Past ``timeout_s`` this raises
    :class:`StateReadTimeout`, or with ``partial_ok`` returns what it read so far.
    """
    latest: LatestRecords = {}
    ends: dict[int, int] = {}
    for p in partitions:
        lo, hi = watermarks(consumer, TopicPartition(topic, p))
        if hi > lo:
            ends[p] = hi
    if not ends:
        return latest
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
    done: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while len(done) < len(ends) and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=1000, timeout=0.5):
            if msg.error():
                raise_if_refused(msg.error(), topic=topic)  # no READ: say so, never wait
                continue
            p = msg.partition() or 0
            if p not in ends:
                continue
            latest[msg.key() or b""] = (p, msg.value())
            if (msg.offset() or 0) >= ends[p] - 1:
                done.add(p)
        # transaction markers occupy offsets: stop at the end of each partition
        for p in ends:
            if p not in done:
                pos = consumer.position([TopicPartition(topic, p)])
                if pos and pos[0].offset >= ends[p]:
                    done.add(p)
    if len(done) < len(ends) and not partial_ok:
        missing = sorted(set(ends) - done)
        raise StateReadTimeout(
            f"reading {topic} did not reach the end of partition(s) {missing} "
            f"within {timeout_s:g} s",
            latest,
        )
    return latest


# ----------------------------------------------------------------------------- decoding


@dataclass(frozen=True)
class WindowRow:
    """One checkpointed window."""

    model: str
    model_version: str
    start_ms: int
    end_ms: int
    rows: int
    """Records merged into the window's feature profile."""
    final: bool
    """True once the window closed and had its final evaluation."""
    applied: Mapping[str, int]
    """``"topic:partition"`` → highest source offset merged in."""
    partition: int
    """The state-topic partition the record is on."""


@dataclass(frozen=True)
class AlertRow:
    """One checkpointed alert lifecycle state."""

    fingerprint: str
    model: str
    model_version: str
    check: str
    feature: str | None
    status: str
    """``firing`` or ``resolved`` (also for one that never fired: ``started_at_ms`` None)."""
    severity: str | None
    started_at_ms: int | None
    resolved_at_ms: int | None
    last_window_end_ms: int | None
    partition: int


@dataclass(frozen=True)
class StateSnapshot:
    windows: list[WindowRow] = field(default_factory=list)
    alerts: list[AlertRow] = field(default_factory=list)
    purged: list[tuple[str, str, int]] = field(default_factory=list)
    """(model, version, start_ms) of the window keys whose latest record is a tombstone
    (windows purged past retention)."""
    alert_tombstones: int = 0
    other: dict[str, int] = field(default_factory=dict)
    """Records of other kinds (e.g. a model version's clock), counted by kind."""
    unreadable: list[str] = field(default_factory=list)
    """One line per record that did not decode: its key and why."""


def _window_row(value: bytes, partition: int) -> WindowRow:
    w = WindowState.from_bytes(value)
    return WindowRow(
        model=w.model,
        model_version=w.model_version,
        start_ms=w.start_ms,
        end_ms=w.end_ms,
        rows=w.profile.row_count,
        final=w.final,
        applied=dict(sorted(w.applied.items())),
        partition=partition,
    )


def _alert_row(value: bytes, partition: int) -> AlertRow:
    st = AlertState.from_dict(orjson.loads(value))
    return AlertRow(
        fingerprint=st.fingerprint,
        model=st.model,
        model_version=st.model_version,
        check=st.check,
        feature=st.feature,
        status=st.status,
        severity=st.severity,
        started_at_ms=st.started_at_ms,
        resolved_at_ms=st.resolved_at_ms,
        last_window_end_ms=st.last_window_end_ms,
        partition=partition,
    )


def decode_state(latest: Mapping[bytes, tuple[int, bytes | None]]) -> StateSnapshot:
    """What the latest state records say: windows sorted by (model, version, start),
    alert states by (model, version, check, feature)."""
    windows: list[WindowRow] = []
    alerts: list[AlertRow] = []
    purged: list[tuple[str, str, int]] = []
    alert_tombstones = 0
    other: dict[str, int] = {}
    unreadable: list[str] = []
    for key, (partition, value) in latest.items():
        shown = key.decode("utf-8", "replace")
        try:
            parts = orjson.loads(key)
        except orjson.JSONDecodeError:
            parts = None
        kind = parts[0] if isinstance(parts, list) and parts else None
        if kind == WINDOW_RECORD and not (
            len(parts) == 4
            and isinstance(parts[1], str)
            and isinstance(parts[2], str)
            and isinstance(parts[3], int)
        ):
            kind = None
        if not isinstance(kind, str):
            unreadable.append(f"{shown}: not a state record key")
            continue
        if kind not in (WINDOW_RECORD, ALERT_RECORD):
            other[kind] = other.get(kind, 0) + 1
            continue
        if value is None:
            if kind == WINDOW_RECORD:
                purged.append((parts[1], parts[2], parts[3]))
            else:
                alert_tombstones += 1
            continue
        try:
            if kind == WINDOW_RECORD:
                windows.append(_window_row(value, partition))
            else:
                alerts.append(_alert_row(value, partition))
        except Exception as exc:  # any malformed record is reported, not raised
            unreadable.append(f"{shown}: {type(exc).__name__}: {exc}")
    windows.sort(key=lambda w: (w.model, w.model_version, w.start_ms))
    alerts.sort(key=lambda a: (a.model, a.model_version, a.check, a.feature or ""))
    return StateSnapshot(
        windows=windows,
        alerts=alerts,
        purged=sorted(purged),
        alert_tombstones=alert_tombstones,
        other=dict(sorted(other.items())),
        unreadable=sorted(unreadable),
    )
