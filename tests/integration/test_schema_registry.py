"""Avro and Protobuf topics through a schema registry, on a real broker (issue #10 item 2).

Records in the Confluent wire format, produced with confluent-kafka's own serializers,
each topic with one schema evolution (``device`` added, ``country`` removed), bad records
among them, and for Protobuf a registry outage while the new schema is first seen. Proven:
the counts per window are exact (from the produced data in integer arithmetic), each bad
record is dead-lettered once with its reason, the outage holds records back instead of
losing or dead-lettering them, the change of schema is surfaced (log, metrics), and the
removed field shows up as the missing values the completeness check alerts on; and
``streamproc attach --sample`` on an Avro and a Protobuf topic proposes a ``[mapping]``
(``format``, ``schema_registry_url``) under which the worker counts every record.

Registry: a real one — Apicurio Registry 2.6.13.Final's Confluent-compatible API, started
locally for the session (tests/support/apicurio.py), or
``STREAMPROC_TEST_SCHEMA_REGISTRY_URL`` when the environment runs one. The registry
outage is simulated on confluent-kafka's in-memory ``mock://`` registry, a stand-in named
as such (``stand_in_registry``): a real registry cannot be made to fail one fetch.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streamproc.cli.main import main
from streamproc.config import MonitorConfig
from streamproc.contracts.framing import deadletter_header_object
from streamproc.monitor.worker import Worker
from tests.integration.monitor_harness import AlertWatcher, monitor_config, wait_until
from tests.integration.test_attach import (
    Record,
    attach_sample,
    expected,
    flat_reference,
    produce,
    windows,
    worker_on,
)
from tests.support.kafka import consume_n, create_topic
from tests.support.registry import (
    FieldType,
    Outage,
    WireWriter,
    avro_record,
    check_reachable,
    client_for,
    proto_class,
    share_mock_registries,
)

SPACING_MS = 20  # 500 records a 10-s window: the checks' min_samples
MAPPING = {
    "model": "fraud",
    "model_version": "1",
    "request_id": "/id",
    "timestamp": "/ts_ms",
    "features": ["amount", "country"],
    "prediction": {"score": "/score"},
}
AVRO_V1 = avro_record(
    "Prediction",
    [
        ("id", "string"),
        ("ts_ms", "long"),
        ("amount", "double"),
        ("country", "string"),
        ("score", "double"),
    ],
)
AVRO_V2 = avro_record(  # device added, country removed
    "Prediction",
    [
        ("id", "string"),
        ("ts_ms", "long"),
        ("amount", "double"),
        ("device", "string"),
        ("score", "double"),
    ],
)
PROTO_V1 = proto_class(
    [
        ("id", FieldType.TYPE_STRING, 1),
        ("ts_ms", FieldType.TYPE_INT64, 2),
        ("amount", FieldType.TYPE_DOUBLE, 3),
        ("country", FieldType.TYPE_STRING, 4),
        ("score", FieldType.TYPE_DOUBLE, 5),
    ],
    package="shop.v1",
)
PROTO_V2 = proto_class(  # country (4) removed, its number retired; device (6) added
    [
        ("id", FieldType.TYPE_STRING, 1),
        ("ts_ms", FieldType.TYPE_INT64, 2),
        ("amount", FieldType.TYPE_DOUBLE, 3),
        ("score", FieldType.TYPE_DOUBLE, 5),
        ("device", FieldType.TYPE_STRING, 6),
    ],
    package="shop.v2",
)
COUNTRIES = ["de", "fr", "us", "uk", "es"]


@pytest.fixture
def registry(schema_registry_url: str) -> Iterator[str]:
    """The real registry's URL (Apicurio Registry, or the one the environment names)."""
    try:
        check_reachable(schema_registry_url)
    except Exception as exc:
        pytest.fail(f"the test registry {schema_registry_url} does not answer: {exc}")
    yield schema_registry_url


@pytest.fixture
def stand_in_registry(request: pytest.FixtureRequest) -> Iterator[str]:
    """Always the in-process ``mock://`` stand-in: an outage is simulated on it."""
    with share_mock_registries():
        yield f"mock://streamproc-test-{request.node.name[:40]}"


def rows(kind: int, n: int, t0_ms: int, first: int = 0) -> list[dict[str, Any]]:
    """``n`` prediction records of schema ``kind`` (1: with country; 2: device instead),
    numbered from ``first``, ``SPACING_MS`` apart from ``t0_ms``."""
    out = []
    for i in range(first, first + n):
        rec: dict[str, Any] = {
            "id": f"r-{i}",
            "ts_ms": t0_ms + i * SPACING_MS,
            "amount": round(20.0 + (i * 7919 % 1000) / 10, 2),
            "score": (i * 104729 % 1000) / 1000,
        }
        if kind == 1:
            rec["country"] = COUNTRIES[i % len(COUNTRIES)]
        else:
            rec["device"] = ["ios", "web"][i % 2]
        out.append(rec)
    return out


