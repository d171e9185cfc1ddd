"""Attaching to topics of the user's own shape, on a real broker (issue #10).

A flat JSON topic (constant model, Kafka key as request id, Kafka record timestamp as
event time), a multiclass probability map under nested metadata, a first start at a time
in the middle of the data, and ``streamproc attach --sample`` on those topics, whose
proposed mapping, fed back to the worker, counts the same records. Expected counts come
from the produced data in plain integer arithmetic.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from confluent_kafka import Producer

from streamproc.cli.main import main
from streamproc.config import MonitorConfig
from streamproc.core.model_profile import ModelProfile
from streamproc.monitor.references import ReferenceSet
from streamproc.monitor.state import WindowState
from streamproc.monitor.worker import Worker, state_topic_name
from tests.integration.monitor_harness import monitor_config, wait_until
from tests.support.kafka import create_topic, latest_values

WINDOW_MS = 10_000
COUNTRIES = ["de", "fr", "us", "uk", "es"]
CLASSES = ["cat", "dog", "eel"]

Record = tuple[bytes | None, bytes, int]
"""(Kafka key, value, Kafka timestamp ms)."""


def produce(bootstrap: str, topic: str, records: list[Record]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})
    for key, value, ts_ms in records:
        producer.produce(topic, value=value, key=key, timestamp=ts_ms)
        producer.poll(0)
    assert producer.flush(30) == 0


@contextlib.contextmanager
def worker_on(config: MonitorConfig, references: list[ModelProfile]) -> Iterator[Worker]:
    """A worker on an existing predictions topic; stopped (and checkpointed) on exit."""
    worker = Worker(config, ReferenceSet.of(references), serve_metrics=False)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert worker.ingest.ready.wait(60) and worker.aggregate.ready.wait(60), worker.errors
        yield worker
    finally:
        stop.set()
        thread.join(60)
    assert not worker.errors, worker.errors


def drained(worker: Worker, model: str, n: int) -> Callable[[], bool]:
    reg = worker.metrics.registry

    def value(name: str, **labels: str) -> float:
        return reg.get_sample_value(name, labels) or 0.0

    def done() -> bool:
        published = value("streamproc_deltas_published_total")
        return (
            value("streamproc_events_total", model=model) >= n
            and published > 0
            and value("streamproc_deltas_applied_total") >= published
        )

    return done


def windows(bootstrap: str, config: MonitorConfig) -> dict[int, ModelProfile]:
    """Window start (ms) → its checkpointed profile (one model per test)."""
    out: dict[int, ModelProfile] = {}
    state = state_topic_name(config.topics.profiles)
    for key, value in latest_values(bootstrap, state, timeout_s=30).items():
        if value is not None and orjson.loads(key)[0] == "w":
            window = WindowState.from_bytes(value)
            out[window.start_ms] = window.profile
    return out


def expected(times_ms: list[int]) -> dict[int, int]:
    return dict(Counter(t // WINDOW_MS * WINDOW_MS for t in times_ms))


def counted(
    bootstrap: str, config: MonitorConfig, model: str, n: int, refs: list[Any]
) -> dict[int, int]:
    """Run a worker until it counted ``n`` records of ``model``; rows per window."""
    with worker_on(config, refs) as worker:
        assert wait_until(drained(worker, model, n), 90), "the worker did not count them all"
        time.sleep(0.6)  # one more flush: nothing beyond n arrives
        got = worker.metrics.registry.get_sample_value("streamproc_events_total", {"model": model})
        assert got == n
    return {start: p.row_count for start, p in windows(bootstrap, config).items()}


def attach_sample(bootstrap: str, topic: str, path: Path, *extra: str) -> dict[str, Any]:
    """Run ``streamproc attach --sample`` as a user would; its proposed [mapping]."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(
            [
                "attach",
                "--sample",
                "--bootstrap-servers",
                bootstrap,
                "--topic",
                topic,
                "--count",
                "300",
                "--write",
                str(path),
                *extra,
            ]
        )
    assert code == 0, out.getvalue()
    assert "streamproc worker" in out.getvalue() and "[mapping]" in out.getvalue()
    return tomllib.loads(path.read_text())["mapping"]


