"""Replay parity for ground truth: predictions and their labels replayed a year later, at
full speed, give the live run's realized performance per window and its performance
alerts (a concept drift fires ``performance_drop``; healthy windows resolve it)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pytest
from sklearn.metrics import accuracy_score

from streamproc.monitor.state import WindowState
from tests.integration.monitor_harness import (
    AlertWatcher,
    Feed,
    Timed,
    checkpointed_windows,
    monitor_config,
    running_worker,
    send_timed,
    shift_timed,
    wait_until,
)
from tests.integration.test_labels import _reference, _rows
from tests.support.kafka import create_topic

WINDOW_S = 5
RATE = 100  # predictions per second of event time
PHASES = ((4, 0.0), (4, 0.5), (5, 0.0))
"""(windows, share of outcomes flipped): healthy, concept drift, healthy again (the last
window never closes)."""
LABEL_DELAY_S = 1.0
YEAR_S = 365 * 86_400  # a multiple of the window size: windows align in both runs
CHECKS = frozenset(
    {
        "performance_drop",
        "calibration_drift",
        "label_drift",
        "estimated_performance_drop",
        "performance_gap",
        "label_coverage",
    }
)


def _script(start_s: float) -> tuple[Timed, list[dict[str, Any]]]:
    """Predictions at ``RATE``/s with their labels ``LABEL_DELAY_S`` later (event time),
    and the (prediction, label) rows scikit-learn judges."""
    n = RATE * WINDOW_S * sum(w for w, _ in PHASES)
    r = _rows(n, seed=31)
    rng = np.random.default_rng(32)
    t = start_s + np.arange(n) / RATE
    flip_share = np.concatenate([np.full(RATE * WINDOW_S * w, f) for w, f in PHASES])
    truth = r["truth"].copy()
    flip = rng.random(n) < flip_share
    truth[flip] = np.where(truth[flip] == "deny", "approve", "deny")
    timed: Timed = []
    rows = []
    for j in range(n):
        rid = f"r{j}"
        prediction = {"label": r["pred"][j], "score": float(r["score"][j])}
        envelope = {
            "model": "credit",
            "model_version": "1",
            "request_id": rid,
            "timestamp": round(float(t[j]), 3),
            "features": {"f0": float(r["f0"][j]), "f1": float(r["f1"][j])},
            "prediction": prediction,
        }
        label = {
            "model": "credit",
            "request_id": rid,
            "timestamp": round(float(t[j]) + LABEL_DELAY_S, 3),
            "label": truth[j],
        }
        timed.append((float(t[j]), "p", rid.encode(), orjson.dumps(envelope)))
        timed.append((float(t[j]) + LABEL_DELAY_S, "l", rid.encode(), orjson.dumps(label)))
        rows.append({"ms": round(float(t[j]) * 1000), "label": truth[j], "pred": r["pred"][j]})
    timed.sort(key=lambda x: x[0])
    return timed, rows


def _run(
    bootstrap: str, prefix: str, timed: Timed, live: bool
) -> tuple[set[tuple[str, str]], dict[int, WindowState]]:
    config = monitor_config(
        bootstrap,
        prefix,
        windows={"size": f"{WINDOW_S}s", "allowed_lateness": "1s", "rolling_horizon": "15s"},
        join={"grace": "30s"},
    )
    labels_topic = f"{prefix}.labels"
    create_topic(bootstrap, labels_topic, 3)
    watcher = AlertWatcher(bootstrap, config.topics.alerts)
    retrain = AlertWatcher(bootstrap, config.topics.retrain)
    n_labels = sum(1 for _, kind, _, _ in timed if kind == "l")
    try:
        with running_worker(config, [_reference()], labels_topic=labels_topic) as run:
            feeds = {
                "p": Feed(bootstrap, config.topics.predictions),
                "l": Feed(bootstrap, labels_topic),
            }
            send_timed(feeds, timed, live)
            registry = run.worker.metrics.registry

            def counted() -> float:
                value = registry.get_sample_value("streamproc_labels_total", {"model": "credit"})
                return value or 0.0

            assert wait_until(lambda: counted() >= n_labels, 120), (counted(), n_labels)
            state_topic = f"{config.topics.profiles}-state"

            def windows() -> dict[int, WindowState]:
                return checkpointed_windows(bootstrap, state_topic)

            def complete() -> bool:
                got = windows()
                return sum(w.performance.n for w in got.values() if w.performance) >= n_labels

            assert wait_until(complete, 60, every_s=1.0)
            time.sleep(2.0)  # the evaluations of the last labels
            checkpointed = windows()

        def total(name: str) -> float:
            return sum(
                s.value
                for m in run.worker.metrics.registry.collect()
                if m.name == name
                for s in m.samples
                if s.name.endswith("_total")
            )

        # retrain events go to the retrain topic, not to the alerts topic
        emitted = total("streamproc_alerts_emitted") - total("streamproc_retrain_events")
        assert wait_until(lambda: len(watcher.alerts) >= emitted, 30), (emitted, watcher.alerts)
        sent = total("streamproc_retrain_events")
        assert wait_until(lambda: len(retrain.alerts) >= sent, 30), (sent, retrain.alerts)
    finally:
        watcher.close()
        retrain.close()
    outcomes = {(a["check"], a["status"]) for a in watcher.alerts if a["check"] in CHECKS}
    outcomes |= {(a["kind"], a["status"]) for a in retrain.alerts}
    return outcomes, checkpointed


def test_replayed_labels_give_the_live_performance_and_alerts(
    bootstrap_servers: str, unique_topic: Callable[[str], str]
) -> None:
    start_s = (time.time() + 2) // WINDOW_S * WINDOW_S + WINDOW_S  # at a window boundary
    timed, rows = _script(start_s)
    live, live_windows = _run(bootstrap_servers, unique_topic("perf-live"), timed, True)
    replay, replay_windows = _run(
        bootstrap_servers, unique_topic("perf-replay"), shift_timed(timed, YEAR_S), False
    )

    window_ms = WINDOW_S * 1000
    by_window: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_window.setdefault(row["ms"] // window_ms * window_ms, []).append(row)
    year_ms = YEAR_S * 1000
    for start, group in sorted(by_window.items()):
        want = accuracy_score([g["label"] for g in group], [g["pred"] for g in group])
        for name, windows, at in (
            ("live", live_windows, start),
            ("replay", replay_windows, start - year_ms),
        ):
            perf = windows[at].performance
            assert perf is not None and perf.n == len(group), (name, start)
            assert perf.metrics()["accuracy"] == pytest.approx(want, rel=1e-12), (name, start)
        assert live_windows[start].performance.metrics()["brier"] == pytest.approx(  # type: ignore[union-attr]
            replay_windows[start - year_ms].performance.metrics()["brier"],  # type: ignore[union-attr]
            rel=1e-12,
        )
    assert ("performance_drop", "firing") in live, live
    assert ("performance_drop", "resolved") in live, live
    assert {("retrain", "firing"), ("retrain", "resolved")} <= live, live
    assert replay == live
