"""Kafka refusals — authorization and authentication errors — as one clear line.

A secured broker refuses a principal without the ACLs it needs with an error code
(``TOPIC_AUTHORIZATION_FAILED``, ``GROUP_AUTHORIZATION_FAILED``,
``TRANSACTIONAL_ID_AUTHORIZATION_FAILED``, ``CLUSTER_AUTHORIZATION_FAILED``), and a wrong
user name or password with a SASL authentication failure. None of them goes away by
retrying, so the worker stops on the first one with :class:`Refusal`, and the CLI prints
:meth:`Refusal.line`:

    streamproc worker: Kafka refused User:intruder: not authorized to READ topic
    'predictions' (see README "Secured Kafka" for the ACLs the worker needs)

:func:`refusal` is the pure mapping from a ``KafkaError`` (plus what the caller knows:
the operation, topic, group) to a :class:`Refusal`, or None for any other error.
:class:`RefusalWatch` is an ``error_cb``: librdkafka reports a failed SASL
authentication only there (requests just time out), and :func:`await_admission` turns
it into a prompt :class:`Refusal` at the worker's first contact with the cluster.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException

ACL_HINT = 'see README "Secured Kafka" for the ACLs the worker needs'
AUTH_HINT = 'see README "Secured Kafka"'

AUTHORIZATION: Mapping[int, str] = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "topic",
    KafkaError.GROUP_AUTHORIZATION_FAILED: "group",
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: "transactional id",
    KafkaError.CLUSTER_AUTHORIZATION_FAILED: "cluster",
}
"""Error code → the kind of resource the principal was refused."""

AUTHENTICATION: frozenset[int] = frozenset(
    {KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED}
)

DEFAULT_OPERATION: Mapping[str, str] = {
    "topic": "READ",
    "group": "READ",
    "transactional id": "WRITE",
    "cluster": "use",
}
"""What a refused request on that kind of resource needed (for a topic: unless the
caller says)."""

_TOPIC_IN_MESSAGE = re.compile(r"[Tt]opic (?:not available: )?'?([A-Za-z0-9._-]+)'?:")


class Refusal(Exception):
    """Kafka refused this client; ``reason`` says what, :meth:`line` says it to a user."""

    def __init__(self, code: int, reason: str, *, authentication: bool = False) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.authentication = authentication

    def line(self, principal: str, command: str = "streamproc worker") -> str:
        hint = AUTH_HINT if self.authentication else ACL_HINT
        return f"{command}: Kafka refused {principal}: {self.reason} ({hint})"


def principal_of(settings: Mapping[str, Any]) -> str:
    """The principal a broker sees for these client settings, as ACLs name it."""
    user = settings.get("sasl.username")
    if user:
        return f"User:{user}"
    protocol = str(settings.get("security.protocol", "PLAINTEXT")).upper()
    if protocol == "SSL":
        return "the client certificate's principal"
    return "User:ANONYMOUS"


def refusal(
    err: KafkaError,
    *,
    operation: str | None = None,
    topic: str | Sequence[str] | None = None,
    group: str | None = None,
    transactional_id: str | None = None,
) -> Refusal | None:
    """The :class:`Refusal` that ``err`` means, or None when it is not a refusal.

    ``operation`` is the ACL operation the caller attempted on the topic (READ, WRITE,
    CREATE, DESCRIBE; default READ, or WRITE for a refused AddPartitionsToTxn);
    ``topic`` (one, or the candidates), ``group`` and ``transactional_id`` name the
    resources it used (a topic named in the error's text wins). Groups need READ,
    transactional ids WRITE."""
    code_of = getattr(err, "code", None)  # anything else a client raised is no refusal
    if not callable(code_of):
        return None
    code = code_of()
    if code in AUTHENTICATION:
        detail = err.str()
        if "Local: " in detail:
            # the connection broke during the handshake ("SaslAuthenticateRequest failed:
            # Local: Broker transport failure"): an outage, not a refusal
            return None
        if "invalid credentials" in detail or code == KafkaError.SASL_AUTHENTICATION_FAILED:
            why = "wrong user name or password"
        else:
            why = detail.rsplit(": ", 1)[-1]
        return Refusal(code, f"authentication failed ({why})", authentication=True)
    kind = AUTHORIZATION.get(code)
    if kind is None:
        return None
    text = err.str()
    op = DEFAULT_OPERATION[kind]
    if kind == "topic":
        op = operation or ("WRITE" if "to transaction" in text else op)
        match = _TOPIC_IN_MESSAGE.search(text)
        names = [match.group(1)] if match else [topic] if isinstance(topic, str) else topic
        what = "topic " + " or ".join(f"'{n}'" for n in names) if names else "a topic"
    elif kind == "group":
        what = f"group '{group}'" if group else "its consumer group"
    elif kind == "transactional id":
        what = (
            f"transactional id '{transactional_id}'" if transactional_id else "its transactional id"
        )
    else:
        what = "the cluster"
    return Refusal(code, f"not authorized to {op} {what}")


def is_refusal(err: KafkaError) -> bool:
    """True when ``err`` is a refusal (retrying or redoing the work cannot help)."""
    return refusal(err) is not None


def refusal_of(exc: BaseException, **context: Any) -> Refusal | None:
    """``exc`` as a :class:`Refusal`: itself, or a ``KafkaException`` that is one."""
    if isinstance(exc, Refusal):
        return exc
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return refusal(exc.args[0], **context)
    return None


def raise_if_refused(err: KafkaError | None, **context: Any) -> None:
    """Raise the :class:`Refusal` ``err`` means (a consumed error message, a delivery
    report); other errors are the caller's to handle."""
    if err is not None:
        refused = refusal(err, **context)
        if refused is not None:
            raise refused


class RefusalWatch:
    """An ``error_cb`` that keeps the first refusal librdkafka reports."""

    def __init__(self) -> None:
        self.refused: Refusal | None = None

    def __call__(self, err: KafkaError) -> None:
        if self.refused is None:
            self.refused = refusal(err)

    def check(self) -> None:
        if self.refused is not None:
            raise self.refused


class MetadataClient(Protocol):
    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any: ...

    def poll(self, timeout: float = -1) -> Any: ...


def await_admission(
    client: MetadataClient, watch: RefusalWatch, timeout_s: float = 30.0, attempt_s: float = 2.0
) -> Any:
    """The cluster's metadata, asked for in short attempts until ``timeout_s``; between
    attempts ``client.poll`` serves ``error_cb`` (``watch``), so a failed authentication
    raises its :class:`Refusal` within an attempt instead of a timeout later."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return client.list_topics(timeout=max(0.1, min(attempt_s, deadline - time.monotonic())))
        except KafkaException:
            client.poll(0)
            watch.check()
            if time.monotonic() >= deadline:
                raise
