"""``streamproc demo`` from start to end: set up, run the live session, tear down, summarize.

:func:`run_demo` tears down whatever it started — traffic, worker, and the broker when
it started one (or this run's topics on a broker it did not start) — however the run
ends: end of the script, ``--duration``, Ctrl-C (``stop``) or an error.
"""

from __future__ import annotations

import dataclasses
import gc
import queue
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from streamproc.broker.local import free_port, port_in_use
from streamproc.config import MonitorConfig
from streamproc.demo import display
from streamproc.demo.model import MODEL, build_reference
from streamproc.demo.script import STANDARD, Script
from streamproc.demo.session import DemoResult, Session
from streamproc.demo.setup import (
    LABEL_PARTITIONS,
    PREDICTION_PARTITIONS,
    delete_topics,
    demo_config,
    internal_topics,
    kafka_broker,
    topic_names,
)
from streamproc.demo.traffic import Traffic
from streamproc.errors import UsageError
from streamproc.monitor.references import ReferenceSet
from streamproc.monitor.topics import TopicSpec, ensure_topics
from streamproc.monitor.worker import Worker

__all__ = ["DemoOptions", "DemoResult", "alert_timings", "run_demo"]

CAUSE = {
    "staleness": "stall",
    "performance_drop": "concept_drift",
    "calibration_drift": "concept_drift",
    "label_drift": "concept_drift",
    "performance_gap": "concept_drift",
}
"""The phase whose start each check's alert is timed from (default: the incident)."""


@dataclass(frozen=True)
class DemoOptions:
    duration_s: float | None = None
    """Stop after this long; None runs the script once."""
    rate: float = 1000.0
    bootstrap_servers: str | None = None
    """Use this broker; None: ``$KAFKA_BOOTSTRAP_SERVERS``, else start a local one."""
    metrics_port: int = 9464
    """0 picks a free port."""
    script: Script = STANDARD
    reference_dir: Path | None = None


def run_demo(
    options: DemoOptions, console: display.Console, stop: threading.Event | None = None
) -> DemoResult:
    """Run the demo to the end of its script (or ``duration_s``, or until ``stop``)."""
    script = options.script
    script.validate()
    port = options.metrics_port or free_port()
    if port_in_use(port):
        raise UsageError(f"metrics port {port} is in use; pick another with --metrics-port")
    stop = stop or threading.Event()
    work = Path(tempfile.mkdtemp(prefix="streamproc-demo-"))
    ref_dir = options.reference_dir or work
    ref_dir.mkdir(parents=True, exist_ok=True)
    result = DemoResult()
    with kafka_broker(options.bootstrap_servers, work / "kafka", console.line) as broker:
        servers = result.bootstrap_servers = broker.bootstrap_servers
        config = demo_config(servers, uuid.uuid4().hex[:8], script, port, work / "join")
        topics = topic_names(config)
        try:
            _live(options, console, stop, result, config, ref_dir, port, broker.started)
        finally:
            gc.collect()  # drop the worker's clients before their broker goes away
            shutil.rmtree(work / "join", ignore_errors=True)
            if not broker.started:
                delete_topics(servers, [*topics.values(), *internal_topics(config)])
    _print_summary(console, script, result)
    return result


def _live(
    options: DemoOptions,
    console: display.Console,
    stop: threading.Event,
    result: DemoResult,
    config: MonitorConfig,
    ref_dir: Path,
    port: int,
    started_broker: bool,
) -> None:
    """Reference, topics, worker and traffic; their Kafka clients are unreferenced on
    return, so ``gc.collect()`` closes them before the broker stops."""
    script = options.script
    reference = build_reference()
    result.reference_path = ref_dir / f"{MODEL}.profile"
    result.reference_path.write_bytes(reference.to_bytes())
    servers = config.kafka.bootstrap_servers
    base: dict[str, Any] = {**config.kafka.client, "bootstrap.servers": servers}
    topics = topic_names(config)
    ensure_topics(
        AdminClient(base),
        [
            TopicSpec(topics["predictions"], PREDICTION_PARTITIONS),
            TopicSpec(topics["labels"], LABEL_PARTITIONS),
        ],
    )
    alerts: queue.Queue[dict[str, Any]] = queue.Queue()
    worker = Worker(
        config,
        ReferenceSet.of([reference]),
        on_alert=lambda a: alerts.put(dict(a)),
        labels_topic=topics["labels"],
    )
    traffic = Traffic(
        base, topics["predictions"], script, options.rate, labels_topic=topics["labels"]
    )
    t, lb = script.timings, script.labels
    header = display.Header(
        broker=servers,
        broker_note=(
            "started by the demo, stopped at the end"
            if started_broker
            else "yours; the demo deletes its topics at the end"
        ),
        topics={
            **topics,
            "predictions": f"{topics['predictions']} ({PREDICTION_PARTITIONS} partitions)",
            "labels": f"{topics['labels']} ({LABEL_PARTITIONS} partitions; "
            f"{lb.share:.0%} of predictions, {lb.min_delay_s:g}–{lb.max_delay_s:g} s later)",
        },
        reference_path=str(result.reference_path),
        metrics_url=f"http://localhost:{port}/metrics",
        model=MODEL,
        rate=options.rate,
        script_seconds=script.seconds,
        timings=(
            f"windows {t.window_s:g} s, allowed lateness {t.allowed_lateness_s:g} s, "
            f"evaluation every {t.evaluation_s:g} s, rolling horizon "
            f"{t.rolling_horizon_s:g} s, staleness after {t.staleness_s:g} s; "
            "labels joined by request id (stateful join)"
        ),
    )
    duration = options.duration_s if options.duration_s is not None else script.seconds
    Session(worker, alerts, traffic, script, console, duration, result).run(stop, header)


def alert_timings(alerts: list[tuple[float, dict[str, Any]]]) -> list[display.AlertTiming]:
    """Each firing episode of each alert: when it fired, its final severity, when it
    resolved (None while still firing)."""
    done: list[display.AlertTiming] = []
    open_: dict[str, display.AlertTiming] = {}
    for at, alert in alerts:
        fp, status = alert["fingerprint"], alert["status"]
        if status == "firing" and fp not in open_:
            open_[fp] = display.AlertTiming(
                alert["check"], alert.get("feature"), alert["severity"], at
            )
        elif status == "firing":
            open_[fp] = dataclasses.replace(open_[fp], severity=alert["severity"])
        elif fp in open_:
            done.append(dataclasses.replace(open_.pop(fp), resolved_s=at))
    return [*done, *open_.values()]


def _print_summary(console: display.Console, script: Script, result: DemoResult) -> None:
    starts = {p.name: s for p, s in zip(script.phases, script.starts(), strict=True)}
    timings = alert_timings(result.alerts)
    lines = display.format_summary(
        timings,
        starts,
        produced=result.produced,
        processed=result.processed,
        deadletters=result.deadletters,
        producing_s=script.producing_seconds(result.elapsed_s),
        cause=CAUSE,
        horizon_s=script.timings.rolling_horizon_s,
        labels=(result.labels_produced, result.labels_joined),
    )
    console.show_summary(lines, timings)
    if result.reference_path is not None:
        console.line(
            f"reference profile kept: {result.reference_path} "
            f"(`streamproc profile show {result.reference_path}`)"
        )
