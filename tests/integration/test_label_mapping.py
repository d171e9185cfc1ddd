"""Labels mapped from a business event, on a real broker (#10 "labels mapped from a
business event"): predictions in the normal envelope; a business-events topic of orders
(``{"order": {"id"}, "type": "chargeback" | "settled" | "shipped" | ..., "at_ms"}``,
keyed by order id, the record timestamp the event time) mapped by ``[labels_mapping]``
to labels — chargeback → 1, settled → 0, every other type no label. The label join
counts exactly the derived labels per prediction window, with scikit-learn's accuracy,
precision, recall and F1 on the same joined data; every business event is a counted
label, a counted non-label event (never dead-lettered), or dead-lettered once with a
reason. ``streamproc attach --sample --labels`` proposes that ``[labels_mapping]`` from a
sample of such a topic, and the join counts exactly the derived labels with it."""

from __future__ import annotations

import contextlib
import io
import time
import tomllib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from confluent_kafka import Producer
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from streamproc.cli.main import main
from streamproc.contracts.framing import REASON, SOURCE_TOPIC
from streamproc.core.model_profile import ModelProfile
from streamproc.core.reference_performance import build
from streamproc.monitor.state import WindowState
from tests.integration.monitor_harness import (
    Feed,
    checkpointed_windows,
    monitor_config,
    running_worker,
    wait_until,
)
from tests.support.kafka import consume_n, create_topic, latest_values

WINDOW_MS = 10_000
RATE = 100  # predictions per second of event time
WINDOWS = 4
LABELED = 0.7
DAY_MS = 86_400_000

LABELS_MAPPING = {
    "model": "fraud",
    "request_id": "$key",
    "timestamp": "$timestamp",
    "label": {"from": "/type", "map": {"chargeback": 1, "settled": 0}},
}