# ---------------------------------------------------------------------------- flat


def flat_records(n: int, t0_ms: int, seed: int) -> tuple[list[Record], dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    amount = np.round(rng.lognormal(3, 1, n), 2)
    country = rng.choice(COUNTRIES, n)
    score = rng.beta(2, 5, n)
    recs = []
    for i in range(n):
        value = {"amount": float(amount[i]), "country": str(country[i]), "score": float(score[i])}
        recs.append((f"req-{seed}-{i}".encode(), orjson.dumps(value), t0_ms + i * 50))
    return recs, {"amount": amount, "country": country.astype(object), "score": score}


def flat_reference() -> ModelProfile:
    rng = np.random.default_rng(5)
    n = 20_000
    return ModelProfile.build_reference(
        "fraud",
        "1",
        {"amount": rng.lognormal(3, 1, n), "country": rng.choice(COUNTRIES, n).astype(object)},
        predictions=rng.beta(2, 5, n),
    )


def test_flat_topic_constant_model_key_and_record_timestamp(
    bootstrap_servers: str, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    prefix = unique_topic("flat")
    mapping = {
        "model": "fraud",
        "model_version": "1",
        "request_id": "$key",
        "timestamp": "$timestamp",
        "features": ["amount", "country"],
        "prediction": {"score": "/score"},
    }
    config = monitor_config(bootstrap_servers, prefix, mapping=mapping)
    topic = config.topics.predictions
    create_topic(bootstrap_servers, topic, 3)
    now_ms = int(time.time() * 1000)
    stale, _ = flat_records(200, now_ms - 3 * 3_600_000, seed=1)  # before the default 1h ago
    recs, _cols = flat_records(2_000, now_ms - 20 * 60_000, seed=2)  # 100 s, 11 windows
    unkeyed = [(None, recs[0][1], recs[0][2])]  # no key: request_id is missing
    produce(bootstrap_servers, topic, stale + recs + unkeyed)
    times = [t for _, _, t in recs]
    assert counted(bootstrap_servers, config, "fraud", len(recs), [flat_reference()]) == expected(
        times
    )
    assert len(expected(times)) >= 10

    # attach --sample proposes a mapping that counts the same records
    proposed = attach_sample(bootstrap_servers, topic, tmp_path / "m.toml", "--model", "fraud")
    assert proposed["request_id"] == "$key" and proposed["timestamp"] == "$timestamp"
    assert proposed["prediction"] == {"score": "/score"} and proposed["features"] == "*"
    again = monitor_config(
        bootstrap_servers,
        unique_topic("flat-proposed"),
        mapping=proposed,
        topics={"predictions": topic},
    )
    assert counted(bootstrap_servers, again, "fraud", len(recs), [flat_reference()]) == expected(
        times
    )


# ---------------------------------------------------------------------------- multiclass


def multiclass_records(n: int, t0_ms: int) -> tuple[list[Record], np.ndarray]:
    rng = np.random.default_rng(9)
    probs = rng.dirichlet([2.0, 1.0, 1.0], n)
    x = rng.normal(0, 1, n)
    recs = []
    for i in range(n):
        value = {
            "meta": {"model": {"name": "animals", "version": "4"}},
            "id": f"a-{i}",
            "ts_ms": t0_ms + i * 40,
            "x": float(x[i]),
            "probs": {c: float(probs[i, j]) for j, c in enumerate(CLASSES)},
        }
        recs.append((None, orjson.dumps(value), t0_ms))
    return recs, probs


def multiclass_reference() -> ModelProfile:
    rng = np.random.default_rng(6)
    n = 20_000
    probs = rng.dirichlet([2.0, 1.0, 1.0], n)
    columns: dict[str, Any] = {"x": rng.normal(0, 1, n)}
    columns.update({f"p_{c}": probs[:, j] for j, c in enumerate(CLASSES)})
    labels = np.array(CLASSES, dtype=object)[probs.argmax(axis=1)]
    return ModelProfile.build_reference(
        "animals", "4", columns, predictions=probs.max(axis=1), predicted_labels=labels
    )


def label_counts(profiles: dict[int, ModelProfile]) -> Counter[str]:
    total: Counter[str] = Counter()
    for profile in profiles.values():
        assert profile.predicted_label is not None
        total.update(dict(profile.predicted_label.top_categories(10)))
    return total


def test_multiclass_probability_map_and_nested_model_name(
    bootstrap_servers: str, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    prefix = unique_topic("multi")
    mapping = {
        "model": "/meta/model/name",
        "model_version": "/meta/model/version",
        "request_id": "/id",
        "timestamp": "/ts_ms",
        "features": ["x"],
        "prediction": {"probabilities": "/probs", "class_score_prefix": "p_"},
    }
    config = monitor_config(bootstrap_servers, prefix, mapping=mapping)
    topic = config.topics.predictions
    create_topic(bootstrap_servers, topic, 2)
    t0 = int(time.time() * 1000) - 10 * 60_000
    recs, probs = multiclass_records(1_500, t0)
    produce(bootstrap_servers, topic, recs)
    times = [t0 + i * 40 for i in range(len(recs))]
    top = Counter(CLASSES[j] for j in probs.argmax(axis=1).tolist())
    ref = multiclass_reference()
    assert counted(bootstrap_servers, config, "animals", len(recs), [ref]) == expected(times)
    profiles = windows(bootstrap_servers, config)
    assert label_counts(profiles) == top
    some = next(iter(profiles.values()))
    assert {"x", "p_cat", "p_dog", "p_eel"} <= set(some.features)
    assert sum(p.features["p_dog"].count for p in profiles.values()) == len(recs)

    proposed = attach_sample(bootstrap_servers, topic, tmp_path / "m.toml")
    assert proposed["model"] == "/meta/model/name"
    assert proposed["prediction"] == {"probabilities": "/probs"}
    again = monitor_config(
        bootstrap_servers,
        unique_topic("multi-proposed"),
        mapping=proposed,
        topics={"predictions": topic},
    )
    assert counted(bootstrap_servers, again, "animals", len(recs), [ref]) == expected(times)
    assert label_counts(windows(bootstrap_servers, again)) == top


# ---------------------------------------------------------------------------- start_from


def test_first_start_from_a_time_in_the_middle_counts_only_the_later_records(
    bootstrap_servers: str, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    prefix = unique_topic("startfrom")
    t0 = (int(time.time() * 1000) - 30 * 60_000) // 1000 * 1000
    recs, _ = flat_records(2_000, t0, seed=4)  # 100 s of record timestamps
    mid_ms = t0 + 1_000 * 50 + 25  # between two records: 50.025 s in
    mid = datetime.fromtimestamp(mid_ms / 1000, UTC).isoformat(timespec="milliseconds")
    mapping = {
        "model": "fraud",
        "model_version": "1",
        "request_id": "$key",
        "timestamp": "$timestamp",
        "features": "*",
        "prediction": {"score": "/score"},
    }
    config = monitor_config(bootstrap_servers, prefix, mapping=mapping, kafka={"start_from": mid})
    create_topic(bootstrap_servers, config.topics.predictions, 4)
    produce(bootstrap_servers, config.topics.predictions, recs)
    later = [t for _, _, t in recs if t >= mid_ms]
    assert 0 < len(later) < len(recs)
    assert counted(bootstrap_servers, config, "fraud", len(later), [flat_reference()]) == expected(
        later
    )
    # attach --sample on this topic too: the mapping it proposes is the one above
    proposed = attach_sample(
        bootstrap_servers, config.topics.predictions, tmp_path / "m.toml", "--model", "fraud"
    )
    want = {k: v for k, v in mapping.items() if k != "model_version"}
    assert {k: proposed.get(k) for k in want} == want, proposed
