"""Transactional steps retry only what librdkafka calls retriable."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from streamproc.monitor import txn


class _Err:
    def __init__(self, retriable: bool) -> None:
        self._retriable = retriable

    def retriable(self) -> bool:
        return self._retriable

    def __str__(self) -> str:
        return f"retriable={self._retriable}"


def test_retriable_errors_are_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(txn.time, "sleep", lambda _s: None)
    calls = []

    def step() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise KafkaException(_Err(retriable=True))

    txn.retrying(step, "commit")
    assert len(calls) == 3


def test_other_errors_propagate_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(txn.time, "sleep", lambda _s: None)
    calls = []

    def step() -> None:
        calls.append(1)
        raise KafkaException(KafkaError(KafkaError._FENCED))

    with pytest.raises(KafkaException):
        txn.retrying(step, "commit")
    assert len(calls) == 1


def test_gives_up_after_the_last_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(txn.time, "sleep", lambda _s: None)
    calls = []

    def step() -> None:
        calls.append(1)
        raise KafkaException(_Err(retriable=True))

    with pytest.raises(KafkaException):
        txn.retrying(step, "commit", attempts=4)
    assert len(calls) == 4


class _Abortable:
    def txn_requires_abort(self) -> bool:
        return True

    def retriable(self) -> bool:
        return False


class _TxnProducer:
    def __init__(self, commit_error: object | None = None) -> None:
        self.commit_error = commit_error
        self.calls: list[str] = []

    def send_offsets_to_transaction(self, positions: object, group: object, timeout: float) -> None:
        self.calls.append("send_offsets")

    def commit_transaction(self, timeout: float) -> None:
        self.calls.append("commit")
        if self.commit_error is not None:
            raise KafkaException(self.commit_error)

    def abort_transaction(self, timeout: float) -> None:
        self.calls.append("abort")

    def begin_transaction(self) -> None:
        self.calls.append("begin")


class _GroupConsumer:
    def consumer_group_metadata(self) -> str:
        return "group"


def test_commit_sends_offsets_then_opens_the_next_transaction() -> None:
    producer = _TxnProducer()
    ok = txn.commit_or_abort(producer, _GroupConsumer(), [object()])  # type: ignore[arg-type, list-item]
    assert ok is True and producer.calls == ["send_offsets", "commit", "begin"]
    producer = _TxnProducer()
    assert txn.commit_or_abort(producer, _GroupConsumer(), [])  # type: ignore[arg-type]
    assert producer.calls == ["commit", "begin"]  # nothing consumed: no offsets to send


def test_an_abortable_commit_is_aborted_and_reported() -> None:
    producer = _TxnProducer(commit_error=_Abortable())
    ok = txn.commit_or_abort(producer, _GroupConsumer(), [object()])  # type: ignore[arg-type, list-item]
    assert ok is False and producer.calls == ["send_offsets", "commit", "abort", "begin"]


def test_a_fatal_commit_error_propagates(monkeypatch: pytest.MonkeyPatch) -> None:
    producer = _TxnProducer(commit_error=KafkaError(KafkaError._FENCED))
    with pytest.raises(KafkaException):
        txn.commit_or_abort(producer, _GroupConsumer(), [])  # type: ignore[arg-type]
    assert producer.calls == ["commit"]
