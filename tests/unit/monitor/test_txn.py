"""Transactional steps retry what librdkafka calls retriable, until stop or a stall."""

from __future__ import annotations

import threading
import time

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


def _no_wait(monkeypatch: pytest.MonkeyPatch) -> txn.Patience:
    patience = txn.Patience()
    monkeypatch.setattr(patience.stop, "wait", lambda _s=None: False)
    return patience


def test_retriable_errors_are_retried_for_as_long_as_they_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    patience = _no_wait(monkeypatch)
    calls: list[float] = []

    def step(timeout: float) -> None:
        calls.append(timeout)
        if len(calls) < 50:  # far more than the old limit of 5 attempts
            raise KafkaException(_Err(retriable=True))

    txn.retrying(step, "commit", patience)
    assert len(calls) == 50
    assert set(calls) == {txn.STEP_TIMEOUT_S}  # each call short enough to notice a stop
    assert patience.waiting_since is None  # done: the waiting gauge reads 0 again


def test_other_errors_propagate_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def step(_timeout: float) -> None:
        calls.append(1)
        raise KafkaException(KafkaError(KafkaError._FENCED))

    with pytest.raises(KafkaException):
        txn.retrying(step, "commit", _no_wait(monkeypatch))
    assert len(calls) == 1


def test_a_stop_gives_a_retrying_step_a_short_grace_then_interrupts() -> None:
    patience = txn.Patience(grace_s=0.3)
    patience.stop.set()
    calls: list[float] = []

    def step(timeout: float) -> None:
        calls.append(timeout)
        raise KafkaException(_Err(retriable=True))

    began = time.monotonic()
    with pytest.raises(txn.Interrupted):
        txn.retrying(step, "commit", patience)
    assert 0.3 <= time.monotonic() - began < 2.0
    assert 1 <= len(calls) <= 5 and all(t <= 0.3 + 1e-6 for t in calls)  # paced, not spun


def test_a_step_failing_past_the_stall_limit_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    patience = _no_wait(monkeypatch)
    patience.stall_s = 0.2

    def step(_timeout: float) -> None:
        time.sleep(0.05)
        raise KafkaException(_Err(retriable=True))

    with pytest.raises(txn.Stalled):
        txn.retrying(step, "commit", patience)
    assert patience.waiting_since is None


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


def test_a_call_blocked_past_its_timeout_is_taken_as_hung(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(txn, "CALL_HANG_S", 0.3)
    release = threading.Event()
    patience = txn.Patience()
    patience.remaining_s = lambda: 0.2  # type: ignore[method-assign]
    began = time.monotonic()
    with pytest.raises(txn.Stalled, match="blocked"):
        # librdkafka seen doing this: a retried send_offsets that never returns
        txn.retrying(lambda _t: release.wait(30) and None, "send offsets", patience)
    assert time.monotonic() - began < 2
    release.set()


def test_a_stop_ends_the_wait_for_a_hung_call() -> None:
    release = threading.Event()
    patience = txn.Patience(grace_s=0.3)
    patience.stop.set()
    began = time.monotonic()
    with pytest.raises(txn.Interrupted):
        txn.retrying(lambda _t: release.wait(30) and None, "commit transaction", patience)
    assert time.monotonic() - began < 2
    release.set()
