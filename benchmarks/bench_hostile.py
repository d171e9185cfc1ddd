"""Memory under hostile input: `streamproc worker` RSS, hostile mix vs the same count clean.

One command::

    .venv/bin/python benchmarks/bench_hostile.py                  # 100,000 + 16,000, 3 runs
    .venv/bin/python benchmarks/bench_hostile.py --valid 20000 --hostile 4000 --runs 1 --no-write

Per run and mode it starts the process users start, ``streamproc worker`` (default
settings; flags only for the broker, a fresh group id, fresh topics and a free metrics
port), on a fresh 4-partition predictions topic, and produces one stream to it:

- ``clean``: ``--valid`` + ``--hostile`` records of ``tests.integration.monitor_harness``
  (the ceiling: the same worker fed the same number of records, all valid);
- ``hostile``: ``--valid`` of those records with ``--hostile`` records of
  ``tests.support.hostile.hostile_mix`` interleaved (random bytes, truncated JSON, bad and
  future timestamps, 40 records with a 900 KB category value, 100 with 5,000 features,
  tombstones, deep nesting, huge numbers, ...).

Event times are live: the stream spans ``--span`` seconds ending a minute ago, so no
record is late. The benchmark waits until the worker's ``/metrics``
(``streamproc_events_total`` + ``streamproc_deadletter_total`` over all reasons) accounts
for every produced record, or ``--timeout`` (a failure, reported), samples the worker's
VmRSS from ``/proc/<pid>/status`` every 0.2 s (peak; VmHWM at the end), and stops it with
SIGTERM. Reported per mode: peak RSS, seconds to drain (first record produced → all
accounted), counted + dead-lettered vs produced; and hostile / clean peak RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

MODES = ("clean", "hostile")
STREAMPROC = Path(c.PYTHON).parent / "streamproc"


# ----------------------------------------------------------------------------- data


def stream(mode: str, n_valid: int, n_hostile: int, span_s: float, seed: int) -> list[Any]:
    """``(key, value)`` pairs to produce, live event times ending a minute ago."""
    from tests.integration.monitor_harness import records
    from tests.support.hostile import hostile_mix

    now = time.time()
    start = now - 60 - span_s
    if mode == "clean":
        n = n_valid + n_hostile
        return records(n, start_s=start, rate=n / span_s, seed=seed)
    valid = records(n_valid, start_s=start, rate=n_valid / span_s, seed=seed)
    return hostile_mix(valid, n_hostile, seed=seed, now_s=now)


def expected(mode: str, items: Sequence[Any]) -> tuple[int, int]:
    """(records that must be counted, records that may be counted or dead-lettered)."""
    if mode == "clean":
        return len(items), 0
    from tests.support.hostile import COUNT

    must = sum(1 for s in items if s.expect == COUNT)
    either = sum(1 for s in items if not isinstance(s.expect, str) and COUNT in s.expect)
    return must, either


def produce(bootstrap: str, topic: str, items: Sequence[Any]) -> float:
    """Produce keyed records (tombstones as null values); seconds until all acknowledged."""
    producer = c.fast_producer(bootstrap)
    failed: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    began = time.perf_counter()
    for i, item in enumerate(items):
        key, value = (item.key, item.value) if hasattr(item, "expect") else item
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.01)
        if i % 10_000 == 0:
            producer.poll(0)
    left = producer.flush(300)
    if left or failed:
        raise RuntimeError(f"produce: {left} undelivered, {len(failed)} failed: {failed[:3]}")
    return time.perf_counter() - began


# ----------------------------------------------------------------------------- worker


def code_id() -> str:
    """The commit, plus a hash of uncommitted changes to ``streamproc/`` (the worker's
    code) when there are any: a tree edited between runs shows up in the per-run rows."""
    head = c.git_head()
    with contextlib.suppress(Exception):
        diff = subprocess.run(
            ["git", "-C", str(c.ROOT), "diff", "HEAD", "--", "streamproc"],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
        if diff:
            return f"{head}+{hashlib.sha1(diff).hexdigest()[:7]}"
    return head


def scrape(port: int) -> dict[str, dict[str, float]]:
    """``/metrics`` samples by metric name, then by label set (``""`` when unlabeled)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        head, _, value = line.rpartition(" ")
        name, _, labels = head.partition("{")
        with contextlib.suppress(ValueError):
            out.setdefault(name, {})[labels.rstrip("}")] = float(value)
    return out


def total(metrics: dict[str, dict[str, float]], name: str) -> float:
    return sum(metrics.get(name, {}).values())


