"""Demo set-up: the broker to use (or start), the worker's configuration, the topics.

A broker named by ``--bootstrap-servers`` or ``$KAFKA_BOOTSTRAP_SERVERS`` is used as is
and the demo deletes its own (run-unique) topics at the end; otherwise a local
single-node broker is started from the official jars in a temporary data directory
and stopped, directory and all, at the end.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient

from streamproc.broker.jars import BrokerSetupError
from streamproc.broker.local import LocalBroker, free_port, wait_ready
from streamproc.config import MonitorConfig, config_from_mapping
from streamproc.demo.script import Script
from streamproc.errors import UsageError
from streamproc.monitor.join_stage import join_topic_names
from streamproc.monitor.worker import state_topic_name

PREDICTION_PARTITIONS = 4
LABEL_PARTITIONS = 2
"""Fewer than the predictions': the worker's join repartitions by request id anyway."""


@dataclass(frozen=True)
class BrokerHandle:
    bootstrap_servers: str
    started: bool
    """True when the demo started this broker (and will stop it)."""


@contextmanager
def kafka_broker(
    requested: str | None, data_dir: Path, say: Callable[[str], None]
) -> Iterator[BrokerHandle]:
    """The broker to use: ``requested``, ``$KAFKA_BOOTSTRAP_SERVERS``, or a local one
    started in ``data_dir`` and stopped (and ``data_dir`` removed) on exit."""
    servers = requested or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if servers:
        try:
            wait_ready(servers.split(",")[0], timeout_s=30)
        except BrokerSetupError as exc:
            raise UsageError(f"cannot reach Kafka at {servers}: {exc}") from exc
        yield BrokerHandle(servers, started=False)
        return
    say("starting a local Apache Kafka broker (the first run fetches its jars with Maven)…")
    broker = LocalBroker(data_dir)
    try:
        info = broker.start(free_port())
    except BrokerSetupError as exc:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise UsageError(f"could not start a local Kafka broker: {exc}") from exc
    try:
        yield BrokerHandle(info.bootstrap_servers, started=True)
    finally:
        broker.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def demo_config(
    servers: str, run: str, script: Script, metrics_port: int, join_dir: Path | None = None
) -> MonitorConfig:
    """Worker configuration: run-unique topics and group, the script's short windows;
    the label join's stores in ``join_dir`` (default: under the temporary directory)."""
    t = script.timings
    prefix = f"streamproc-demo-{run}"
    return config_from_mapping(
        {
            # librdkafka errors only: a fresh broker's "coordinator load in progress"
            # retries are warnings that would clutter the demo's console.
            "kafka": {
                "bootstrap_servers": servers,
                "group_id": prefix,
                "client": {"log_level": "3"},
            },
            "topics": {
                "predictions": f"{prefix}.predictions",
                "labels": f"{prefix}.labels",
                "alerts": f"{prefix}.alerts",
                "deadletter": f"{prefix}.deadletter",
                "profiles": f"{prefix}.profiles",
                "retrain": f"{prefix}.retrain",
            },
            "join": {"mode": "stateful", "state_dir": str(join_dir) if join_dir else ""},
            "windows": {
                "size": _ms(t.window_s),
                "allowed_lateness": _ms(t.allowed_lateness_s),
                "rolling_horizon": _ms(t.rolling_horizon_s),
                "retention": "1h",
            },
            "evaluation": {"interval": _ms(t.evaluation_s)},
            "freshness": {"staleness": _ms(t.staleness_s)},
            "metrics": {"port": metrics_port, "host": "127.0.0.1"},
            # Synthetic data: show the new category by name in alert evidence.
            "alerts": {"allow_raw_values_in_alerts": True},
        },
        source="streamproc demo",
    )


def topic_names(config: MonitorConfig) -> dict[str, str]:
    """The demo's topics by role (those its header lists; see :func:`internal_topics`)."""
    t = config.topics
    return {
        "predictions": t.predictions,
        "labels": t.labels,
        "profiles": t.profiles,
        "state": state_topic_name(t.profiles),
        "alerts": t.alerts,
        "dead-letter": t.deadletter,
    }


def internal_topics(config: MonitorConfig) -> list[str]:
    """The worker's other topics: the label join's two repartition topics and its
    changelog, and the retrain topic."""
    return [*join_topic_names(config.topics.profiles), config.topics.retrain]


def delete_topics(servers: str, names: list[str]) -> None:
    """Best-effort deletion of this run's own topics on a broker the demo did not start."""
    admin = AdminClient({"bootstrap.servers": servers})
    for future in admin.delete_topics(names, operation_timeout=30).values():
        with contextlib.suppress(Exception):
            future.result(timeout=30)
