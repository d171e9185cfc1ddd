"""The product: `streamproc worker` draining a preloaded topic vs the consume + orjson ceiling.

One command (``make bench-worker``)::

    .venv/bin/python benchmarks/bench_worker.py                    # 400,000 events, 3 repeats
    .venv/bin/python benchmarks/bench_worker.py --smoke            # 20,000 events, 1 repeat,
                                                                   # nothing written to RESULTS.md
    .venv/bin/python benchmarks/bench_worker.py --events 100000 --repeats 1 --no-write

It starts a real broker (``KAFKA_BOOTSTRAP_SERVERS``, else a local one from the official
jars; that one is pinned to CPU 0), builds a reference profile of the 25 benchmark features
(``_common.EventFactory``: 20 numeric + 5 categorical, ~2% nulls, ~700 bytes a record) and,
per mode, preloads ``--events`` records into a fresh 4-partition topic (lz4/linger
producer, a progress line per 50,000 records):

- ``replay``: event times spread evenly over ``--replay-span`` (default 1 h: twelve 5-minute
  windows close, each with its final and rolling-horizon evaluation) ending
  ``--replay-end-ago`` (default 2 h) before now; the worker gets ``--replay`` (what a
  backfill says, see ``streamproc/contracts/start_from.py``). One topic for every replay
  run.
- ``live``: event times spaced at ``--live-rate`` (default 20,000 events/s of event time,
  i.e. 20 s for 400,000 records) ending at the moment the preload starts, so the worker
  reads data a few seconds old: its arrival lag (wall clock − newest event time) stays far
  below the staleness threshold (600 s), the evaluator treats the model as live
  (``streamproc_replaying`` 0, checked and reported) and runs the provisional evaluation of
  the open window every 0.5 s while it drains, plus the staleness and wall-clock lag
  checks. A preloaded topic ages, so each live (ceiling, worker) pair gets a topic of its
  own, preloaded just before the pair (~1–3 s for 400,000 records); the pair's ceiling and
  worker read the same topic.

Then, per mode, core setting and repeat, two subprocesses, each through a new consumer
group from the earliest offset, pinned the same way (``taskset -c <--cpu>``, default the
last CPU, for "1 core"; unpinned for "all cores", 2 on the reference machine):

- the **ceiling**: a bare confluent-kafka ``consume(num_messages=10000)`` + ``orjson.loads``
  per value loop, with the worker's ingest consumer tuning
  (``streamproc.monitor.ingest.CONSUMER_DEFAULTS``); events/s from the first message
  received to the N-th decoded, CPU seconds of the process (``os.times``, all threads,
  librdkafka's included) over the same interval;
- the **worker**: ``streamproc worker`` as users start it, default settings except the
  broker, the topics (fresh alerts / profiles / dead-letter / retrain topics per run), a
  fresh group id, a free metrics port, the reference file, ``--start-from earliest`` (the
  default, ``1h ago``, would skip a replay topic) and, in replay mode, ``--replay``.
  ``/metrics`` is polled (``--poll-s``, default 0.5 s, faster while waiting for the first
  event and near the end) until ``streamproc_events_total`` (+ ``streamproc_deadletter_total``,
  should any valid record be dead-lettered: it was read and decoded too; reported per run
  with its reasons and source offsets) reaches N; each poll also reads the process's utime
  + stime from ``/proc/<pid>/stat`` (all threads). events/s and CPU per event are taken
  between the first poll that sees events counted and the poll that sees N (process start,
  imports, the reference load and the group join are reported apart as "startup"; CPU per
  event including startup is reported per run). Then, untimed, up to 15 s for the
  aggregate to apply every published delta, and the final ``/metrics`` (evaluations,
  alerts, ``streamproc_replaying``) is recorded before SIGTERM.

Reported per mode and core setting: median (min–max) of ``--repeats`` runs of each rate,
CPU µs per event, and the ratios worker / ceiling (events/s) and ceiling / worker (CPU per
event, i.e. how many events the worker handles for the CPU of one parsed by the ceiling).
The Markdown section is appended to ``RESULTS.md`` (``--no-write`` to skip); every run's
numbers, the commit (``git rev-parse HEAD``, ``+hash`` of uncommitted ``streamproc/``
changes) and the load averages go to ``benchmarks/data/bench_worker.json`` (``--json``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c
import worker_profile as wp

MODES = ("replay", "live")
CORE_SETTINGS = ("1", "all")
BATCH = 10_000
STREAMPROC = Path(c.PYTHON).parent / "streamproc"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PRODUCE_STEP = 50_000
SETTLE_S = 15.0


# ----------------------------------------------------------------------------- ceiling child


def child_ceiling(a: argparse.Namespace) -> dict[str, Any]:
    """consume() + orjson.loads of ``a.events`` records; timed from the first message."""
    import orjson
    from confluent_kafka import Consumer

    from streamproc.monitor.ingest import CONSUMER_DEFAULTS

    consumer = Consumer(
        {
            "bootstrap.servers": a.bootstrap,
            "group.id": a.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **CONSUMER_DEFAULTS,
        }
    )
    consumer.subscribe([a.topic])
    loads = orjson.loads
    n = 0
    first = cpu0 = 0.0
    began = time.perf_counter()
    deadline = time.monotonic() + a.timeout_s
    while n < a.events and time.monotonic() < deadline:
        msgs = consumer.consume(num_messages=BATCH, timeout=0.1)
        if msgs and not first:
            first = time.perf_counter()
            cpu0 = _own_cpu_s()
        for m in msgs:
            if m.error() is None:
                loads(m.value())
                n += 1
    done = time.perf_counter()
    cpu = _own_cpu_s() - cpu0
    consumer.close()
    if not first:
        raise RuntimeError("ceiling: no message received")
    return {
        "events": n,
        "seconds": done - first,
        "cpu_s": cpu,
        "startup_s": first - began,
        "affinity": sorted(os.sched_getaffinity(0)),
    }


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


# ----------------------------------------------------------------------------- helpers


def code_id() -> str:
    """``git rev-parse HEAD``, plus a hash of uncommitted changes to ``streamproc/`` (the
    worker's code) when there are any: the working tree is shared and edited."""
    if os.environ.get("STREAMPROC_BENCH_COMMIT"):  # a snapshot of a commit (README)
        return os.environ["STREAMPROC_BENCH_COMMIT"]
    head = "unknown"
    with contextlib.suppress(Exception):
        head = subprocess.check_output(
            ["git", "-C", str(c.ROOT), "rev-parse", "HEAD"], text=True, stderr=subprocess.DEVNULL
        ).strip()
        diff = subprocess.run(
            ["git", "-C", str(c.ROOT), "diff", "HEAD", "--", "streamproc"],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
        if diff:
            return f"{head}+{hashlib.sha1(diff).hexdigest()[:7]}"
    return head


def pin_prefix(setting: str, cpu: int) -> list[str]:
    """The command prefix that pins a process to ``cpu`` ("1") or nothing ("all")."""
    return ["taskset", "-c", str(cpu)] if setting == "1" else []


def cores_label(setting: str, cpu: int) -> str:
    return f"1 (CPU {cpu})" if setting == "1" else f"all {os.cpu_count()}"


def pin_broker() -> str:
    """Move the JVM threads of a broker we started to CPU 0 (as ``bench_ingest.py``)."""
    pid = c.BROKER_PID
    if pid is None:
        return "external, not pinned"
    if (os.cpu_count() or 1) < 2:
        return "local, not pinned (one CPU)"
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(task.name), {0})
    return "local, pinned to CPU 0"


def proc_cpu_s(pid: int) -> float | None:
    """utime + stime of ``pid`` (all its threads) from ``/proc/<pid>/stat``."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def vm_hwm_mib(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def scrape(port: int, timeout: float = 2.0) -> dict[str, float] | None:
    """``/metrics`` samples summed by metric name (over label sets); None while it is down."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as r:
            text = r.read().decode()
    except OSError:
        return None
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        head, _, value = line.rpartition(" ")
        name, _, labels = head.partition("{")
        with contextlib.suppress(ValueError):
            out[name] = out.get(name, 0.0) + float(value)
            if name == "streamproc_deadletter_total" and float(value):
                out[f"{name}{{{labels}"] = float(value)
    return out


# ----------------------------------------------------------------------------- data


def preload(
    bootstrap: str,
    factory: c.EventFactory,
    topic: str,
    n: int,
    t0: float,
    rate: float,
    partitions: int,
    label: str,
) -> dict[str, Any]:
    """``n`` records with event times ``t0 + i / rate`` into a fresh ``topic``."""
    c.create_topic(bootstrap, topic, partitions)
    producer = c.fast_producer(bootstrap)
    began = time.perf_counter()
    total_bytes = 0
    for start in range(0, n, PRODUCE_STEP):
        values = factory.batch(start, min(PRODUCE_STEP, n - start), t0, rate)
        total_bytes += sum(len(v) for v in values)
        c.produce_all(producer, topic, values, partitions)
        done = start + len(values)
        c.log(
            f"preload {label}: {done:,}/{n:,} produced "
            f"({done / (time.perf_counter() - began):,.0f}/s)"
        )
    if producer.flush(120) != 0:
        raise RuntimeError(f"preload {label}: records left undelivered")
    seconds = time.perf_counter() - began
    ends = c.end_offsets(bootstrap, topic)
    if sum(ends.values()) != n:
        raise RuntimeError(f"preload {label}: {sum(ends.values())} records in {topic}, not {n}")
    return {
        "topic": topic,
        "seconds": seconds,
        "bytes": total_bytes,
        "first_ts": t0,
        "last_ts": t0 + (n - 1) / rate,
        "finished_at": time.time(),
    }


# ----------------------------------------------------------------------------- runs


def run_ceiling(
    a: argparse.Namespace, bootstrap: str, topic: str, setting: str, tmp: Path
) -> dict[str, Any]:
    out = tmp / f"ceiling-{time.monotonic_ns()}.json"
    cmd = [
        *pin_prefix(setting, a.cpu),
        c.PYTHON,
        __file__,
        "--child",
        "ceiling",
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--group",
        f"{topic}.ceiling.{time.monotonic_ns()}",
        "--events",
        str(a.events),
        "--out",
        str(out),
        "--timeout-s",
        str(a.timeout_s),
    ]
    load0 = c.loadavg()
    proc = subprocess.run(cmd, cwd=c.ROOT, timeout=a.timeout_s + 60, check=False)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"ceiling child failed (rc {proc.returncode})")
    r = json.loads(out.read_text())
    r.update(rate=r["events"] / r["seconds"], cpu_per_event=r["cpu_s"] / r["events"])
    r["load"] = (load0, c.loadavg())
    if r["events"] < a.events:
        r["error"] = f"ceiling read {r['events']:,} of {a.events:,} in {a.timeout_s:.0f} s"
    return r


