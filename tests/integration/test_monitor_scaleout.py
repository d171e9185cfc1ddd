"""Two worker processes in one group split the partitions and count every record once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from streamproc.broker.local import free_port
from streamproc.monitor.worker import state_topic_name
from tests.integration.monitor_harness import (
    Feed,
    expected_counts,
    records,
    reference_profile,
    save,
    wait_until,
    window_counts,
)
from tests.support.kafka import create_topic

N = 60_000


def _metric(port: int, prefix: str) -> float:
    """Sum of the samples of one metric on a worker's /metrics; -1 if it does not answer."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
    except OSError:
        return -1.0
    total = 0.0
    for line in text.decode().splitlines():
        if line.startswith(prefix):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _events(port: int) -> float:
    return _metric(port, "streamproc_events_total{")


def _all_deltas_applied(ports: list[int]) -> bool:
    published = sum(_metric(p, "streamproc_deltas_published_total ") for p in ports)
    applied = sum(_metric(p, "streamproc_deltas_applied_total ") for p in ports)
    return published > 0 and applied == published


def test_two_workers_split_partitions_and_count_once(
    bootstrap_servers: str, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    prefix = unique_topic("scale")
    ref = save(reference_profile(), tmp_path / "credit.profile")
    config = tmp_path / "monitor.toml"
    config.write_text(
        f"""
[kafka]
bootstrap_servers = "{bootstrap_servers}"
group_id = "{prefix}.g"

[topics]
predictions = "{prefix}.predictions"
alerts = "{prefix}.alerts"
deadletter = "{prefix}.dlq"
profiles = "{prefix}.profiles"

[windows]
size = "10s"
allowed_lateness = "2s"

[references]
credit = "{ref}"
"""
    )
    create_topic(bootstrap_servers, f"{prefix}.predictions", partitions=4)
    ports = [free_port(), free_port()]
    procs = []
    for i, port in enumerate(ports):
        log = open(tmp_path / f"worker{i}.log", "wb")  # noqa: SIM115 - closed with the process
        procs.append(
            subprocess.Popen(
                [
                    *(sys.executable, "-m", "streamproc", "worker"),
                    *("--config", str(config), "--metrics-port", str(port)),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        )
    recs = records(N, start_s=time.time() - 86_400, rate=500, seed=21)
    try:
        assert wait_until(lambda: all(_events(p) >= 0 for p in ports), 60)
        time.sleep(8)  # both members in the group before the data arrives
        Feed(bootstrap_servers, f"{prefix}.predictions").send(recs)
        assert wait_until(lambda: sum(_events(p) for p in ports) >= N, 120), [
            _events(p) for p in ports
        ]
        per_worker = [_events(p) for p in ports]
        assert wait_until(lambda: _all_deltas_applied(ports), 60)
        time.sleep(6)  # one checkpoint interval: the state topic has every window
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(60)
    logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    assert all(proc.returncode == 0 for proc in procs), logs
    assert sum(per_worker) == N
    assert all(n > 0 for n in per_worker), per_worker  # the group split the partitions
    counts = window_counts(bootstrap_servers, state_topic_name(f"{prefix}.profiles"))
    assert counts == expected_counts(recs, 10_000)
