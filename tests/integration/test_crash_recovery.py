"""kill -9 under load: with an instance id, a restarted `streamproc worker` takes its
partitions back and moves again at once, and every window's count stays exact."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from streamproc.broker.local import free_port
from tests.integration.monitor_harness import (
    Feed,
    expected_counts,
    records,
    reference_profile,
    save,
    scrape,
    wait_until,
    window_counts,
    worker_command,
    worker_config,
)
from tests.support.kafka import create_topic

RATE = 1_000.0
SECONDS = 50
KILLS = 5


def test_kill_9_restarts_move_at_once_and_counts_stay_exact(
    bootstrap_servers: str, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    prefix = unique_topic("crash")
    predictions = f"{prefix}.predictions"
    create_topic(bootstrap_servers, predictions, 4)
    reference = save(reference_profile(), tmp_path / "credit.profile")
    config = worker_config(tmp_path / "monitor.toml", prefix)
    port = free_port()
    command = worker_command(
        bootstrap_servers, prefix, config=config, reference=reference, metrics_port=port
    )
    log = (tmp_path / "worker.log").open("ab")

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    recs = records(int(RATE * SECONDS), start_s=time.time(), rate=RATE, seed=91)
    feed = Feed(bootstrap_servers, predictions)
    feeder = threading.Thread(target=feed.paced, args=(recs, RATE), daemon=True)
    proc = start()
    recovery_s: list[float] = []
    try:
        assert wait_until(lambda: scrape(port, "streamproc_deltas_applied_total") is not None, 90)
        feeder.start()
        assert wait_until(lambda: (scrape(port, "streamproc_deltas_applied_total") or 0) > 0, 90)
        for _ in range(KILLS):
            time.sleep(6)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            restarted = time.monotonic()
            proc = start()
            # progress: the new process merged a delta (it owns partitions, and neither a
            # dead member's session nor its open transaction holds it back)
            assert wait_until(
                lambda: (scrape(port, "streamproc_deltas_applied_total") or 0) > 0, 60, 0.1
            ), "no progress within 60 s of a restart"
            recovery_s.append(time.monotonic() - restarted)
        feeder.join(120)
        state = f"{prefix}.profiles-state"
        expected = expected_counts(recs, 10_000)
        # every window exact (the last ones are checkpointed once the input drained)
        assert wait_until(lambda: window_counts(bootstrap_servers, state) == expected, 90, 2), (
            window_counts(bootstrap_servers, state),
            expected,
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    print(f"restart-to-progress seconds: {[round(s, 2) for s in recovery_s]}")
    # without static membership and stable transactional ids each took 44-49 s
    assert max(recovery_s) < 30, recovery_s
