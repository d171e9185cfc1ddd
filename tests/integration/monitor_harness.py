"""Run a streamproc worker in-process against the real broker, feed it, watch its output."""

from __future__ import annotations

import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from confluent_kafka import Consumer, Producer
from prometheus_client.parser import text_string_to_metric_families

from streamproc.config import MonitorConfig, config_from_mapping
from streamproc.core.model_profile import ModelProfile
from streamproc.monitor.references import ReferenceSet
from streamproc.monitor.state import WindowState
from streamproc.monitor.worker import Worker
from tests.support.kafka import create_topic, latest_values
from tests.support.monitor import config_mapping

NUMERIC = [f"num_{i}" for i in range(6)]
CATEGORICAL = ["country", "device"]
COUNTRIES = np.array(["de", "fr", "us", "uk", "es"], dtype=object)
DEVICES = np.array(["ios", "android", "web"], dtype=object)


def reference_profile(model: str = "credit", version: str = "1", n: int = 50_000) -> ModelProfile:
    rng = np.random.default_rng(7)
    columns: dict[str, Any] = {name: rng.normal(i, 1 + i / 3, n) for i, name in enumerate(NUMERIC)}
    columns["country"] = rng.choice(COUNTRIES, n, p=[0.3, 0.2, 0.3, 0.1, 0.1])
    columns["device"] = rng.choice(DEVICES, n)
    return ModelProfile.build_reference(
        model,
        version,
        columns,
        predictions=rng.beta(2, 5, n),
        predicted_labels=rng.choice(np.array(["approve", "deny"], dtype=object), n, p=[0.7, 0.3]),
        latency_ms=rng.gamma(4.0, 5.0, n),
    )


def records(
    n: int,
    *,
    start_s: float,
    rate: float,
    seed: int,
    model: str = "credit",
    version: str = "1",
    shift: dict[str, float] | None = None,
    latency_scale: float = 1.0,
    fallback_share: float = 0.0,
    error_share: float = 0.0,
) -> list[tuple[bytes, bytes]]:
    """``n`` prediction-log records from the reference distributions (``shift`` moves the
    named numeric features by that many standard deviations), event times at ``rate``/s."""
    rng = np.random.default_rng(seed)
    shift = shift or {}
    cols = {
        name: rng.normal(i + shift.get(name, 0.0) * (1 + i / 3), 1 + i / 3, n)
        for i, name in enumerate(NUMERIC)
    }
    country = rng.choice(COUNTRIES, n, p=[0.3, 0.2, 0.3, 0.1, 0.1])
    device = rng.choice(DEVICES, n)
    score = rng.beta(2, 5, n)
    label = rng.choice(np.array(["approve", "deny"], dtype=object), n, p=[0.7, 0.3])
    latency = rng.gamma(4.0, 5.0, n) * latency_scale
    fallback = rng.random(n) < fallback_share
    error = rng.random(n) < error_share
    out = []
    for j in range(n):
        rid = f"{seed}-{j}"
        rec = {
            "model": model,
            "model_version": version,
            "request_id": rid,
            "timestamp": round(start_s + j / rate, 6),
            "features": {
                **{name: float(cols[name][j]) for name in NUMERIC},
                "country": country[j],
                "device": device[j],
            },
            "prediction": {"label": label[j], "score": float(score[j])},
            "latency_ms": round(float(latency[j]), 3),
        }
        if fallback_share:
            rec["fallback"] = bool(fallback[j])
        if error_share:
            rec["error"] = "timeout" if error[j] else False
        out.append((rid.encode(), orjson.dumps(rec)))
    return out


def monitor_config(bootstrap: str, prefix: str, **sections: dict[str, Any]) -> MonitorConfig:
    defaults: dict[str, dict[str, Any]] = {
        "windows": {"size": "10s", "allowed_lateness": "2s", "rolling_horizon": "30s"},
        "metrics": {"port": 0},
    }
    for key, value in sections.items():
        defaults[key] = {**defaults.get(key, {}), **value}
    return config_from_mapping(config_mapping(bootstrap, prefix, **defaults))


@dataclass
class RunningWorker:
    worker: Worker
    stop: threading.Event
    thread: threading.Thread
    alerts: list[dict[str, Any]] = field(default_factory=list)


