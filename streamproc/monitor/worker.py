"""A worker process: ingest and aggregate loops on threads, plus the metrics endpoint.

``Worker(config, references).run(stop)`` creates the topics the service owns, starts
the Prometheus endpoint on its own registry, and runs both stages until ``stop`` is
set; a failing stage stops the worker with its exception (a supervisor restarts it,
and nothing is lost: offsets are committed only with the work they paid for).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka.admin import AdminClient
from prometheus_client import start_http_server

from streamproc.checks.alerts import AlertMessage
from streamproc.config import MonitorConfig
from streamproc.monitor import metrics as metrics_module
from streamproc.monitor.aggregate import AggregateLoop, AggregateSettings
from streamproc.monitor.clients import KafkaClients
from streamproc.monitor.evaluator import Evaluator
from streamproc.monitor.ingest import IngestLoop, IngestSettings
from streamproc.monitor.references import ReferenceSet
from streamproc.monitor.topics import ensure_topics, owned_topics

log = logging.getLogger(__name__)


def state_topic_name(profiles_topic: str) -> str:
    return f"{profiles_topic}-state"


@dataclass
class Worker:
    config: MonitorConfig
    references: ReferenceSet
    flush_interval_s: float = 0.5
    """Ingest flush (sketch, publish, commit) period: half of the alert latency floor."""
    checkpoint_interval_s: float = 5.0
    serve_metrics: bool = True
    on_alert: Callable[[AlertMessage], None] | None = None
    metrics: metrics_module.Metrics = field(default_factory=metrics_module.create)
    errors: list[BaseException] = field(default_factory=list)
    clients: KafkaClients = field(default_factory=KafkaClients)
    """How both stages build their Kafka clients (confluent-kafka's, unless a test says)."""

    def __post_init__(self) -> None:
        c = self.config
        kafka = c.kafka.connection_settings()
        topics = c.topics
        self.ingest = IngestLoop(
            IngestSettings(
                predictions_topic=topics.predictions,
                profiles_topic=topics.profiles,
                deadletter_topic=topics.deadletter,
                group_id=f"{c.kafka.group_id}-ingest",
                instance_id=c.kafka.instance_id,
                window_ms=c.windows.size_ms,
                allowed_lateness_ms=c.windows.allowed_lateness_ms,
                limits=c.limits.decode_limits(),
                max_future_skew_ms=c.limits.max_future_skew_ms,
                flush_interval_s=self.flush_interval_s,
                kafka=kafka,
            ),
            self.references,
            self.metrics,
            clients=self.clients,
        )
        evaluator = Evaluator(
            references=self.references,
            policy_for=c.evaluation_policy,
            service_for=c.service_policy,
            lifecycle=c.lifecycle_policy(),
            horizon_ms=c.windows.rolling_horizon_ms,
            metrics=self.metrics,
            replay=c.evaluation.replay,
        )
        self.aggregate = AggregateLoop(
            AggregateSettings(
                profiles_topic=topics.profiles,
                state_topic=state_topic_name(topics.profiles),
                alerts_topic=topics.alerts,
                group_id=f"{c.kafka.group_id}-aggregate",
                instance_id=c.kafka.instance_id,
                window_ms=c.windows.size_ms,
                allowed_lateness_ms=c.windows.allowed_lateness_ms,
                retention_ms=c.windows.retention_ms,
                evaluation_interval_s=c.evaluation.interval_ms / 1000,
                checkpoint_interval_s=self.checkpoint_interval_s,
                kafka=kafka,
            ),
            evaluator,
            self.metrics,
            on_alert=self.on_alert,
            clients=self.clients,
        )

    def create_topics(self) -> list[str]:
        c = self.config
        settings: dict[str, Any] = c.kafka.connection_settings()
        admin = AdminClient(settings)
        return ensure_topics(
            admin,
            owned_topics(
                profiles=c.topics.profiles,
                state=state_topic_name(c.topics.profiles),
                alerts=c.topics.alerts,
                deadletter=c.topics.deadletter,
            ),
        )

    def run(self, stop: threading.Event) -> None:
        """Run both stages until ``stop`` is set or one of them fails (then re-raise)."""
        self.create_topics()
        server = None
        if self.serve_metrics:
            server, _thread = start_http_server(
                self.config.metrics.port, self.config.metrics.host, self.metrics.registry
            )
        threads = [
            threading.Thread(target=self._guard, args=(self.ingest.run, stop), name="ingest"),
            threading.Thread(target=self._guard, args=(self.aggregate.run, stop), name="aggregate"),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if server is not None:
            server.shutdown()
            server.server_close()
        if self.errors:
            raise self.errors[0]

    def _guard(self, target: Callable[[threading.Event], None], stop: threading.Event) -> None:
        try:
            target(stop)
        except BaseException as exc:
            log.exception("%s stage failed; stopping the worker", threading.current_thread().name)
            self.errors.append(exc)
            stop.set()
