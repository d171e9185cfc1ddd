"""Ground truth on a real broker (stateless mode): label events that carry their
prediction → realized performance per prediction window, equal to scikit-learn's on the
same joined data; a concept drift (same inputs, flipped labels) fires performance_drop."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pytest
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from streamproc.contracts import validate
from streamproc.contracts.framing import REASON, SOURCE_TOPIC
from streamproc.core.model_profile import ModelProfile
from streamproc.core.reference_performance import build
from streamproc.monitor.state import WindowState
from tests.integration.monitor_harness import (
    AlertWatcher,
    Feed,
    checkpointed_windows,
    monitor_config,
    running_worker,
    wait_until,
)
from tests.support.kafka import consume_n, create_topic

WINDOW_MS = 10_000
RATE = 100  # predictions per second of event time
HEALTHY, DRIFTED = 6, 4  # windows
FLIP = 0.5  # share of labels flipped in the drift phase
LABELED = 0.8


def _rows(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    score = rng.beta(2, 2, n)  # P(deny)
    truth = np.where(rng.random(n) < score, "deny", "approve").astype(object)
    return {
        "f0": rng.normal(0, 1, n),
        "f1": rng.normal(3, 2, n),
        "score": score,
        "pred": np.where(score >= 0.5, "deny", "approve").astype(object),
        "truth": truth,
    }


def _reference() -> ModelProfile:
    r = _rows(50_000, seed=11)
    prof = ModelProfile.build_reference(
        "credit",
        "1",
        {"f0": r["f0"], "f1": r["f1"]},
        predictions=r["score"],
        predicted_labels=r["pred"],
    )
    perf = build(list(r["truth"]), scores=r["score"], predicted=list(r["pred"]), positive="deny")
    prof.metadata["performance"] = perf.to_meta()
    return prof


def _sklearn(rows: list[dict[str, Any]]) -> dict[str, float]:
    y = [r["label"] for r in rows]
    p = [r["prediction"]["label"] for r in rows]
    s = np.array([r["prediction"]["score"] for r in rows])
    pos = np.array([v == "deny" for v in y], dtype=int)
    return {
        "accuracy": accuracy_score(y, p),
        "precision": precision_score(y, p, pos_label="deny"),
        "recall": recall_score(y, p, pos_label="deny"),
        "f1": f1_score(y, p, pos_label="deny"),
        "roc_auc": roc_auc_score(pos, s),
        "brier": brier_score_loss(pos, s),
    }


def test_realized_performance_equals_sklearn_and_concept_drift_alerts(
    bootstrap_servers: str, unique_topic: Callable[[str], str]
) -> None:
    prefix = unique_topic("labels")
    config = monitor_config(bootstrap_servers, prefix, join={"mode": "stateless"})
    labels_topic = f"{prefix}.labels"
    create_topic(bootstrap_servers, labels_topic, 3)
    rng = np.random.default_rng(5)
    base_ms = (int(time.time() * 1000) - 900_000) // WINDOW_MS * WINDOW_MS
    n = RATE * (HEALTHY + DRIFTED) * WINDOW_MS // 1000
    r = _rows(n, seed=12)
    pred_ms = base_ms + np.arange(n) * (1000 // RATE)
    drifted = pred_ms >= base_ms + HEALTHY * WINDOW_MS
    truth = r["truth"].copy()
    flip = drifted & (rng.random(n) < FLIP)
    truth[flip] = np.where(truth[flip] == "deny", "approve", "deny")

    predictions, events = [], []
    for j in range(n):
        rid = f"r{j}"
        prediction = {"label": r["pred"][j], "score": float(r["score"][j])}
        predictions.append(
            (
                rid.encode(),
                orjson.dumps(
                    {
                        "model": "credit",
                        "model_version": "1",
                        "request_id": rid,
                        "timestamp": int(pred_ms[j]) / 1000,
                        "features": {"f0": float(r["f0"][j]), "f1": float(r["f1"][j])},
                        "prediction": prediction,
                    }
                ),
            )
        )
        if rng.random() < LABELED:
            delay_ms = int(rng.integers(60_000, 300_000))  # minutes of event time
            events.append(
                {
                    "model": "credit",
                    "request_id": rid,
                    "timestamp": (int(pred_ms[j]) + delay_ms) / 1000,
                    "label": truth[j],
                    "prediction": {
                        **prediction,
                        "model_version": "1",
                        "timestamp": int(pred_ms[j]) / 1000,
                    },
                }
            )
    unique = list(events)
    bad: list[tuple[bytes, str]] = [
        (b"not json", "malformed_json"),
        (b'{"model": "credit", "request_id": "x"}', "missing_field"),
        (orjson.dumps({**events[0], "model": "nope"}), "unknown_model"),
        (orjson.dumps({**events[1], "prediction": "deny"}), "wrong_type"),
    ]
    bad += [
        (orjson.dumps({k: v for k, v in e.items() if k != "prediction"}), "no_prediction")
        for e in events[2:22]
    ]
    dups = [events[i] for i in rng.choice(len(events), len(events) // 20, replace=False)]
    bad += [(orjson.dumps(e), "duplicate_label") for e in dups]

    def phase(in_drift: bool) -> list[tuple[bytes, bytes]]:
        """Label events of one phase, out of order, duplicates and bad ones mixed in."""

        def drift_of(e: dict[str, Any]) -> bool:
            return e["prediction"]["timestamp"] * 1000 >= base_ms + HEALTHY * WINDOW_MS

        chosen = [orjson.dumps(e) for e in events if drift_of(e) == in_drift]
        if not in_drift:
            chosen += [raw for raw, _reason in bad]
        order = rng.permutation(len(chosen))
        return [(str(i).encode(), chosen[i]) for i in order]

    watcher = AlertWatcher(bootstrap_servers, config.topics.alerts)
    try:
        with running_worker(config, [_reference()], labels_topic=labels_topic) as run:
            feed = Feed(bootstrap_servers, config.topics.predictions)
            labels = Feed(bootstrap_servers, labels_topic)
            feed.send(predictions)
            labels.send(phase(False))
            labels.send(phase(True))
            registry = run.worker.metrics.registry

            def counted() -> float:
                value = registry.get_sample_value("streamproc_labels_total", {"model": "credit"})
                return value or 0.0

            assert wait_until(lambda: counted() >= len(unique), 90), (counted(), len(unique))
            fired = watcher.wait_for(
                lambda a: a["check"] == "performance_drop" and a["status"] == "firing", 90
            )
            assert fired is not None, [(a["check"], a["summary"]) for a in watcher.alerts]

            def coverage() -> float | None:
                gauges = run.worker.metrics.model_gauges
                return gauges.value("label_coverage_ratio", ("credit", "1"))

            # labels may be joined before all their window's predictions are merged: the
            # gauge settles once they are
            assert wait_until(lambda: 0.7 < (coverage() or 0) < 0.9, 30), coverage()

            state_topic = f"{config.topics.profiles}-state"

            def windows() -> dict[int, WindowState]:
                return checkpointed_windows(bootstrap_servers, state_topic)

            def complete() -> bool:
                got = windows()
                return sum(w.performance.n for w in got.values() if w.performance) >= len(unique)

            assert wait_until(complete, 60, every_s=1.0)
            checkpointed = windows()
    finally:
        watcher.close()

    assert counted() == len(unique)
    # every label record counted once or dead-lettered once, each with its reason
    dlq = consume_n(bootstrap_servers, config.topics.deadletter, f"{prefix}.dlq.read",
                    len(bad), timeout_s=30, linger_s=1.0)  # fmt: skip
    from_labels = [
        dict((k, v.decode()) for k, v in m.headers() or [])
        for m in dlq
        if dict(m.headers() or []).get(SOURCE_TOPIC) == labels_topic.encode()
    ]
    assert Counter(h[REASON] for h in from_labels) == Counter(reason for _raw, reason in bad)
    assert counted() + len(from_labels) == len(unique) + len(bad)

    by_window: dict[int, list[dict[str, Any]]] = {}
    for e in unique:
        start = round(e["prediction"]["timestamp"] * 1000) // WINDOW_MS * WINDOW_MS
        by_window.setdefault(start, []).append(e)
    assert set(by_window) <= set(checkpointed)
    for start, rows in sorted(by_window.items()):
        perf = checkpointed[start].performance
        assert perf is not None and perf.n == len(rows)
        got, want = perf.metrics(), _sklearn(rows)
        for name in ("accuracy", "precision", "recall", "f1"):
            assert got[name] == pytest.approx(want[name], rel=1e-12), (start, name)
        assert got["brier"] == pytest.approx(want["brier"], rel=1e-9), start
        bound = got["roc_auc_error_bound"]
        assert bound is not None and abs(got["roc_auc"] - want["roc_auc"]) <= bound + 1e-12
        assert checkpointed[start].profile.row_count == RATE * WINDOW_MS // 1000
    assert fired["window"]["start"] >= _rfc(base_ms + HEALTHY * WINDOW_MS), fired
    validate("alert", fired)


def _rfc(ms: int) -> str:
    from streamproc.checks.alerts import rfc3339

    return rfc3339(ms)