@contextmanager
def running_worker(
    config: MonitorConfig,
    references: list[ModelProfile],
    *,
    partitions: int = 4,
    labels_topic: str | None = None,
) -> Iterator[RunningWorker]:
    """A worker on ``config``'s topics; with ``labels_topic`` its labels stage too."""
    create_topic(config.kafka.bootstrap_servers, config.topics.predictions, partitions)
    worker = Worker(
        config, ReferenceSet.of(references), serve_metrics=False, labels_topic=labels_topic
    )
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        if not worker.ingest.ready.wait(60) or not worker.aggregate.ready.wait(60):
            raise TimeoutError(f"worker did not get its partitions: {worker.errors}")
        if worker.labels is not None and not worker.labels.ready.wait(60):
            raise TimeoutError(f"labels stage did not get its partitions: {worker.errors}")
        yield RunningWorker(worker, stop, thread)
    finally:
        stop.set()
        thread.join(60)
    if worker.errors:
        raise worker.errors[0]


class Feed:
    """A producer that keeps delivery honest (flush + error check)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})

    def send(self, recs: list[tuple[bytes, bytes | None]]) -> None:
        for key, value in recs:
            while True:
                try:
                    self.producer.produce(self.topic, key=key, value=value)
                    break
                except BufferError:
                    self.producer.poll(0.05)
        assert self.producer.flush(30) == 0

    def paced(self, recs: list[tuple[bytes, bytes]], rate: float) -> None:
        """Send at about ``rate`` records/s of wall-clock time, in 50 ms slices."""
        per_slice = max(1, int(rate / 20))
        began = time.monotonic()
        for i in range(0, len(recs), per_slice):
            self.send(recs[i : i + per_slice])
            due = began + (i + per_slice) / rate
            time.sleep(max(0.0, due - time.monotonic()))


class AlertWatcher:
    """Reads the alerts topic from the beginning, in the background."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.alerts: list[dict[str, Any]] = []
        self.received_at: list[float] = []
        self._stop = threading.Event()
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"{topic}.watch.{time.monotonic_ns()}",
                "auto.offset.reset": "earliest",
            }
        )
        self._consumer.subscribe([topic])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for msg in self._consumer.consume(100, timeout=0.2):
                if msg.error() is None and msg.value():
                    self.alerts.append(orjson.loads(msg.value()))
                    self.received_at.append(time.time())
        self._consumer.close()

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float
    ) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout_s
        seen = 0
        while time.monotonic() < deadline:
            for alert in self.alerts[seen:]:
                if predicate(alert):
                    return alert
            seen = len(self.alerts)
            time.sleep(0.1)
        return None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def save(profile: ModelProfile, path: Path) -> Path:
    path.write_bytes(profile.to_bytes())
    return path


def window_counts(bootstrap: str, state_topic: str, timeout_s: float = 30) -> dict[int, int]:
    """Rows per window start (ms) as checkpointed on the state topic (latest per key)."""
    counts: dict[int, int] = {}
    for key, value in latest_values(bootstrap, state_topic, timeout_s=timeout_s).items():
        if value is not None and orjson.loads(key)[0] == "w":
            window = WindowState.from_bytes(value)
            counts[window.start_ms] = counts.get(window.start_ms, 0) + window.profile.row_count
    return counts


def checkpointed_windows(
    bootstrap: str, state_topic: str, timeout_s: float = 30
) -> dict[int, WindowState]:
    """Window start (ms) → the window as last checkpointed on the state topic (one model
    version: a later version's window of the same start replaces it)."""
    out: dict[int, WindowState] = {}
    for key, value in latest_values(bootstrap, state_topic, timeout_s=timeout_s).items():
        if value is not None and orjson.loads(key)[0] == "w":
            window = WindowState.from_bytes(value)
            out[window.start_ms] = window
    return out


def expected_counts(recs: list[tuple[bytes, bytes]], window_ms: int) -> dict[int, int]:
    counts: dict[int, int] = {}
    for _key, value in recs:
        start = int(orjson.loads(value)["timestamp"] * 1000) // window_ms * window_ms
        counts[start] = counts.get(start, 0) + 1
    return counts


def wait_until(predicate: Callable[[], bool], timeout_s: float, every_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every_s)
    return predicate()


