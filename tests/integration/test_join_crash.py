"""kill -9 during the label join: identical metrics afterwards.

A real `streamproc worker --labels-topic` subprocess (stateful join, ``[join] grace =
"10s"``) takes a paced stream of predictions (4 partitions) and of label events that
carry only ``(model, request_id, timestamp, label)`` (3 partitions, keyed by request id;
some sent before their prediction, some twice, some for ids no prediction has), and is
killed with SIGKILL three times while both flow, restarted each time with the same
command. Afterwards every prediction window's realized performance, read from the
compacted state topic, counts each labeled prediction exactly once and equals
scikit-learn's on the joined data, and the dead-letter topic holds each label of an
unknown id exactly once. ``streamproc_labels_total`` is per process, so only the state
topic is summed."""

from __future__ import annotations

import bisect
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from streamproc.broker.local import free_port
from streamproc.contracts.framing import REASON, SOURCE_TOPIC
from streamproc.monitor.state import WindowState
from tests.integration.monitor_harness import (
    Feed,
    checkpointed_windows,
    save,
    scrape,
    wait_until,
    worker_command,
    worker_config,
)
from tests.integration.test_labels import _reference, _rows, _sklearn
from tests.support.kafka import create_topic

WINDOW_MS = 10_000
RATE = 250.0  # predictions per second, of wall-clock time and of event time
SECONDS = 44
KILL_AT_S = (8.0, 19.0, 30.0)  # into the feed: each while predictions and labels flow
LABELED = 0.8
EARLY = 0.05  # of the labels: sent a second before their prediction
DUPLICATED = 0.03  # of the labels: the same label sent again a few seconds later
GHOSTS = 20  # labels for request ids no prediction has
SLICE_S = 0.05