def keyed(recs: list[dict[str, Any]], values: list[bytes], now_ms: int) -> list[Record]:
    return [(r["id"].encode(), v, now_ms) for r, v in zip(recs, values, strict=True)]


def bad_records(good: bytes) -> list[tuple[bytes, bytes | None, str]]:
    """(key, value, the reason it is dead-lettered for)."""
    return [
        (b"bad-plain", b'{"id": "x", "ts_ms": 1, "score": 0.5}', "not_wire_format"),
        (b"bad-short", b"\x00\x00\x01", "not_wire_format"),
        (b"bad-unknown", b"\x00\x00\x0f\x42\x3f" + good[5:], "schema_unknown"),  # id 999999
        (b"bad-corrupt", good[:5] + b"\xff\xff\xff\xff", "undecodable"),
    ]


def metric(worker: Worker, name: str, **labels: str) -> float:
    return worker.metrics.registry.get_sample_value(name, labels) or 0.0


def settled(worker: Worker, n: int) -> Callable[[], bool]:
    def done() -> bool:
        published = metric(worker, "streamproc_deltas_published_total")
        return (
            metric(worker, "streamproc_events_total", model="fraud") >= n
            and published > 0
            and metric(worker, "streamproc_deltas_applied_total") >= published
        )

    return done


def dead_letters(bootstrap: str, config: MonitorConfig, n: int) -> dict[bytes, str]:
    """Key → reason of the dead-lettered records (each key once: asserted)."""
    got = consume_n(bootstrap, config.topics.deadletter, f"{config.topics.deadletter}.t", n, 60)
    got += consume_n(bootstrap, config.topics.deadletter, f"{config.topics.deadletter}.t", 1, 2)
    out: dict[bytes, str] = {}
    for msg in got:
        key = msg.key() or b""
        assert key not in out, f"{key!r} dead-lettered twice"
        out[key] = deadletter_header_object(msg.headers() or [])["streamproc.reason"]
    return out