@contextlib.contextmanager
def worker_process(
    a: argparse.Namespace,
    bootstrap: str,
    topic: str,
    mode: str,
    setting: str,
    tmp: Path,
    ref: Path,
    port: int,
) -> Iterator[tuple[subprocess.Popen[bytes], Path, str]]:
    """``streamproc worker`` with default settings on ``topic``; SIGTERM afterwards."""
    prefix = f"{topic}.w{time.monotonic_ns()}"
    config = tmp / f"{prefix}.toml"
    config.write_text(
        "[topics]\n"
        f'profiles = "{prefix}.profiles"\n'
        f'deadletter = "{prefix}.dlq"\n'
        f'retrain = "{prefix}.retrain"\n'
    )
    cmd = [
        *pin_prefix(setting, a.cpu),
        str(STREAMPROC),
        "worker",
        "--config",
        str(config),
        "--bootstrap-servers",
        bootstrap,
        "--group-id",
        f"{prefix}.g",
        "--metrics-port",
        str(port),
        "--predictions-topic",
        topic,
        "--alerts-topic",
        f"{prefix}.alerts",
        "--reference",
        str(ref),
        "--start-from",
        "earliest",
        *(["--replay"] if mode == "replay" else []),
    ]
    log_path = tmp / f"{prefix}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=c.ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("STREAMPROC_")},
        )
        try:
            yield proc, log_path, prefix
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run_worker(
    a: argparse.Namespace,
    bootstrap: str,
    topic: str,
    mode: str,
    setting: str,
    tmp: Path,
    ref: Path,
    profile: Path | None = None,
) -> dict[str, Any]:
    """One ``streamproc worker`` run until it has accounted for every record (counted, or
    dead-lettered: a dead-lettered record was read and decoded too); then up to
    ``SETTLE_S`` more for its aggregate to apply every published delta (not timed), so the
    evaluator's gauges (``streamproc_replaying``) and counters are read as it left them."""
    from streamproc.broker.local import free_port

    port = free_port()
    n_target = a.events
    load0 = c.loadavg()
    samples: list[tuple[float, float, float]] = []  # (s since start, accounted, cpu s)
    metrics: dict[str, float] = {}
    error = None
    settled_s = None
    began = time.perf_counter()
    profiler: wp.Profiler | None = None
    with worker_process(a, bootstrap, topic, mode, setting, tmp, ref, port) as (
        proc,
        log_path,
        prefix,
    ):
        deadline = time.monotonic() + a.timeout_s
        if profile is not None:  # from the first poll with events counted to the last
            profiler = wp.Profiler(proc.pid, profile)
        while True:
            if proc.poll() is not None:
                error = f"worker exited (rc {proc.returncode}): {last_error(log_path)}"
                break
            if time.monotonic() > deadline:
                error = f"timeout after {a.timeout_s:.0f} s"
                break
            got = scrape(port)
            now = time.perf_counter() - began
            cpu = proc_cpu_s(proc.pid)
            if got is not None and cpu is not None:
                metrics = got
                n = accounted(got)
                samples.append((now, n, cpu))
                if profiler is not None and n > 0 and not profiler.cpu0:
                    profiler.start(n)
                if n >= n_target:
                    if profiler is not None:
                        profiler.stop(n)
                    break
            time.sleep(next_poll(samples, n_target, a.poll_s))
        # the last events counted are published by the next flush (every 1 s): wait for a
        # publish after N (or 2 s), then for the aggregate to have applied every delta
        at_n = metrics.get("streamproc_deltas_published_total", 0.0)
        reached = time.monotonic()
        settle_until = reached + SETTLE_S
        while error is None and time.monotonic() < settle_until and proc.poll() is None:
            got = scrape(port)
            if got is not None:
                metrics = got
                published = got.get("streamproc_deltas_published_total", 0.0)
                flushed = published > at_n or time.monotonic() - reached > 2.0
                applied = got.get("streamproc_deltas_applied_total", 0.0)
                if flushed and published and applied >= published:
                    settled_s = time.perf_counter() - began
                    break
            time.sleep(0.1)
        hwm = vm_hwm_mib(proc.pid)
        affinity = sorted(os.sched_getaffinity(proc.pid)) if proc.poll() is None else []
    counted = [s for s in samples if s[1] > 0]
    dead = int(metrics.get("streamproc_deadletter_total", 0))
    out: dict[str, Any] = {
        "error": error,
        "polls": len(samples),
        "load": (load0, c.loadavg()),
        "max_rss_mib": hwm,
        "affinity": affinity,
        "events": int(metrics.get("streamproc_events_total", 0)),
        "deadletter": dead,
        "deadletter_reasons": {
            k.split('"')[1]: v
            for k, v in metrics.items()
            if k.startswith("streamproc_deadletter_") and '"' in k
        },
        "replaying": metrics.get("streamproc_replaying"),
        "evaluations": metrics.get("streamproc_evaluation_seconds_count"),
        "alerts_emitted": metrics.get("streamproc_alerts_emitted_total"),
        "deltas_published": metrics.get("streamproc_deltas_published_total"),
        "deltas_applied": metrics.get("streamproc_deltas_applied_total"),
        "stage_restarts": metrics.get("streamproc_stage_restarts_total"),
        "aggregate_applied_all_s": settled_s,
        "log": str(log_path),
    }
    if profiler is not None:
        out["profile"] = (
            {"error": profiler.error} if profiler.error or not profiler.cpu1 else profiler.summary()
        )
    if dead:
        out["deadletter_detail"] = dead_letter_detail(bootstrap, f"{prefix}.dlq", a.partitions)
    if len(counted) >= 2 and counted[-1][1] > counted[0][1]:
        (t0, n0, cpu0), (t1, n1, cpu1) = counted[0], counted[-1]
        out.update(
            startup_s=t0,
            to_n_s=t1,
            seconds=t1 - t0,
            measured_events=n1 - n0,
            rate=(n1 - n0) / (t1 - t0),
            cpu_s=cpu1 - cpu0,
            cpu_per_event=(cpu1 - cpu0) / (n1 - n0),
            cpu_total_s=cpu1,
            cpu_total_per_event=cpu1 / n1,
        )
    elif error is None:
        out["error"] = "too few polls with events counted to time the drain"
    return out


