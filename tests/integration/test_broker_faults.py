"""Broker faults under load: a `streamproc worker` survives a broker restart and a
2-minute outage with every window's count exact, and a SIGTERM while the broker is
away ends it within 10 s with nothing committed that was not delivered.

These tests stop and kill their own broker (started from the official jars on a port
of their own), so they never use ``KAFKA_BOOTSTRAP_SERVERS``' broker or the session's.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamproc.broker.local import free_port
from tests.integration.monitor_harness import (
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
from tests.support.faults import FaultyBroker, PatientFeed
from tests.support.kafka import create_topic, kafka_required

RATE = 1_000.0
OUTAGE_S = 120.0


@pytest.fixture(scope="module")
def faulty_broker() -> Iterator[FaultyBroker]:
    try:
        broker = FaultyBroker()
    except Exception as exc:
        if kafka_required():
            pytest.fail(f"a broker of its own is required here (CI=true) but failed: {exc}")
        pytest.skip(f"no local broker: {exc}")
    try:
        yield broker
    finally:
        broker.close()


def _setup(broker: FaultyBroker, tmp_path: Path, name: str, seconds: float, seed: int) -> tuple:
    prefix = f"faults-{name}-{time.monotonic_ns()}"
    create_topic(broker.bootstrap, f"{prefix}.predictions", 4)
    reference = save(reference_profile(), tmp_path / "credit.profile")
    config = worker_config(tmp_path / "monitor.toml", prefix)
    port = free_port()
    command = worker_command(
        broker.bootstrap, prefix, config=config, reference=reference, metrics_port=port
    )
    recs = records(int(RATE * seconds), start_s=time.time() + 5, rate=RATE, seed=seed)
    feed = PatientFeed(broker.bootstrap, f"{prefix}.predictions", [recs], RATE)
    return prefix, command, port, recs, feed


def _applied(port: int) -> float:
    return scrape(port, "streamproc_deltas_applied_total") or 0.0


def _progress_after(port: int, timeout_s: float) -> float | None:
    """Seconds until the worker merges another delta, or None within ``timeout_s``."""
    began, before = time.monotonic(), _applied(port)
    if wait_until(lambda: _applied(port) > before, timeout_s, 0.2):
        return time.monotonic() - began
    return None


def test_a_broker_restart_and_a_two_minute_outage_are_survived_with_exact_counts(
    faulty_broker: FaultyBroker, tmp_path: Path
) -> None:
    prefix, command, port, recs, feed = _setup(faulty_broker, tmp_path, "outage", 170, seed=17)
    log = (tmp_path / "worker.log").open("ab")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_until(lambda: scrape(port, "streamproc_deltas_applied_total") is not None, 90)
        feed.thread.start()
        assert wait_until(lambda: _applied(port) > 0, 60), "the worker never made progress"

        time.sleep(10)
        faulty_broker.stop()  # a restart: clean shutdown, back at once
        faulty_broker.start()
        after_restart = _progress_after(port, 120)
        assert after_restart is not None, "no progress within 120 s of a broker restart"

        time.sleep(10)
        faulty_broker.kill()  # an outage: the broker dies and stays away for 2 minutes
        time.sleep(OUTAGE_S / 2)
        # the worker waits, and says so on /metrics (the endpoint stays up)
        for stage in ("ingest", "aggregate"):
            last = scrape(port, "streamproc_last_commit_timestamp_seconds", stage=stage)
            assert last is not None and time.time() - last > OUTAGE_S / 2 - 15, (stage, last)
        time.sleep(OUTAGE_S / 2)
        faulty_broker.start()
        after_outage = _progress_after(port, 180)
        assert after_outage is not None, "no progress within 180 s of the broker's return"

        feed.thread.join(600)
        assert not feed.errors, feed.errors[:3]
        expected = expected_counts(recs, 10_000)
        state = f"{prefix}.profiles-state"
        assert wait_until(
            lambda: window_counts(faulty_broker.bootstrap, state) == expected, 240, 3
        ), {
            start: (got, expected.get(start))
            for start, got in window_counts(faulty_broker.bootstrap, state).items()
            if got != expected.get(start)
        }
        assert proc.poll() is None, "the worker exited"
        print(f"progress after restart {after_restart:.1f} s, after outage {after_outage:.1f} s")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_sigterm_while_the_broker_is_away_exits_within_10_s_and_loses_nothing(
    faulty_broker: FaultyBroker, tmp_path: Path
) -> None:
    if not faulty_broker.running:
        faulty_broker.start()
    prefix, command, port, recs, feed = _setup(faulty_broker, tmp_path, "sigterm", 45, seed=23)
    log_path = tmp_path / "worker.log"
    log = log_path.open("ab")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_until(lambda: scrape(port, "streamproc_deltas_applied_total") is not None, 90)
        feed.thread.start()
        assert wait_until(lambda: _applied(port) > 0, 60), "the worker never made progress"
        time.sleep(5)
        faulty_broker.kill()
        time.sleep(15)  # commits in flight and retrying
        asked = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        exit_s = time.monotonic() - asked
        assert proc.returncode == 0, proc.returncode
        assert exit_s < 10, f"took {exit_s:.1f} s to exit after SIGTERM during an outage"

        # nothing committed that was not delivered: a restarted worker counts every
        # record exactly once
        faulty_broker.start()
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        feed.thread.join(600)
        assert not feed.errors, feed.errors[:3]
        expected = expected_counts(recs, 10_000)
        state = f"{prefix}.profiles-state"
        assert wait_until(
            lambda: window_counts(faulty_broker.bootstrap, state) == expected, 240, 3
        ), (window_counts(faulty_broker.bootstrap, state), expected)
        print(f"exit after SIGTERM during the outage: {exit_s:.1f} s")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
    assert "Traceback" not in log_path.read_text(errors="replace")
