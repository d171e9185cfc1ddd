"""Scale-out: one vs two worker processes (same group id) on a 4-partition topic.

One command::

    .venv/bin/python benchmarks/bench_scaleout.py                # 2,000,000 events, 3 runs
    .venv/bin/python benchmarks/bench_scaleout.py --events 200000 --repeats 1 --no-write

It preloads ``--events`` prediction-log records (``_common.EventFactory``, 25 features)
into a 4-partition topic, then, per run, starts one or two processes with a fresh group
id: full streamproc workers (``Worker.run``: ingest + aggregate, default settings,
unpinned) and, as a second mode, the worker's ingest stage alone (its ``IngestLoop``, same
settings): the hot path that the partitions spread. It scrapes ``streamproc_events_total``
from each process's ``/metrics`` every 0.25 s and reports the steady throughput from the later of
10% of the topic and 1 s after every process has counted events, to 90% of the topic (so
process start, the group join, the rebalance when the second process joins and the tail
are not counted; the wall time from process start to the last
event is reported too). A process that dies is reported with its exception.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
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


def child_worker(config_path: str, reference_path: str, ready_path: str, mode: str) -> None:
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
    if mode == "worker":
        worker.run(stop)
        return
    # ingest stage only: the worker's IngestLoop with the worker's settings and metrics
    from prometheus_client import start_http_server

    worker.create_topics()
    start_http_server(config.metrics.port, config.metrics.host, worker.metrics.registry)
    worker.ingest.run(stop)


def one_run(
    bootstrap: str, topic: str, n_workers: int, n_events: int, tmp: Path, run_id: str, mode: str
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
        err = (tmp / f"stderr-{run_id}-{w}.log").open("wb")
        procs.append(
            subprocess.Popen(
                [
                    c.PYTHON,
                    __file__,
                    "--child-worker",
                    str(cfg),
                    str(tmp / "ref.bin"),
                    str(tmp / f"ready-{run_id}-{w}"),
                    mode,
                ],
                cwd=c.ROOT,
                stderr=err,
            )
        )
    samples: list[tuple[float, float]] = []
    every: list[bool] = []  # per sample: has every process counted events yet
    cpu: list[tuple[list[float], list[float]]] = []  # per sample: (system busy/idle, per child)
    failure = ""
    try:
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            counts = [scrape(p).get("streamproc_events_total", 0.0) for p in ports]
            total = sum(counts)
            samples.append((time.perf_counter() - began, total))
            every.append(all(x > 0 for x in counts))
            cpu.append((_system_cpu(), [_proc_cpu(p.pid) for p in procs] + [_broker_cpu()]))
            if total >= n_events:
                break
            if any(p.poll() is not None for p in procs):
                failure = _failure(tmp, run_id, n_workers)
                c.log(f"{n_workers} {mode}(s): a process exited: {failure}")
                break
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
    if failure:
        return {"rate": None, "wall_s": None, "load": (load0, load1), "error": failure}

    def at(frac: float) -> int:
        return next(i for i, s in enumerate(samples) if s[1] >= frac * n_events)

    # from when every process is consuming (after the join and the rebalance), at least 10%
    i1 = max(at(0.1), next((i for i, ok in enumerate(every) if ok), len(samples) - 1) + 4)
    i2 = at(0.9)
    if i2 <= i1:
        i1 = at(0.1)
    (t1, e1), (t2, e2) = samples[i1], samples[i2]
    rate = (e2 - e1) / (t2 - t1)
    (busy1, idle1), procs1 = cpu[i1]
    (busy2, idle2), procs2 = cpu[i2]
    machine_busy = (busy2 - busy1) / max(1e-9, (busy2 - busy1) + (idle2 - idle1))
    per_proc = [(b - a) / (t2 - t1) for a, b in zip(procs1, procs2, strict=True)]
    c.log(
        f"{n_workers} {mode}(s): {rate:,.0f} events/s steady (10–90%), "
        f"{samples[-1][0]:.1f} s start to end (load {load0} -> {load1})"
    )
    return {
        "rate": rate,
        "wall_s": samples[-1][0],
        "load": (load0, load1),
        "machine_busy": machine_busy,
        "cores_per_process": per_proc[:-1],
        "broker_cores": per_proc[-1],
    }


def _system_cpu() -> list[float]:
    """Busy and idle jiffies of the whole machine (``/proc/stat``)."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return [sum(fields[:8]) - idle, idle]


