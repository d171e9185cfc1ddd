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
