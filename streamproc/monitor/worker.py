"""A worker process: ingest and aggregate loops on threads, plus the metrics endpoint.

``Worker(config, references).run(stop)`` creates the topics the service owns, starts
the Prometheus endpoint on its own registry, and runs both stages until ``stop`` is
set; a failing stage stops the worker with its exception (a supervisor restarts it,
and nothing is lost: offsets are committed only with the work they paid for).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient
from prometheus_client import start_http_server

from streamproc.checks.alerts import AlertMessage
from streamproc.config import MonitorConfig
from streamproc.monitor import metrics as metrics_module
from streamproc.monitor.aggregate import AggregateLoop, AggregateSettings
from streamproc.monitor.authorization import RefusalWatch, await_admission, refusal_of
from streamproc.monitor.clients import KafkaClients
from streamproc.monitor.evaluator import Evaluator
from streamproc.monitor.ingest import IngestLoop, IngestSettings
from streamproc.monitor.join_stage import JoinLoop, JoinSettings, join_topic_names
from streamproc.monitor.labels import LabelsLoop, LabelsSettings
from streamproc.monitor.references import ReferenceSet
from streamproc.monitor.topics import ensure_topics, join_topics, owned_topics, retrain_topic

log = logging.getLogger(__name__)


def state_topic_name(profiles_topic: str) -> str:
    return f"{profiles_topic}-state"


def join_state_dir(config: MonitorConfig) -> Path:
    """``[join] state_dir``, else a directory of this worker under the system's temporary
    one (the stores are rebuilt from their changelog at every start either way)."""
    if config.join.state_dir:
        return Path(config.join.state_dir).expanduser()
    who = config.kafka.instance_id or str(os.getpid())
    return Path(tempfile.gettempdir()) / "streamproc-join" / f"{config.kafka.group_id}-{who}"


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
    shutdown_timeout_s: float = 8.0
    """After a stop request, how long :meth:`run` waits for the stages to commit and close
    (seconds); a stage still blocked on Kafka then is left behind (see :meth:`_join`)."""
    abandoned: list[str] = field(default_factory=list)
    """Stages :meth:`run` left blocked on Kafka at shutdown (the process should exit
    without waiting for them: ``os._exit``)."""
    labels_topic: str | None = None
    """The labels topic; None: no labels stage (``streamproc worker --labels-topic``)."""

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
                mapping=c.mapping.record_mapping(),
                start_from=c.kafka.start_position(),
                slices_for=c.slice_spec,
            ),
            self.references,
            self.metrics,
            clients=self.clients,
        )
        self.labels: LabelsLoop | None = None
        self.join: JoinLoop | None = None
        join_predictions, join_labels, join_changelog = join_topic_names(topics.profiles)
        if self.labels_topic and c.join.mode == "stateful":
            self.join = JoinLoop(
                JoinSettings(
                    predictions_topic=join_predictions,
                    labels_topic=join_labels,
                    changelog_topic=join_changelog,
                    profiles_topic=topics.profiles,
                    deadletter_topic=topics.deadletter,
                    source_labels_topic=self.labels_topic,
                    group_id=f"{c.kafka.group_id}-join",
                    window_ms=c.windows.size_ms,
                    state_dir=join_state_dir(c),
                    policy=dataclasses.replace(c.join.policy(), shadow=c.shadow_pairs()),
                    instance_id=c.kafka.instance_id,
                    flush_interval_s=self.flush_interval_s,
                    kafka=kafka,
                    slices_for=c.slice_spec,
                ),
                self.references,
                self.metrics,
                clients=self.clients,
            )
            self.ingest.settings = dataclasses.replace(
                self.ingest.settings, join_topic=join_predictions
            )
        if self.labels_topic:
            self.labels = LabelsLoop(
                LabelsSettings(
                    labels_topic=self.labels_topic,
                    profiles_topic=topics.profiles,
                    deadletter_topic=topics.deadletter,
                    group_id=f"{c.kafka.group_id}-labels",
                    instance_id=c.kafka.instance_id,
                    window_ms=c.windows.size_ms,
                    limits=c.limits.decode_limits(),
                    max_future_skew_ms=c.limits.max_future_skew_ms,
                    flush_interval_s=self.flush_interval_s,
                    kafka=kafka,
                    join_topic=join_labels if self.join is not None else None,
                    mapping=c.labels_mapping.record_mapping(),
                ),
                self.references,
                self.metrics,
                clients=self.clients,
            )
        evaluator = Evaluator(
            references=self.references,
            policy_for=c.evaluation_policy,
            service_for=c.service_policy,
            performance_for=c.performance_policy,
            lifecycle=c.lifecycle_policy(),
            horizon_ms=c.windows.rolling_horizon_ms,
            metrics=self.metrics,
            replay=c.evaluation.replay,
            retrain=c.retrain.policy(),
            models_for=c.model_settings,
        )
        self.aggregate = AggregateLoop(
            AggregateSettings(
                profiles_topic=topics.profiles,
                state_topic=state_topic_name(topics.profiles),
                alerts_topic=topics.alerts,
                retrain_topic=topics.retrain,
                rollouts_topic=topics.rollouts if c.declares_rollouts() else None,
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
        watch = RefusalWatch()  # a failed SASL login is reported only to error_cb
        settings["error_cb"] = watch
        admin = AdminClient(settings)
        await_admission(admin, watch)
        specs = owned_topics(
            profiles=c.topics.profiles,
            state=state_topic_name(c.topics.profiles),
            alerts=c.topics.alerts,
            deadletter=c.topics.deadletter,
        )
        specs.append(retrain_topic(c.topics.retrain))
        if c.declares_rollouts():  # one ordered stream, kept 30 days
            specs.append(retrain_topic(c.topics.rollouts))
        if self.join is not None:
            specs += join_topics(*join_topic_names(c.topics.profiles))
        return ensure_topics(admin, specs)

    def run(self, stop: threading.Event) -> None:
        """Run both stages until ``stop`` is set or one of them fails (then re-raise)."""
        self.create_topics()
        server = None
        if self.serve_metrics:
            server, _thread = start_http_server(
                self.config.metrics.port, self.config.metrics.host, self.metrics.registry
            )
        threads = [
            threading.Thread(
                target=self._guard, args=(self.ingest.run, stop), name="ingest", daemon=True
            ),
            threading.Thread(
                target=self._guard, args=(self.aggregate.run, stop), name="aggregate", daemon=True
            ),
        ]
        for name, stage in (("labels", self.labels), ("join", self.join)):
            if stage is not None:
                threads.append(
                    threading.Thread(
                        target=self._guard, args=(stage.run, stop), name=name, daemon=True
                    )
                )
        for t in threads:
            t.start()
        self.abandoned = self._join(threads, stop)
        if server is not None:
            server.shutdown()
            server.server_close()
        if self.errors:
            raise self.errors[0]

    def _identities(self, stage: str) -> dict[str, Any]:
        """The group, transactional id and transactional topics of a stage, to name them in
        a refusal that reaches here as a raw Kafka error: its transactional producer's
        (consume-side refusals are raised as :class:`Refusal` where they happen)."""
        if stage == "ingest":
            i = self.ingest.settings
            return {
                "group": i.group_id,
                "transactional_id": self.ingest.producer_id,
                "topic": (i.profiles_topic, i.deadletter_topic),  # what its transactions write
                "operation": "WRITE",
            }
        if stage == "labels" and self.labels is not None:
            lb = self.labels.settings
            return {
                "group": lb.group_id,
                "transactional_id": self.labels.producer_id,
                "topic": (lb.profiles_topic, lb.deadletter_topic),
                "operation": "WRITE",
            }
        if stage == "join" and self.join is not None:
            j = self.join.settings
            return {
                "group": j.group_id,
                "transactional_id": self.join.producer_id,
                "topic": (j.changelog_topic, j.profiles_topic, j.deadletter_topic),
                "operation": "WRITE",
            }
        a = self.aggregate.settings
        return {
            "group": a.group_id,
            "transactional_id": self.aggregate._txn_id,
            "topic": a.state_topic,
            "operation": "WRITE",
        }

    def _join(self, threads: list[threading.Thread], stop: threading.Event) -> list[str]:
        """Wait for the stages; once ``stop`` is set, for at most ``shutdown_timeout_s``.
        Returns the stages still blocked in a Kafka call then (an outage): they hold only
        uncommitted work, so leaving them is what ``kill -9`` does, which is safe."""
        stopped_at: float | None = None
        while any(t.is_alive() for t in threads):
            if stop.is_set():
                stopped_at = stopped_at or time.monotonic()
                if time.monotonic() - stopped_at >= self.shutdown_timeout_s:
                    left = [t.name for t in threads if t.is_alive()]
                    log.warning(
                        "%s still waiting for Kafka %.0f s after the stop request: exiting "
                        "without committing (the open transactions are aborted by Kafka, or "
                        "fenced when the worker restarts; their work is redone)",
                        " and ".join(left),
                        self.shutdown_timeout_s,
                    )
                    return left
            for t in threads:
                t.join(0.1)
        return []

    def _guard(self, target: Callable[[threading.Event], None], stop: threading.Event) -> None:
        try:
            target(stop)
        except BaseException as exc:
            stage = threading.current_thread().name
            refused = refusal_of(exc, **self._identities(stage))
            if refused is not None:  # the CLI says it in one line, without a traceback
                log.error("%s stage: Kafka refused: %s", stage, refused)
                exc = refused
            else:
                log.exception("%s stage failed; stopping the worker", stage)
            self.errors.append(exc)
            stop.set()
