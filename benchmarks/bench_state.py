"""State and memory: one 200-feature model, 5-minute windows, 24 h retention, replayed.

One command::

    .venv/bin/python benchmarks/bench_state.py                   # 36 h replayed, 1,000/window
    .venv/bin/python benchmarks/bench_state.py --hours 4 --per-window 200 --no-write

It preloads ``--hours`` of historical prediction logs (event times ending ``--hours`` +
1 h ago, ``--per-window`` events per 5-minute window, 200 features: the 25 of
``gen_data.py`` × 8, ~5 KB a record) into a 4-partition topic at full speed, then runs a
streamproc worker subprocess over it (replay is detected from the event times) and
samples its VmRSS from ``/proc/<pid>/status`` every second (psutil is not installed),
with the events and windows it has processed (scraped from its ``/metrics``). Replaying
more than the 24 h retention shows whether memory stays flat once windows expire.

Then it reads the compacted state topic (latest record per key) for the serialized bytes
per window and per feature-window (the values are ``WindowState.to_bytes()``), and
measures recovery: the worker is stopped (SIGTERM), a new worker process is started, and
the time to ``worker.aggregate.ready`` (set after the state is restored) is taken; the
restore alone (``AggregateLoop.restore`` of all partitions) is timed in this process too.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

WINDOW_MS = 300_000
RETENTION_H = 24


def child_worker(config_path: str, reference_path: str, ready_path: str) -> None:
    began = time.time()
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
        if worker.aggregate.ready.wait(600):
            ready = time.time()
            Path(ready_path).write_text(json.dumps({"started": began, "ready": ready}))

    threading.Thread(target=announce, daemon=True).start()
    worker.run(stop)


def scrape(port: int) -> dict[str, float]:
    """Sum of each unlabeled/labeled sample of the worker's /metrics, by metric name."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        try:
            out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
        except ValueError:
            continue
    return out


