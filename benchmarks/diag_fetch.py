"""Diagnosis: librdkafka's fetch-thread CPU per event against how busy the consumer is.

``bench_worker.py --profile`` shows the worker's ``rdk:broker`` thread at ~1.7 µs/event,
where the consume + orjson ceiling's whole consume costs ~1 µs. This consumes one
preloaded topic (the benchmark records) with the ingest stage's ``CONSUMER_DEFAULTS``,
with and without read_committed / cooperative-sticky, and with and without an
``orjson.loads`` per record, and reports the CPU per event of librdkafka's threads and of
the Python thread apart (``/proc/<pid>/task``)::

    taskset -c 1 .venv/bin/python benchmarks/diag_fetch.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c
import bench_worker as bw
import orjson
import worker_profile as wp
from confluent_kafka import Consumer

from streamproc.monitor.ingest import CONSUMER_DEFAULTS

CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("plain", {}, False),
    ("read_committed", {"isolation.level": "read_committed"}, False),
    ("cooperative-sticky", {"partition.assignment.strategy": "cooperative-sticky"}, False),
    ("plain + orjson", {}, True),
    ("read_committed + orjson", {"isolation.level": "read_committed"}, True),
]


def drain(
    bootstrap: str, topic: str, n: int, extra: dict[str, Any], parse: bool
) -> tuple[float, float]:
    """(librdkafka threads, Python threads) CPU µs per event over the drain."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}.diag.{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **CONSUMER_DEFAULTS,
            **extra,
        }
    )
    consumer.subscribe([topic])
    got, cpu0 = 0, None
    while got < n:
        msgs = consumer.consume(10_000, timeout=0.1)
        if msgs and cpu0 is None:
            cpu0 = wp.thread_cpu(os.getpid())
        for m in msgs:
            if m.error() is None:
                if parse:
                    orjson.loads(m.value())
                got += 1
    cpu1 = wp.thread_cpu(os.getpid())
    consumer.close()
    assert cpu0 is not None
    rdk = py = 0.0
    for tid, (name, end) in cpu1.items():
        used = end - cpu0.get(tid, (name, 0.0))[1]
        if name.startswith("rdk:"):
            rdk += used
        else:
            py += used
    return rdk / got * 1e6, py / got * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=400_000)
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args()
    with c.kafka() as bootstrap:
        topic = f"diag.fetch.{int(time.time())}"
        factory = c.EventFactory(pool=min(100_000, a.events))
        bw.preload(
            bootstrap, factory, topic, a.events, time.time() - 3600, a.events / 3600, 4, "diag"
        )
        for r in range(a.repeats):
            for label, extra, parse in CASES:
                rdk, py = drain(bootstrap, topic, a.events, extra, parse)
                print(
                    f"repeat {r + 1} {label:26s} librdkafka {rdk:5.2f}  python {py:5.2f} µs/event"
                )


if __name__ == "__main__":
    main()
