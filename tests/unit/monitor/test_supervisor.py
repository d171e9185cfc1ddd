"""A Kafka fault rebuilds a stage's clients; what a restart cannot cure stops the worker."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from confluent_kafka import KafkaError, KafkaException

from streamproc.monitor import supervisor
from streamproc.monitor.kafka_log import Throttle
from streamproc.monitor.supervisor import raise_if_fatal, restart_reason, supervise
from streamproc.monitor.txn import Interrupted, Stalled


class _Run:
    """run_clients that raises the given exceptions in turn, then returns."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)


def _supervise(run: _Run, stop: threading.Event | None = None) -> tuple[list[str], int]:
    reasons: list[str] = []
    resets = []
    supervise("ingest", run, lambda: resets.append(1), stop or threading.Event(), reasons.append)
    return reasons, len(resets)


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threading.Event, "wait", lambda self, _t=None: self.is_set())


def test_kafka_faults_reset_and_reopen_until_the_clients_run() -> None:
    fenced = KafkaException(KafkaError(KafkaError.FENCED_INSTANCE_ID, fatal=True))
    timed_out = KafkaException(KafkaError(KafkaError._TIMED_OUT))
    run = _Run(fenced, timed_out, Stalled("commit transaction: still failing after 60 s"))
    reasons, resets = _supervise(run)
    assert run.calls == 4
    assert reasons == ["fenced_instance_id", "timed_out", "commit_stalled"]
    assert resets == 3  # uncommitted work dropped before each reopen


@pytest.mark.parametrize(
    "code",
    [
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError._INVALID_ARG,
    ],
)
def test_what_a_restart_cannot_cure_stops_the_worker(code: int) -> None:
    run = _Run(KafkaException(KafkaError(code)))
    with pytest.raises(KafkaException):
        _supervise(run)
    assert run.calls == 1


def test_a_bug_is_not_retried() -> None:
    run = _Run(ValueError("bug"))
    with pytest.raises(ValueError):
        _supervise(run)
    assert run.calls == 1


def test_an_interrupted_shutdown_returns_quietly() -> None:
    run = _Run(Interrupted("commit: stop requested while Kafka does not answer"))
    reasons, resets = _supervise(run)
    assert run.calls == 1 and reasons == [] and resets == 0


def test_a_stop_during_the_backoff_ends_the_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    stop = threading.Event()
    run = _Run(*[KafkaException(KafkaError(KafkaError._TRANSPORT))] * 10)
    monkeypatch.setattr(threading.Event, "wait", lambda self, _t=None: (stop.set(), True)[1])
    reasons, _ = _supervise(run, stop)
    assert run.calls == 1 and reasons == ["transport"]


def test_backoff_doubles_to_its_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(threading.Event, "wait", lambda self, t=None: waits.append(t) or False)
    run = _Run(*[KafkaException(KafkaError(KafkaError._TRANSPORT))] * 8)
    _supervise(run)
    assert waits == [1, 2, 4, 8, 16, supervisor.MAX_BACKOFF_S, 30, 30]


def test_only_fatal_consume_errors_are_raised() -> None:
    raise_if_fatal(KafkaError(KafkaError._TRANSPORT))  # a passing fault: logged by the caller
    with pytest.raises(KafkaException):
        raise_if_fatal(KafkaError(KafkaError._FATAL))
    with pytest.raises(KafkaException):
        raise_if_fatal(KafkaError(KafkaError.FENCED_INSTANCE_ID, fatal=True))
    assert restart_reason(RuntimeError("x")) is None


def _record(message: str, client: str = "rdkafka#consumer-2") -> logging.LogRecord:
    return logging.LogRecord(
        "streamproc.kafka", logging.ERROR, "", 0, "%s [%s] %s", ("FAIL", client, message), None
    )


def test_outage_chatter_is_throttled_per_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr("streamproc.monitor.kafka_log.time.monotonic", lambda: now[0])
    throttle = Throttle(every_s=60)
    line = "127.0.0.1:{}/bootstrap: Connect to ipv4#127.0.0.1:{} failed: Connection refused"
    passed = []
    for i in range(240):  # two minutes of reconnects, two a second, from three clients
        now[0] = 100.0 + i * 0.5
        for client in ("rdkafka#consumer-2", "rdkafka#producer-3", "rdkafka#producer-5"):
            record = _record(line.format(54367, 54367), client)
            if throttle.filter(record):
                passed.append(record)
    assert len(passed) == 2  # the first, and one a minute later saying how many were held
    assert "(359 like it in the last 60 s held back)" in passed[1].msg
    other = _record("TxnCoordinator: Failed to add offsets to transaction")
    assert throttle.filter(other)  # another kind passes at once


def test_shutdown_leaves_a_stage_blocked_on_kafka_after_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from types import SimpleNamespace

    monkeypatch.undo()  # real Event.wait: Thread.start needs it

    from streamproc.monitor.worker import Worker

    stop = threading.Event()
    blocked = threading.Thread(target=lambda: time.sleep(3), name="aggregate", daemon=True)
    done = threading.Thread(target=stop.wait, name="ingest", daemon=True)
    blocked.start()
    done.start()
    stop.set()
    began = time.monotonic()
    left = Worker._join(SimpleNamespace(shutdown_timeout_s=0.5), [done, blocked], stop)  # type: ignore[arg-type]
    assert left == ["aggregate"]
    assert 0.5 <= time.monotonic() - began < 2.5
