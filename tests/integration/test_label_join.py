"""The label join on a real broker: label events that carry only ``(model, request_id,
timestamp, label)`` meet the predictions ingest stored, on a labels topic with another
partition count than the predictions', with labels delayed by minutes to days of event
time, out of order, some before their prediction, duplicated, corrected, and for ids no
prediction has. Realized performance per prediction window equals scikit-learn's on the
same joined data (prediction, first label); every label is counted once or dead-lettered
once."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import accuracy_score

from streamproc.contracts.framing import REASON, SOURCE_TOPIC
from streamproc.monitor.performance_eval import window_estimate
from streamproc.monitor.state import WindowState
from tests.integration.monitor_harness import (
    Feed,
    checkpointed_windows,
    monitor_config,
    running_worker,
    wait_until,
)
from tests.integration.test_labels import _reference, _rows, _sklearn
from tests.support.kafka import consume_n, create_topic

WINDOW_MS = 10_000
RATE = 100  # predictions per second of event time
WINDOWS = 6
LABELED = 0.8
DAY_MS = 86_400_000


def test_labels_meet_stored_predictions_by_request_id_and_equal_sklearn(
    bootstrap_servers: str, unique_topic: Callable[[str], str]
) -> None:
    prefix = unique_topic("join")
    config = monitor_config(bootstrap_servers, prefix, join={"grace": "10s"})
    labels_topic = f"{prefix}.labels"
    create_topic(bootstrap_servers, labels_topic, 3)  # the predictions topic has 4
    rng = np.random.default_rng(21)
    # predictions three days back, so labels up to two days late are still in the past
    base_ms = (int(time.time() * 1000) - 3 * DAY_MS) // WINDOW_MS * WINDOW_MS
    n = RATE * WINDOWS * WINDOW_MS // 1000
    r = _rows(n, seed=22)
    pred_ms = base_ms + np.arange(n) * (1000 // RATE)

    predictions: list[tuple[bytes, bytes]] = []
    labeled: list[dict[str, Any]] = []  # (prediction, first label) as sklearn sees them
    first_labels: list[tuple[bytes, bytes]] = []
    for j in range(n):
        rid = f"q{j}"
        prediction = {"label": r["pred"][j], "score": float(r["score"][j])}
        envelope = {
            "model": "credit",
            "model_version": "1",
            "request_id": rid,
            "timestamp": int(pred_ms[j]) / 1000,
            "features": {"f0": float(r["f0"][j]), "f1": float(r["f1"][j])},
            "prediction": prediction,
        }
        predictions.append((rid.encode(), orjson.dumps(envelope)))
        if rng.random() < LABELED:
            delay_ms = int(rng.choice([60_000, 3_600_000, DAY_MS, 2 * DAY_MS]))
            delay_ms += int(rng.integers(0, 60_000))
            label = {
                "model": "credit",
                "request_id": rid,
                "timestamp": (int(pred_ms[j]) + delay_ms) / 1000,
                "label": r["truth"][j],
            }
            labeled.append({"label": r["truth"][j], "prediction": prediction, "ms": pred_ms[j],
                            "lag_s": delay_ms / 1000})  # fmt: skip
            first_labels.append((rid.encode(), orjson.dumps(label)))

    # duplicates (the same label again) and corrections (another label later), keyed
    # like their first copy so they follow it on its labels partition
    picks = rng.choice(len(first_labels), 200, replace=False)
    duplicates = [first_labels[i] for i in picks[:120]]
    corrections = []
    for i in picks[120:]:
        key, raw = first_labels[i]
        event = orjson.loads(raw)
        event["label"] = "approve" if event["label"] == "deny" else "deny"
        event["timestamp"] += 5.0
        corrections.append((key, orjson.dumps(event)))
    # labels for ids no prediction has: dead-lettered once their grace is over
    unknown = [
        (
            f"ghost{j}".encode(),
            orjson.dumps(
                {
                    "model": "credit",
                    "request_id": f"ghost{j}",
                    "timestamp": (base_ms + 1_000 + j) / 1000,
                    "label": "deny",
                }
            ),
        )
        for j in range(30)
    ]
    # the labels of the first window come before any prediction is produced
    early = [
        kv for kv, e in zip(first_labels, labeled, strict=True) if e["ms"] < base_ms + WINDOW_MS
    ]
    late = [
        kv for kv, e in zip(first_labels, labeled, strict=True) if e["ms"] >= base_ms + WINDOW_MS
    ]
    order = rng.permutation(len(late))  # out of order across keys
    late = [late[i] for i in order]

    with running_worker(config, [_reference()], labels_topic=labels_topic) as run:
        labels = Feed(bootstrap_servers, labels_topic)
        labels.send(early)
        time.sleep(3)  # the join holds them, waiting for their predictions
        Feed(bootstrap_servers, config.topics.predictions).send(predictions)
        labels.send(late + unknown)
        labels.send(duplicates + corrections)
        registry = run.worker.metrics.registry

        def sample(name: str, **labels_: str) -> float:
            return registry.get_sample_value(name, labels_) or 0.0

        def counted() -> float:
            return sample("streamproc_labels_total", model="credit")

        assert wait_until(lambda: counted() >= len(labeled), 120), (counted(), len(labeled))
        assert wait_until(
            lambda: (
                sample("streamproc_join_events_total", outcome="duplicate_label")
                + sample("streamproc_join_events_total", outcome="correction")
                >= len(duplicates) + len(corrections)
            ),
            60,
        )
        state_topic = f"{config.topics.profiles}-state"

        def windows() -> dict[int, WindowState]:
            return checkpointed_windows(bootstrap_servers, state_topic)

        def complete() -> bool:
            got = windows()
            return sum(w.performance.n for w in got.values() if w.performance) >= len(labeled)

        assert wait_until(complete, 60, every_s=1.0)
        checkpointed = windows()
        dlq = consume_n(bootstrap_servers, config.topics.deadletter, f"{prefix}.dlq.read",
                        len(unknown), timeout_s=60, linger_s=2.0)  # fmt: skip
        time.sleep(2)
        assert counted() == len(labeled)
        assert sample("streamproc_join_events_total", outcome="duplicate_label") == len(duplicates)
        assert sample("streamproc_join_events_total", outcome="correction") == len(corrections)
        assert sample("streamproc_join_pending_predictions") == n
        # estimated performance (CBPE) of the latest closed window is exported
        gauges = run.worker.metrics.model_gauges
        assert gauges.value("performance", ("credit", "1", "accuracy", "estimated")) is not None
        # label-lag quantiles of the newest labeled window, within the KLL rank error
        newest = max(int(e["ms"]) // WINDOW_MS * WINDOW_MS for e in labeled)
        lags = np.array([e["lag_s"] for e in labeled if e["ms"] >= newest])
        for q in (0.5, 0.95, 0.99):
            value = gauges.value("label_lag_seconds", ("credit", "1", f"{q:g}"))
            assert value is not None, q
            below, at_most = np.mean(lags < value), np.mean(lags <= value)
            assert below <= q + 0.02 and at_most >= q - 0.02, (q, value, below, at_most)

    # every label event counted once, dead-lettered once, or a counted duplicate
    from_labels = [
        dict((k, v.decode()) for k, v in m.headers() or [])
        for m in dlq
        if dict(m.headers() or []).get(SOURCE_TOPIC) == labels_topic.encode()
    ]
    assert Counter(h[REASON] for h in from_labels) == {"no_prediction": len(unknown)}

    by_window: dict[int, list[dict[str, Any]]] = {}
    for e in labeled:
        by_window.setdefault(int(e["ms"]) // WINDOW_MS * WINDOW_MS, []).append(e)
    assert set(by_window) <= set(checkpointed)
    for start, rows in sorted(by_window.items()):
        perf = checkpointed[start].performance
        assert perf is not None and perf.n == len(rows), (start, perf and perf.n, len(rows))
        got, want = perf.metrics(), _sklearn(rows)
        for name in ("accuracy", "precision", "recall", "f1"):
            assert got[name] == pytest.approx(want[name], rel=1e-12), (start, name)
        assert got["brier"] == pytest.approx(want["brier"], rel=1e-9), start
        bound = got["roc_auc_error_bound"]
        assert bound is not None and abs(got["roc_auc"] - want["roc_auc"]) <= bound + 1e-12

    # CBPE before labels: the window's estimated accuracy equals the expectation under an
    # isotonic calibration fitted independently (scikit-learn, raw reference rows), and
    # stays within 4 standard errors (+0.01 for the binned calibration) of the realized
    ref = _rows(50_000, seed=11)
    iso = IsotonicRegression(out_of_bounds="clip").fit(ref["score"], ref["truth"] == "deny")
    reference = _reference()
    for start, rows in sorted(by_window.items()):
        window = checkpointed[start]
        est = window_estimate(window, reference)
        assert est is not None and est.n == RATE * WINDOW_MS // 1000, start
        in_window = (pred_ms >= start) & (pred_ms < start + WINDOW_MS)
        c = iso.predict(r["score"][in_window])
        expected = np.where(r["pred"][in_window] == "deny", c, 1 - c).mean()
        assert est.accuracy == pytest.approx(expected, abs=0.01), start
        realized = accuracy_score(
            [e["label"] for e in rows], [e["prediction"]["label"] for e in rows]
        )
        se = np.sqrt(expected * (1 - expected) / len(rows))
        assert abs(est.accuracy - realized) <= 4 * se + 0.01, (start, est.accuracy, realized)
