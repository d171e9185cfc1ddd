"""Find or start a real Apache Kafka broker for the integration tests.

Order of preference: ``KAFKA_BOOTSTRAP_SERVERS``; testcontainers' Kafka module when a
Docker engine answers; the local KRaft broker from the official jars on a free port
with a temporary data directory. Each source returns a bootstrap address and a stop
callable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from streamproc.broker.jars import BrokerSetupError
from streamproc.broker.local import LocalBroker, free_port, wait_ready


@dataclass
class Broker:
    bootstrap_servers: str
    source: str
    stop: Callable[[], None]


def kafka_required() -> bool:
    """In CI (or when asked) a missing broker fails the test instead of skipping it."""
    return os.environ.get("CI", "").lower() == "true" or os.environ.get(
        "STREAMPROC_REQUIRE_KAFKA"
    ) in {"1", "true", "yes"}


def from_environment() -> Broker | None:
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not servers:
        return None
    wait_ready(servers.split(",")[0], timeout_s=30)
    return Broker(servers, "KAFKA_BOOTSTRAP_SERVERS", lambda: None)


def docker_answers() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        result = subprocess.run([docker, "info"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def from_testcontainers() -> Broker | None:
    if not docker_answers():
        return None
    from testcontainers.kafka import KafkaContainer

    container = KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft()
    container.start()
    return Broker(container.get_bootstrap_server(), "testcontainers", container.stop)


def from_local_jars(attempts: int = 3) -> Broker:
    data_dir = Path(tempfile.mkdtemp(prefix="streamproc-test-kafka-"))
    broker = LocalBroker(data_dir)
    last: Exception | None = None
    for _ in range(attempts):  # a free port can be taken by someone else before we bind it
        try:
            info = broker.start(free_port())
        except BrokerSetupError as exc:
            last = exc
            if "already in use" not in str(exc) and "not ready" not in str(exc):
                raise
            continue

        def stop() -> None:
            broker.stop()
            shutil.rmtree(data_dir, ignore_errors=True)

        return Broker(info.bootstrap_servers, f"local jars ({info.log_file})", stop)
    raise BrokerSetupError(f"could not start a local broker after {attempts} attempts: {last}")


def acquire() -> Broker:
    """A running broker, or BrokerSetupError saying why none could be had."""
    reasons = []
    for source in (from_environment, from_testcontainers):
        try:
            broker = source()
        except Exception as exc:
            reasons.append(f"{source.__name__}: {exc}")
            continue
        if broker is not None:
            return broker
    try:
        return from_local_jars()
    except Exception as exc:
        reasons.append(f"from_local_jars: {exc}")
    raise BrokerSetupError("no Kafka broker available: " + "; ".join(reasons))
