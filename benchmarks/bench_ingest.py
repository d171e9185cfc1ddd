"""Ingest throughput on one core: raw consume ceiling vs streamproc's ingest vs naive Faust.

One command::

    .venv/bin/python benchmarks/bench_ingest.py                      # 2,000,000 events, 3 runs
    .venv/bin/python benchmarks/bench_ingest.py --events 200000 --repeats 1 --no-write
    .venv/bin/python benchmarks/bench_ingest.py --profile            # + cProfile of ingest

It starts a real broker (``KAFKA_BOOTSTRAP_SERVERS`` or a local one from the official
jars), preloads ``--events`` prediction-log records (20 numeric + 5 categorical features,
~740 bytes, ~2% nulls; see ``_common.EventFactory``) into a 4-partition topic with an
lz4/linger producer, then measures, each variant in its own subprocess pinned to CPU 1
(``os.sched_setaffinity``) and reading the whole topic through its own consumer group:

- ``raw``: confluent-kafka ``consume(num_messages=10000)`` + ``orjson.loads`` per value,
  with the same client settings as ingest; ``rawq``: the same with librdkafka's prefetch
  queue raised (``queued.min.messages`` 1e6, ``queued.max.messages.kbytes`` 1 GiB), the
  CPU-bound ceiling (at the defaults the raw loop waits on fetches);
- ``ingest``: streamproc's :class:`~streamproc.monitor.ingest.IngestLoop` exactly as the
  worker runs it (decode, validate, columns, window buffers, sketch deltas, transactional
  publish + offsets every 1 s); stopped when ``streamproc_events_total`` reaches N, and
  the clock runs until its final flush has committed;
- ``faust``: a faust-streaming (aiokafka; ``cramjam`` for lz4 installed under ``benchmarks/data/``
  for it) agent that decodes each event with orjson and
  updates per-feature ``kll_doubles_sketch`` + ``hll_sketch`` and per-categorical dict
  counters one event at a time, on a prefix of ``--faust-events`` events.

Rates are events / (last event done − first message received). The broker we start is
pinned to CPU 0 so the measured process has CPU 1 (other work on the machine still
competes; the load average is printed at the start and end of every run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import contextlib

import _common as c

MEASURED_CPU = 1
BATCH = 10_000
BIG_QUEUE = {"queued.min.messages": 1_000_000, "queued.max.messages.kbytes": 1_048_576}
"""librdkafka prefetch limits raised (defaults 100,000 messages / 64 MiB): the ``rawq``
variant. At the defaults the raw loop waits on fetches (~0.3 core used)."""


# ----------------------------------------------------------------------------- children


def _pin() -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > MEASURED_CPU:
        os.sched_setaffinity(0, {MEASURED_CPU})


def _cpu_s() -> float:
    """CPU seconds of this process, all threads (Python and librdkafka's)."""
    t = os.times()
    return t.user + t.system


def _max_rss_mib() -> float:
    """Peak RSS of this process (VmHWM; ru_maxrss would carry the parent's over exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child_raw(a: argparse.Namespace) -> dict[str, Any]:
    import orjson
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": a.bootstrap,
            "group.id": a.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.min.bytes": 65536,
            "fetch.wait.max.ms": 100,
            **(BIG_QUEUE if a.child == "rawq" else {}),
        }
    )
    consumer.subscribe([a.topic])
    loads = orjson.loads
    n = 0
    first = None
    began = time.perf_counter()
    while n < a.events:
        msgs = consumer.consume(num_messages=BATCH, timeout=1.0)
        if msgs and first is None:
            first = time.perf_counter()
            cpu0 = _cpu_s()
        for m in msgs:
            if m.error() is None:
                loads(m.value())
                n += 1
    done = time.perf_counter()
    consumer.close()
    assert first is not None
    cpu = _cpu_s() - cpu0
    return {"events": n, "seconds": done - first, "with_join_s": done - began, "cpu_s": cpu}


def child_ingest(a: argparse.Namespace) -> dict[str, Any]:
    from streamproc.core.model_profile import ModelProfile
    from streamproc.monitor import metrics as metrics_module
    from streamproc.monitor.ingest import IngestLoop, IngestSettings
    from streamproc.monitor.references import ReferenceSet

    refs = ReferenceSet.of([ModelProfile.from_bytes(Path(a.reference).read_bytes())])
    settings = IngestSettings(
        predictions_topic=a.topic,
        profiles_topic=a.topic + ".profiles",
        deadletter_topic=a.topic + ".dlq",
        group_id=a.group,
        window_ms=300_000,
        allowed_lateness_ms=60_000,
        kafka={"bootstrap.servers": a.bootstrap, **(BIG_QUEUE if a.child == "ingestq" else {})},
    )
    metrics = metrics_module.create()
    first: list[float] = []

    class TimedIngest(IngestLoop):
        """IngestLoop with one timestamp taken when the first batch arrives."""

        def process(self, messages: Any) -> None:
            if not first:
                first.append(time.perf_counter())
                first.append(_cpu_s())
            super().process(messages)

    loop = TimedIngest(settings, refs, metrics)
    stop = threading.Event()
    reached: list[float] = []

    def watch() -> None:
        registry = metrics.registry
        while not stop.is_set():
            n = registry.get_sample_value("streamproc_events_total", {"model": c.MODEL}) or 0
            if n >= a.events:
                reached.append(time.perf_counter())
                stop.set()
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    began = time.perf_counter()
    watcher.start()
    profiler = None
    if a.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    loop.run(stop)  # the worker's ingest thread body, here on the main thread
    done = time.perf_counter()
    out: dict[str, Any] = {}
    if profiler is not None:
        import io
        import pstats

        profiler.disable()
        buf = io.StringIO()
        st = pstats.Stats(profiler, stream=buf)
        st.sort_stats("cumulative").print_stats(45)
        st.sort_stats("tottime").print_stats(30)
        out["profile"] = buf.getvalue()
    reg = metrics.registry
    n = reg.get_sample_value("streamproc_events_total", {"model": c.MODEL}) or 0
    out.update(
        events=int(n),
        seconds=done - first[0],
        cpu_s=_cpu_s() - first[1],
        to_count_s=reached[0] - first[0] if reached else None,
        with_join_s=done - began,
        deltas=reg.get_sample_value("streamproc_deltas_published_total"),
        flush_s_sum=reg.get_sample_value("streamproc_ingest_flush_seconds_sum"),
        flushes=reg.get_sample_value("streamproc_ingest_flush_seconds_count"),
        batch_s_sum=reg.get_sample_value("streamproc_ingest_batch_seconds_sum"),
    )
    return out


def child_faust(a: argparse.Namespace) -> dict[str, Any]:
    """A hand-written Faust monitor: per-event decode and scalar sketch updates."""
    import faust
    import orjson
    from datasketches import hll_sketch, kll_doubles_sketch

    app = faust.App(
        a.group,
        broker="kafka://" + a.bootstrap,
        datadir=tempfile.mkdtemp(prefix="bench-faust-"),
        store="memory://",
        topic_partitions=4,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
    )
    topic = app.topic(a.topic, value_serializer="raw", key_serializer="raw")
    numeric = [n for n in a.features.split(",") if n.startswith("num_")]
    categorical = [n for n in a.features.split(",") if n.startswith("cat_")]
    kll = {n: kll_doubles_sketch(512) for n in numeric}
    hll = {n: hll_sketch(12) for n in numeric}
    nulls = dict.fromkeys(numeric + categorical, 0)
    counts: dict[str, dict[str, int]] = {n: {} for n in categorical}
    state: dict[str, Any] = {"n": 0, "first": None}
    out_path = Path(a.out)

    @app.agent(topic)
    async def monitor(stream: Any) -> None:
        async for value in stream:
            if state["first"] is None:
                state["first"] = time.perf_counter()
                state["cpu0"] = _cpu_s()
            feats = orjson.loads(value)["features"]
            for name in numeric:
                v = feats.get(name)
                if v is None:
                    nulls[name] += 1
                else:
                    kll[name].update(v)
                    hll[name].update(v)
            for name in categorical:
                v = feats.get(name)
                if v is None:
                    nulls[name] += 1
                else:
                    cnt = counts[name]
                    cnt[v] = cnt.get(v, 0) + 1
            state["n"] += 1
            if state["n"] >= a.events:
                done = time.perf_counter()
                out_path.write_text(
                    json.dumps(
                        {
                            "events": state["n"],
                            "seconds": done - state["first"],
                            "cpu_s": _cpu_s() - state["cpu0"],
                            "max_rss_mib": _max_rss_mib(),
                        }
                    )
                )
                os._exit(0)

    worker = faust.Worker(app, loglevel="warning", quiet=True)
    worker.execute_from_commandline()
    return {}


def child_main(a: argparse.Namespace) -> None:
    _pin()
    if a.child == "faust":
        child_faust(a)
        return
    result = child_ingest(a) if a.child.startswith("ingest") else child_raw(a)
    result["max_rss_mib"] = _max_rss_mib()
    Path(a.out).write_text(json.dumps(result))


# ----------------------------------------------------------------------------- parent


def run_child(kind: str, a: argparse.Namespace, bootstrap: str, topic: str, **extra: Any) -> dict:
    fd, out = tempfile.mkstemp(prefix=f"bench-{kind}-", suffix=".json")
    os.close(fd)
    group = f"{topic}.{kind}.{time.monotonic_ns()}"
    cmd = [
        c.PYTHON,
        __file__,
        "--child",
        kind,
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--group",
        group,
        "--out",
        out,
    ]
    for key, value in extra.items():
        if value is True:
            cmd.append(f"--{key}")
        elif value not in (None, False):
            cmd += [f"--{key}", str(value)]
    env = dict(os.environ)
    if kind == "faust":
        env["PYTHONPATH"] = os.pathsep.join([str(faust_extras()), env.get("PYTHONPATH", "")])
    load0 = c.loadavg()
    proc = subprocess.run(cmd, timeout=a.timeout_s, cwd=c.ROOT, stdout=subprocess.DEVNULL, env=env)
    load1 = c.loadavg()
    text = Path(out).read_text()
    os.unlink(out)
    if proc.returncode != 0 or not text:
        raise RuntimeError(f"{kind} child failed (rc {proc.returncode})")
    result = json.loads(text)
    result["rate"] = result["events"] / result["seconds"]
    result["load"] = (load0, load1)
    c.log(
        f"{kind}: {result['events']:,} events in {result['seconds']:.2f} s = "
        f"{result['rate']:,.0f}/s (load {load0} -> {load1})"
    )
    return result


def faust_extras() -> Path:
    """aiokafka needs ``cramjam`` to read lz4 batches; it is not a streamproc
    dependency, so it goes under ``benchmarks/data/`` for the Faust child only."""
    target = c.DATA / "faust-extras"
    if not (target / "cramjam").exists():
        subprocess.run(
            [c.PYTHON, "-m", "pip", "install", "--quiet", "--target", str(target), "cramjam"],
            check=True,
        )
    return target


def pin_broker() -> str:
    """Move our broker's JVM threads to CPU 0 (the measured processes get CPU 1)."""
    pid = c.BROKER_PID
    if pid is None or (os.cpu_count() or 1) < 2:
        return "not pinned (external broker)"
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(task.name), {0})
    return "pinned to CPU 0"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=2_000_000)
    p.add_argument("--faust-events", type=int, default=300_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--variants", default="raw,rawq,ingest,faust")
    p.add_argument("--profile", action="store_true", help="one extra cProfile'd ingest run")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--timeout-s", type=float, default=1800)
    # child-only
    p.add_argument("--child", choices=["raw", "rawq", "ingest", "ingestq", "faust"])
    p.add_argument("--bootstrap")
    p.add_argument("--topic")
    p.add_argument("--group")
    p.add_argument("--out")
    p.add_argument("--reference")
    p.add_argument("--features")
    a = p.parse_args()
    if a.child:
        a.events = int(a.events)
        child_main(a)
        return
    run_parent(a)


def run_parent(a: argparse.Namespace) -> None:
    from confluent_kafka.admin import AdminClient

    from streamproc.monitor.topics import ensure_topics, owned_topics

    load_start = c.loadavg()
    c.log(f"load average at start: {load_start}")
    factory = c.EventFactory(pool=100_000)
    reference = factory.reference()
    ref_path = Path(tempfile.mkstemp(prefix="bench-ref-", suffix=".bin")[1])
    ref_path.write_bytes(reference.to_bytes())
    variants = a.variants.split(",")
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    profile_text = ""
    with c.kafka() as bootstrap:
        pinned = pin_broker()
        topic = f"bench.ingest.{int(time.time())}"
        c.create_topic(bootstrap, topic, a.partitions)
        ensure_topics(
            AdminClient({"bootstrap.servers": bootstrap}),
            owned_topics(
                profiles=topic + ".profiles",
                state=topic + ".profiles-state",
                alerts=topic + ".alerts",
                deadletter=topic + ".dlq",
            ),
        )
        c.log(f"preloading {a.events:,} events into {topic} ({a.partitions} partitions)")
        producer = c.fast_producer(bootstrap)
        t0 = time.time() - a.events / 20_000  # event times: the last N/20k seconds
        began = time.perf_counter()
        step = 100_000
        total_bytes = 0
        for start in range(0, a.events, step):
            values = factory.batch(start, min(step, a.events - start), t0, 20_000)
            total_bytes += sum(len(v) for v in values)
            c.produce_all(producer, topic, values, a.partitions)
        assert producer.flush(120) == 0
        preload_s = time.perf_counter() - began
        ends = c.end_offsets(bootstrap, topic)
        assert sum(ends.values()) == a.events, ends
        c.log(f"preloaded in {preload_s:.1f} s ({a.events / preload_s:,.0f}/s)")
        faust_n = min(a.faust_events, a.events)
        for r in range(a.repeats):
            c.log(f"run {r + 1}/{a.repeats}")
            for v in variants:
                extra: dict[str, Any] = {"events": a.events}
                if v.startswith("ingest"):
                    extra["reference"] = ref_path
                if v == "faust":
                    extra = {"events": faust_n, "features": ",".join(factory.feature_names)}
                results[v].append(run_child(v, a, bootstrap, topic, **extra))
        if a.profile:
            c.log("profiled ingest run")
            prof = run_child(
                "ingest", a, bootstrap, topic, events=a.events, reference=ref_path, profile=True
            )
            profile_text = prof.get("profile", "")
            print(profile_text)
    ref_path.unlink()
    load_end = c.loadavg()
    c.log(f"load average at end: {load_end}")
    body = report(
        a, results, preload_s, total_bytes, pinned, load_start, load_end, faust_n, profile_text
    )
    c.append_results("Streaming: ingest throughput on one core", body, write=not a.no_write)


def report(
    a: argparse.Namespace,
    results: dict[str, list[dict[str, Any]]],
    preload_s: float,
    total_bytes: int,
    pinned: str,
    load_start: str,
    load_end: str,
    faust_n: int,
    profile_text: str,
) -> str:
    names = {
        "raw": "raw ceiling: `consume(10000)` + `orjson.loads`, client defaults as ingest",
        "rawq": "raw, librdkafka prefetch queue raised (1e6 msgs / 1 GiB)",
        "ingest": "streamproc `IngestLoop` (decode → windows → deltas → txn commit)",
        "ingestq": "`IngestLoop`, prefetch queue raised via the `kafka` pass-through settings",
        "faust": "naive Faust agent (orjson + scalar KLL/HLL/dict per event)",
    }
    lines = [
        f"Machine: {c.machine()}. Commit {c.git_head()}.",
        "",
        f"Data: {a.events:,} prediction-log events (20 numeric + 5 categorical features of "
        f"`gen_data.py` shapes, ~2% nulls, {total_bytes / a.events:.0f} bytes mean) in a "
        f"{a.partitions}-partition topic, preloaded with lz4 + linger in {preload_s:.1f} s "
        f"({a.events / preload_s:,.0f} events/s). Each variant in its own subprocess pinned "
        f"to CPU {MEASURED_CPU}, own consumer group, whole topic (Faust: first {faust_n:,} "
        f"events); broker {pinned}. Median (min–max) of {a.repeats} runs. "
        f"Command: `.venv/bin/python benchmarks/bench_ingest.py --events {a.events}"
        f"{' --repeats ' + str(a.repeats) if a.repeats != 3 else ''}`.",
        f"Load average (1/5/15 min) at start {load_start}, at end {load_end}; "
        "per run: "
        + "; ".join(f"{v} {r['load'][0]} → {r['load'][1]}" for v in results for r in results[v])
        + ".",
        "",
        "| variant | events | events/s | seconds | CPU cores used | max RSS MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    med: dict[str, float] = {}
    for v, runs in results.items():
        if not runs:
            continue
        rates = [r["rate"] for r in runs]
        med[v] = c.stats(rates)[0]
        lines.append(
            f"| {names[v]} | {runs[0]['events']:,} | {c.fmt_stats(rates)} | "
            f"{c.fmt_stats([r['seconds'] for r in runs], '{:.2f}')} | "
            f"{c.stats([r.get('cpu_s', 0.0) / r['seconds'] for r in runs])[0]:.2f} | "
            f"{max(r.get('max_rss_mib', 0) for r in runs):.0f} |"
        )
    lines.append("")
    if "ingest" in med and "raw" in med:
        ok = med["ingest"] / med["raw"] >= 0.5
        lines.append(
            f"ingest / raw = {med['ingest'] / med['raw']:.2f} (target ≥ 0.50: "
            f"{'met' if ok else 'missed'}); ingest {med['ingest']:,.0f} events/s "
            f"(target ≥ 150,000: {'met' if med['ingest'] >= 150_000 else 'missed'})."
        )
    if "ingest" in med and "rawq" in med:
        lines.append(
            f"ingest / raw with the larger prefetch queue = {med['ingest'] / med['rawq']:.2f}."
        )
    if "ingestq" in med and "rawq" in med:
        lines.append(
            f"ingest / raw, both with the larger prefetch queue = "
            f"{med['ingestq'] / med['rawq']:.2f}; ingest with it {med['ingestq']:,.0f} events/s."
        )
    if "ingest" in med and "faust" in med:
        ratio = med["ingest"] / med["faust"]
        lines.append(
            f"ingest / naive Faust = {ratio:.1f}× (target ≥ 10×: "
            f"{'met' if ratio >= 10 else 'missed'})."
        )
    if results.get("ingest"):
        r = results["ingest"][0]
        lines.append(
            f"Ingest run 1 detail: {r.get('flushes') or 0:.0f} transactions, "
            f"{r.get('deltas') or 0:.0f} deltas, flush (sketch + publish + commit) "
            f"{r.get('flush_s_sum') or 0:.2f} s, decode + buffer {r.get('batch_s_sum') or 0:.2f} s "
            f"of {r['seconds']:.2f} s; consumer group join not counted "
            f"({r['with_join_s']:.2f} s with it)."
        )
    if profile_text:
        lines += [
            "",
            "cProfile of one ingest run (top entries):",
            "",
            "```",
            _trim(profile_text),
            "```",
        ]
    return "\n".join(lines)


def _trim(text: str, limit: int = 60) -> str:
    out = [line.rstrip() for line in text.splitlines() if line.strip()]
    return "\n".join(out[:limit])


if __name__ == "__main__":
    main()
