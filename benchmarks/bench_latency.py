"""Alert latency: first drifted record → firing ``feature_drift`` alert; staleness timing.

One command::

    .venv/bin/python benchmarks/bench_latency.py                 # 20,000 events/s, 10 injections
    .venv/bin/python benchmarks/bench_latency.py --rate 5000 --injections 3 --no-write

A streamproc Worker runs in a subprocess (``Worker(config, references).run(stop)``, the
worker's own code; default settings (evaluation every 0.5 s), staleness threshold 10 s,
except ``--window``). This process produces prediction logs with current timestamps at a
steady ``--rate`` (in 50 ms slices) and reads the alerts topic. Each injection shifts one
numeric feature by ``--shift`` standard deviations (a different feature each time, so an
injection never waits on the previous one's drifted window to close) and measures from
the produce call of the first drifted record to the arrival of the firing
``feature_drift`` alert for that feature; then traffic returns to normal for a random
3–8 s before the next one. Finally traffic stops ``--staleness-runs`` times and the time
from the newest event time to the arrival of the firing ``staleness`` alert is compared
with the threshold (traffic resumes between them until the alert resolves).
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

FEATURES = [
    "num_normal",
    "num_normal_wide",
    "num_uniform",
    "num_lognormal",
    "num_gamma",
    "num_laplace",
    "num_weibull",
    "num_beta",
    "num_exponential",
    "num_bimodal",
    "num_poisson_large",
    "num_uniform_int",
]


def config_mapping(bootstrap: str, prefix: str, window: str, staleness: str) -> dict[str, Any]:
    return {
        "kafka": {"bootstrap_servers": bootstrap, "group_id": f"{prefix}.g"},
        "topics": {
            "predictions": f"{prefix}.predictions",
            "alerts": f"{prefix}.alerts",
            "deadletter": f"{prefix}.dlq",
            "profiles": f"{prefix}.profiles",
        },
        "windows": {"size": window},
        "freshness": {"staleness": staleness},
        "metrics": {"port": 0},
    }


# ----------------------------------------------------------------------------- worker child


def child_worker(config_path: str, reference_path: str, ready_path: str) -> None:
    from streamproc.config import config_from_mapping
    from streamproc.core.model_profile import ModelProfile
    from streamproc.monitor.references import ReferenceSet
    from streamproc.monitor.worker import Worker

    config = config_from_mapping(json.loads(Path(config_path).read_text()))
    refs = ReferenceSet.of([ModelProfile.from_bytes(Path(reference_path).read_bytes())])
    worker = Worker(config, refs, serve_metrics=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def announce() -> None:
        if worker.ingest.ready.wait(120) and worker.aggregate.ready.wait(120):
            Path(ready_path).write_text("ready")

    threading.Thread(target=announce, daemon=True).start()
    worker.run(stop)


# ----------------------------------------------------------------------------- parent


class Traffic(threading.Thread):
    """Steady producer: ``rate`` records/s with current event times, from ``self.factory``."""

    def __init__(self, bootstrap: str, topic: str, factory: c.EventFactory, rate: float):
        super().__init__(daemon=True)
        from confluent_kafka import Producer

        self.producer = Producer(
            {"bootstrap.servers": bootstrap, "linger.ms": 5, "compression.type": "lz4"}
        )
        self.topic = topic
        self.factory = factory
        self.rate = rate
        self.paused = threading.Event()
        self.stopped = threading.Event()
        self.switched_at: float | None = None
        """Wall time of the produce call of the first record after :meth:`switch`."""
        self._switch_pending = False
        self.sent = 0
        self.newest_event_s = 0.0
        self.behind_s = 0.0

    def switch(self, factory: c.EventFactory) -> None:
        self.switched_at = None
        self.factory = factory
        self._switch_pending = True

    def run(self) -> None:
        per_slice = max(1, int(self.rate / 20))
        next_due = time.monotonic()
        i = 0
        while not self.stopped.is_set():
            if self.paused.is_set():
                time.sleep(0.05)
                next_due = time.monotonic()
                continue
            factory, pending = self.factory, self._switch_pending
            now = time.time()
            if pending:
                self.switched_at = now
                self._switch_pending = False
            for j in range(per_slice):
                ts = now + j / self.rate
                value = factory.record(i, ts)
                while True:
                    try:
                        self.producer.produce(self.topic, value, partition=i % 4)
                        break
                    except BufferError:
                        self.producer.poll(0.01)
                i += 1
            self.newest_event_s = now + (per_slice - 1) / self.rate
            self.producer.poll(0)
            self.sent = i
            next_due += per_slice / self.rate
            delay = next_due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                self.behind_s = max(self.behind_s, -delay)
        self.producer.flush(10)


class Alerts(threading.Thread):
    def __init__(self, bootstrap: str, topic: str):
        super().__init__(daemon=True)
        from confluent_kafka import Consumer

        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"{topic}.bench.{time.monotonic_ns()}",
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 10,
            }
        )
        self.consumer.subscribe([topic])
        self.seen: list[tuple[float, dict[str, Any]]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        import orjson

        while not self.stopped.is_set():
            for msg in self.consumer.consume(100, timeout=0.05):
                if msg.error() is None and msg.value():
                    self.seen.append((time.time(), orjson.loads(msg.value())))
        self.consumer.close()

    def wait(self, pred: Any, after: float, timeout_s: float) -> tuple[float, dict] | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for at, alert in list(self.seen):
                if at >= after and pred(alert):
                    return at, alert
            time.sleep(0.02)
        return None


def ingest_lag(bootstrap: str, group: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    cons = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        parts = [TopicPartition(topic, p) for p in range(4)]
        committed = cons.committed(parts, timeout=10)
        lag = 0
        for tp in committed:
            hi = cons.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)[1]
            lag += hi - max(tp.offset, 0)
        return lag
    finally:
        cons.close()


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=20_000)
    p.add_argument("--injections", type=int, default=10)
    p.add_argument("--shift", type=float, default=2.0)
    p.add_argument("--window", default="5m", help="event-time window size (default: 5m)")
    p.add_argument("--staleness", default="10s")
    p.add_argument("--staleness-runs", type=int, default=3)
    p.add_argument("--warmup-s", type=float, default=20)
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--child-worker", nargs=3, metavar=("CONFIG", "REFERENCE", "READY"))
    a = p.parse_args()
    if a.child_worker:
        child_worker(*a.child_worker)
        return
    run(a)


def run(a: argparse.Namespace) -> None:
    from streamproc.config import parse_duration_ms

    load_start = c.loadavg()
    c.log(f"load average at start: {load_start}")
    features = FEATURES[: a.injections] if a.injections <= len(FEATURES) else None
    if features is None:
        raise SystemExit(f"at most {len(FEATURES)} injections (one feature each)")
    normal = c.EventFactory(pool=50_000)
    shifted = {f: c.EventFactory(pool=20_000, seed=5, shift={f: a.shift}) for f in features}
    reference = normal.reference()
    tmp = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    (tmp / "ref.bin").write_bytes(reference.to_bytes())
    staleness_s = parse_duration_ms(a.staleness) / 1000
    latencies: list[tuple[str, float, int, float]] = []
    resolves: list[float] = []
    stale: list[float] = []
    misses: list[str] = []
    with c.kafka() as bootstrap:
        prefix = f"bench.latency.{int(time.time())}"
        mapping = config_mapping(bootstrap, prefix, a.window, a.staleness)
        (tmp / "config.json").write_text(json.dumps(mapping))
        topic = mapping["topics"]["predictions"]
        c.create_topic(bootstrap, topic, 4)
        ready = tmp / "ready"
        worker = subprocess.Popen(
            [
                c.PYTHON,
                __file__,
                "--child-worker",
                str(tmp / "config.json"),
                str(tmp / "ref.bin"),
                str(ready),
            ],
            cwd=c.ROOT,
        )
        alerts = Alerts(bootstrap, mapping["topics"]["alerts"])
        traffic = Traffic(bootstrap, topic, normal, a.rate)
        try:
            deadline = time.monotonic() + 120
            while not ready.exists():
                if worker.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("worker did not start")
                time.sleep(0.1)
            alerts.start()
            traffic.start()
            c.log(f"worker ready; {a.rate:,.0f} events/s of normal traffic for {a.warmup_s} s")
            time.sleep(a.warmup_s)
            group = mapping["kafka"]["group_id"] + "-ingest"
            for k, feature in enumerate(features):
                lag = ingest_lag(bootstrap, group, topic)
                before = time.time()
                traffic.switch(shifted[feature])
                got = alerts.wait(
                    lambda al, f=feature: (
                        al["check"] == "feature_drift"
                        and al["status"] == "firing"
                        and al.get("feature") == f
                    ),
                    before,
                    120,
                )
                switched = traffic.switched_at or before
                traffic.switch(normal)
                if got is None:
                    misses.append(feature)
                    c.log(f"injection {k + 1}: {feature}: no firing alert within 120 s")
                    continue
                latency = got[0] - switched
                window_s = parse_duration_ms(a.window) / 1000
                latencies.append((feature, latency, lag, switched % window_s))
                c.log(
                    f"injection {k + 1}: {feature} fired after {latency:.2f} s "
                    f"(ingest lag before: {lag:,} records; {switched % window_s:.0f} s into "
                    "the window)"
                )
                time.sleep(random.uniform(3, 8))
            for _at, al in alerts.seen:
                if al["check"] == "feature_drift" and al["status"] == "resolved":
                    resolves.append(_at)
            for s in range(a.staleness_runs):
                traffic.paused.set()
                time.sleep(0.1)
                newest = traffic.newest_event_s
                got = alerts.wait(
                    lambda al: al["check"] == "staleness" and al["status"] == "firing",
                    newest,
                    staleness_s * 3 + 30,
                )
                if got is None:
                    c.log(f"staleness {s + 1}: no alert")
                    misses.append("staleness")
                else:
                    stale.append(got[0] - newest)
                    c.log(
                        f"staleness {s + 1}: alert {got[0] - newest:.2f} s after the newest "
                        f"event (threshold {staleness_s:.0f} s)"
                    )
                traffic.paused.clear()
                resumed = time.time()
                alerts.wait(
                    lambda al: al["check"] == "staleness" and al["status"] == "resolved",
                    resumed,
                    60,
                )
                time.sleep(3)
        finally:
            traffic.stopped.set()
            alerts.stopped.set()
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                worker.kill()
            traffic.join(15)
            alerts.join(15)
        sent, behind = traffic.sent, traffic.behind_s
    load_end = c.loadavg()
    c.log(f"load average at end: {load_end}")
    body = report(a, latencies, stale, misses, staleness_s, sent, behind, load_start, load_end)
    c.append_results("Streaming: alert latency", body, write=not a.no_write)


def report(
    a: argparse.Namespace,
    latencies: list[tuple[str, float, int, float]],
    stale: list[float],
    misses: list[str],
    staleness_s: float,
    sent: int,
    behind: float,
    load_start: str,
    load_end: str,
) -> str:
    lines = [
        f"Machine: {c.machine()}. Commit {c.git_head()}.",
        "",
        f"Worker (subprocess, unpinned, `Worker.run`) with {a.window} windows, evaluation every "
        "0.5 s (ingest flush 0.5 s, staleness timer 0.25 s), provisional verdicts on the "
        f"last 5 s, staleness threshold {a.staleness}, other settings default (fire after 2 of 3 "
        f"evaluations). Traffic: {a.rate:,.0f} events/s steady with current timestamps "
        f"({sent:,} events in all; the producer fell behind its schedule by at most "
        f"{behind * 1000:.0f} ms), 25-feature records of `_common.EventFactory`. "
        f"Injections: one numeric feature shifted by {a.shift:g} sd each (a different feature "
        "per injection), latency = arrival of the firing `feature_drift` alert on the alerts "
        "topic − produce call of the first drifted record. "
        f"Command: `.venv/bin/python benchmarks/bench_latency.py --rate {a.rate:.0f} "
        f"--injections {a.injections} --window {a.window}`.",
        f"Load average (1/5/15 min) at start {load_start}, at end {load_end}.",
        "",
    ]
    if latencies:
        vals = [v for _f, v, _l, _w in latencies]
        p50, p95 = percentile(vals, 0.5), percentile(vals, 0.95)
        lines += [
            "| injection | feature | s into the open window | latency s | ingest lag before |",
            "| ---: | --- | ---: | ---: | ---: |",
        ]
        lines += [
            f"| {i + 1} | {f} | {w:.0f} | {v:.2f} | {lag:,} records |"
            for i, (f, v, lag, w) in enumerate(latencies)
        ]
        lines += [
            "",
            f"Drift alert latency over {len(vals)} injections: p50 {p50:.2f} s, p95 {p95:.2f} s "
            f"(min {min(vals):.2f}, max {max(vals):.2f}); target p95 ≤ 3 s: "
            f"{'met' if p95 <= 3 and set(misses) <= {'staleness'} else 'missed'}.",
        ]
    if misses:
        lines.append(f"No alert within the time limit: {', '.join(misses)}.")
    if stale:
        worst = max(stale)
        lines.append(
            f"Staleness alert after traffic stops ({len(stale)} runs, from the newest event "
            f"time to the alert's arrival): {c.fmt_stats(stale, '{:.2f}')} s vs a "
            f"{staleness_s:.0f} s threshold, i.e. +{(worst / staleness_s - 1) * 100:.0f}% worst "
            f"case; target within 10%: {'met' if worst <= staleness_s * 1.1 else 'missed'}."
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