def proc_status(pid: int) -> dict[str, int]:
    """The ``Vm*``/``Rss*`` lines of ``/proc/<pid>/status`` in KiB (empty once it exited)."""
    out = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        if line.startswith(("Vm", "Rss")) and line.endswith("kB"):
            key, value = line.split(":", 1)
            out[key] = int(value.split()[0])
    return out


class RssSampler(threading.Thread):
    """VmRSS (and RssAnon) of ``pid`` every ``every`` s until :meth:`stop`."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, int, int]] = []  # (s, VmRSS KiB, RssAnon KiB)
        self._halt = threading.Event()
        self.began = time.perf_counter()

    def run(self) -> None:
        while not self._halt.is_set():
            st = proc_status(self.pid)
            if st:
                t = time.perf_counter() - self.began
                self.samples.append((t, st.get("VmRSS", 0), st.get("RssAnon", 0)))
            self._halt.wait(self.every)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def peak(self) -> tuple[int, int]:
        return (
            max((s[1] for s in self.samples), default=0),
            max((s[2] for s in self.samples), default=0),
        )

    def at(self, t: float) -> int:
        """VmRSS of the last sample at or before ``t``."""
        return next((s[1] for s in reversed(self.samples) if s[0] <= t), 0)


@contextlib.contextmanager
def worker(
    bootstrap: str, prefix: str, ref: Path, tmp: Path, port: int
) -> Iterator[subprocess.Popen[bytes]]:
    """``streamproc worker`` with default settings on ``prefix``'s topics; SIGTERM after."""
    config = tmp / f"{prefix}.toml"
    config.write_text(f'[topics]\ndeadletter = "{prefix}.dlq"\nprofiles = "{prefix}.profiles"\n')
    log = (tmp / f"{prefix}.log").open("wb")
    proc = subprocess.Popen(
        [
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
            f"{prefix}.predictions",
            "--alerts-topic",
            f"{prefix}.alerts",
            "--reference",
            str(ref),
        ],
        cwd=c.ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("STREAMPROC_")},
    )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def last_error(path: Path) -> str:
    lines = path.read_text(errors="replace").splitlines()
    errors = [x for x in lines if "Error" in x or "Exception" in x or "CRITICAL" in x]
    return (errors or lines or ["no output"])[-1][:300]


def one_run(bootstrap: str, mode: str, a: argparse.Namespace, r: int, tmp: Path) -> dict[str, Any]:
    from streamproc.broker.local import free_port

    items = stream(mode, a.valid, a.hostile, a.span, seed=100 + r)
    must, either = expected(mode, items)
    produced = len(items)
    payload = sum(len(x.value or b"") if hasattr(x, "expect") else len(x[1]) for x in items)
    prefix = f"bench.hostile.{int(time.time())}.{r}.{mode}"
    c.create_topic(bootstrap, f"{prefix}.predictions", 4)
    port = free_port()
    load0 = c.loadavg()
    out: dict[str, Any] = {"mode": mode, "run": r, "produced": produced, "bytes": payload}
    out["code"] = code_id()
    with worker(bootstrap, prefix, tmp / "ref.bin", tmp, port) as proc:
        sampler = RssSampler(proc.pid)
        sampler.start()
        deadline = time.monotonic() + 120
        while not scrape(port) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        started = time.perf_counter() - sampler.began
        out["idle_rss"] = sampler.at(started)
        began = time.perf_counter()
        out["produce_s"] = produce(bootstrap, f"{prefix}.predictions", items)
        del items
        deadline = time.monotonic() + a.timeout
        metrics: dict[str, dict[str, float]] = {}
        done = None
        exited = None
        while time.monotonic() < deadline and (exited := proc.poll()) is None:
            metrics = scrape(port) or metrics
            seen = total(metrics, "streamproc_events_total") + total(
                metrics, "streamproc_deadletter_total"
            )
            if seen >= produced:
                done = time.perf_counter() - began
                break
            time.sleep(0.25)
        time.sleep(3)  # anything counted twice shows up; memory settles
        metrics = scrape(port) or metrics
        settled = proc_status(proc.pid)
        sampler.stop()
    peak, peak_anon = sampler.peak()
    counted = total(metrics, "streamproc_events_total")
    dead = total(metrics, "streamproc_deadletter_total")
    reasons = {
        k.split('"')[1]: v for k, v in metrics.get("streamproc_deadletter_total", {}).items() if v
    }
    out.update(
        drain_s=done,
        peak_rss=peak,
        peak_anon=peak_anon,
        hwm=settled.get("VmHWM", 0),
        settled_rss=settled.get("VmRSS", 0),
        counted=counted,
        dead=dead,
        must=must,
        either=either,
        reasons=reasons,
        truncated=total(metrics, "streamproc_truncated_values_total"),
        declined=total(metrics, "streamproc_fast_path_declined_total"),
        samples=sampler.samples,
        load=(load0, c.loadavg()),
        balanced=counted + dead == produced and must <= counted <= must + either,
        error=None,
    )
    if done is None:
        why = f"worker exited ({exited})" if exited is not None else "timeout"
        out["error"] = (
            f"{mode} run {r + 1}: {why} after {counted + dead:,.0f} of {produced:,} records "
            f"accounted ({last_error(tmp / f'{prefix}.log')})"
        )
    c.log(
        f"{mode} run {r + 1}: peak RSS {peak / 1024:.0f} MiB (VmHWM {out['hwm'] / 1024:.0f}), "
        f"drain {done if done is None else round(done, 1)} s, counted {counted:,.0f} + "
        f"dead-lettered {dead:,.0f} = {counted + dead:,.0f} of {produced:,} produced"
        + (f"; {out['error']}" if out["error"] else "")
    )
    return out