def _rows(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    score = rng.beta(2, 5, n)  # P(fraud)
    return {
        "f0": rng.normal(0, 1, n),
        "f1": rng.normal(3, 2, n),
        "score": score,
        "pred": (score >= 0.5).astype(int),
        "truth": (rng.random(n) < score).astype(int),
    }


def _envelope(oid: str, r: dict[str, np.ndarray], j: int, at_ms: int) -> bytes:
    """Row ``j`` of ``r`` as the prediction envelope of order ``oid`` at ``at_ms``."""
    return orjson.dumps(
        {
            "model": "fraud",
            "model_version": "1",
            "request_id": oid,
            "timestamp": at_ms / 1000,
            "features": {"f0": float(r["f0"][j]), "f1": float(r["f1"][j])},
            "prediction": {"label": int(r["pred"][j]), "score": float(r["score"][j])},
        }
    )


def _reference() -> ModelProfile:
    r = _rows(20_000, seed=31)
    prof = ModelProfile.build_reference(
        "fraud",
        "1",
        {"f0": r["f0"], "f1": r["f1"]},
        predictions=r["score"],
        predicted_labels=r["pred"].astype(object),
    )
    perf = build(list(r["truth"]), scores=r["score"], predicted=list(r["pred"]), positive="1")
    prof.metadata["performance"] = perf.to_meta()
    return prof


def test_labels_derived_from_business_events_meet_their_predictions(
    bootstrap_servers: str, unique_topic: Callable[[str], str]
) -> None:
    prefix = unique_topic("lmap")
    config = monitor_config(bootstrap_servers, prefix, labels_mapping=LABELS_MAPPING)
    orders_topic = f"{prefix}.orders"
    create_topic(bootstrap_servers, orders_topic, 3)  # the predictions topic has 4
    rng = np.random.default_rng(41)
    base_ms = (int(time.time() * 1000) - 3 * DAY_MS) // WINDOW_MS * WINDOW_MS
    n = RATE * WINDOWS * WINDOW_MS // 1000
    r = _rows(n, seed=42)
    pred_ms = base_ms + np.arange(n) * (1000 // RATE)

    predictions: list[tuple[bytes, bytes | None]] = []
    events: list[tuple[bytes, bytes, int]] = []  # (key, value, record timestamp ms)
    labeled: list[dict[str, Any]] = []  # (prediction, derived label) as sklearn sees them
    other_types: Counter[str] = Counter()

    def order_event(oid: str, kind: str | None, at_ms: int) -> None:
        body: dict[str, Any] = {"order": {"id": oid}, "at_ms": at_ms}
        if kind is not None:
            body["type"] = kind
        events.append((oid.encode(), orjson.dumps(body), at_ms))

    for j in range(n):
        oid = f"o{j}"
        predictions.append((oid.encode(), _envelope(oid, r, j, int(pred_ms[j]))))
        at_ms = int(pred_ms[j]) + int(rng.integers(60_000, 2 * DAY_MS))
        if rng.random() < 0.5:  # most orders ship first: an event that judges nothing
            kind = str(rng.choice(["shipped", "created", "refund_requested"]))
            order_event(oid, kind, at_ms - 30_000)
            other_types[kind] += 1
        if rng.random() < LABELED:
            truth = int(r["truth"][j])
            order_event(oid, "chargeback" if truth else "settled", at_ms)
            prediction = {"label": int(r["pred"][j]), "score": float(r["score"][j])}
            labeled.append({"label": truth, "prediction": prediction, "ms": int(pred_ms[j])})
    # events of an order that have no type at all: dead-lettered (missing_field), once
    untyped = 25
    for j in rng.choice(n, untyped, replace=False):
        order_event(f"o{j}", None, int(pred_ms[j]) + 90_000)
    order = rng.permutation(len(events))  # out of order across keys
    events = [events[i] for i in order]

    with running_worker(config, [_reference()], labels_topic=orders_topic) as run:
        Feed(bootstrap_servers, config.topics.predictions).send(predictions)
        producer = Producer({"bootstrap.servers": bootstrap_servers, "linger.ms": 5})
        for key, value, ts in events:
            while True:
                try:
                    producer.produce(orders_topic, key=key, value=value, timestamp=ts)
                    break
                except BufferError:
                    producer.poll(0.05)
        assert producer.flush(30) == 0
        registry = run.worker.metrics.registry

        def sample(name: str, **labels_: str) -> float:
            return registry.get_sample_value(name, labels_) or 0.0

        def counted() -> float:
            return sample("streamproc_labels_total", model="fraud")

        assert wait_until(lambda: counted() >= len(labeled), 120), (counted(), len(labeled))
        state_topic = f"{config.topics.profiles}-state"

        def windows() -> dict[int, WindowState]:
            return checkpointed_windows(bootstrap_servers, state_topic)

        def complete() -> bool:
            got = windows()
            return sum(w.performance.n for w in got.values() if w.performance) >= len(labeled)

        assert wait_until(complete, 60, every_s=1.0)
        checkpointed = windows()
        dlq = consume_n(bootstrap_servers, config.topics.deadletter, f"{prefix}.dlq.read",
                        untyped, timeout_s=60, linger_s=2.0)  # fmt: skip
        time.sleep(2)
        assert counted() == len(labeled)
        assert sample("streamproc_labels_forwarded_total") == len(labeled)
        non_labels = sample("streamproc_non_label_events_total")
        assert non_labels == sum(other_types.values())
        assert sample("streamproc_deadletter_total", reason="not_a_label") == 0
        assert sample("streamproc_join_events_total", outcome="duplicate_label") == 0

    # every business event: a counted label, a counted non-label event, or dead-lettered
    from_orders = [
        dict((k, v.decode()) for k, v in m.headers() or [])
        for m in dlq
        if dict(m.headers() or []).get(SOURCE_TOPIC) == orders_topic.encode()
    ]
    assert Counter(h[REASON] for h in from_orders) == {"missing_field": untyped}
    assert len(labeled) + non_labels + len(from_orders) == len(events)

    by_window: dict[int, list[dict[str, Any]]] = {}
    for e in labeled:
        by_window.setdefault(e["ms"] // WINDOW_MS * WINDOW_MS, []).append(e)
    assert set(by_window) <= set(checkpointed)
    for start, rows in sorted(by_window.items()):
        perf = checkpointed[start].performance
        assert perf is not None and perf.n == len(rows), (start, perf and perf.n, len(rows))
        got = perf.metrics()
        y = [e["label"] for e in rows]
        p = [e["prediction"]["label"] for e in rows]
        assert got["accuracy"] == pytest.approx(accuracy_score(y, p), rel=1e-12), start
        assert got["precision"] == pytest.approx(precision_score(y, p), rel=1e-12), start
        assert got["recall"] == pytest.approx(recall_score(y, p), rel=1e-12), start
        assert got["f1"] == pytest.approx(f1_score(y, p), rel=1e-12), start


# ---------------------------------------------------------------------------- attach --sample


def test_attach_sample_labels_proposes_the_derived_label_the_join_counts(
    bootstrap_servers: str, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    """``streamproc attach --sample --labels`` on a business-events topic, as a user runs
    it: it proposes the ``[labels_mapping]`` (chargeback → 1, settled → 0, the other event
    types no label) and the ``streamproc worker --labels-topic`` command; a worker with
    that mapping counts exactly the derived labels, per prediction window, and the other
    events as non-label events."""
    prefix = unique_topic("lattach")
    orders_topic = f"{prefix}.orders"
    create_topic(bootstrap_servers, orders_topic, 3)
    rng = np.random.default_rng(43)
    base_ms = (int(time.time() * 1000) - 3 * DAY_MS) // WINDOW_MS * WINDOW_MS
    n = RATE * 2 * WINDOW_MS // 1000  # two windows
    r = _rows(n, seed=44)
    pred_ms = base_ms + np.arange(n) * (1000 // RATE)
    predictions: list[tuple[bytes, bytes | None]] = []
    events: list[tuple[bytes, bytes, int]] = []
    labeled_per_window: Counter[int] = Counter()
    positives = neutral = 0
    for j in range(n):
        oid = f"o{j}"
        predictions.append((oid.encode(), _envelope(oid, r, j, int(pred_ms[j]))))
        at_ms = int(pred_ms[j]) + int(rng.integers(60_000, DAY_MS))
        kinds = [str(rng.choice(["shipped", "created", "refund_requested"]))]
        if rng.random() < LABELED:
            kinds.append("chargeback" if r["truth"][j] else "settled")
            labeled_per_window[int(pred_ms[j]) // WINDOW_MS * WINDOW_MS] += 1
            positives += int(r["truth"][j])
        neutral += 1
        for k, kind in enumerate(kinds):  # the neutral event first, as orders go
            body = {"order": {"id": oid}, "at_ms": at_ms + k * 30_000, "type": kind}
            events.append((oid.encode(), orjson.dumps(body), at_ms + k * 30_000))
    producer = Producer({"bootstrap.servers": bootstrap_servers, "linger.ms": 5})
    for key, value, ts in events:
        producer.produce(orders_topic, key=key, value=value, timestamp=ts)
        producer.poll(0)
    assert producer.flush(30) == 0

    out = io.StringIO()
    path = tmp_path / "labels.toml"
    with contextlib.redirect_stdout(out):
        code = main(["attach", "--sample", "--labels", "--bootstrap-servers", bootstrap_servers,
                     "--topic", orders_topic, "--model", "fraud", "--predictions-topic",
                     f"{prefix}.predictions", "--write", str(path)])  # fmt: skip
    printed = out.getvalue()
    assert code == 0, printed
    assert "[labels_mapping]" in printed and f"--labels-topic {orders_topic}" in printed
    proposed = tomllib.loads(path.read_text())["labels_mapping"]
    assert proposed == {
        "model": "fraud",
        "request_id": "/order/id",
        "timestamp": "/at_ms",
        "label": {"from": "/type", "map": {"chargeback": 1, "settled": 0}},
    }

    config = monitor_config(bootstrap_servers, prefix, labels_mapping=proposed,
                            kafka={"start_from": "earliest"})  # fmt: skip
    labeled = sum(labeled_per_window.values())
    with running_worker(config, [_reference()], labels_topic=orders_topic) as run:
        Feed(bootstrap_servers, config.topics.predictions).send(predictions)
        registry = run.worker.metrics.registry

        def sample(name: str, **labels_: str) -> float:
            return registry.get_sample_value(name, labels_) or 0.0

        assert wait_until(lambda: sample("streamproc_labels_total", model="fraud") >= labeled, 120)
        state_topic = f"{config.topics.profiles}-state"

        def performance() -> dict[int, int]:
            out = {}
            for key, value in latest_values(bootstrap_servers, state_topic).items():
                if value is not None and orjson.loads(key)[0] == "w":
                    w = WindowState.from_bytes(value)
                    out[w.start_ms] = w.performance.n if w.performance else 0
            return out

        assert wait_until(lambda: sum(performance().values()) >= labeled, 60, every_s=1.0)
        time.sleep(2)
        assert sample("streamproc_labels_total", model="fraud") == labeled
        assert sample("streamproc_non_label_events_total") == neutral
        assert sample("streamproc_deadletter_total", reason="missing_field") == 0
        assert sample("streamproc_join_events_total", outcome="duplicate_label") == 0
        assert sample("streamproc_join_events_total", outcome="correction") == 0
        assert performance() == dict(labeled_per_window)
    assert 0 < positives < labeled
