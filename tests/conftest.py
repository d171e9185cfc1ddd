"""Shared fixtures: a real Kafka broker for the session, unique topic names per test."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.support.kafka import Broker, acquire, kafka_required


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[Broker]:
    """A real Apache Kafka broker; fails (never skips) in CI when none can be had."""
    try:
        broker = acquire()
    except Exception as exc:
        if kafka_required():
            pytest.fail(f"Kafka is required here (CI=true) but unavailable: {exc}")
        pytest.skip(f"no Kafka broker: {exc}")
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def bootstrap_servers(kafka_broker: Broker) -> str:
    return kafka_broker.bootstrap_servers


@pytest.fixture(scope="session")
def schema_registry_url() -> Iterator[str]:
    """A real schema registry's Confluent-API URL: ``STREAMPROC_TEST_SCHEMA_REGISTRY_URL``
    when the environment runs one, else Apicurio Registry started locally for the session
    (tests/support/apicurio.py); fails (never skips) in CI when neither can be had."""
    from tests.support.apicurio import running_registry
    from tests.support.registry import real_registry_url

    named = real_registry_url()
    if named:
        yield named
        return
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(running_registry())
        except Exception as exc:
            if kafka_required():
                pytest.fail(f"a schema registry is required here (CI=true) but unavailable: {exc}")
            pytest.skip(f"no schema registry: {exc}")
        yield url


@pytest.fixture
def unique_topic(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Make topic names private to this test: ``unique_topic("predictions")``."""
    test = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name)[:60].strip("-")
    run = uuid.uuid4().hex[:8]

    def make(base: str) -> str:
        return f"{base}.{test}.{run}"

    return make


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration needs the broker: mark it so `-m` can select it."""
    for item in items:
        if "/tests/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)
