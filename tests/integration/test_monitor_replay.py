"""Replay: year-old data at full speed gives the windows and alerts of the live run."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from streamproc.monitor.worker import state_topic_name
from tests.integration.monitor_harness import (
    AlertWatcher,
    Feed,
    expected_counts,
    monitor_config,
    records,
    reference_profile,
    running_worker,
    wait_drained,
    wait_until,
    window_counts,
)

RATE = 1_500.0
YEAR_S = 365 * 86_400  # a multiple of the window size: windows align in both runs
DRIFTED = {"num_1": 3.0, "num_4": -3.0}
"""Shifts far past every check's threshold (3σ also puts ~24% of values beyond the robust
range): live runs add provisional looks that replay does not, so a borderline verdict
could differ between the two runs without either being wrong."""


def _script(start_s: float) -> list[tuple[bytes, bytes]]:
    """10 s normal, 15 s with two features drifted, 30 s normal (event time): replay
    judges closed windows only, and the last window never closes (no later data), so the
    normal phase holds 3 clean closed windows to resolve with and 2 to spare."""
    phases = [(10, None), (15, DRIFTED), (30, None)]
    out: list[tuple[bytes, bytes]] = []
    t = start_s
    for i, (seconds, shift) in enumerate(phases):
        out += records(int(RATE * seconds), start_s=t, rate=RATE, seed=40 + i, shift=shift)
        t += seconds
    return out


def _shift(recs: list[tuple[bytes, bytes]], by_s: float) -> list[tuple[bytes, bytes]]:
    shifted = []
    for key, value in recs:
        rec = orjson.loads(value)
        rec["timestamp"] = round(rec["timestamp"] - by_s, 6)
        shifted.append((key, orjson.dumps(rec)))
    return shifted


def _run(
    bootstrap: str, prefix: str, recs: list[tuple[bytes, bytes]], live: bool
) -> tuple[set[tuple[Any, ...]], dict[int, int], int]:
    config = monitor_config(
        bootstrap,
        prefix,
        windows={"size": "5s", "allowed_lateness": "1s", "rolling_horizon": "15s"},
    )
    watcher = AlertWatcher(bootstrap, config.topics.alerts)
    try:
        with running_worker(config, [reference_profile()]) as run:
            feed = Feed(bootstrap, config.topics.predictions)
            if live:
                feed.paced(recs, RATE)
            else:
                feed.send(recs)

            assert wait_drained(run.worker, len(recs), 120)
            time.sleep(1.5)  # one more evaluation tick
        # The worker's last evaluation runs as it stops: read every alert it published.
        emitted = sum(
            s.value
            for m in run.worker.metrics.registry.collect()
            if m.name == "streamproc_alerts_emitted"
            for s in m.samples
            if s.name.endswith("_total")
        )
        assert wait_until(lambda: len(watcher.alerts) >= emitted, 30), (emitted, watcher.alerts)
        counts = window_counts(bootstrap, state_topic_name(config.topics.profiles))
    finally:
        watcher.close()
    outcomes = {
        (a["check"], a.get("feature"), a["status"])
        for a in watcher.alerts
        if a["check"] not in {"staleness", "freshness"}  # wall-clock checks: live only
    }
    return outcomes, counts, config.windows.size_ms


def test_replay_gives_the_live_windows_and_alerts(
    bootstrap_servers: str, unique_topic: Callable[[str], str]
) -> None:
    live_recs = _script(time.time())
    live, live_counts, window_ms = _run(bootstrap_servers, unique_topic("live"), live_recs, True)
    replay_recs = _shift(live_recs, YEAR_S)
    replay, replay_counts, _ = _run(bootstrap_servers, unique_topic("replay"), replay_recs, False)

    assert live_counts == expected_counts(live_recs, window_ms)
    shifted = {start - YEAR_S * 1000: n for start, n in live_counts.items()}
    assert replay_counts == shifted
    assert {(c, f) for c, f, s in live if s == "firing"} >= {
        ("feature_drift", "num_1"),
        ("feature_drift", "num_4"),
    }
    assert replay == live
