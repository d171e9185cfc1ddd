"""Test doubles for the forwarder: a scripted consumer and Alertmanager, and real alerts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import TopicPartition

from streamproc.alerting.client import AlertmanagerError
from streamproc.checks.alerts import Alert
from tests.support.alerts import flag_results, lifecycle_messages


def lifecycle(flags: Sequence[bool | str]) -> list[Alert]:
    """The messages the real lifecycle emits for these evaluations ('critical' escalates)."""
    return lifecycle_messages(flag_results(flags))


class FakeError:
    def __init__(self, code: int, fatal: bool = False) -> None:
        self._code, self._fatal = code, fatal

    def code(self) -> int:
        return self._code

    def fatal(self) -> bool:
        return self._fatal

    def str(self) -> str:
        return f"error {self._code}"


@dataclass
class FakeMessage:
    offset_: int
    value_: bytes | None
    partition_: int = 0
    topic_: str = "alerts"
    error_: FakeError | None = None

    def error(self) -> FakeError | None:
        return self.error_

    def topic(self) -> str:
        return self.topic_

    def partition(self) -> int:
        return self.partition_

    def offset(self) -> int:
        return self.offset_

    def value(self) -> bytes | None:
        return self.value_


def messages(alerts: Sequence[Alert | bytes], first_offset: int = 0) -> list[FakeMessage]:
    return [
        FakeMessage(first_offset + i, a if isinstance(a, bytes) else orjson.dumps(a))
        for i, a in enumerate(alerts)
    ]


@dataclass
class FakeConsumer:
    """Hands out ``batches`` one per consume(), then nothing; records every call."""

    batches: list[list[FakeMessage]]
    calls: list[tuple[str, Any]] = field(default_factory=list)
    commits: list[list[tuple[str, int, int]]] = field(default_factory=list)
    paused: set[tuple[str, int]] = field(default_factory=set)
    closed: bool = False
    on_idle: Any = None
    """Called when the batches are exhausted (e.g. to set the stop event)."""

    def subscribe(self, topics: list[str]) -> None:
        self.calls.append(("subscribe", topics))

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        self.calls.append(("consume", num_messages))
        if self.batches:
            return self.batches.pop(0)
        if self.on_idle is not None:
            self.on_idle()
        return []

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        assert asynchronous is False
        self.calls.append(("commit", None))
        self.commits.append([(tp.topic, tp.partition, tp.offset) for tp in offsets])

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition("alerts", 0)]

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.calls.append(("pause", None))
        self.paused |= {(tp.topic, tp.partition) for tp in partitions}

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.calls.append(("resume", None))
        self.paused -= {(tp.topic, tp.partition) for tp in partitions}

    def poll(self, timeout: float) -> None:
        self.calls.append(("poll", None))

    def seek(self, tp: TopicPartition) -> None:
        self.calls.append(("seek", (tp.topic, tp.partition, tp.offset)))

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeAlertmanager:
    """Fails the first ``failures`` posts (retryable), or raises ``error`` once."""

    failures: int = 0
    error: Exception | None = None
    posts: list[list[dict[str, Any]]] = field(default_factory=list)
    attempts: int = 0
    endpoint: str = "http://am.test:9093/api/v2/alerts"
    on_attempt: Any = None

    def post(self, alerts: Sequence[dict[str, Any]]) -> None:
        self.attempts += 1
        if self.on_attempt is not None:
            self.on_attempt(self.attempts)
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        if self.attempts <= self.failures:
            raise AlertmanagerError("cannot reach http://am.test:9093: Connection refused")
        self.posts.append(list(alerts))

    def probe(self) -> str | None:
        return None