# ----------------------------------------------------------------------------- report


def common_cases() -> int:
    from tests.support.hostile import RARE, case_builders

    return len(case_builders(0.0)) - len(RARE)


def med(xs: Sequence[dict[str, Any]], key: str, scale: float = 1.0) -> float | None:
    vals = [x[key] / scale for x in xs if x[key] is not None]
    return statistics.median(vals) if vals else None


def cell(xs: Sequence[dict[str, Any]], key: str, fmt: str, scale: float = 1.0) -> str:
    vals = [x[key] / scale for x in xs if x[key] is not None]
    return c.fmt_stats(vals, fmt) if vals else "–"


def report(a: argparse.Namespace, results: dict[str, list[dict[str, Any]]], load: Any) -> str:
    mib = 1024.0
    n = a.valid + a.hostile
    cmd = (
        f".venv/bin/python benchmarks/bench_hostile.py --valid {a.valid} --hostile {a.hostile} "
        f"--runs {a.runs}"
    )
    hostile = results["hostile"]
    reasons: dict[str, float] = {}
    for x in hostile:
        for k, v in x["reasons"].items():
            reasons[k] = reasons.get(k, 0.0) + v / len(hostile)
    lines = [
        f"Machine: {c.machine()}. Commit {c.git_head()}.",
        "",
        f"The process users start, `streamproc worker` (default settings; flags for the "
        "broker, a fresh group id and topics, a free metrics port), one fresh process and "
        f"4-partition topic per run and mode, fed {n:,} records produced while it runs: "
        f"clean = {n:,} valid records of `tests.integration.monitor_harness.records` (the "
        f"ceiling); hostile = {a.valid:,} of them with {a.hostile:,} records of "
        "`tests.support.hostile.hostile_mix` interleaved (40 with a 900 KB category value, "
        f"100 with 5,000 features, the rest drawn from its {common_cases()} other cases). Live "
        f"event times "
        f"({a.span:g} s of event time ending a minute before the run; none late). Peak RSS: "
        "VmRSS of the worker every 0.2 s from process start to 3 s after the last record was "
        "accounted; drain: first record produced → `streamproc_events_total` + "
        "`streamproc_deadletter_total` = produced. Median (min–max) of "
        f"{a.runs} runs. Command: `{cmd}`.",
        f"Load average (1/5/15 min) at start {load[0]}, at end {load[1]}; per run: "
        + "; ".join(
            f"{x['mode']} {x['run'] + 1} {x['load'][0]} → {x['load'][1]}"
            for m in MODES
            for x in results[m]
        )
        + ".",
        "",
        "| mode | records | MB produced | RSS idle MiB | peak RSS MiB | VmHWM MiB | peak RssAnon "
        "MiB | RSS 3 s after MiB | s to produce | s to drain | counted + dead-lettered "
        "= produced |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for m in MODES:
        xs = results[m]
        ok = sum(1 for x in xs if x["balanced"])
        counted = statistics.median(x["counted"] for x in xs)
        dead = statistics.median(x["dead"] for x in xs)
        lines.append(
            f"| {m} | {n:,} | {statistics.median(x['bytes'] for x in xs) / 1e6:.1f} "
            f"| {cell(xs, 'idle_rss', '{:.0f}', mib)} | {cell(xs, 'peak_rss', '{:.0f}', mib)} "
            f"| {cell(xs, 'hwm', '{:.0f}', mib)} | {cell(xs, 'peak_anon', '{:.0f}', mib)} "
            f"| {cell(xs, 'settled_rss', '{:.0f}', mib)} | {cell(xs, 'produce_s', '{:.1f}')} "
            f"| {cell(xs, 'drain_s', '{:.1f}')} "
            f"| {counted:,.0f} + {dead:,.0f} = {counted + dead:,.0f} of {n:,}: "
            f"{ok} of {len(xs)} runs balanced |"
        )
    codes = sorted({x["code"] for m in MODES for x in results[m]})
    lines += [
        "",
        "Per run (code: the commit, `+hash` when `streamproc/` had uncommitted changes at the "
        "worker's start):",
        "",
        "| run | mode | code | peak RSS MiB | VmHWM MiB | s to drain | counted + dead-lettered |",
        "| ---: | --- | --- | ---: | ---: | ---: | --- |",
    ]
    for r in range(a.runs):
        for m in MODES:
            x = results[m][r]
            drain = "–" if x["drain_s"] is None else f"{x['drain_s']:.1f}"
            lines.append(
                f"| {r + 1} | {m} | {x['code']} | {x['peak_rss'] / mib:.0f} "
                f"| {x['hwm'] / mib:.0f} | {drain} "
                f"| {x['counted']:,.0f} + {x['dead']:,.0f} = {x['counted'] + x['dead']:,.0f} |"
            )
    if len(codes) > 1:
        lines += ["", f"Warning: the worker's code changed between runs ({', '.join(codes)})."]
    clean_peak, hostile_peak = med(results["clean"], "peak_rss"), med(hostile, "peak_rss")
    ratio = hostile_peak / clean_peak if clean_peak and hostile_peak else None
    per_run = [
        h["peak_rss"] / cl["peak_rss"]
        for h, cl in zip(hostile, results["clean"], strict=True)
        if cl["peak_rss"]
    ]
    lines += [
        "",
        (
            f"Hostile / clean peak RSS: {ratio:.2f}× (medians; per run "
            + ", ".join(f"{x:.2f}" for x in per_run)
            + ")."
            if ratio
            else "Hostile / clean peak RSS: – (runs failed)."
        ),
        "Hostile runs, dead-letter reasons (mean per run): "
        + ", ".join(f"{k} {v:,.0f}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]))
        + f"; values truncated (`streamproc_truncated_values_total`) "
        f"{statistics.mean(x['truncated'] for x in hostile):,.0f}; fast-path batches declined "
        f"{statistics.mean(x['declined'] for x in hostile):,.0f} (clean "
        f"{statistics.mean(x['declined'] for x in results['clean']):,.0f}). Records that must "
        f"be counted {hostile[0]['must']:,}, may be either {hostile[0]['either']:,}.",
    ]
    for m in MODES:
        xs = results[m][0]["samples"]
        if xs:
            end = xs[-1][0]
            tenths = [max((s[1] for s in xs if s[0] <= end * k / 10), default=0) for k in (1, 4, 7)]
            lines.append(
                f"{m} run 1, peak VmRSS so far at 10% / 40% / 70% / 100% of its "
                f"{end:.0f} s (process start → stop): "
                + " / ".join(f"{v / mib:.0f}" for v in [*tenths, max(s[1] for s in xs)])
                + " MiB."
            )
    for x in [x for m in MODES for x in results[m] if not x["balanced"] or x["error"]]:
        lines.append(
            f"Failure: {x['error'] or ''} {x['mode']} run {x['run'] + 1}: counted "
            f"{x['counted']:,.0f} + dead-lettered {x['dead']:,.0f} vs produced "
            f"{x['produced']:,} (must count {x['must']:,}, either {x['either']:,})."
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--valid", type=int, default=100_000)
    p.add_argument("--hostile", type=int, default=16_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--span", type=float, default=180.0, help="event-time seconds of a stream")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to drain, per run")
    p.add_argument("--bootstrap-servers", help="an existing broker (else a local one)")
    p.add_argument("--no-write", action="store_true")
    a = p.parse_args()
    if a.hostile < 140:
        p.error("--hostile must be at least 140 (the 40 + 100 large records of the mix)")
    load_start = c.loadavg()
    c.log(f"load average at start: {load_start}")
    from tests.integration.monitor_harness import reference_profile

    tmp = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    (tmp / "ref.bin").write_bytes(reference_profile().to_bytes())
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    if a.bootstrap_servers:
        broker: Any = contextlib.nullcontext(a.bootstrap_servers)
    else:
        broker = c.kafka()
    with broker as bootstrap:
        for r in range(a.runs):
            for m in MODES:
                results[m].append(one_run(bootstrap, m, a, r, tmp))
    load_end = c.loadavg()
    c.log(f"load average at end: {load_end}; worker logs in {tmp}")
    body = report(a, results, (load_start, load_end))
    c.append_results("Memory: worker RSS under hostile input", body, write=not a.no_write)
    if any(x["error"] or not x["balanced"] for xs in results.values() for x in xs):
        sys.exit(1)


if __name__ == "__main__":
    main()
