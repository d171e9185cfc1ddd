"""Scale-out: one vs two worker processes (same group id) on a 4-partition topic.

One command::

    .venv/bin/python benchmarks/bench_scaleout.py                # 1,000,000 events, 3 runs
    .venv/bin/python benchmarks/bench_scaleout.py --events 200000 --repeats 1 --no-write

It preloads ``--events`` prediction-log records (``_common.EventFactory``, 25 features)
into a 4-partition topic, then, per run, starts one or two full streamproc worker
processes (``Worker.run``: ingest + aggregate, default settings, unpinned) with a fresh
group id, scrapes ``streamproc_events_total`` from each worker's ``/metrics`` every
0.25 s, and reports the steady throughput from 10% to 90% of the topic (so process start,
the group join and the rebalance when the second worker joins, and the tail are not
counted; the wall time from process start to the last event is reported too).
"""

from __future__ import annotations

import argparse
import json
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
from bench_state import scrape


def child_worker(config_path: str, reference_path: str, ready_path: str) -> None:
    from streamproc.config import config_from_mapping
    from streamproc.core.model_profile import ModelProfile
    from streamproc.monitor.references import ReferenceSet
    from streamproc.monitor.worker import Worker

    config = config_from_mapping(json.loads(Path(config_path).read_text()))
    refs = ReferenceSet.of([ModelProfile.from_bytes(Path(reference_path).read_bytes())])
    worker = Worker(config, refs)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def announce() -> None:
        if worker.ingest.ready.wait(300):
            Path(ready_path).write_text(str(time.time()))

    threading.Thread(target=announce, daemon=True).start()
    worker.run(stop)


def one_run(
    bootstrap: str, topic: str, n_workers: int, n_events: int, tmp: Path, run_id: str
) -> dict[str, Any]:
    from streamproc.broker.local import free_port

    prefix = f"bench.scale.{run_id}"
    procs = []
    ports = []
    load0 = c.loadavg()
    began = time.perf_counter()
    for w in range(n_workers):
        port = free_port()
        ports.append(port)
        mapping = {
            "kafka": {"bootstrap_servers": bootstrap, "group_id": f"{prefix}.g"},
            "topics": {
                "predictions": topic,
                "alerts": f"{prefix}.alerts",
                "deadletter": f"{prefix}.dlq",
                "profiles": f"{prefix}.profiles",
            },
            "metrics": {"port": port, "host": "127.0.0.1"},
        }
        cfg = tmp / f"config-{run_id}-{w}.json"
        cfg.write_text(json.dumps(mapping))
        procs.append(
            subprocess.Popen(
                [
                    c.PYTHON,
                    __file__,
                    "--child-worker",
                    str(cfg),
                    str(tmp / "ref.bin"),
                    str(tmp / f"ready-{run_id}-{w}"),
                ],
                cwd=c.ROOT,
            )
        )
    samples: list[tuple[float, float]] = []
    try:
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            total = sum(scrape(p).get("streamproc_events_total", 0.0) for p in ports)
            samples.append((time.perf_counter() - began, total))
            if total >= n_events:
                break
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a worker exited")
            time.sleep(0.25)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
    load1 = c.loadavg()

    def at(frac: float) -> tuple[float, float]:
        return next(s for s in samples if s[1] >= frac * n_events)

    (t1, e1), (t2, e2) = at(0.1), at(0.9)
    rate = (e2 - e1) / (t2 - t1)
    c.log(
        f"{n_workers} worker(s): {rate:,.0f} events/s steady (10–90%), "
        f"{samples[-1][0]:.1f} s start to end (load {load0} -> {load1})"
    )
    return {"rate": rate, "wall_s": samples[-1][0], "load": (load0, load1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--child-worker", nargs=3)
    a = p.parse_args()
    if a.child_worker:
        child_worker(*a.child_worker)
        return
    run(a)


def run(a: argparse.Namespace) -> None:
    load_start = c.loadavg()
    c.log(f"load average at start: {load_start}")
    factory = c.EventFactory(pool=100_000)
    tmp = Path(tempfile.mkdtemp(prefix="bench-scaleout-"))
    (tmp / "ref.bin").write_bytes(factory.reference().to_bytes())
    results: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    with c.kafka() as bootstrap:
        topic = f"bench.scaleout.{int(time.time())}"
        c.create_topic(bootstrap, topic, 4)
        producer = c.fast_producer(bootstrap)
        t0 = time.time() - a.events / 20_000
        for start in range(0, a.events, 100_000):
            values = factory.batch(start, min(100_000, a.events - start), t0, 20_000)
            c.produce_all(producer, topic, values, 4)
        assert producer.flush(120) == 0
        c.log(f"preloaded {a.events:,} events")
        for r in range(a.repeats):
            for n in (1, 2):
                results[n].append(one_run(bootstrap, topic, n, a.events, tmp, f"{r}-{n}"))
    load_end = c.loadavg()
    c.log(f"load average at end: {load_end}")
    one = c.stats([x["rate"] for x in results[1]])[0]
    two = c.stats([x["rate"] for x in results[2]])[0]
    ratio = two / one
    lines = [
        f"Machine: {c.machine()}. Commit {c.git_head()}.",
        "",
        f"{a.events:,} preloaded events (25 features, ~740 bytes) in a 4-partition topic; per "
        "run one or two full worker processes (`Worker.run`, ingest + aggregate, default "
        "settings, not pinned; the broker shares the same 2 cores) with a fresh group id. "
        "Throughput: events counted by the workers' `streamproc_events_total` between 10% "
        f"and 90% of the topic. Median (min–max) of {a.repeats} runs. "
        f"Command: `.venv/bin/python benchmarks/bench_scaleout.py --events {a.events}`.",
        f"Load average (1/5/15 min) at start {load_start}, at end {load_end}; per run: "
        + "; ".join(f"{n}w {x['load'][0]} → {x['load'][1]}" for n in (1, 2) for x in results[n])
        + ".",
        "",
        "| workers | events/s (10–90%) | wall s, start → last event |",
        "| ---: | ---: | ---: |",
    ]
    for n in (1, 2):
        lines.append(
            f"| {n} | {c.fmt_stats([x['rate'] for x in results[n]])} | "
            f"{c.fmt_stats([x['wall_s'] for x in results[n]], '{:.1f}')} |"
        )
    lines += [
        "",
        f"Two workers / one = {ratio:.2f}× (target ≥ 1.7×: {'met' if ratio >= 1.7 else 'missed'}).",
    ]
    c.append_results("Streaming: scale-out, one vs two workers", "\n".join(lines), not a.no_write)


if __name__ == "__main__":
    main()
