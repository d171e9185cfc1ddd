"""Where a running ``streamproc worker`` spends its CPU (``bench_worker.py --profile``).

Two sources over the same interval (the drain, from the first ``/metrics`` poll that sees
events counted to the poll that sees all of them):

* **per-thread CPU**, exact: utime + stime of every thread from ``/proc/<pid>/task/*/stat``
  at both ends. librdkafka's threads are named by the OS (``rdk:main``, ``rdk:broker…``);
  Python threads get their names from py-spy's samples;
* **py-spy samples** of the Python threads (``py-spy record --threads --nonblocking
  --format raw``, 100 Hz; non-blocking, so the worker is never paused): within a thread,
  the share of its samples whose deepest ``streamproc/`` frame is a given function,
  times that thread's CPU, is that function's CPU (with whatever C code it calls:
  orjson, pyarrow, datasketches, confluent-kafka's calls into librdkafka). Sampling is
  statistical: at 100 Hz a 10 s drain gives ~1,000 samples a busy thread, so a share
  is good to about ±1.5 percentage points.

Everything is reported in µs of CPU per event, the unit of the ceiling (consume +
``orjson.loads``) it is compared with.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")
RATE_HZ = 100
_THREAD = re.compile(r"^thread \((\d+)\): ?(.*)$")
_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy() -> str | None:
    """The py-spy next to this interpreter (``pip install '.[bench]'``), else on PATH."""
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """tid → (OS thread name, utime + stime s) of every thread of ``pid``."""
    out: dict[int, tuple[str, float]] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rpartition(")")[2].split()
        out[int(task.name)] = (comm, (int(fields[11]) + int(fields[12])) / CLK_TCK)
    return out


class Profiler:
    """py-spy attached to ``pid`` between :meth:`start` and :meth:`stop`."""

    def __init__(self, pid: int, raw_path: Path) -> None:
        self.pid = pid
        self.raw_path = raw_path
        self.cpu0: dict[int, tuple[str, float]] = {}
        self.cpu1: dict[int, tuple[str, float]] = {}
        self.events0 = self.events1 = 0.0
        self._spy: subprocess.Popen[bytes] | None = None
        self.error: str | None = None

    def start(self, events: float) -> None:
        exe = py_spy()
        self.events0 = events
        self.cpu0 = thread_cpu(self.pid)
        if exe is None:
            self.error = "py-spy not installed (pip install '.[bench]')"
            return
        cmd = [exe, "record", "--pid", str(self.pid), "--rate", str(RATE_HZ), "--format"]
        cmd += ["raw", "--threads", "--full-filenames", "--nonblocking"]
        cmd += ["--output", str(self.raw_path)]
        self._spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self, events: float) -> None:
        self.events1 = events
        self.cpu1 = thread_cpu(self.pid)
        spy, self._spy = self._spy, None
        if spy is None:
            return
        spy.send_signal(signal.SIGINT)
        try:
            _, err = spy.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()
            _, err = spy.communicate()
        if not self.raw_path.exists():
            self.error = f"py-spy wrote nothing: {err.decode(errors='replace')[-300:]}"

    def summary(self) -> dict[str, Any]:
        return summarize(self.raw_path, self.cpu0, self.cpu1, self.events1 - self.events0)


def parse_raw(path: Path) -> dict[int, tuple[str, dict[str, int], int]]:
    """tid → (Python thread name, deepest-streamproc-frame → samples, total samples)."""
    threads: dict[int, tuple[str, dict[str, int], int]] = {}
    if not path.exists():
        return threads
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        m = _THREAD.match(frames[0])
        if m is None:
            continue
        tid, name = int(m.group(1)), m.group(2) or "?"
        frames = frames[1:]
        if frames and "(" not in frames[0]:  # py-spy puts the thread name first
            name, frames = frames[0], frames[1:]
        key = where(frames)
        prev_name, per, total = threads.get(tid, (name, defaultdict(int), 0))
        per[key] += int(count_text)
        threads[tid] = (prev_name, per, total + int(count_text))
    return threads


def where(frames: list[str]) -> str:
    """``function (streamproc/module.py)`` of the deepest streamproc frame, else the leaf."""
    for frame in reversed(frames):
        m = _FRAME.match(frame)
        if m and "/streamproc/" in m.group("file") and "/benchmarks/" not in m.group("file"):
            file = m.group("file")
            return f"{m.group('func')} ({file[file.rindex('/streamproc/') + 1 :]})"
    if frames:
        m = _FRAME.match(frames[-1])
        return f"{m.group('func')} ({Path(m.group('file')).name})" if m else frames[-1]
    return "?"


def summarize(
    raw_path: Path,
    cpu0: dict[int, tuple[str, float]],
    cpu1: dict[int, tuple[str, float]],
    events: float,
) -> dict[str, Any]:
    """Per thread and per hot function: CPU µs per event over the profiled interval."""
    samples = parse_raw(raw_path)
    per_event = 1e6 / events if events > 0 else 0.0
    threads = []
    groups: dict[str, float] = defaultdict(float)
    hot: dict[tuple[str, str], float] = defaultdict(float)
    for tid, (comm, end_s) in cpu1.items():
        cpu = end_s - cpu0.get(tid, (comm, 0.0))[1]
        name = samples[tid][0] if tid in samples else comm
        group = "librdkafka" if comm.startswith("rdk:") else name
        groups[group] += cpu
        threads.append({"tid": tid, "name": name, "os_name": comm, "cpu_s": cpu})
        if tid in samples and samples[tid][2] and cpu > 0:
            _, per, total = samples[tid]
            for key, n in per.items():
                hot[(name, key)] += cpu * n / total
    total_cpu = sum(groups.values())
    return {
        "events": events,
        "cpu_s": total_cpu,
        "us_per_event": total_cpu * per_event,
        "threads": sorted(threads, key=lambda t: -t["cpu_s"]),
        "groups": {
            k: {"cpu_s": v, "us_per_event": v * per_event, "share": v / (total_cpu or 1.0)}
            for k, v in sorted(groups.items(), key=lambda kv: -kv[1])
        },
        "hot": [
            {"thread": t, "where": k, "cpu_s": v, "us_per_event": v * per_event}
            for (t, k), v in sorted(hot.items(), key=lambda kv: -kv[1])
        ],
        "samples": sum(s[2] for s in samples.values()),
        "raw": str(raw_path),
    }


def report(summaries: list[tuple[str, dict[str, Any]]], ceiling_us: dict[str, float]) -> str:
    """Markdown: per mode, CPU µs/event by thread group and the top functions."""
    lines: list[str] = []
    for label, s in summaries:
        if s.get("error"):
            lines.append(f"Profile {label}: {s['error']}")
            continue
        ceil = ceiling_us.get(label)
        lines += [
            "",
            f"**{label}**: {s['events']:,.0f} events profiled, {s['us_per_event']:.1f} µs CPU "
            "per event in all threads"
            + (f" (ceiling in the same run: {ceil:.1f} µs)" if ceil else "")
            + f"; {s['samples']:,} py-spy samples.",
            "",
            "| thread | CPU s | µs/event | share |",
            "| --- | ---: | ---: | ---: |",
        ]
        for name, g in s["groups"].items():
            if g["cpu_s"] > 0.005:
                lines.append(
                    f"| {name} | {g['cpu_s']:.2f} | {g['us_per_event']:.1f} | {g['share']:.0%} |"
                )
        lines += [
            "",
            "| thread | deepest streamproc frame (with what it calls) | µs/event |",
            "| --- | --- | ---: |",
        ]
        for h in s["hot"][:15]:
            lines.append(f"| {h['thread']} | `{h['where']}` | {h['us_per_event']:.2f} |")
    return "\n".join(lines)
