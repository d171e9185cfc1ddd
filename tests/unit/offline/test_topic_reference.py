"""The pure part of ``reference build --from-topic``: the period, the offsets to read, and
the decode → filter → profile of chunks (streamproc/offline/topic_reference.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from streamproc.contracts.mapping_config import compile_mapping
from streamproc.core.kinds import FeatureKind
from streamproc.offline.errors import InputError
from streamproc.offline.topic_reference import (
    Chunk,
    PartitionSpan,
    Period,
    TopicReference,
    parse_period,
    plan_spans,
    production_warning,
)

T0 = 1_714_557_600_000  # 2024-05-01T10:00:00Z
NOW = T0 + 86_400_000


# ------------------------------------------------------------------------- period


def test_period_from_rfc3339_and_durations_ago() -> None:
    p = parse_period("2024-05-01T10:00:00Z", "2024-05-01T11:00:00+00:00", now_ms=NOW)
    assert (p.start_ms, p.end_ms) == (T0, T0 + 3_600_000)
    p = parse_period("2h ago", "30m ago", now_ms=NOW)
    assert (p.start_ms, p.end_ms) == (NOW - 7_200_000, NOW - 1_800_000)
    assert parse_period("1d ago", None, now_ms=NOW).end_ms == NOW
    assert p.describe().endswith("Z") and " to " in p.describe()


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("earliest", None, "--from takes an RFC 3339"),
        ("1h ago", "latest", "--to takes an RFC 3339"),
        ("yesterday", None, "--from: not a start position"),
        ("1h ago", "2h ago", "--from must be before --to"),
        ("1h ago", "1h ago", "--from must be before --to"),
    ],
)
def test_period_errors(start: str, end: str | None, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_period(start, end, now_ms=NOW)


def test_period_is_half_open() -> None:
    p = Period(T0, T0 + 1000)
    s = np.array([T0 - 1, T0, T0 + 999, T0 + 1000], dtype=np.float64) / 1000
    assert p.contains_s(s).tolist() == [False, True, True, False]


# ------------------------------------------------------------------------- offsets


def test_spans_from_offsets_for_times_and_watermarks() -> None:
    spans = plan_spans({0: 5, 1: -1, 2: None, 3: 2}, {0: (0, 10), 1: (0, 7), 2: (3, 3), 3: (4, 9)})
    assert [(s.partition, s.start, s.end, s.done) for s in spans] == [
        (0, 5, 10, False),
        (1, 7, 7, True),  # no record that late: nothing to read
        (2, 3, 3, True),
        (3, 4, 9, False),  # a looked-up offset below the low watermark starts at it
    ]


def test_span_stops_at_the_first_record_past_the_end() -> None:
    span = PartitionSpan(0, 10, 100)
    assert span.admit(10, T0, T0 + 50)
    assert span.admit(11, T0 + 49, T0 + 50)
    assert not span.admit(12, T0 + 50, T0 + 50)
    assert span.done and span.stopped_at == 12 and span.position == 12
    assert not span.admit(13, T0, T0 + 50)  # never again, even an earlier timestamp
    again = span.replay()
    assert (again.start, again.end, again.done) == (10, 12, False)


def test_span_stops_at_its_end_offset_and_at_eof() -> None:
    span = PartitionSpan(1, 0, 2)
    assert span.admit(0, None, T0) and span.admit(1, None, T0)  # no timestamp: read
    assert span.done and span.stopped_at is None
    late = PartitionSpan(1, 0, 5)
    assert not late.admit(7, T0, T0 + 1)  # records appended after the read began
    assert late.done
    eof = PartitionSpan(2, 0, 5)
    assert eof.admit(3, T0, T0 + 1)
    eof.reached_end()  # offset 4 was a transaction marker
    assert eof.done and eof.replay().end == 4


# ------------------------------------------------------------------------- chunks


def envelope(i: int, ts_ms: int, **overrides: Any) -> bytes:
    rec: dict[str, Any] = {
        "model": "fraud",
        "model_version": "3",
        "request_id": f"r{i}",
        "timestamp": ts_ms,
        "features": {"amount": float(i % 97), "country": ["de", "fr", "us"][i % 3]},
        "prediction": {"score": (i % 10) / 10},
    }
    rec.update(overrides)
    return orjson.dumps(rec)


def chunk_of(values: list[bytes | None], ts: list[int | None] | None = None) -> Chunk:
    chunk = Chunk()
    for i, v in enumerate(values):
        chunk.append(v, f"k{i}".encode(), ts[i] if ts else None, None)
    return chunk


def builder(**kw: Any) -> TopicReference:
    args: dict[str, Any] = {
        "model": "fraud",
        "model_version": None,
        "period": Period(T0, T0 + 1_000_000),
        "source": "kafka:predictions",
        "now_ms": NOW,
    }
    args.update(kw)
    return TopicReference(**args)


def records(n: int, step_ms: int = 1000, start: int = T0 - 100_000) -> list[tuple[bytes, int]]:
    return [(envelope(i, start + i * step_ms), start + i * step_ms) for i in range(n)]


def test_rows_in_the_period_only_and_the_skipped_by_reason() -> None:
    recs = records(1300)  # 100 before the period, 1000 in it, 200 after
    values: list[bytes | None] = [v for v, _ in recs]
    values += [None, b"{not json", envelope(0, T0, model="other")]
    ref = builder()
    ref.add(chunk_of(values))
    profile = ref.finish()
    inside = [t for _, t in recs if T0 <= t < T0 + 1_000_000]
    assert profile.row_count == len(inside) == 1000
    assert profile.model_version == "3" and profile.metadata["taken_from"] == "production"
    assert profile.event_time_min == inside[0] / 1000
    assert profile.event_time_max == inside[-1] / 1000
    c = ref.counts
    assert (c.records, c.rows, c.outside_period) == (1303, 1000, 300)
    assert c.rejects == {"malformed_json": 2}
    assert c.other_models == {"other 3": 1}
    text = production_warning(ref, "predictions")
    assert "taken from production" in text and "1000 rows profiled of 1303 records" in text
    assert "2 dead-letter-worthy records skipped: 2 malformed_json" in text


def test_chunking_does_not_change_the_profile() -> None:
    values: list[bytes | None] = [v for v, _ in records(1300)]
    whole = builder()
    whole.add(chunk_of(values))
    parts = builder()
    for lo in range(0, len(values), 97):  # the fast path serves later chunks
        parts.add(chunk_of(values[lo : lo + 97]))
    a, b = whole.finish(), parts.finish()
    assert a.row_count == b.row_count == 1000
    for name in ("amount", "country"):
        fa, fb = a.features[name], b.features[name]
        assert fa.kind is fb.kind and fa.count == fb.count and fa.null_count == fb.null_count
    assert a.features["country"].top_categories() == b.features["country"].top_categories()
    assert a.features["amount"].mean == pytest.approx(b.features["amount"].mean)
    assert a.prediction is not None and b.prediction is not None
    assert a.prediction.count == b.prediction.count == 1000


def test_a_feature_first_seen_later_is_null_before() -> None:
    ref = builder()
    ref.add(chunk_of([envelope(i, T0 + i) for i in range(50)]))
    late = [
        envelope(i, T0 + 100 + i, features={"amount": 1.0, "country": "de", "age": 30 + i})
        for i in range(20)
    ]
    ref.add(chunk_of(late))  # type: ignore[arg-type]
    profile = ref.finish()
    age = profile.features["age"]
    assert age.kind is FeatureKind.NUMERIC
    assert (age.count, age.null_count, age.valid_count) == (70, 50, 20)


def test_model_version_filter_and_several_versions_refused() -> None:
    values = [envelope(i, T0 + i, model_version=str(i % 2)) for i in range(100)]
    ref = builder(model_version="1")
    ref.add(chunk_of(values))  # type: ignore[arg-type]
    assert ref.finish().row_count == 50
    assert ref.counts.other_models == {"fraud 0": 50}
    mixed = builder()
    mixed.add(chunk_of(values))  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"several versions of fraud.*--model-version"):
        mixed.finish()


def test_no_rows_says_what_was_read() -> None:
    ref = builder(model="nobody")
    ref.add(chunk_of([envelope(i, T0 + i) for i in range(10)]))  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"no rows of model 'nobody'.*other models: fraud 3: 10"):
        ref.finish()


def test_categorical_override_features_and_exclude() -> None:
    ref = builder(categorical=["amount"], exclude=["country"])
    ref.add(chunk_of([envelope(i, T0 + i) for i in range(30)]))  # type: ignore[arg-type]
    profile = ref.finish()
    assert list(profile.features) == ["amount"]
    assert profile.features["amount"].kind is FeatureKind.CATEGORICAL


def test_a_mapped_flat_record_with_the_kafka_timestamp() -> None:
    mapping = compile_mapping(
        {
            "model": {"const": "fraud"},
            "model_version": {"const": "1"},
            "request_id": "$key",
            "timestamp": "$timestamp",
            "features": ["amount", "country"],
            "prediction": {"score": "/score"},
        }
    )
    flat = [
        orjson.dumps({"amount": i * 1.0, "country": "de" if i % 4 else "fr", "score": 0.5})
        for i in range(200)
    ]
    ts = [T0 - 50 + i for i in range(200)]
    ref = builder(mapping=mapping)
    ref.add(chunk_of(flat, ts))  # type: ignore[arg-type]
    ref.add(chunk_of([b"[1, 2]"], [T0]))
    profile = ref.finish()
    assert profile.row_count == 150  # event times T0 .. T0+149
    assert profile.model_version == "1"
    assert sorted(profile.features) == ["amount", "country"]
    counts = dict(profile.features["country"].top_categories())
    expected_fr = sum(1 for i in range(50, 200) if i % 4 == 0)
    assert counts == {"fr": expected_fr, "de": 150 - expected_fr}
    assert ref.counts.rejects == {"not_an_object": 1}


def test_joint_pass_installs_fenced_co_moments() -> None:
    rng = np.random.default_rng(1)
    values = [
        envelope(
            i,
            T0 + i,
            features={"a": float(rng.normal()), "b": float(rng.normal()), "c": float(rng.normal())},
        )
        for i in range(400)
    ]
    ref = builder()
    for lo in range(0, 400, 150):
        ref.add(chunk_of(values[lo : lo + 150]))  # type: ignore[arg-type]
    assert ref.profile is not None and ref.profile.joint is not None
    first = ref.profile.joint
    assert ref.start_joint_pass()
    for lo in range(0, 400, 150):
        ref.add(chunk_of(values[lo : lo + 150]))  # type: ignore[arg-type]
    assert ref.finish_joint_pass()
    profile = ref.finish()
    assert profile.joint is not first and profile.joint is not None
    assert profile.joint.rows == 400 and ref.counts.records == 400  # counted once
    # a second pass that saw other records keeps the first pass's co-moments
    assert ref.start_joint_pass()
    ref.add(chunk_of(values[:10]))  # type: ignore[arg-type]
    assert not ref.finish_joint_pass()


# ------------------------------------------------------------------------- command line


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "name the training data: --data FILE"),
        (["--data", "x.csv", "--from-topic", "t", "--from", "1h ago"], "not both"),
        (["--from-topic", "t"], "--from-topic needs --from T1"),
        (["--from-topic", "t", "--from", "1h ago", "--prediction-col", "p"], "--prediction-col"),
    ],
)
def test_reference_build_options(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from streamproc.cli.main import main

    code = main(["reference", "build", "--model", "m", "-o", "x.profile", *argv])
    assert code == 2
    assert message in capsys.readouterr().err
