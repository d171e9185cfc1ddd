"""`streamproc alerts forward` against a real Kafka broker and a real Alertmanager.

The alert messages are real ones: built by the alert lifecycle (`checks.lifecycle.step`)
and validated against ``schemas/alert.schema.json`` before they are produced.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from streamproc.alerting import Backoff, Forwarder, ForwarderSettings
from streamproc.checks.alerts import Alert
from streamproc.checks.lifecycle import AlertState, LifecyclePolicy, step
from streamproc.checks.result import CheckResult
from streamproc.contracts import validate
from tests.support.alertmanager import Alertmanager, alertmanager_binary
from tests.support.kafka import create_topic, kafka_required, produce_all

REPO = Path(__file__).resolve().parents[2]
MINUTE_MS = 60_000


@pytest.fixture
def alertmanager_bin() -> str:
    binary = alertmanager_binary()
    if binary is None:
        why = (
            "prometheus-alertmanager not found (run `bash scripts/install-system-deps.sh` "
            "or set ALERTMANAGER_BIN)"
        )
        if kafka_required():
            pytest.fail(f"Alertmanager is required here (CI=true) but unavailable: {why}")
        pytest.skip(why)
    return binary


@pytest.fixture
def alertmanager(alertmanager_bin: str) -> Iterator[Alertmanager]:
    am = Alertmanager(alertmanager_bin).start()
    try:
        yield am
    finally:
        am.stop()


def _result(breached: bool, end_ms: int, feature: str) -> CheckResult:
    return CheckResult(
        check="feature_drift",
        model="credit",
        model_version="7",
        feature=feature,
        breached=breached,
        severity="critical" if breached else None,
        statistic="psi",
        value=0.41 if breached else 0.02,
        threshold=0.25,
        n_reference=50_000,
        n_current=2_310,
        window_start_ms=end_ms - MINUTE_MS,
        window_end_ms=end_ms,
        evidence=[{"bin": "[20000, 25000)", "reference": 0.12, "current": 0.31}],
    )


def lifecycle_messages(feature: str) -> tuple[Alert, Alert]:
    """The firing and the resolved message of one alert, through the real lifecycle:
    two breaching windows fire it, three clean ones resolve it (all in the past)."""
    policy = LifecyclePolicy()
    now_ms = int(time.time() * 1000)
    ends = [now_ms - (6 - i) * MINUTE_MS for i in range(5)]
    state: AlertState | None = None
    messages: list[Alert] = []
    for i, end in enumerate(ends):
        state, message = step(state, _result(i < 2, end, feature), end, policy)
        if message is not None:
            messages.append(message)
    assert [m["status"] for m in messages] == ["firing", "resolved"]
    for message in messages:
        validate("alert", message)
    return messages[0], messages[1]


def produce_alert(servers: str, topic: str, alert: Alert) -> None:
    produce_all(servers, topic, [(alert["fingerprint"].encode(), orjson.dumps(alert))])


def wait_for(what: str, predicate: Callable[[], Any], timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def find(am: Alertmanager, feature: str) -> dict[str, Any] | None:
    for alert in am.alerts():
        if alert["labels"].get("feature") == feature:
            return alert
    return None


def committed(servers: str, group: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": servers, "group.id": group})
    try:
        (tp,) = consumer.committed([TopicPartition(topic, 0)], timeout=15)
    finally:
        consumer.close()
    return int(tp.offset)


def test_alert_fires_then_resolves_in_alertmanager(
    bootstrap_servers: str, unique_topic: Callable[[str], str], alertmanager: Alertmanager
) -> None:
    topic = unique_topic("alerts")
    group = unique_topic("forwarder")
    create_topic(bootstrap_servers, topic)
    firing, resolved = lifecycle_messages("income")
    produce_alert(bootstrap_servers, topic, firing)

    settings = ForwarderSettings(
        alertmanager_url=alertmanager.url,
        bootstrap_servers=bootstrap_servers,
        alerts_topic=topic,
        group_id=group,
        poll_timeout_s=0.2,
    )
    forwarder = Forwarder(settings, backoff=Backoff(initial_s=0.1, cap_s=0.5))
    stop = threading.Event()
    thread = threading.Thread(target=forwarder.run, args=(stop,), name="forwarder")
    thread.start()
    try:
        got = wait_for("the firing alert in Alertmanager", lambda: find(alertmanager, "income"))
        assert got["labels"] == {
            "alertname": "StreamprocFeatureDrift",
            "model": "credit",
            "model_version": "7",
            "feature": "income",
            "severity": "critical",
            "check": "feature_drift",
        }
        assert got["annotations"]["summary"] == firing["summary"]
        assert got["annotations"]["runbook_url"] == "docs/RUNBOOK.md#feature-drift"
        assert got["startsAt"].startswith(firing["started_at"].rstrip("Z")[:19])
        assert got["status"]["state"] in ("active", "unprocessed")
        wait_for("offset 1 committed", lambda: committed(bootstrap_servers, group, topic) == 1)

        produce_alert(bootstrap_servers, topic, resolved)
        wait_for("the alert resolved", lambda: find(alertmanager, "income") is None)
        wait_for("offset 2 committed", lambda: committed(bootstrap_servers, group, topic) == 2)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert forwarder.metrics.registry.get_sample_value("streamproc_forwarder_messages_total") == 2
    posted = forwarder.metrics.registry.get_sample_value("streamproc_forwarder_alerts_posted_total")
    assert posted == 2


def _forward_cli(
    am_url: str, servers: str, topic: str, group: str, log: Path
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("STREAMPROC_CONFIG", None)
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamproc",
                "alerts",
                "forward",
                "--alertmanager",
                am_url,
                "--bootstrap-servers",
                servers,
                "--alerts-topic",
                topic,
                "--group-id",
                group,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            env=env,
        )


def _terminate(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        raise AssertionError("the forwarder did not stop on SIGTERM within 30 s") from None


def test_no_alert_lost_when_stopped_while_alertmanager_is_down(
    bootstrap_servers: str,
    unique_topic: Callable[[str], str],
    alertmanager_bin: str,
    tmp_path: Path,
) -> None:
    topic = unique_topic("alerts")
    group = unique_topic("forwarder")
    create_topic(bootstrap_servers, topic)
    firing, _resolved = lifecycle_messages("loan_purpose")
    produce_alert(bootstrap_servers, topic, firing)
    am = Alertmanager(alertmanager_bin)  # its port is chosen, nothing listens yet
    log = tmp_path / "forwarder.log"
    try:
        first = _forward_cli(am.url, bootstrap_servers, topic, group, log)
        try:
            wait_for(
                "a failed post in the forwarder's log",
                lambda: "alertmanager post failed" in log.read_text(),
                timeout_s=60,
            )
        finally:
            code = _terminate(first)
        text = log.read_text()
        assert code == 0, text
        assert "alertmanager not ready (cannot reach" in text
        assert "offsets not committed" in text
        assert "Traceback" not in text
        assert committed(bootstrap_servers, group, topic) < 0  # nothing committed

        am.start()
        second = _forward_cli(am.url, bootstrap_servers, topic, group, log)
        try:
            got = wait_for(
                "the held alert in Alertmanager", lambda: find(am, "loan_purpose"), timeout_s=60
            )
            assert got["labels"]["alertname"] == "StreamprocFeatureDrift"
            assert got["labels"]["severity"] == "critical"
            assert got["labels"]["model"] == "credit"
            wait_for("offset 1 committed", lambda: committed(bootstrap_servers, group, topic) == 1)
        finally:
            assert _terminate(second) == 0, log.read_text()
    finally:
        am.stop()