def wait_drained(worker: Worker, n_events: int, timeout_s: float = 120) -> bool:
    """Until ingest accepted ``n_events`` and the aggregate merged every published delta."""
    registry = worker.metrics.registry

    def value(name: str, labels: dict[str, str] | None = None) -> float:
        return registry.get_sample_value(name, labels or {}) or 0.0

    def drained() -> bool:
        published = value("streamproc_deltas_published_total")
        return (
            value("streamproc_events_total", {"model": "credit"}) >= n_events
            and published > 0
            and value("streamproc_deltas_applied_total") >= published
        )

    return wait_until(drained, timeout_s)


def accounted(worker: Worker, model: str = "credit") -> tuple[int, int]:
    """(records counted into windows, records dead-lettered) by the worker so far."""
    registry = worker.metrics.registry
    counted = registry.get_sample_value("streamproc_events_total", {"model": model}) or 0.0
    dead = sum(
        s.value
        for m in registry.collect()
        if m.name == "streamproc_deadletter"
        for s in m.samples
        if s.name.endswith("_total")
    )
    return int(counted), int(dead)


STREAMPROC = Path(sys.executable).parent / "streamproc"


def worker_command(
    bootstrap: str,
    prefix: str,
    *,
    config: Path,
    reference: Path,
    metrics_port: int,
    instance_id: str = "worker-0",
    labels_topic: str | None = None,
) -> list[str]:
    """The `streamproc worker` command line a user runs, on ``prefix``'s topics (with
    ``labels_topic``: its labels stage and join too)."""
    labels = [] if labels_topic is None else ["--labels-topic", labels_topic]
    return [
        str(STREAMPROC),
        "worker",
        "--config",
        str(config),
        "--bootstrap-servers",
        bootstrap,
        "--group-id",
        f"{prefix}.g",
        "--instance-id",
        instance_id,
        "--metrics-port",
        str(metrics_port),
        "--predictions-topic",
        f"{prefix}.predictions",
        "--alerts-topic",
        f"{prefix}.alerts",
        "--reference",
        str(reference),
        *labels,
    ]


def worker_config(
    path: Path,
    prefix: str,
    window: str = "10s",
    lateness: str = "5s",
    **sections: Mapping[str, str | int | float | bool],
) -> Path:
    """A config file for :func:`worker_command`: ``prefix``'s topics, small windows, and
    ``sections`` as more TOML tables (``join={"grace": "10s"}`` → ``[join]``)."""
    extra = "".join(
        f"[{name}]\n"
        + "".join(
            f"{key} = {str(v).lower() if isinstance(v, bool) else orjson.dumps(v).decode()}\n"
            for key, v in values.items()
        )
        for name, values in sections.items()
    )
    path.write_text(
        f'[topics]\nprofiles = "{prefix}.profiles"\ndeadletter = "{prefix}.dlq"\n'
        f'[windows]\nsize = "{window}"\nallowed_lateness = "{lateness}"\n' + extra
    )
    return path


def scrape(port: int, name: str, **labels: str) -> float | None:
    """A sample of a worker's /metrics (summed over the samples with ``labels``); None
    while it is not up."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
            text = r.read().decode()
    except OSError:
        return None
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


Timed = list[tuple[float, str, bytes, bytes]]
"""(event time s, "p" or "l", key, value): predictions and labels in event-time order."""


def send_timed(feeds: Mapping[str, Feed], timed: Timed, live: bool) -> None:
    """Live: each record when its event time comes (in 50 ms slices); else a backfill:
    every prediction, then every label, at full speed. ``feeds``: "p" and "l"."""
    if not live:
        for kind in ("p", "l"):
            feeds[kind].send([(k, v) for _, c, k, v in timed if c == kind])
        return
    began, first = time.time(), timed[0][0]
    i = 0
    while i < len(timed):
        now = time.time() - began + first
        j = i
        while j < len(timed) and timed[j][0] <= now:
            j += 1
        for kind in ("p", "l"):
            feeds[kind].send([(k, v) for _, c, k, v in timed[i:j] if c == kind])
        i = j
        time.sleep(0.05)


def shift_timed(timed: Timed, by_s: float) -> Timed:
    """The same records ``by_s`` seconds earlier (event time and ``timestamp``)."""
    out = []
    for at, kind, key, value in timed:
        rec = orjson.loads(value)
        rec["timestamp"] = round(rec["timestamp"] - by_s, 3)
        out.append((at - by_s, kind, key, orjson.dumps(rec)))
    return out