def accounted(metrics: dict[str, float]) -> float:
    """Records the worker is done with: counted into windows or dead-lettered."""
    return metrics.get("streamproc_events_total", 0.0) + metrics.get(
        "streamproc_deadletter_total", 0.0
    )


def dead_letter_detail(bootstrap: str, dlq: str, partitions: int) -> dict[str, Any]:
    """Which source records were dead-lettered: per reason header and source partition,
    the range of offsets (from the benchmark's ``request_id`` numbering: record i went to
    partition i % partitions at offset i // partitions)."""
    import orjson
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{dlq}.read.{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([dlq])
    ranges: dict[str, list[int]] = {}
    idle_until = time.monotonic() + 10
    while time.monotonic() < idle_until:
        msgs = consumer.consume(10_000, timeout=0.5)
        for m in msgs:
            if m.error() is not None or not m.value():
                continue
            idle_until = time.monotonic() + 2
            headers = dict(m.headers() or [])
            reason = next(
                (v.decode() for k, v in headers.items() if "reason" in k and v), "unknown"
            )
            try:
                i = int(orjson.loads(m.value())["request_id"][1:])
            except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
                continue
            key = f"{reason} p{i % partitions}"
            r = ranges.setdefault(key, [i // partitions, i // partitions, 0])
            r[0], r[1], r[2] = min(r[0], i // partitions), max(r[1], i // partitions), r[2] + 1
    consumer.close()
    return {
        k: {"first_offset": v[0], "last_offset": v[1], "records": v[2]} for k, v in ranges.items()
    }


def next_poll(samples: Sequence[tuple[float, float, float]], n_target: int, poll_s: float) -> float:
    """Fast (50 ms) until the first event is counted; ``poll_s`` while draining; shorter
    once the projected end is nearer than ``poll_s``."""
    counted = [s for s in samples if s[1] > 0]
    if not counted:
        return 0.05
    if len(counted) < 2 or counted[-1][0] <= counted[0][0]:
        return poll_s
    (t0, n0, _), (t1, n1, _) = counted[0], counted[-1]
    rate = (n1 - n0) / (t1 - t0)
    if rate <= 0:
        return poll_s
    remaining = (n_target - n1) / rate
    return max(0.05, min(poll_s, remaining))


def last_error(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "no log"
    errors = [x for x in lines if "Error" in x or "Exception" in x or "CRITICAL" in x]
    return (errors or lines or ["no output"])[-1][:300]


# ----------------------------------------------------------------------------- report


def med(xs: Sequence[dict[str, Any]], key: str) -> float | None:
    vals = [x[key] for x in xs if x.get(key) is not None]
    return statistics.median(vals) if vals else None


def cell(xs: Sequence[dict[str, Any]], key: str, fmt: str, scale: float = 1.0) -> str:
    vals = [x[key] * scale for x in xs if x.get(key) is not None]
    return c.fmt_stats(vals, fmt) if vals else "–"


def ratio_cell(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    if not values:
        return "–"
    return c.fmt_stats(values, fmt) if len(values) > 1 else fmt.format(values[0])


def _num(value: float | None, fmt: str, scale: float = 1.0) -> str:
    return "–" if value is None else fmt.format(value * scale)


def pair_ratios(pairs: Sequence[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """Per-pair worker/ceiling events/s and ceiling/worker CPU per event."""
    rates, cpus = [], []
    for p in pairs:
        w, ce = p["worker"], p["ceiling"]
        if w.get("rate") and ce.get("rate"):
            rates.append(w["rate"] / ce["rate"])
            cpus.append(ce["cpu_per_event"] / w["cpu_per_event"])
    return rates, cpus


def report(a: argparse.Namespace, doc: dict[str, Any]) -> str:
    runs = doc["runs"]
    cmd = f".venv/bin/python benchmarks/bench_worker.py --events {a.events} --repeats {a.repeats}"
    modes = [m for m in MODES if m in a.modes]
    settings = [s for s in CORE_SETTINGS if s in a.cores]
    pre = doc["preload"]
    lines = [
        f"Machine: {c.machine()}. Commit {doc['commit']}.",
        "",
        f"The process users start, `streamproc worker` (default settings and metrics endpoint; "
        "flags for the broker, fresh topics and group, a free metrics port, the reference, "
        "`--start-from earliest`, and `--replay` in replay mode), draining "
        f"{a.events:,} preloaded prediction-log records (20 numeric + 5 categorical features, "
        f"~2% nulls, {pre['bytes'] / a.events:.0f} bytes mean) from a {a.partitions}-partition "
        "topic, against the ceiling in the same run on the same topic: a bare "
        "`consume(10000)` + `orjson.loads` loop with the worker's consumer tuning, own group, "
        "from earliest. Each pinned the same way: `taskset -c "
        f"{a.cpu}` (1 core) or unpinned (all {os.cpu_count()} cores); broker "
        f"{doc['broker']}. Replay: event times spread over {a.replay_span_s / 60:g} min ending "
        f"{a.replay_end_ago_s / 3600:g} h ago. Live: event times at {a.live_rate:,.0f}/s "
        "ending when the preload starts, a fresh topic per (ceiling, worker) pair, so the "
        "worker reads data seconds old and runs its provisional evaluation "
        "(`streamproc_replaying` at the end: "
        + ", ".join(
            f"{m} {sorted({x['worker'].get('replaying') for x in runs if x['mode'] == m}, key=str)}"
            for m in modes
        )
        + "). Worker rate and CPU (utime + stime of the process) from the first `/metrics` "
        "poll with events counted to the poll that sees all of them; ceiling from its first "
        f"message to the last. Median (min–max) of {a.repeats} run(s). Command: `{cmd}`.",
        f"Load average (1/5/15 min) at start {doc['load_start']}, at end {doc['load_end']}.",
        "",
        "| mode | cores | ceiling events/s | ceiling CPU µs/event | worker events/s "
        "| worker CPU µs/event | worker / ceiling, events/s | ceiling / worker, CPU per event "
        "| worker startup s | worker start → N s | worker max RSS MiB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in modes:
        for s in settings:
            pairs = [x for x in runs if x["mode"] == m and x["cores"] == s]
            ws = [x["worker"] for x in pairs]
            cs = [x["ceiling"] for x in pairs]
            rates, cpus = pair_ratios(pairs)
            lines.append(
                f"| {m} | {cores_label(s, a.cpu)} | {cell(cs, 'rate', '{:,.0f}')} "
                f"| {cell(cs, 'cpu_per_event', '{:.1f}', 1e6)} | {cell(ws, 'rate', '{:,.0f}')} "
                f"| {cell(ws, 'cpu_per_event', '{:.1f}', 1e6)} | {ratio_cell(rates)} "
                f"| {ratio_cell(cpus)} | {cell(ws, 'startup_s', '{:.1f}')} "
                f"| {cell(ws, 'to_n_s', '{:.1f}')} "
                f"| {max((w.get('max_rss_mib', 0) for w in ws), default=0):.0f} |"
            )
    lines.append("")
    for m in modes:
        one = [x["worker"] for x in runs if x["mode"] == m and x["cores"] == "1"]
        both = [x["worker"] for x in runs if x["mode"] == m and x["cores"] == "all"]
        r1, r2 = med(one, "rate"), med(both, "rate")
        if r1 and r2:
            lines.append(
                f"{m}: worker on all cores / on one core = {r2 / r1:.2f}× events/s "
                f"(cores used while draining: {med(one, 'cpu_s') / med(one, 'seconds'):.2f} "
                f"and {med(both, 'cpu_s') / med(both, 'seconds'):.2f})."
            )
    one_core = [x for x in runs if x["cores"] == "1"]
    rates, _ = pair_ratios(one_core)
    if rates:
        ok = statistics.median(rates) >= 1.0
        lines.append(
            f"One core, worker / ceiling = {statistics.median(rates):.2f} over both modes "
            f"(target ≥ 1.0: {'met' if ok else 'missed'}; stretch 2.0)."
        )
    lines += [
        "",
        "Per run (worker: CPU µs per event including startup, seconds from process start "
        "until its aggregate had applied every delta, events counted / dead-lettered, "
        "evaluations, alerts, `streamproc_replaying`, load average before → after):",
        "",
        "| repeat | mode | cores | ceiling events/s | worker events/s | ratio | worker CPU "
        "µs/event with startup | start → aggregate done s | events / dead | evaluations "
        "| alerts | replaying | load |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for x in runs:
        w, ce = x["worker"], x["ceiling"]
        ratio = w["rate"] / ce["rate"] if w.get("rate") and ce.get("rate") else None
        lines.append(
            f"| {x['repeat'] + 1} | {x['mode']} | {cores_label(x['cores'], a.cpu)} "
            f"| {ce.get('rate', 0):,.0f} | {w.get('rate', 0):,.0f} "
            f"| {'–' if ratio is None else f'{ratio:.2f}'} "
            f"| {_num(w.get('cpu_total_per_event'), '{:.1f}', 1e6)} "
            f"| {_num(w.get('aggregate_applied_all_s'), '{:.1f}')} "
            f"| {w['events']:,} / {w['deadletter']:,} | {w.get('evaluations') or 0:,.0f} "
            f"| {w.get('alerts_emitted') or 0:,.0f} | {_num(w.get('replaying'), '{:g}')} "
            f"| {w['load'][0]} → {w['load'][1]} |"
        )
    for x in runs:
        for who in ("ceiling", "worker"):
            if x[who].get("error"):
                lines.append(
                    f"Failure: {x['mode']} {x['cores']} repeat {x['repeat'] + 1} {who}: "
                    f"{x[who]['error']}"
                )
    for x in runs:
        w = x["worker"]
        if w["deadletter"]:
            lines.append(
                f"Dead-lettered: {x['mode']} {x['cores']} repeat {x['repeat'] + 1}: "
                f"{w['deadletter']:,} of {a.events:,} valid records "
                f"({', '.join(f'{k} {v:,.0f}' for k, v in w['deadletter_reasons'].items())}; "
                "source offsets: "
                + "; ".join(
                    f"{k} {v['first_offset']}–{v['last_offset']} ({v['records']})"
                    for k, v in (w.get("deadletter_detail") or {}).items()
                )
                + "). The rate counts them: they were read and decoded."
            )
        want = 1.0 if x["mode"] == "replay" else 0.0
        if w.get("replaying") is not None and w["replaying"] != want:
            lines.append(
                f"Warning: {x['mode']} {x['cores']} repeat {x['repeat'] + 1}: "
                f"`streamproc_replaying` {w['replaying']:g}, expected {want:g}."
            )
    if doc["commits"] and len(set(doc["commits"])) > 1:
        lines.append(f"Warning: the worker's code changed during the run: {doc['commits']}.")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=400_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--modes", default="replay,live", help="replay,live")
    p.add_argument("--cores", default="1,all", help="1 (pinned to --cpu), all (unpinned)")
    p.add_argument("--cpu", type=int, default=(os.cpu_count() or 1) - 1, help="the pinned CPU")
    p.add_argument("--live-rate", type=float, default=20_000.0, help="event times/s, live")
    p.add_argument("--replay-span-s", type=float, default=3600.0)
    p.add_argument("--replay-end-ago-s", type=float, default=7200.0)
    p.add_argument("--poll-s", type=float, default=0.5, help="/metrics poll while draining")
    p.add_argument("--timeout-s", type=float, default=600.0, help="per process")
    p.add_argument("--smoke", action="store_true", help="--events 20000 --repeats 1 --no-write")
    p.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    p.add_argument(
        "--profile",
        action="store_true",
        help="one more worker run per mode with py-spy attached: CPU per thread and function",
    )
    p.add_argument("--json", type=Path, default=c.DATA / "bench_worker.json")
    # child only
    p.add_argument("--child", choices=["ceiling"])
    p.add_argument("--bootstrap")
    p.add_argument("--topic")
    p.add_argument("--group")
    p.add_argument("--out")
    a = p.parse_args()
    if a.child:
        Path(a.out).write_text(json.dumps(child_ceiling(a)))
        return
    if a.smoke:
        a.events, a.repeats, a.no_write = 20_000, 1, True
    a.modes = [m for m in a.modes.split(",") if m]
    a.cores = [s for s in a.cores.split(",") if s]
    if set(a.modes) - set(MODES) or set(a.cores) - set(CORE_SETTINGS):
        p.error(f"--modes from {MODES}, --cores from {CORE_SETTINGS}")
    if "1" in a.cores and not shutil.which("taskset"):
        p.error("taskset (util-linux) is needed to pin to one core")
    run_parent(a)


def run_parent(a: argparse.Namespace) -> None:
    load_start = c.loadavg()
    c.log(f"load average at start: {load_start}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    factory = c.EventFactory(pool=min(100_000, a.events))
    ref = tmp / "reference.bin"
    ref.write_bytes(factory.reference().to_bytes())
    runs: list[dict[str, Any]] = []
    preloads: list[dict[str, Any]] = []
    commits: list[str] = []
    stamp = int(time.time())
    with c.kafka() as bootstrap:
        broker = pin_broker()
        c.log(f"broker {bootstrap}: {broker}")
        replay_topic = None
        if "replay" in a.modes:
            t0 = time.time() - a.replay_end_ago_s - a.replay_span_s
            rate = a.events / a.replay_span_s
            pre = preload(
                bootstrap,
                factory,
                f"bench.worker.{stamp}.replay",
                a.events,
                t0,
                rate,
                a.partitions,
                "replay",
            )
            preloads.append({"mode": "replay", **pre})
            replay_topic = pre["topic"]
        for r in range(a.repeats):
            for mode in a.modes:
                for setting in a.cores:
                    if mode == "replay":
                        assert replay_topic is not None
                        topic = replay_topic
                    else:
                        topic = f"bench.worker.{stamp}.live.{r}.{setting}"
                        t0 = time.time() - a.events / a.live_rate
                        pre = preload(
                            bootstrap,
                            factory,
                            topic,
                            a.events,
                            t0,
                            a.live_rate,
                            a.partitions,
                            "live",
                        )
                        preloads.append({"mode": "live", **pre})
                    label = f"repeat {r + 1}/{a.repeats} {mode} cores={setting}"
                    ceiling = run_ceiling(a, bootstrap, topic, setting, tmp)
                    c.log(
                        f"{label} ceiling: {ceiling['events']:,} in {ceiling['seconds']:.2f} s "
                        f"= {ceiling['rate']:,.0f}/s, {ceiling['cpu_per_event'] * 1e6:.1f} µs "
                        f"CPU/event (load {ceiling['load'][0]} -> {ceiling['load'][1]})"
                    )
                    commits.append(code_id())
                    worker = run_worker(a, bootstrap, topic, mode, setting, tmp, ref)
                    c.log(
                        f"{label} worker: "
                        + (
                            f"{worker['measured_events']:,.0f} in {worker['seconds']:.2f} s = "
                            f"{worker['rate']:,.0f}/s, {worker['cpu_per_event'] * 1e6:.1f} µs "
                            f"CPU/event, startup {worker['startup_s']:.1f} s, "
                            f"replaying={worker['replaying']}, ratio "
                            f"{worker['rate'] / ceiling['rate']:.2f}"
                            if worker.get("rate")
                            else "no rate"
                        )
                        + (f"; ERROR {worker['error']}" if worker["error"] else "")
                        + f" (load {worker['load'][0]} -> {worker['load'][1]})"
                    )
                    runs.append(
                        {
                            "repeat": r,
                            "mode": mode,
                            "cores": setting,
                            "topic": topic,
                            "ceiling": ceiling,
                            "worker": worker,
                        }
                    )
        profiles = run_profiles(a, bootstrap, factory, stamp, replay_topic, tmp, ref)
    load_end = c.loadavg()
    c.log(f"load average at end: {load_end}; worker logs in {tmp}")
    doc: dict[str, Any] = {
        "benchmark": "bench_worker",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": code_id(),
        "commits": commits,
        "machine": c.machine(),
        "cpu_count": os.cpu_count(),
        "broker": broker,
        "load_start": load_start,
        "load_end": load_end,
        "settings": {
            k: v for k, v in vars(a).items() if k not in {"child", "bootstrap", "topic", "group"}
        }
        | {"json": str(a.json)},
        "preload": {
            "bytes": preloads[0]["bytes"] if preloads else 0,
            "runs": preloads,
        },
        "runs": runs,
        "profiles": profiles,
    }
    body = report(a, doc)
    if profiles:
        ceiling_us = {}
        for label, _ in profiles:
            mode = label.partition(", ")[0]
            cs = [x["ceiling"] for x in runs if x["mode"] == mode and x["cores"] == a.cores[0]]
            value = med(cs, "cpu_per_event")
            if value:
                ceiling_us[label] = value * 1e6
        body += (
            "\n\nWhere the worker's CPU goes (`--profile`: one more worker run per mode, "
            "not in the medians above, with py-spy attached, non-blocking, 100 Hz, from the "
            "first poll with events counted to the last; per-thread CPU from "
            "`/proc/<pid>/task`; a function's µs/event = its share of its thread's samples × "
            "that thread's CPU; the raw stacks are in `benchmarks/data/`):\n"
            + wp.report(profiles, ceiling_us)
        )
    doc["markdown"] = body
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    c.log(f"wrote {a.json}")
    c.append_results(
        "Product: `streamproc worker` vs the consume + orjson ceiling", body, write=not a.no_write
    )
    if any(x[w].get("error") for x in runs for w in ("ceiling", "worker")):
        sys.exit(1)


def run_profiles(
    a: argparse.Namespace,
    bootstrap: str,
    factory: c.EventFactory,
    stamp: int,
    replay_topic: str | None,
    tmp: Path,
    ref: Path,
) -> list[tuple[str, dict[str, Any]]]:
    """With ``--profile``: one profiled worker per mode, pinned as the first core setting."""
    if not a.profile:
        return []
    if wp.py_spy() is None:
        c.log("--profile: py-spy is not installed (pip install -e '.[bench]'); skipped")
        return [("all", {"error": "py-spy not installed"})]
    setting = a.cores[0]
    out = []
    for mode in a.modes:
        topic = replay_topic
        if mode == "live" or topic is None:
            topic = f"bench.worker.{stamp}.live.profile"
            t0 = time.time() - a.events / a.live_rate
            preload(bootstrap, factory, topic, a.events, t0, a.live_rate, a.partitions, "live")
        raw = c.DATA / f"bench_worker_profile_{mode}.txt"
        raw.parent.mkdir(parents=True, exist_ok=True)
        raw.unlink(missing_ok=True)
        worker = run_worker(a, bootstrap, topic, mode, setting, tmp, ref, profile=raw)
        summary = worker.get("profile") or {"error": worker.get("error") or "no profile"}
        label = f"{mode}, {setting}{' core' if setting == '1' else ' cores'}"
        c.log(f"profile {label}: {summary.get('us_per_event', 0):.1f} µs/event -> {raw}")
        out.append((label, summary))
    return out


if __name__ == "__main__":
    main()
