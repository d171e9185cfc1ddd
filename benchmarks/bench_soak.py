"""Soak: `streamproc worker` for 30 minutes at a steady rate, with a fault every 5 minutes.

One command::

    .venv/bin/python benchmarks/bench_soak.py                       # 30 min, 1,000 events/s
    .venv/bin/python benchmarks/bench_soak.py --minutes 6 --fault-every 90 --no-write

It starts a broker of its own (official jars, so it can restart and kill it), a
4-partition predictions topic, and the process users start, ``streamproc worker``
(default settings; flags only for the broker, topics, metrics port and
``--instance-id``), and feeds it live prediction-log records at ``--rate`` per second
through an idempotent producer that buffers through outages. Every ``--fault-every``
seconds one fault, in turn:

- ``kill -9`` of the worker, restarted at once;
- a broker restart (clean stop, start);
- a broker outage: the broker killed, back after ``--outage`` seconds;
- SIGTERM of the worker (timed: how long it takes to exit), restarted at once.

Every 5 s it samples the worker's VmRSS (``/proc/<pid>/status``) and its ingest consumer
lag (``streamproc_consumer_lag_messages{stage="ingest"}`` on ``/metrics``); after each
fault, the seconds until the worker merges a delta again (recovery). At the end it waits
for the state topic's per-window counts to equal the produced ones (exactly once through
every fault). Reported: RSS and lag per minute (the curves), RSS growth over the last
two thirds (MiB/hour, a least-squares slope), each fault's recovery, and the final count.
"""

from __future__ import annotations

import argparse
import itertools
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

from streamproc.broker.local import free_port
from tests.integration.monitor_harness import (
    expected_counts,
    records,
    reference_profile,
    save,
    scrape,
    window_counts,
    worker_command,
    worker_config,
)
from tests.support.faults import FaultyBroker, PatientFeed

FAULTS = ("kill -9 worker", "broker restart", "broker outage", "SIGTERM worker")
SAMPLE_S = 5.0
CHUNK_S = 10


