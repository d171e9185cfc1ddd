"""The live part of the demo: worker and traffic threads, and the console loop.

Alerts reach this thread through the worker's ``on_alert`` callback and a queue, so
only this thread prints; throughput comes from the worker's own Prometheus registry
(``streamproc_events_total``, ``streamproc_deadletter_total``).
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from streamproc.demo import display
from streamproc.demo.script import Script
from streamproc.demo.traffic import Traffic
from streamproc.errors import UsageError
from streamproc.monitor.worker import Worker


@dataclass
class DemoResult:
    """What happened, for the summary and for tests."""

    alerts: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    """(seconds after the script start, alert message)."""
    produced: int = 0
    processed: int = 0
    labels_produced: int = 0
    labels_joined: int = 0
    """Label events that met their prediction (``streamproc_labels_total``)."""
    deadletters: int = 0
    elapsed_s: float = 0.0
    began: float = 0.0
    """``time.monotonic()`` at the script start."""
    reference_path: Path | None = None
    bootstrap_servers: str = ""


def counter_total(registry: CollectorRegistry, sample_name: str) -> float:
    """Sum of every labelled sample called ``sample_name`` in ``registry``."""
    return sum(
        s.value for family in registry.collect() for s in family.samples if s.name == sample_name
    )


class WorkerThread:
    """The worker on a thread; :meth:`check` turns its death into a one-line error."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="demo-worker", daemon=True)

    def _run(self) -> None:
        try:
            self.worker.run(self.stop)
        except BaseException as exc:
            self.error = exc

    def start(self, timeout_s: float = 90.0) -> None:
        """Start, and wait until every stage has its partitions."""
        self.thread.start()
        w = self.worker
        stages = [w.ingest, w.aggregate, *(s for s in (w.labels, w.join) if s is not None)]
        deadline = time.monotonic() + timeout_s
        while not all(stage.ready.is_set() for stage in stages):
            self.check()
            if time.monotonic() > deadline:
                raise UsageError(f"the worker did not get its partitions in {timeout_s:.0f} s")
            time.sleep(0.1)

    def check(self) -> None:
        if self.thread.is_alive() or not self.thread.ident:
            return
        exc = self.error
        port = self.worker.config.metrics.port
        if isinstance(exc, OSError) and "address" in str(exc).lower():
            raise UsageError(f"metrics port {port} is in use; pick another with --metrics-port")
        raise UsageError(f"the worker stopped: {exc!r}")

    def join(self, timeout_s: float = 60.0) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout_s)


@dataclass
class Session:
    """One live run: ``worker`` (not started), ``traffic``, and where to print."""

    worker: Worker
    alerts: queue.Queue[dict[str, Any]]
    traffic: Traffic
    script: Script
    console: display.Console
    duration_s: float
    result: DemoResult

    def run(self, stop: threading.Event, header: display.Header) -> None:
        """Start the worker, print the header, run the traffic to the end, tear down."""
        runner = WorkerThread(self.worker)
        traffic_stop = threading.Event()
        traffic_thread: threading.Thread | None = None
        try:
            runner.start()
            self.console.show_header(header, self.script)
            self.result.began = time.monotonic()
            traffic_thread = threading.Thread(
                target=self.traffic.run,
                args=(traffic_stop, self.result.began),
                name="demo-traffic",
                daemon=True,
            )
            traffic_thread.start()
            self._watch(runner, stop)
        finally:
            traffic_stop.set()
            if traffic_thread is not None:
                traffic_thread.join(30)
                self._let_worker_catch_up(runner)
            stop.set()
            runner.join()
            self._drain()
            registry = self.worker.metrics.registry
            self.result.produced = self.traffic.produced
            self.result.processed = int(counter_total(registry, "streamproc_events_total"))
            self.result.labels_produced = self.traffic.labels_produced
            self.result.labels_joined = int(counter_total(registry, "streamproc_labels_total"))
            self.result.deadletters = int(counter_total(registry, "streamproc_deadletter_total"))
            self.console.close()

    def _let_worker_catch_up(self, runner: WorkerThread, timeout_s: float = 5.0) -> None:
        """Wait (briefly) until the worker has read everything produced (and joined
        every label produced)."""
        registry = self.worker.metrics.registry
        deadline = time.monotonic() + timeout_s
        while runner.thread.is_alive() and time.monotonic() < deadline:
            if (
                counter_total(registry, "streamproc_events_total") >= self.traffic.produced
                and counter_total(registry, "streamproc_labels_total")
                >= self.traffic.labels_produced
            ):
                return
            time.sleep(0.1)

    def _drain(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            try:
                alert = self.alerts.get_nowait()
            except queue.Empty:
                return out
            elapsed = time.monotonic() - self.result.began
            self.result.alerts.append((elapsed, alert))
            self.console.show_alert(alert, time.time(), elapsed)
            out.append(alert)

    def _watch(self, runner: WorkerThread, stop: threading.Event) -> None:
        """Print phase changes, alerts and one status line a second until the end."""
        began, traffic, console = self.result.began, self.traffic, self.console
        registry = self.worker.metrics.registry
        firing: dict[str, bool] = {}
        shown_phase = -1
        count = len(self.script.phases)
        last = (began, 0, 0.0)
        next_status = began + 1.0
        while not stop.is_set():
            now = time.monotonic()
            elapsed = self.result.elapsed_s = now - began
            if elapsed >= self.duration_s:
                return
            runner.check()
            index, phase = traffic.phase_now(elapsed)
            if index != shown_phase:
                shown_phase = index
                label = f"phase {index + 1}/{count} {phase.name}" if index < count else "after"
                console.show_phase(index, label, phase, time.time())
            for alert in self._drain():
                firing[alert["fingerprint"]] = alert["status"] == "firing"
            if now >= next_status:
                processed = counter_total(registry, "streamproc_events_total")
                t0, produced0, processed0 = last
                span = max(now - t0, 1e-6)
                status = display.Status(
                    at=time.time(),
                    elapsed_s=elapsed,
                    phase=phase.name,
                    produced_per_s=(traffic.produced - produced0) / span,
                    processed_per_s=(processed - processed0) / span,
                    produced_total=traffic.produced,
                    processed_total=int(processed),
                    deadletters=int(counter_total(registry, "streamproc_deadletter_total")),
                    firing=sum(firing.values()),
                )
                console.show_status(status)
                last = (now, traffic.produced, processed)
                next_status += 1.0
            stop.wait(0.05)
