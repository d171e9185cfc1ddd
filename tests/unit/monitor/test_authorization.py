"""Kafka refusals → one clear line (streamproc.monitor.authorization), without a broker."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from streamproc.monitor.authorization import (
    Refusal,
    RefusalWatch,
    await_admission,
    principal_of,
    raise_if_refused,
    refusal,
    refusal_of,
)

SASL_FAILURE = (
    "sasl_ssl://127.0.0.1:9093/bootstrap: SASL authentication error: Authentication failed "
    "during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 "
    "(after 318ms in state AUTH_REQ)"
)


def test_topic_refusal_names_the_operation_and_topic() -> None:
    err = KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "Authorization failed.")
    refused = refusal(err, operation="CREATE", topic="x.profiles")
    assert refused is not None
    assert refused.line("User:intruder") == (
        "streamproc worker: Kafka refused User:intruder: not authorized to CREATE topic "
        "'x.profiles' (see README \"Secured Kafka\" for the ACLs the worker needs)"
    )


def test_topic_named_in_the_error_wins_and_read_is_the_default() -> None:
    err = KafkaError(
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        "Subscribed topic not available: x.predictions: Broker: Topic authorization failed",
    )
    refused = refusal(err, topic="fallback")
    assert refused is not None and refused.reason == "not authorized to READ topic 'x.predictions'"
    bare = refusal(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))
    assert bare is not None and bare.reason == "not authorized to READ a topic"


@pytest.mark.parametrize(
    ("code", "context", "reason"),
    [
        (
            KafkaError.GROUP_AUTHORIZATION_FAILED,
            {"group": "g-ingest"},
            "not authorized to READ group 'g-ingest'",
        ),
        (KafkaError.GROUP_AUTHORIZATION_FAILED, {}, "not authorized to READ its consumer group"),
        (
            KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
            {"transactional_id": "g-ingest-worker-0"},
            "not authorized to WRITE transactional id 'g-ingest-worker-0'",
        ),
        (KafkaError.CLUSTER_AUTHORIZATION_FAILED, {}, "not authorized to use the cluster"),
    ],
)
def test_group_transactional_id_and_cluster_refusals(
    code: int, context: dict[str, str], reason: str
) -> None:
    refused = refusal(KafkaError(code, "Broker: authorization failed"), **context)
    assert refused is not None and refused.reason == reason
    assert not refused.authentication


@pytest.mark.parametrize(
    "code", [KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED]
)
def test_authentication_failure_is_one_line_without_the_acl_hint(code: int) -> None:
    refused = refusal(KafkaError(code, SASL_FAILURE))
    assert refused is not None and refused.authentication
    assert refused.line("User:worker") == (
        "streamproc worker: Kafka refused User:worker: authentication failed (wrong user name "
        'or password) (see README "Secured Kafka")'
    )
    other = refusal(KafkaError(KafkaError._AUTHENTICATION, "x: SASL handshake: no mechanism"))
    assert other is not None and other.reason == "authentication failed (no mechanism)"


def test_a_connection_lost_during_the_sasl_handshake_is_not_a_refusal() -> None:
    broken = (
        "GroupCoordinator: SASL authentication error: SaslAuthenticateRequest failed: "
        "Local: Broker transport failure (after 0ms in state DOWN)"
    )
    assert refusal(KafkaError(KafkaError._AUTHENTICATION, broken)) is None


@pytest.mark.parametrize(
    "code",
    [KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError.UNKNOWN_TOPIC_OR_PART],
)
def test_other_errors_are_not_refusals(code: int) -> None:
    assert refusal(KafkaError(code)) is None
    raise_if_refused(KafkaError(code))  # nothing raised
    raise_if_refused(None)


def test_refusal_of_exceptions_and_raise_if_refused() -> None:
    exc = KafkaException(KafkaError(KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED))
    refused = refusal_of(exc, transactional_id="t-1")
    assert refused is not None and refused.reason.endswith("transactional id 't-1'")
    own = Refusal(KafkaError.TOPIC_AUTHORIZATION_FAILED, "not authorized to READ topic 'p'")
    assert refusal_of(own) is own
    assert refusal_of(ValueError("no")) is None
    assert refusal_of(KafkaException(KafkaError(KafkaError._TRANSPORT))) is None
    with pytest.raises(Refusal, match="group 'g'"):
        raise_if_refused(KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED), group="g")


def test_principal_of_client_settings() -> None:
    assert principal_of({"sasl.username": "worker"}) == "User:worker"
    assert principal_of({"security.protocol": "ssl"}) == "the client certificate's principal"
    assert principal_of({}) == "User:ANONYMOUS"


class FakeAdmin:
    """list_topics fails like librdkafka's while authentication fails; poll serves the
    error_cb with the SASL failure, as librdkafka does."""

    def __init__(self, watch: RefusalWatch, failures: int, error: KafkaError | None) -> None:
        self.watch, self.failures, self.error = watch, failures, error
        self.calls = 0

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "Failed to get metadata"))
        return "metadata"

    def poll(self, timeout: float = -1) -> int:
        if self.error is not None:
            self.watch(self.error)
            self.watch(KafkaError(KafkaError._ALL_BROKERS_DOWN))  # the first one is kept
        return 0


def test_await_admission_turns_a_failed_login_into_a_refusal_at_once() -> None:
    watch = RefusalWatch()
    admin = FakeAdmin(
        watch, failures=100, error=KafkaError(KafkaError._AUTHENTICATION, SASL_FAILURE)
    )
    with pytest.raises(Refusal, match="wrong user name or password"):
        await_admission(admin, watch, timeout_s=30, attempt_s=0.01)
    assert admin.calls == 1


def test_await_admission_retries_transient_failures_then_gives_up() -> None:
    watch = RefusalWatch()
    assert await_admission(FakeAdmin(watch, 2, None), watch, attempt_s=0.01) == "metadata"
    with pytest.raises(KafkaException):
        await_admission(FakeAdmin(watch, 10**6, None), watch, timeout_s=0.05, attempt_s=0.01)
    watch(KafkaError(KafkaError._TRANSPORT))  # not a refusal: not kept
    watch.check()


def test_a_refused_transactional_produce_is_a_write_on_the_candidate_topics() -> None:
    err = KafkaError(
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        "Failed to add partition(s) to transaction on broker TxnCoordinator/1: Broker: Topic "
        "authorization failed (after 6 ms)",
        txn_requires_abort=True,
    )
    refused = refusal_of(KafkaException(err), topic=("x.profiles", "x.dlq"))
    assert refused is not None
    assert refused.reason == "not authorized to WRITE topic 'x.profiles' or 'x.dlq'"


class _TxnProducer:
    """commit_transaction fails as librdkafka's does when a topic of the transaction is
    not writable: abortable, and a refusal."""

    def __init__(self) -> None:
        self.aborted = 0

    def commit_transaction(self, _timeout: float) -> None:
        raise KafkaException(
            KafkaError(
                KafkaError.TOPIC_AUTHORIZATION_FAILED,
                "Failed to add partition(s) to transaction",
                txn_requires_abort=True,
            )
        )

    def abort_transaction(self, _timeout: float) -> None:
        self.aborted += 1

    def begin_transaction(self) -> None:
        pass


def test_commit_or_abort_does_not_redo_a_refused_transaction_forever() -> None:
    from streamproc.monitor.txn import commit_or_abort

    producer = _TxnProducer()
    with pytest.raises(KafkaException) as raised:
        commit_or_abort(producer, None, [])  # type: ignore[arg-type]
    assert refusal_of(raised.value) is not None
    assert producer.aborted == 0


class _RefusedReader:
    """A state-topic reader whose fetches the broker refuses (no READ)."""

    def get_watermark_offsets(self, _tp: Any, timeout: float = -1, cached: bool = False) -> Any:
        return (0, 10)

    def assign(self, _partitions: Any) -> None:
        pass

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        class Msg:
            def error(self) -> KafkaError:
                return KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)

        return [Msg()]


def test_a_state_restore_without_read_is_refused_at_once() -> None:
    from streamproc.monitor.state_reader import read_latest

    with pytest.raises(Refusal, match=r"not authorized to READ topic 'x\.profiles-state'"):
        read_latest(_RefusedReader(), "x.profiles-state", [0], timeout_s=60)  # type: ignore[arg-type]


def test_an_error_object_without_a_code_is_no_refusal() -> None:
    class Odd:
        def __str__(self) -> str:
            return "odd"

    assert refusal(Odd()) is None  # type: ignore[arg-type]
    assert refusal_of(KafkaException(Odd())) is None