def _proc_cpu(pid: int | None) -> float:
    """CPU seconds (user + system, all threads) a process has used so far."""
    if pid is None:
        return 0.0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (float(stat[11]) + float(stat[12])) / os.sysconf("SC_CLK_TCK")


def _broker_cpu() -> float:
    return _proc_cpu(c.BROKER_PID)


def _failure(tmp: Path, run_id: str, n_workers: int) -> str:
    """The last exception line a crashed child wrote."""
    for w in range(n_workers):
        lines = (tmp / f"stderr-{run_id}-{w}.log").read_text(errors="replace").splitlines()
        errors = [x for x in lines if x and not x.startswith((" ", "%")) and "Error" in x]
        if errors:
            return errors[-1][:200]
    return "exited without an exception line"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=2_000_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--modes", default="worker,ingest")
    p.add_argument("--child-worker", nargs=4)
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
    modes = a.modes.split(",")
    results: dict[tuple[str, int], list[dict[str, Any]]] = {
        (m, n): [] for m in modes for n in (1, 2)
    }
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
            for m in modes:
                for n in (1, 2):
                    run_id = f"{m}-{r}-{n}"
                    results[(m, n)].append(one_run(bootstrap, topic, n, a.events, tmp, run_id, m))
    load_end = c.loadavg()
    c.log(f"load average at end: {load_end}")
    what = {
        "worker": "full worker processes (`Worker.run`: ingest + aggregate)",
        "ingest": "ingest-only processes (the worker's `IngestLoop`, same settings)",
    }
    lines = [
        f"Machine: {c.machine()}. Commit {c.git_head()}.",
        "",
        f"{a.events:,} preloaded events (25 features, ~740 bytes) in a 4-partition topic; per "
        "run one or two processes with the same, fresh group id, default settings, not "
        "pinned (the broker shares the same 2 cores): "
        + "; ".join(what[m] for m in modes)
        + ". Throughput: events counted by the processes' `streamproc_events_total` from the "
        "later of 10% of the topic and 1 s after every process has counted events (the join "
        "and rebalance excluded) to 90%; CPU over the same interval from /proc (machine: share of "
        "both cores busy, all processes included). "
        f"Median (min–max) of {a.repeats} runs. "
        f"Command: `.venv/bin/python benchmarks/bench_scaleout.py --events {a.events}`.",
        f"Load average (1/5/15 min) at start {load_start}, at end {load_end}; per run: "
        + "; ".join(
            f"{m} ×{n} {x['load'][0]} → {x['load'][1]}"
            for (m, n), xs in results.items()
            for x in xs
        )
        + ".",
        "",
        "| processes | events/s (10–90%) | wall s, start → last event | machine CPU busy "
        "| cores used per process | broker cores | failed runs |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    medians: dict[tuple[str, int], float] = {}
    for (m, n), xs in results.items():
        ok = [x for x in xs if x["rate"] is not None]
        rate = c.fmt_stats([x["rate"] for x in ok]) if ok else "–"
        wall = c.fmt_stats([x["wall_s"] for x in ok], "{:.1f}") if ok else "–"
        if ok:
            medians[(m, n)] = c.stats([x["rate"] for x in ok])[0]
        busy = f"{statistics.median(x['machine_busy'] for x in ok):.0%}" if ok else "–"
        per = (
            " + ".join(
                f"{statistics.median(x['cores_per_process'][i] for x in ok):.2f}" for i in range(n)
            )
            if ok
            else "–"
        )
        broker = f"{statistics.median(x['broker_cores'] for x in ok):.2f}" if ok else "–"
        lines.append(
            f"| {n} × {m} | {rate} | {wall} | {busy} | {per} | {broker} | "
            f"{len(xs) - len(ok)} of {len(xs)} |"
        )
    lines.append("")
    for m in modes:
        if (m, 1) in medians and (m, 2) in medians:
            ratio = medians[(m, 2)] / medians[(m, 1)]
            lines.append(
                f"{m}: two / one = {ratio:.2f}× (target ≥ 1.7×: "
                f"{'met' if ratio >= 1.7 else 'missed'})."
            )
        else:
            lines.append(f"{m}: no ratio (runs failed).")
    failures = sorted({x["error"] for xs in results.values() for x in xs if x.get("error")})
    for f in failures:
        lines.append(f"Failure: `{f}`")
    c.append_results("Streaming: scale-out, one vs two workers", "\n".join(lines), not a.no_write)


if __name__ == "__main__":
    main()