def _read_committed(bootstrap: str, topic: str) -> list[Any]:
    """Every committed record of ``topic`` (read_committed, beginning to end)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}.read.{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        parts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions]
        consumer.assign(parts)
        left, out = {tp.partition for tp in parts}, []
        deadline = time.monotonic() + 30
        while left and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                err = msg.error()
                if err is None:
                    out.append(msg)
                elif err.code() == KafkaError._PARTITION_EOF:
                    left.discard(msg.partition())
        assert not left, f"{topic}: partitions {left} not read to their end"
        return out
    finally:
        consumer.close()


def _windows(bootstrap: str, state_topic: str) -> dict[int, WindowState]:
    return checkpointed_windows(bootstrap, state_topic)


def test_kill_9_during_the_join_leaves_identical_metrics(
    bootstrap_servers: str, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    prefix = unique_topic("joincrash")
    predictions_topic, labels_topic = f"{prefix}.predictions", f"{prefix}.labels"
    create_topic(bootstrap_servers, predictions_topic, 4)
    create_topic(bootstrap_servers, labels_topic, 3)
    reference = save(_reference(), tmp_path / "credit.profile")
    join = {"grace": "10s", "state_dir": str(tmp_path / "join")}
    config = worker_config(tmp_path / "monitor.toml", prefix, join=join)
    port = free_port()
    command = worker_command(
        bootstrap_servers,
        prefix,
        config=config,
        reference=reference,
        metrics_port=port,
        instance_id="w0",
        labels_topic=labels_topic,
    )

    # the stream: event time an hour back (labels up to 20 min late stay in the past),
    # advancing as fast as wall-clock time
    rng = np.random.default_rng(61)
    n = int(RATE * SECONDS)
    base_ms = (int(time.time() * 1000) - 3_600_000) // WINDOW_MS * WINDOW_MS
    r = _rows(n, seed=62)
    # (due s, kind, key, value); kind 0: a prediction, 1: a first label, 2: another label
    schedule: list[tuple[float, int, bytes, bytes]] = []
    labeled: list[dict[str, Any]] = []  # (prediction, first label) as sklearn sees them
    per_window: Counter[int] = Counter()
    for j in range(n):
        rid, due = f"c{j}", j / RATE
        pred_ms = base_ms + 1 + int(j * 1000 / RATE)  # odd: never on a window's edge
        per_window[pred_ms // WINDOW_MS * WINDOW_MS] += 1
        prediction = {"label": r["pred"][j], "score": float(r["score"][j])}
        envelope = {
            "model": "credit",
            "model_version": "1",
            "request_id": rid,
            "timestamp": pred_ms / 1000,
            "features": {"f0": float(r["f0"][j]), "f1": float(r["f1"][j])},
            "prediction": prediction,
        }
        schedule.append((due, 0, rid.encode(), orjson.dumps(envelope)))
        if rng.random() >= LABELED:
            continue
        label = {
            "model": "credit",
            "request_id": rid,
            "timestamp": (pred_ms + int(rng.integers(30_000, 1_200_000))) / 1000,
            "label": r["truth"][j],
        }
        raw = orjson.dumps(label)
        lag = -1.0 if rng.random() < EARLY else float(rng.uniform(0.5, 3.0))
        schedule.append((max(0.0, due + lag), 1, rid.encode(), raw))
        if rng.random() < DUPLICATED:
            schedule.append((due + lag + float(rng.uniform(1.0, 5.0)), 2, rid.encode(), raw))
        labeled.append({"label": r["truth"][j], "prediction": prediction, "ms": pred_ms})
    ghosts = [f"ghost{j}" for j in range(GHOSTS)]
    for rid in ghosts:  # dead-lettered once event time passes them by the grace
        due = float(rng.uniform(2.0, 0.7 * SECONDS))
        at_s = (base_ms + int(due * 1000)) / 1000
        event = {"model": "credit", "request_id": rid, "timestamp": at_s, "label": "deny"}
        schedule.append((due, 2, rid.encode(), orjson.dumps(event)))
    schedule.sort(key=lambda item: (item[0], item[1]))  # a prediction before its labels
    dues = [item[0] for item in schedule]
    last_first_label = max(i for i, item in enumerate(schedule) if item[1] == 1)
    sent = [0]  # schedule[:sent[0]] has been delivered

    feeds = (Feed(bootstrap_servers, predictions_topic), Feed(bootstrap_servers, labels_topic))
    feed_errors: list[BaseException] = []

    def feed() -> None:
        try:
            began, i = time.monotonic(), 0
            while i < len(schedule):
                now = time.monotonic() - began
                k = bisect.bisect_right(dues, now)
                for which in (0, 1):
                    due: list[tuple[bytes, bytes | None]] = [
                        (key, v) for _d, w, key, v in schedule[i:k] if min(w, 1) == which
                    ]
                    if due:
                        feeds[which].send(due)
                i = sent[0] = k
                time.sleep(max(0.0, began + now + SLICE_S - time.monotonic()))
        except BaseException as exc:
            feed_errors.append(exc)

    log = (tmp_path / "worker.log").open("ab")

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def counter(name: str) -> float:
        return scrape(port, name) or 0.0

    feeder = threading.Thread(target=feed, daemon=True)
    proc = start()
    recovery: list[tuple[float | None, float | None]] = []  # (labels, deltas) seconds
    flowing: list[bool] = []  # labels that count were still to come at each kill
    try:
        assert wait_until(lambda: scrape(port, "streamproc_labels_total") is not None, 90)
        feeder.start()
        fed = time.monotonic()
        assert wait_until(lambda: counter("streamproc_labels_total") > 0, 90), "no label joined"
        for at_s in KILL_AT_S:
            time.sleep(max(1.0, fed + at_s - time.monotonic()))
            flowing.append(sent[0] <= last_first_label)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            restarted = time.monotonic()
            proc = start()
            labels_s = deltas_s = None
            # with no label left to count there may be nothing left to join: only measured
            deadline = restarted + (60 if flowing[-1] else 10)
            while (labels_s is None or deltas_s is None) and time.monotonic() < deadline:
                if labels_s is None and counter("streamproc_labels_total") > 0:
                    labels_s = time.monotonic() - restarted
                if deltas_s is None and counter("streamproc_deltas_applied_total") > 0:
                    deltas_s = time.monotonic() - restarted
                time.sleep(0.1)
            recovery.append((labels_s, deltas_s))
            assert labels_s is not None or not flowing[-1], (
                f"no label joined within 60 s of a restart: {recovery}"
            )
        assert any(flowing), "every kill came after the last label was sent (a far too slow worker)"
        feeder.join(SECONDS + 60)
        assert not feeder.is_alive() and not feed_errors, feed_errors

        state_topic = f"{prefix}.profiles-state"

        def settled() -> tuple[int, bool]:
            """(labeled predictions counted, every window's rows checkpointed)."""
            windows = _windows(bootstrap_servers, state_topic)
            rows = {s: w.profile.row_count for s, w in windows.items()}
            joined = sum(w.performance.n for w in windows.values() if w.performance)
            return joined, rows == dict(per_window)

        def done() -> bool:
            joined, rows_complete = settled()
            return joined > len(labeled) or (joined == len(labeled) and rows_complete)

        assert wait_until(done, 90, every_s=1.0), (settled(), len(labeled))

        def dead_letters() -> list[dict[str, Any]]:
            """Every committed dead-letter (its value's fields and its headers)."""
            return [
                {**orjson.loads(m.value()), **{k: v.decode() for k, v in m.headers() or []}}
                for m in _read_committed(bootstrap_servers, f"{prefix}.dlq")
            ]

        assert wait_until(lambda: len(dead_letters()) >= GHOSTS, 30, every_s=1.0)
        time.sleep(3)  # anything counted twice would have landed by now
        windows = _windows(bootstrap_servers, state_topic)
        dlq = dead_letters()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    print(
        "restart-to-progress seconds (labels_total, deltas_applied_total): "
        + str([tuple(None if s is None else round(s, 2) for s in pair) for pair in recovery])
        + f"; labels still flowing at each kill: {flowing}"
    )

    # the dead-letters: every label of an unknown id exactly once, and nothing else
    assert Counter(d["request_id"] for d in dlq) == Counter(ghosts), Counter(
        d["request_id"] for d in dlq
    )
    assert {(d[REASON], d[SOURCE_TOPIC]) for d in dlq} == {("no_prediction", labels_topic)}
    # every window: its predictions once, its labeled predictions once, sklearn's metrics
    by_window: dict[int, list[dict[str, Any]]] = {}
    for e in labeled:
        by_window.setdefault(int(e["ms"]) // WINDOW_MS * WINDOW_MS, []).append(e)
    assert {s: w.profile.row_count for s, w in windows.items()} == dict(per_window)
    for at_ms, rows in sorted(by_window.items()):
        perf = windows[at_ms].performance
        assert perf is not None and perf.n == len(rows), (at_ms, perf and perf.n, len(rows))
        got, want = perf.metrics(), _sklearn(rows)
        for name in ("accuracy", "precision", "recall", "f1"):
            assert got[name] == pytest.approx(want[name], rel=1e-12), (at_ms, name)
        assert got["brier"] == pytest.approx(want["brier"], rel=1e-9), at_ms
        auc, bound = got["roc_auc"], got["roc_auc_error_bound"]
        assert auc is not None and bound is not None, at_ms
        assert abs(auc - want["roc_auc"]) <= bound + 1e-12, at_ms