def chunks(
    seconds: float, rate: float, start_s: float, counts: dict[int, int]
) -> Iterator[list[tuple[bytes, bytes]]]:
    """Live records in 10-s chunks (made as they are sent: 30 minutes would not fit in
    memory at once); each chunk's per-window counts are added to ``counts``."""
    for k in range(int(seconds // CHUNK_S)):
        recs = records(int(rate * CHUNK_S), start_s=start_s + k * CHUNK_S, rate=rate, seed=1000 + k)
        for window, n in expected_counts(recs, 10_000).items():
            counts[window] = counts.get(window, 0) + n
        yield recs


def vm_rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Soak:
    def __init__(self, a: argparse.Namespace, tmp: Path) -> None:
        self.a = a
        self.broker = FaultyBroker()
        self.prefix = f"soak-{time.time_ns()}"
        c.create_topic(self.broker.bootstrap, f"{self.prefix}.predictions", 4)
        reference = save(reference_profile(), tmp / "credit.profile")
        config = worker_config(tmp / "monitor.toml", self.prefix)
        self.port = free_port()
        self.command = worker_command(
            self.broker.bootstrap,
            self.prefix,
            config=config,
            reference=reference,
            metrics_port=self.port,
        )
        self.log = (tmp / "worker.log").open("ab")
        self.proc = self.start_worker()
        self.samples: list[tuple[float, float | None, float | None]] = []
        self.faults: list[dict[str, Any]] = []
        self.expected: dict[int, int] = {}
        self.began = time.monotonic()

    def start_worker(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.command, stdout=self.log, stderr=subprocess.STDOUT)

    def applied(self) -> float:
        return scrape(self.port, "streamproc_deltas_applied_total") or 0.0

    def lag(self) -> float | None:
        return scrape(self.port, "streamproc_consumer_lag_messages")

    def sample(self) -> None:
        self.samples.append((time.monotonic() - self.began, vm_rss_mib(self.proc.pid), self.lag()))

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds``, sampling every SAMPLE_S."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(SAMPLE_S, left))
            self.sample()

    def recovery(self, timeout_s: float = 300) -> float | None:
        """Seconds until the (possibly new) worker merges a delta."""
        began, before = time.monotonic(), self.applied()
        while time.monotonic() - began < timeout_s:
            if self.applied() > before:
                return time.monotonic() - began
            time.sleep(0.2)
            if int(time.monotonic() - began) % 5 == 0:
                self.sample()
        return None

    def fault(self, kind: str) -> None:
        at = time.monotonic() - self.began
        extra: dict[str, Any] = {}
        if kind == "kill -9 worker":
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
            self.proc = self.start_worker()
        elif kind == "broker restart":
            self.broker.stop()
            self.broker.start()
        elif kind == "broker outage":
            self.broker.kill()
            self.wait(self.a.outage)
            self.broker.start()
        elif kind == "SIGTERM worker":
            asked = time.monotonic()
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)
            extra["exit_s"] = round(time.monotonic() - asked, 1)
            self.proc = self.start_worker()
        rec = self.recovery()
        self.faults.append({"kind": kind, "at_s": round(at), "recovery_s": rec, **extra})
        c.log(f"{kind} at {at:.0f} s: progress again after {rec} s {extra}")

    def run(self) -> dict[str, Any]:
        a = self.a
        feed = PatientFeed(
            self.broker.bootstrap,
            f"{self.prefix}.predictions",
            chunks(a.minutes * 60, a.rate, time.time() + 5, self.expected),
            a.rate,
        )
        feed.thread.start()
        next_fault, k = a.fault_every / 2, 0
        while time.monotonic() - self.began < a.minutes * 60:
            now = time.monotonic() - self.began
            if now >= next_fault:
                self.fault(FAULTS[k % len(FAULTS)])
                k += 1
                next_fault += a.fault_every
            self.wait(min(SAMPLE_S, max(0.1, a.minutes * 60 - now)))
        feed.thread.join(900)
        state = f"{self.prefix}.profiles-state"
        deadline = time.monotonic() + 300
        got: dict[int, int] = {}
        while time.monotonic() < deadline:
            got = window_counts(self.broker.bootstrap, state)
            if got == self.expected:
                break
            self.wait(5)
        return {
            "produced": sum(self.expected.values()),
            "counted": sum(got.values()),
            "exact": got == self.expected,
            "windows_off": sum(1 for w, n in self.expected.items() if got.get(w) != n),
            "feed_errors": len(feed.errors),
        }

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()
        self.broker.close()


def report(a: argparse.Namespace, soak: Soak, result: dict[str, Any], load: str) -> str:
    per_minute: dict[int, list[tuple[float | None, float | None]]] = {}
    for t, rss, lag in soak.samples:
        per_minute.setdefault(int(t // 60), []).append((rss, lag))
    rows = []
    for minute, xs in sorted(per_minute.items()):
        rss = [r for r, _ in xs if r is not None]
        lags = [lg for _, lg in xs if lg is not None]
        rows.append(
            f"| {minute} | {np.median(rss):.0f} | {max(rss):.0f} | "
            f"{np.median(lags):,.0f} | {max(lags):,.0f} |"
            if rss and lags
            else f"| {minute} | – | – | – | – |"
        )
    # RSS growth per worker process (a restart resets RSS): the least-squares slope of
    # each process's samples after its first minute, for processes living >= 4 minutes
    restarts = [f["at_s"] for f in soak.faults if "worker" in f["kind"]]
    bounds = [0.0, *restarts, float("inf")]
    slopes = []
    for lo, hi in itertools.pairwise(bounds):
        seg = [(t, r) for t, r, _ in soak.samples if r is not None and lo + 60 <= t < hi]
        if len(seg) > 2 and seg[-1][0] - seg[0][0] >= 180:
            slopes.append(float(np.polyfit(*zip(*seg, strict=True), 1)[0]) * 3600)
    slope = max(slopes, key=abs) if slopes else float("nan")
    rss_all = [r for _, r, _ in soak.samples if r is not None]
    faults = "\n".join(
        f"| {f['at_s']} | {f['kind']} | {f['recovery_s'] and round(f['recovery_s'], 1)} | "
        f"{f.get('exit_s', '')} |"
        for f in soak.faults
    )
    return f"""Command: `.venv/bin/python benchmarks/bench_soak.py --minutes {a.minutes} \
--rate {a.rate:g} --fault-every {a.fault_every:g} --outage {a.outage:g}` at commit \
`{c.git_head()}`; {c.machine()}; load {load}.

`streamproc worker` (defaults, `--instance-id`) on a 4-partition topic, {a.rate:,.0f} live
events/s for {a.minutes} minutes, a fault every {a.fault_every:g} s in turn (kill -9,
broker restart, {a.outage:g}-s broker outage, SIGTERM), both restarted at once.

**Result:** {result["produced"]:,} produced, {result["counted"]:,} counted,
exact per window: **{result["exact"]}** ({result["windows_off"]} windows off;
{result["feed_errors"]} producer errors). Worker RSS median {np.median(rss_all):.0f} MiB,
max {max(rss_all):.0f} MiB; RSS growth {slope:+.1f} MiB/hour (the largest least-squares
slope of one worker process's 5-s samples after its first minute, over the
{len(slopes)} processes that lived 4 minutes or more). Progress is timed from the
worker's restart, or from the broker's return.

| fault at (s) | fault | progress after (s) | exit after SIGTERM (s) |
|---:|---|---:|---:|
{faults}

| minute | RSS median (MiB) | RSS max (MiB) | ingest lag median (msgs) | lag max (msgs) |
|---:|---:|---:|---:|---:|
{chr(10).join(rows)}
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--rate", type=float, default=1000.0, help="events/s")
    p.add_argument("--fault-every", type=float, default=300.0, help="seconds")
    p.add_argument("--outage", type=float, default=60.0, help="broker outage, seconds")
    p.add_argument("--no-write", action="store_true", help="print, do not append to RESULTS.md")
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="streamproc-soak-") as tmp:
        soak = Soak(a, Path(tmp))
        try:
            result = soak.run()
            body = report(a, soak, result, c.loadavg())
        finally:
            soak.close()
    title = f"Soak: {a.minutes:g} minutes with faults (`streamproc worker`)"
    c.append_results(title, body, not a.no_write)


if __name__ == "__main__":
    main()
