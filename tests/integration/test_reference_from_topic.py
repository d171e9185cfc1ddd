"""``streamproc reference build --from-topic`` on a real broker (issue #10, item 4).

Records with known event times (the Kafka timestamp set to the same instant) and a known
feature distribution go to a 3-partition topic; the reference is built from a sub-period,
and its row count, quantiles and category counts are checked against numpy on exactly the
records of that period, within the sketch's stated rank error. Once in the envelope, once
as a flat topic through a ``[mapping]`` file.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from confluent_kafka import Producer

from streamproc.cli.main import main
from streamproc.core.model_profile import ModelProfile
from streamproc.core.numeric_drift import rank_error
from streamproc.offline.profile_io import load_profile
from tests.support.kafka import create_topic

COUNTRIES = ["de", "fr", "us", "uk", "es"]
N = 3000
STEP_MS = 700


def rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes, int]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})
    for key, value, ts_ms in records:
        producer.produce(topic, value=value, key=key, timestamp=ts_ms)
        producer.poll(0)
    assert producer.flush(30) == 0


def data(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Event times (ms), amounts, countries, scores."""
    rng = np.random.default_rng(seed)
    base = (int(time.time()) - 3600) * 1000
    times = base + np.arange(N, dtype=np.int64) * STEP_MS
    amount = np.round(rng.lognormal(3, 1, N), 2)
    country = rng.choice(COUNTRIES, N, p=[0.4, 0.25, 0.2, 0.1, 0.05])
    score = rng.beta(2, 5, N)
    return times, amount, country, score


def build(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["reference", "build", "--no-progress", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def check_profile(
    profile: ModelProfile, amount: np.ndarray, country: np.ndarray, score: np.ndarray
) -> None:
    assert profile.row_count == len(amount)
    num = profile.features["amount"]
    assert num.valid_count == len(amount)
    assert num.mean == pytest.approx(float(amount.mean()), rel=1e-9)
    assert num.min == amount.min() and num.max == amount.max()
    assert num.kll is not None
    eps = rank_error(num.kll)
    qs = np.array([0.05, 0.25, 0.5, 0.75, 0.95])
    for q, v in zip(qs, num.quantiles(qs), strict=True):
        below, at_most = np.mean(amount < v), np.mean(amount <= v)
        assert below - eps <= q <= at_most + eps, (q, v, below, at_most, eps)
    cats = dict(profile.features["country"].top_categories(10))
    assert cats == dict(Counter(country.tolist()))
    assert profile.prediction is not None and profile.prediction.count == len(score)
    assert profile.prediction.mean == pytest.approx(float(score.mean()), rel=1e-9)


def test_reference_from_a_period_of_the_envelope_topic(
    bootstrap_servers: str,
    unique_topic: Callable[[str], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = unique_topic("predictions")
    create_topic(bootstrap_servers, topic, 3)
    times, amount, country, score = data(seed=1)
    recs: list[tuple[bytes | None, bytes, int]] = []
    for i in range(N):
        rec: dict[str, Any] = {
            "model": "fraud",
            "model_version": "3",
            "request_id": f"r{i}",
            "timestamp": int(times[i]),
            "features": {"amount": float(amount[i]), "country": str(country[i])},
            "prediction": {"score": float(score[i])},
        }
        recs.append((f"k{i}".encode(), orjson.dumps(rec), int(times[i])))
    t1, t2 = int(times[0]) + 600_000, int(times[0]) + 1_500_000
    bad_at = t1 + 10_000
    recs += [(b"x", b"{not json", bad_at), (b"y", b"[]", bad_at), (b"z", b'{"model": 1}', bad_at)]
    other = orjson.loads(recs[1000][1]) | {"model": "churn"}
    recs.append((b"o", orjson.dumps(other), int(times[1000])))
    # a producer's clock off by an hour: the Kafka timestamp is in the period, the event
    # time is not, so the record is read and left out
    skewed = orjson.loads(recs[1100][1]) | {"timestamp": int(times[1100]) - 3_600_000}
    recs.append((b"s", orjson.dumps(skewed), int(times[1100])))
    recs.sort(key=lambda r: r[2])  # in time order, as a live stream is
    produce(bootstrap_servers, topic, recs)

    inside = (times >= t1) & (times < t2)
    assert 0 < inside.sum() < N
    out_path = tmp_path / "fraud.profile"
    code, out, err = build(
        capsys,
        "--model",
        "fraud",
        "--from-topic",
        topic,
        "--from",
        rfc3339(t1),
        "--to",
        rfc3339(t2),
        "--bootstrap-servers",
        bootstrap_servers,
        "-o",
        str(out_path),
    )
    assert code == 0, err
    profile = load_profile(out_path)
    check_profile(profile, amount[inside], country[inside], score[inside])
    assert profile.model_version == "3"
    assert profile.metadata["taken_from"] == "production"
    assert profile.event_time_min == times[inside][0] / 1000
    assert f"{int(inside.sum()):,} rows" in out and "wrote" in out
    assert "taken from production" in err and "hides" not in out
    assert rfc3339(t1).removesuffix("Z") in err
    assert "3 dead-letter-worthy records skipped" in err
    assert "malformed_json" in err and "not_an_object" in err
    assert "1 of other models or versions" in err
    assert "1 with an event time outside the period" in err


def test_reference_from_a_mapped_flat_topic(
    bootstrap_servers: str,
    unique_topic: Callable[[str], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = unique_topic("flat")
    create_topic(bootstrap_servers, topic, 3)
    times, amount, country, score = data(seed=2)
    recs: list[tuple[bytes | None, bytes, int]] = [
        (
            f"req-{i}".encode(),
            orjson.dumps(
                {"amount": float(amount[i]), "country": str(country[i]), "score": float(score[i])}
            ),
            int(times[i]),
        )
        for i in range(N)
    ]
    produce(bootstrap_servers, topic, recs)
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(
        "[mapping]\n"
        'model = { const = "fraud" }\n'
        'model_version = { const = "1" }\n'
        'request_id = "$key"\n'
        'timestamp = "$timestamp"\n'
        'features = "*"\n'
        'prediction = { score = "/score" }\n',
        encoding="utf-8",
    )
    t2 = int(times[0]) + 1_800_000
    out_path = tmp_path / "flat.profile"
    code, _out, err = build(
        capsys,
        "--model",
        "fraud",
        "--from-topic",
        topic,
        "--from",
        "2h ago",  # before every record
        "--to",
        rfc3339(t2),
        "--mapping",
        str(mapping),
        "--bootstrap-servers",
        bootstrap_servers,
        "-o",
        str(out_path),
    )
    assert code == 0, err
    inside = times < t2
    profile = load_profile(out_path)
    assert sorted(profile.features) == ["amount", "country"]
    check_profile(profile, amount[inside], country[inside], score[inside])
    assert "no dead-letter-worthy records" in err


def test_no_rows_in_the_period_is_an_error(
    bootstrap_servers: str,
    unique_topic: Callable[[str], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = unique_topic("empty")
    create_topic(bootstrap_servers, topic, 1)
    code, _out, err = build(
        capsys,
        "--model",
        "fraud",
        "--from-topic",
        topic,
        "--from",
        "1h ago",
        "--bootstrap-servers",
        bootstrap_servers,
        "-o",
        str(tmp_path / "x.profile"),
    )
    assert code != 0
    assert "no rows of model 'fraud'" in err
    assert not (tmp_path / "x.profile").exists()
