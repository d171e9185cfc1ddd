"""`streamproc inspect` against a real broker: real WindowState / AlertState records written
transactionally to a compacted state topic (as the worker checkpoints them), one update
and one tombstone in a later transaction, one aborted transaction that must stay unseen."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import orjson
from confluent_kafka import Producer

from streamproc.checks.lifecycle import AlertState
from streamproc.monitor.state import WindowKey, WindowState
from streamproc.monitor.store import alert_record_key, window_record_key
from tests.support.kafka import create_topic
from tests.support.state import T0, W, alert, window

Record = tuple[int, bytes, bytes | None]


def wrec(w: WindowState, partition: int) -> Record:
    return partition, window_record_key(w.key), w.to_bytes()


def arec(a: AlertState, partition: int) -> Record:
    return partition, alert_record_key(a.fingerprint), orjson.dumps(a.to_dict())


def transaction(producer: Producer, topic: str, records: list[Record], commit: bool) -> None:
    producer.begin_transaction()
    for partition, key, value in records:
        producer.produce(topic, key=key, value=value, partition=partition)
    producer.flush(30)
    if commit:
        producer.commit_transaction(30)
    else:
        producer.abort_transaction(30)


def inspect(bootstrap: str, topic: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-m", "streamproc", "inspect", *args),
            *("--bootstrap-servers", bootstrap, "--state-topic", topic, "--timeout", "60s"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_inspect_reads_the_committed_latest_state(
    bootstrap_servers: str, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("profiles") + "-state"
    create_topic(bootstrap_servers, topic, partitions=2, **{"cleanup.policy": "compact"})
    firing = alert(
        "feature_drift",
        "credit",
        "7",
        "income",
        status="firing",
        severity="critical",
        history=(True, True),
        started_at_ms=T0 + W,
        last_sent_ms=T0 + W,
        last_window_end_ms=T0 + 2 * W,
    )
    never = alert("completeness", "fraud", "2", "amount", history=(False,), clean_streak=1)
    producer = Producer(
        {"bootstrap.servers": bootstrap_servers, "transactional.id": f"{topic}-writer"}
    )
    producer.init_transactions(30)
    first = [
        wrec(window("credit", "7", T0, 120, final=True), 0),
        wrec(window("credit", "7", T0 + W, 80, applied={"profiles:0": 10}), 0),
        wrec(window("fraud", "2", T0, 5, applied={"profiles:1": 4}), 1),
        arec(firing, 0),
        arec(never, 1),
    ]
    transaction(producer, topic, first, commit=True)
    later = [
        wrec(window("credit", "7", T0 + W, 200, applied={"profiles:0": 31}, final=True), 0),
        (0, window_record_key(WindowKey("credit", "7", T0)), None),  # purged
    ]
    transaction(producer, topic, later, commit=True)
    aborted = [
        wrec(window("credit", "7", T0 + 2 * W, 999), 0),
        arec(alert("schema", "fraud", "2", None, status="firing", severity="warning"), 1),
    ]
    transaction(producer, topic, aborted, commit=False)

    windows = inspect(bootstrap_servers, topic, "windows", "--format", "json")
    assert windows.returncode == 0, windows.stderr
    doc = orjson.loads(windows.stdout)
    got = [
        (w["model"], w["model_version"], w["start"], w["rows"], w["final"], w["applied"])
        for w in doc["windows"]
    ]
    assert got == [
        ("credit", "7", "2024-05-01T10:05:00Z", 200, True, {"profiles:0": 31}),
        ("fraud", "2", "2024-05-01T10:00:00Z", 5, False, {"profiles:1": 4}),
    ]
    assert doc["purged"] == 1 and doc["unreadable"] == [] and doc["state_topic"] == topic
    assert [w["partition"] for w in doc["windows"]] == [0, 1]

    alerts = inspect(bootstrap_servers, topic, "alerts", "--format", "json", "--model", "credit")
    assert alerts.returncode == 0, alerts.stderr
    (only,) = orjson.loads(alerts.stdout)["alerts"]
    assert (only["fingerprint"], only["status"], only["severity"]) == (
        firing.fingerprint,
        "firing",
        "critical",
    )
    assert only["started_at"] == "2024-05-01T10:05:00Z" and only["resolved_at"] is None

    table = inspect(bootstrap_servers, topic, "alerts")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["MODEL", "VERSION", "CHECK", "FEATURE"]
    assert [line.split()[2] for line in lines[1:-1]] == ["feature_drift", "completeness"]
    assert lines[-1] == f"2 alert states in {topic}"

    missing = inspect(bootstrap_servers, topic + "-nope", "windows")
    assert missing.returncode == 2
    assert missing.stderr.startswith("streamproc: error: state topic")
    assert len(missing.stderr.strip().splitlines()) == 1