def start_worker(tmp: Path, ready: Path) -> subprocess.Popen[bytes]:
    ready.unlink(missing_ok=True)
    return subprocess.Popen(
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


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def read_state(bootstrap: str, topic: str) -> dict[bytes, bytes]:
    """Latest non-tombstone value per key of the compacted state topic."""
    from confluent_kafka import Consumer, TopicPartition

    cons = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}.bench.{time.monotonic_ns()}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "max.partition.fetch.bytes": 32 * 1024 * 1024,
        }
    )
    latest: dict[bytes, bytes | None] = {}
    try:
        ends = {}
        for p in range(4):
            lo, hi = cons.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if hi > lo:
                ends[p] = hi
        cons.assign([TopicPartition(topic, p, 0) for p in ends])
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            for msg in cons.consume(1000, timeout=0.5):
                if msg.error() is None:
                    latest[msg.key() or b""] = msg.value()
            pos = cons.position([TopicPartition(topic, p) for p in ends])
            if all(tp.offset >= ends[tp.partition] for tp in pos):
                break
    finally:
        cons.close()
    return {k: v for k, v in latest.items() if v is not None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hours", type=float, default=36)
    p.add_argument("--per-window", type=int, default=1_000)
    p.add_argument("--copies", type=int, default=8, help="× 25 features (8 → 200)")
    p.add_argument("--restarts", type=int, default=3)
    p.add_argument("--full-window-events", type=int, default=1_000_000)
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--child-worker", nargs=3)
    a = p.parse_args()
    if a.child_worker:
        child_worker(*a.child_worker)
        return
    run(a)


def run(a: argparse.Namespace) -> None:
    from streamproc.broker.local import free_port

    load_start = c.loadavg()
    c.log(f"load average at start: {load_start}")
    factory = c.EventFactory(pool=20_000, copies=a.copies)
    n_features = len(factory.feature_names)
    tmp = Path(tempfile.mkdtemp(prefix="bench-state-"))
    (tmp / "ref.bin").write_bytes(factory.reference(50_000).to_bytes())
    windows = int(a.hours * 3_600_000 / WINDOW_MS)
    n_events = windows * a.per_window
    rate = a.per_window / (WINDOW_MS / 1000)  # events per event-time second
    t0 = (time.time() - (a.hours + 1) * 3600) // 300 * 300
    # (t s, RSS KiB, events ingested, deltas merged, deltas published)
    samples: list[tuple[float, int, float, float, float]] = []
    with c.kafka() as bootstrap:
        prefix = f"bench.state.{int(time.time())}"
        port = free_port()
        mapping = {
            "kafka": {"bootstrap_servers": bootstrap, "group_id": f"{prefix}.g"},
            "topics": {
                "predictions": f"{prefix}.predictions",
                "alerts": f"{prefix}.alerts",
                "deadletter": f"{prefix}.dlq",
                "profiles": f"{prefix}.profiles",
            },
            "windows": {"size": "5m", "retention": f"{RETENTION_H}h"},
            "metrics": {"port": port, "host": "127.0.0.1"},
        }
        (tmp / "config.json").write_text(json.dumps(mapping))
        topic = mapping["topics"]["predictions"]
        state_topic = f"{prefix}.profiles-state"
        c.create_topic(bootstrap, topic, 4)
        c.log(
            f"preloading {n_events:,} events ({a.hours:g} h, {windows} windows × "
            f"{a.per_window:,}, {n_features} features)"
        )
        producer = c.fast_producer(bootstrap)
        began = time.perf_counter()
        step = 50_000
        for start in range(0, n_events, step):
            c.produce_all(
                producer, topic, factory.batch(start, min(step, n_events - start), t0, rate), 4
            )
        assert producer.flush(300) == 0
        preload_s = time.perf_counter() - began
        c.log(f"preloaded in {preload_s:.1f} s")

        ready = tmp / "ready"
        proc = start_worker(tmp, ready)
        began = time.perf_counter()
        done_at = None
        metrics: dict[str, float] = {}
        while proc.poll() is None:
            now = time.perf_counter() - began
            metrics = scrape(port) or metrics
            ev = metrics.get("streamproc_events_total", 0.0)
            wins = metrics.get("streamproc_deltas_applied_total", 0.0)
            published = metrics.get("streamproc_deltas_published_total", 0.0)
            samples.append((now, c.rss_kib(proc.pid), ev, wins, published))
            if ev >= n_events and published and wins >= published:
                done_at = now
                break
            if len(samples) % 30 == 0:
                c.log(
                    f"{now:.0f} s: {ev:,.0f} events ingested, {wins:,.0f}/{published:,.0f} "
                    f"deltas merged, RSS {samples[-1][1] / 1024:.0f} MiB"
                )
            if now > 3600:
                break
            time.sleep(1.0)
        time.sleep(6)  # one more checkpoint interval
        replay_rss = [s[1] for s in samples]
        c.DATA.mkdir(exist_ok=True)
        (c.DATA / "bench_state_samples.json").write_text(json.dumps(samples))
        stop_worker(proc)
        c.log(f"replay done in {done_at} s; reading the state topic")
        state = read_state(bootstrap, state_topic)
        from streamproc.monitor.state import WindowState

        win_sizes = []
        feature_sizes: list[int] = []
        for key, value in state.items():
            if json.loads(key)[0] == "w":
                win_sizes.append(len(value))
                if len(feature_sizes) < 20 * n_features:
                    ws = WindowState.from_bytes(value)
                    feature_sizes += [len(f.to_bytes()) for f in ws.profile.features.values()]
        alert_records = sum(1 for k in state if json.loads(k)[0] == "a")

        restarts: list[float] = []
        to_ready: list[float] = []
        for r in range(a.restarts):
            t_start = time.time()
            proc = start_worker(tmp, ready)
            while not ready.exists() and proc.poll() is None:
                time.sleep(0.02)
            info = json.loads(ready.read_text())
            restarts.append(info["ready"] - t_start)
            to_ready.append(info["ready"] - info["started"])
            c.log(f"restart {r + 1}: aggregate ready {restarts[-1]:.2f} s after process start")
            stop_worker(proc)
        restore_only = time_restore(bootstrap, mapping, tmp, a.restarts)
    full_window = full_window_sizes(a.full_window_events)
    load_end = c.loadavg()
    c.log(f"load average at end: {load_end}")
    body = report(
        a,
        n_features=n_features,
        windows=windows,
        n_events=n_events,
        preload_s=preload_s,
        done_at=done_at,
        samples=samples,
        replay_rss=replay_rss,
        win_sizes=win_sizes,
        feature_sizes=feature_sizes,
        alert_records=alert_records,
        restarts=restarts,
        to_ready=to_ready,
        restore_only=restore_only,
        full_window=full_window,
        load=(load_start, load_end),
    )
    c.append_results("Streaming: state and memory", body, write=not a.no_write)


def full_window_sizes(n: int) -> dict[str, int]:
    """Serialized bytes per feature of one window profile (window sketch sizes) filled with
    ``n`` rows of the 25 benchmark features: the replay's windows hold few events, a
    busy production window holds millions, and sketch sizes grow with n up to their caps."""
    from gen_data import generate_frame

    from streamproc.core.model_profile import ModelProfile
    from streamproc.monitor.window_buffer import WINDOW_K

    table = generate_frame(n, seed=3)
    columns = {name: table.column(name) for name in table.column_names}
    prof = ModelProfile.build_reference(c.MODEL, c.VERSION, columns, k=WINDOW_K)
    return {name: len(f.to_bytes()) for name, f in prof.features.items()}


def time_restore(
    bootstrap: str, mapping: dict[str, Any], tmp: Path, repeats: int
) -> list[tuple[float, int]]:
    """``AggregateLoop.restore`` of all four partitions, in this process."""
    from streamproc.config import config_from_mapping
    from streamproc.core.model_profile import ModelProfile
    from streamproc.monitor.references import ReferenceSet
    from streamproc.monitor.worker import Worker

    config = config_from_mapping(mapping)
    refs = ReferenceSet.of([ModelProfile.from_bytes((tmp / "ref.bin").read_bytes())])
    out = []
    for _ in range(repeats):
        worker = Worker(config, refs, serve_metrics=False)
        began = time.perf_counter()
        n = worker.aggregate.restore([0, 1, 2, 3])
        out.append((time.perf_counter() - began, n))
    return out


def report(a: argparse.Namespace, **r: Any) -> str:
    samples = r["samples"]
    rss_mib = [s[1] / 1024 for s in samples if s[1]]
    n_ev = r["n_events"]
    lines = [
        f"Machine: {c.machine()}. Commit {c.git_head()}.",
        "",
        f"One model, {r['n_features']} features (the 25 of `gen_data.py` × {a.copies}, ~5 KB "
        f"records), 5-minute windows, {RETENTION_H} h retention. Replay: {a.hours:g} h of "
        f"historical event time = {r['windows']} windows × {a.per_window:,} events = "
        f"{n_ev:,} events (scaled so the replay takes minutes), preloaded at full speed in "
        f"{r['preload_s']:.0f} s, then one worker subprocess (default settings) replayed it "
        f"in {r['done_at'] or float('nan'):.0f} s "
        f"({n_ev / (r['done_at'] or float('inf')):,.0f} events/s). "
        f"Command: `.venv/bin/python benchmarks/bench_state.py --hours {a.hours:g} "
        f"--per-window {a.per_window}`.",
        f"Load average (1/5/15 min) at start {r['load'][0]}, at end {r['load'][1]}.",
        "",
        "Worker RSS during the replay (VmRSS, sampled every second):",
        "",
        "| s | events ingested | deltas merged by the aggregate | ≈ event time merged | RSS MiB |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    total = samples[-1][4] if samples else 0.0

    def merged_h(sample: tuple[float, ...]) -> float:
        return sample[3] / total * a.hours if total else 0.0

    step = max(1, len(samples) // 12)
    for s in [*samples[::step], samples[-1]] if samples else []:
        lines.append(
            f"| {s[0]:.0f} | {s[2]:,.0f} | {s[3]:,.0f} | {merged_h(s):.1f} h | {s[1] / 1024:.0f} |"
        )
    if rss_mib:
        half = [s[1] / 1024 for s in samples if merged_h(s) >= RETENTION_H]
        lines += [
            "",
            f"RSS peak {max(rss_mib):.0f} MiB; once the aggregate had merged {RETENTION_H} h of "
            "event time (retention full, windows expiring): "
            f"min {min(half or [0]):.0f}, max {max(half or [0]):.0f} MiB.",
        ]
    ws = r["win_sizes"]
    fs = r["feature_sizes"]
    if ws:
        per_fw = [w / r["n_features"] for w in ws]
        lines += [
            "",
            f"State topic (compacted view, latest record per key): {len(ws)} windows live "
            f"(retention allows {RETENTION_H * 12} + the open one), {r['alert_records']} alert "
            f"states; {sum(ws) / 1e6:.1f} MB of window records, "
            f"{statistics.mean(ws) / 1024:,.0f} KiB per window (max {max(ws) / 1024:,.0f} KiB) "
            "= aggregate table size per window.",
            f"Serialized bytes per feature-window: mean {statistics.mean(per_fw) / 1024:.1f} KiB "
            f"(window record / {r['n_features']}); by feature profile (`FeatureProfile.to_bytes`, "
            f"{len(fs):,} sampled) median {statistics.median(fs) / 1024:.1f} KiB, "
            f"max {max(fs) / 1024:.1f} KiB; target ≤ 64 KB: "
            f"{'met' if max(fs) <= 64 * 1024 else 'missed'}.",
        ]
    imports = statistics.median(x - y for x, y in zip(r["restarts"], r["to_ready"], strict=True))
    fw = r["full_window"]
    if fw:
        big = max(fw, key=lambda k: fw[k])
        fw_median = statistics.median(fw.values()) / 1024
        lines.append(
            f"A busy window for comparison ({a.full_window_events:,} events of the 25 features "
            f"sketched at window size, not from Kafka): median {fw_median:.1f} "
            f"KiB per feature, max {fw[big] / 1024:.1f} KiB ({big}); target ≤ 64 KB: "
            f"{'met' if fw[big] <= 64 * 1024 else 'missed'}."
        )
    lines += [
        "",
        f"Recovery ({len(r['restarts'])} restarts after a clean stop): new worker process → "
        f"`aggregate.ready` (state restored) {c.fmt_stats(r['restarts'], '{:.2f}')} s, of "
        f"which interpreter start and module imports ≈ "
        f"{imports:.2f} s; "
        "`AggregateLoop.restore` of all partitions alone "
        f"{c.fmt_stats([t for t, _n in r['restore_only']], '{:.2f}')} s "
        f"({r['restore_only'][0][1]:,} state records).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