def check_windows(
    bootstrap: str, config: MonitorConfig, recs: list[dict[str, Any]]
) -> dict[int, Any]:
    """Exact rows per window; a window's missing ``country`` values are its v2 records."""
    profiles = windows(bootstrap, config)
    assert {s: p.row_count for s, p in profiles.items()} == expected([r["ts_ms"] for r in recs])
    window_ms = config.windows.size_ms
    for start, profile in profiles.items():
        inside = [r for r in recs if r["ts_ms"] // window_ms * window_ms == start]
        country = profile.features["country"]
        assert country.count == len(inside)
        assert country.null_count == sum("country" not in r for r in inside), start
    return profiles


# ---------------------------------------------------------------------------- avro


def test_avro_topic_through_the_registry_with_a_schema_evolution(
    bootstrap_servers: str,
    unique_topic: Callable[[str], str],
    registry: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    prefix = unique_topic("avro")
    mapping = {**MAPPING, "format": "avro", "schema_registry_url": registry}
    config = monitor_config(bootstrap_servers, prefix, mapping=mapping)
    topic = config.topics.predictions
    create_topic(bootstrap_servers, topic, 3)
    now_ms = int(time.time() * 1000)
    t0 = (now_ms - 10 * 60_000) // 10_000 * 10_000
    old, new = rows(1, 3_000, t0), rows(2, 3_000, t0, first=3_000)  # 60 s + 60 s
    writer = WireWriter(client_for(registry), topic)
    v1_values, v2_values = writer.avro(AVRO_V1, old), writer.avro(AVRO_V2, new)
    bad = bad_records(v1_values[0])
    stream = keyed(old, v1_values, now_ms) + [(k, v, now_ms) for k, v, _ in bad]  # type: ignore[misc]
    stream += keyed(new, v2_values, now_ms)
    produce(bootstrap_servers, topic, stream)
    watcher = AlertWatcher(bootstrap_servers, config.topics.alerts)
    caplog.set_level(logging.INFO, logger="streamproc.monitor.ingest")
    try:
        with worker_on(config, [flat_reference()]) as worker:
            assert wait_until(settled(worker, len(old) + len(new)), 120), "not all counted"
            time.sleep(0.6)  # one more flush: nothing beyond arrives
            assert metric(worker, "streamproc_events_total", model="fraud") == 6_000
            assert metric(worker, "streamproc_schema_changes_total", topic=topic) == 1
            v2_id = int.from_bytes(v2_values[0][1:5], "big")
            assert metric(worker, "streamproc_schema_id", topic=topic) == v2_id
            for _key, _value, reason in bad:
                assert metric(worker, "streamproc_deadletter_total", reason=reason) >= 1
            # the removed field's missing values alert through the completeness check
            alert = watcher.wait_for(
                lambda a: a["check"] == "completeness" and a.get("feature") == "country", 60
            )
            assert alert is not None, [(a["check"], a.get("feature")) for a in watcher.alerts]
    finally:
        watcher.close()
    changes = [r.getMessage() for r in caplog.records if "schema change" in r.getMessage()]
    assert len(changes) == 1 and f"schema id {v2_id}" in changes[0], changes
    assert "fields added ['device']" in changes[0]
    assert "fields removed ['country']" in changes[0]
    check_windows(bootstrap_servers, config, old + new)
    assert dead_letters(bootstrap_servers, config, len(bad)) == {k: r for k, _v, r in bad}


# ---------------------------------------------------------------------------- protobuf


@pytest.fixture(params=["real", "stand_in"])
def protobuf_registry(request: pytest.FixtureRequest) -> str:
    """The real registry (no outage), then the stand-in (the outage simulated on it)."""
    return str(
        request.getfixturevalue("registry" if request.param == "real" else "stand_in_registry")
    )


def test_protobuf_topic_through_the_registry_with_an_evolution_during_an_outage(
    bootstrap_servers: str, unique_topic: Callable[[str], str], protobuf_registry: str
) -> None:
    """On the real registry the same records without the outage (it is simulated on the
    in-process stand-in only)."""
    registry = protobuf_registry
    simulated = registry.startswith("mock://")
    prefix = unique_topic("proto")
    mapping = {**MAPPING, "format": "protobuf", "schema_registry_url": registry}
    config = monitor_config(bootstrap_servers, prefix, mapping=mapping)
    topic = config.topics.predictions
    create_topic(bootstrap_servers, topic, 3)
    now_ms = int(time.time() * 1000)
    t0 = (now_ms - 10 * 60_000) // 10_000 * 10_000
    old, new = rows(1, 1_500, t0), rows(2, 1_500, t0, first=1_500)  # 30 s + 30 s
    client = client_for(registry)
    writer = WireWriter(client, topic)
    v1_values = writer.protobuf(PROTO_V1, old)
    bad = bad_records(v1_values[0])
    with Outage(client) as outage, worker_on(config, [flat_reference()]) as worker:
        produce(bootstrap_servers, topic, keyed(old, v1_values, now_ms))
        produce(bootstrap_servers, topic, [(k, v, now_ms) for k, v, _ in bad])  # type: ignore[misc]
        assert wait_until(settled(worker, len(old)), 90), "the first schema's records"
        # the registry goes away; the producers move to a schema the worker never saw
        v2_values = writer.protobuf(PROTO_V2, new)  # registered before the outage hit
        if simulated:
            outage.begin()
        produce(bootstrap_servers, topic, keyed(new, v2_values, now_ms))
        if simulated:
            waits = "streamproc_registry_waits_total"
            assert wait_until(lambda: metric(worker, waits) > 0, 30)
            time.sleep(4)  # several back-offs: nothing of the new schema counted or dropped
            assert metric(worker, "streamproc_events_total", model="fraud") == len(old)
            assert metric(worker, "streamproc_schema_changes_total", topic=topic) == 0
            dead = sum(
                metric(worker, "streamproc_deadletter_total", reason=r)
                for r in {r for _k, _v, r in bad}
            )
            assert dead == len(bad)
            outage.end()  # the registry is back: the held records are read again
        assert wait_until(settled(worker, len(old) + len(new)), 90), "held records not counted"
        time.sleep(0.6)
        assert metric(worker, "streamproc_events_total", model="fraud") == len(old) + len(new)
        assert metric(worker, "streamproc_schema_changes_total", topic=topic) == 1
        v2_id = int.from_bytes(v2_values[0][1:5], "big")
        assert metric(worker, "streamproc_schema_id", topic=topic) == v2_id
    check_windows(bootstrap_servers, config, old + new)
    assert dead_letters(bootstrap_servers, config, len(bad)) == {k: r for k, _v, r in bad}


# ---------------------------------------------------------------------------- restart


def test_a_worker_stopped_during_an_outage_commits_only_what_it_counted(
    bootstrap_servers: str, unique_topic: Callable[[str], str], stand_in_registry: str
) -> None:
    """The held-back records' offsets are not committed (a seek leaves no position, the
    stage commits where they resume): the next worker counts exactly them."""
    registry = stand_in_registry
    prefix = unique_topic("avro-restart")
    mapping = {**MAPPING, "format": "avro", "schema_registry_url": registry}
    config = monitor_config(bootstrap_servers, prefix, mapping=mapping)
    topic = config.topics.predictions
    create_topic(bootstrap_servers, topic, 3)
    now_ms = int(time.time() * 1000)
    t0 = (now_ms - 10 * 60_000) // 10_000 * 10_000
    old, new = rows(1, 1_000, t0), rows(2, 1_000, t0, first=1_000)
    client = client_for(registry)
    writer = WireWriter(client, topic)
    v1_values, v2_values = writer.avro(AVRO_V1, old), writer.avro(AVRO_V2, new)
    stream = keyed(old, v1_values, now_ms)
    with Outage(client) as outage:
        with worker_on(config, [flat_reference()]) as worker:
            produce(bootstrap_servers, topic, stream[:500])
            assert wait_until(settled(worker, 500), 90)
            outage.begin()
            # the rest of the old schema's records and the new schema's, in the same
            # consumed batches: the old ones are counted, the new ones held back
            produce(bootstrap_servers, topic, stream[500:] + keyed(new, v2_values, now_ms))
            assert wait_until(lambda: metric(worker, "streamproc_registry_waits_total") > 0, 30)
            assert wait_until(settled(worker, len(old)), 30)
            time.sleep(1.5)  # flushes commit while the partitions are held
            assert metric(worker, "streamproc_events_total", model="fraud") == len(old)
        outage.end()  # the first worker stopped during the outage
    with worker_on(config, [flat_reference()]) as again:
        assert wait_until(settled(again, len(new)), 90), "the held records were not read again"
        time.sleep(1.0)
        # exactly the held records: none lost with the first worker, none counted twice
        assert metric(again, "streamproc_events_total", model="fraud") == len(new)
    check_windows(bootstrap_servers, config, old + new)


# ---------------------------------------------------------------------------- attach --sample


@pytest.mark.parametrize("fmt", ["avro", "protobuf"])
def test_attach_sample_on_a_wire_format_topic_proposes_a_mapping_the_worker_counts_with(
    bootstrap_servers: str,
    unique_topic: Callable[[str], str],
    registry: str,
    tmp_path: Path,
    fmt: str,
) -> None:
    """``streamproc attach --sample`` run in-process (``main(argv)``: a subprocess cannot
    share the in-process stand-in registry): without a registry it names the wire format
    and the schema ids and exits 2; with one it decodes through it and proposes ``format``
    and ``schema_registry_url``, a mapping under which the worker counts every record."""
    prefix = unique_topic(f"attach-{fmt}")
    topic = f"{prefix}.predictions"
    create_topic(bootstrap_servers, topic, 3)
    now_ms = int(time.time() * 1000)
    t0 = (now_ms - 10 * 60_000) // 10_000 * 10_000
    recs = rows(1, 1_500, t0)  # 30 s
    writer = WireWriter(client_for(registry), topic)
    values = writer.avro(AVRO_V1, recs) if fmt == "avro" else writer.protobuf(PROTO_V1, recs)
    plain = (b"bad-plain", b'{"id": "x", "ts_ms": 1, "score": 0.5}', now_ms)
    produce(bootstrap_servers, topic, [*keyed(recs, values, now_ms), plain])
    schema_id = int.from_bytes(values[0][1:5], "big")

    code, out, err = run_cli(["attach", "--sample", "--bootstrap-servers", bootstrap_servers,
                              "--topic", topic, "--count", "300"])  # fmt: skip
    assert code == 2, out + err
    assert "Confluent wire format" in err and f"schema id {schema_id}" in err, err
    assert "--schema-registry-url" in err and "Traceback" not in out + err

    proposed = attach_sample(bootstrap_servers, topic, tmp_path / "m.toml", "--model", "fraud",
                             "--schema-registry-url", registry)  # fmt: skip
    assert proposed == {
        "format": fmt,
        "schema_registry_url": registry,
        "model": "fraud",
        "model_version": "1",
        "request_id": "/id",
        "timestamp": "/ts_ms",
        "prediction": {"score": "/score"},
        "features": "*",
    }
    config = monitor_config(bootstrap_servers, prefix, mapping=proposed)
    assert config.topics.predictions == topic
    with worker_on(config, [flat_reference()]) as worker:
        assert wait_until(settled(worker, len(recs)), 90), "not all counted"
        time.sleep(0.6)  # one more flush: nothing beyond arrives
        assert metric(worker, "streamproc_events_total", model="fraud") == len(recs)
        assert metric(worker, "streamproc_deadletter_total", reason="not_wire_format") == 1
    profiles = check_windows(bootstrap_servers, config, recs)
    assert sum(p.features["amount"].count for p in profiles.values()) == len(recs)


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``streamproc ARGV`` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()
