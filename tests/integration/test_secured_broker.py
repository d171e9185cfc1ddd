"""`streamproc worker` and `streamproc alerts forward` against a secured Kafka broker.

The broker (``tests/support/secure_kafka.py``) takes SASL_SSL with SCRAM-SHA-512 only and
authorizes with KRaft's StandardAuthorizer (``allow.everyone.if.no.acl.found=false``).
Each principal gets exactly the ACLs that README "Secured Kafka" documents
(:func:`worker_acls`, :func:`forwarder_acls`), and nothing else:

- the worker, as ``User:worker``, counts every record into its window exactly and its
  alerts reach a real Alertmanager through the forwarder, as ``User:forwarder``;
- the worker as ``User:intruder`` (authenticated, no ACLs), and as ``User:worker`` with a
  wrong password, exits non-zero within seconds with one clear line on stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from confluent_kafka import KafkaException, Producer

from streamproc.monitor.state import WindowState
from tests.integration.monitor_harness import (
    expected_counts,
    records,
    reference_profile,
    save,
    wait_until,
)
from tests.support.alertmanager import Alertmanager, alertmanager_binary
from tests.support.kafka import kafka_required, latest_values
from tests.support.secure_kafka import Acl, SecureBroker, create_acls, start_secure_broker

STREAMPROC = Path(sys.executable).parent / "streamproc"
WINDOW_MS = 10_000
USERS = ("worker", "forwarder", "intruder")
REFUSAL_DEADLINE_S = 30


@dataclass(frozen=True)
class Names:
    """Topics and groups of one test module run (the worker's defaults, prefixed)."""

    prefix: str

    @property
    def group(self) -> str:
        return f"{self.prefix}.g"

    @property
    def predictions(self) -> str:
        return f"{self.prefix}.predictions"

    @property
    def profiles(self) -> str:
        return f"{self.prefix}.profiles"

    @property
    def state(self) -> str:
        return f"{self.profiles}-state"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}.alerts"

    @property
    def deadletter(self) -> str:
        return f"{self.prefix}.dlq"

    @property
    def retrain(self) -> str:
        return f"{self.prefix}.retrain"

    @property
    def forwarder_group(self) -> str:
        return f"{self.prefix}.forwarder"


def worker_acls(principal: str, n: Names) -> list[Acl]:
    """The worker's ACLs, as README "Secured Kafka" lists them."""
    return [
        Acl(principal, "topic", n.predictions, "READ"),
        *(Acl(principal, "topic", n.profiles, op) for op in ("READ", "WRITE", "CREATE")),
        *(Acl(principal, "topic", n.state, op) for op in ("READ", "WRITE", "CREATE")),
        *(Acl(principal, "topic", n.alerts, op) for op in ("WRITE", "CREATE")),
        *(Acl(principal, "topic", n.deadletter, op) for op in ("WRITE", "CREATE")),
        *(Acl(principal, "topic", n.retrain, op) for op in ("WRITE", "CREATE")),
        Acl(principal, "group", f"{n.group}-", "READ", prefixed=True),
        Acl(principal, "transactional-id", f"{n.group}-", "WRITE", prefixed=True),
    ]


def forwarder_acls(principal: str, n: Names) -> list[Acl]:
    """The alerts forwarder's ACLs, as README "Secured Kafka" lists them."""
    return [
        Acl(principal, "topic", n.alerts, "READ"),
        Acl(principal, "group", n.forwarder_group, "READ"),
    ]


@dataclass
class Secured:
    broker: SecureBroker
    names: Names
    reference: Path
    config: Path
    workdir: Path


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    try:
        broker = start_secure_broker(USERS)
    except Exception as exc:
        if kafka_required():
            pytest.fail(f"a secured Kafka broker is required here (CI=true) but failed: {exc}")
        pytest.skip(f"no secured Kafka broker: {exc}")
    try:
        workdir = tmp_path_factory.mktemp("secured")
        names = Names(f"sec.{uuid.uuid4().hex[:8]}")
        admin = broker.admin()
        from confluent_kafka.admin import NewTopic

        for future in admin.create_topics([NewTopic(names.predictions, 4, 1)]).values():
            future.result(timeout=30)
        create_acls(
            admin,
            [
                *worker_acls("User:worker", names),
                *forwarder_acls("User:forwarder", names),
            ],
        )
        config = workdir / "monitor.toml"
        config.write_text(
            f'[kafka]\nbootstrap_servers = "{broker.bootstrap_servers}"\n'
            f'group_id = "{names.group}"\n'
            "[kafka.client]\n"
            'security.protocol = "SASL_SSL"\n'
            'sasl.mechanism = "SCRAM-SHA-512"\n'
            f'ssl.ca.location = "{broker.ca_pem}"\n'
            "[topics]\n"
            f'predictions = "{names.predictions}"\n'
            f'profiles = "{names.profiles}"\n'
            f'alerts = "{names.alerts}"\n'
            f'deadletter = "{names.deadletter}"\n'
            f'retrain = "{names.retrain}"\n'
            '[windows]\nsize = "10s"\nallowed_lateness = "5s"\n'
        )
        reference = save(reference_profile(), workdir / "credit.profile")
        yield Secured(broker, names, reference, config, workdir)
    finally:
        broker.stop()


def _env(user: str, password: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMPROC_")}
    env.update(
        PYTHONUNBUFFERED="1",
        STREAMPROC_KAFKA_SASL_USERNAME=user,
        STREAMPROC_KAFKA_SASL_PASSWORD=password,
    )
    return env


def _worker(s: Secured, user: str, password: str, stderr: Path) -> subprocess.Popen[bytes]:
    """The real ``streamproc worker`` as ``user``; its stderr (the log) goes to ``stderr``."""
    with stderr.open("wb") as err:
        return subprocess.Popen(
            [
                str(STREAMPROC),
                "worker",
                "--config",
                str(s.config),
                "--metrics-port",
                "0",
                "--reference",
                str(s.reference),
            ],
            stdout=err,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=_env(user, password),
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _window_counts(s: Secured) -> dict[int, int]:
    """Rows per window start (ms) checkpointed on the state topic, read as the admin."""
    counts: dict[int, int] = {}
    config = s.broker.client_config("admin")
    try:
        latest = latest_values(s.broker.bootstrap_servers, s.names.state, config=config)
    except KafkaException:  # e.g. the topic is still being created: ask again
        return counts
    for key, value in latest.items():
        if value is not None and orjson.loads(key)[0] == "w":
            window = WindowState.from_bytes(value)
            counts[window.start_ms] = counts.get(window.start_ms, 0) + window.profile.row_count
    return counts


def _produce(s: Secured, recs: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({**s.broker.client_config("admin"), "linger.ms": 5, "acks": "all"})
    for key, value in recs:
        while True:
            try:
                producer.produce(s.names.predictions, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(30) == 0


def _forwarder(s: Secured, am_url: str, stderr: Path) -> subprocess.Popen[bytes]:
    """The real ``streamproc alerts forward`` as ``User:forwarder``."""
    with stderr.open("wb") as err:
        return subprocess.Popen(
            [
                str(STREAMPROC),
                "alerts",
                "forward",
                "--config",
                str(s.config),
                "--alertmanager",
                am_url,
                "--group-id",
                s.names.forwarder_group,
            ],
            stdout=err,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=_env("forwarder", s.broker.passwords["forwarder"]),
        )


@pytest.fixture
def alertmanager() -> Iterator[Alertmanager]:
    binary = alertmanager_binary()
    if binary is None:
        why = "prometheus-alertmanager not found (bash scripts/install-system-deps.sh)"
        if kafka_required():
            pytest.fail(f"Alertmanager is required here (CI=true) but unavailable: {why}")
        pytest.skip(why)
    am = Alertmanager(binary).start()
    try:
        yield am
    finally:
        am.stop()


def test_worker_and_forwarder_run_with_only_the_documented_acls(
    secured: Secured, alertmanager: Alertmanager
) -> None:
    s = secured
    # 25 s of drifted input up to now: windows close and breach, so the worker writes
    # alerts; and one malformed record for the dead-letter topic
    recs = records(3_000, start_s=time.time() - 25, rate=120, seed=5, shift={"num_1": 3.0})
    bad = (b"bad-record", b"{not json")
    worker_log, restart_log = s.workdir / "worker.log", s.workdir / "worker-restart.log"
    forwarder_log = s.workdir / "forwarder.log"
    worker = _worker(s, "worker", s.broker.passwords["worker"], worker_log)
    forwarder: subprocess.Popen[bytes] | None = None
    try:
        _produce(s, [*recs[:1_500], bad, *recs[1_500:]])
        expected = expected_counts(recs, WINDOW_MS)
        assert wait_until(
            lambda: worker.poll() is not None or _window_counts(s) == expected, 90, 1
        ), (_window_counts(s), expected)
        assert worker.poll() is None, worker_log.read_text()[-3000:]
        assert _window_counts(s) == expected
        admin = s.broker.client_config("admin")
        dead = latest_values(s.broker.bootstrap_servers, s.names.deadletter, config=admin)
        assert dead == {bad[0]: bad[1]}
        # the worker's drift alert reaches Alertmanager through the forwarder (started
        # once the worker created the alerts topic: it reads it from the beginning)
        forwarder = _forwarder(s, alertmanager.url, forwarder_log)
        assert wait_until(
            lambda: any(a["labels"].get("feature") == "num_1" for a in alertmanager.alerts()),
            60,
            0.5,
        ), (
            forwarder_log.read_text()[-3000:],
            list(latest_values(s.broker.bootstrap_servers, s.names.alerts, config=admin)),
        )
        assert forwarder.poll() is None, forwarder_log.read_text()[-3000:]
        # a restart restores its windows from the state topic (READ) and resumes from the
        # group's committed offsets: with more input, every count stays exact
        _stop(worker)
        worker = _worker(s, "worker", s.broker.passwords["worker"], restart_log)
        more = records(1_000, start_s=time.time(), rate=500, seed=6)
        _produce(s, more)
        expected = expected_counts(recs + more, WINDOW_MS)
        assert wait_until(
            lambda: worker.poll() is not None or _window_counts(s) == expected, 90, 1
        ), (_window_counts(s), expected)
        assert worker.poll() is None, restart_log.read_text()[-3000:]
        assert "restored 0 state records" not in restart_log.read_text()
    finally:
        _stop(worker)
        if forwarder is not None:
            _stop(forwarder)
    for log in (worker_log, restart_log, forwarder_log):
        text = log.read_text()
        assert "refused" not in text and "Traceback" not in text, text[-3000:]


def _refused_line(s: Secured, user: str, password: str, name: str) -> tuple[str, float]:
    """Run the worker as ``user`` until it exits (at most REFUSAL_DEADLINE_S): its one
    ``streamproc worker: Kafka refused ...`` line and the seconds it took."""
    log = s.workdir / f"{name}.log"
    began = time.monotonic()
    proc = _worker(s, user, password, log)
    try:
        code = proc.wait(REFUSAL_DEADLINE_S)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"still running after {REFUSAL_DEADLINE_S}s: {log.read_text()[-3000:]}"
        ) from None
    finally:
        _stop(proc)
    took = time.monotonic() - began
    text = log.read_text()
    assert code != 0, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    lines = [
        line for line in text.splitlines() if line.startswith("streamproc worker: Kafka refused")
    ]
    assert len(lines) == 1, text[-3000:]
    return lines[0], took


def test_a_principal_without_the_acls_is_refused_in_one_line(secured: Secured) -> None:
    line, took = _refused_line(
        secured, "intruder", secured.broker.passwords["intruder"], "intruder"
    )
    print(f"refused after {took:.1f}s: {line}")
    assert line.startswith("streamproc worker: Kafka refused User:intruder: not authorized to ")
    assert 'README "Secured Kafka"' in line


def test_a_wrong_password_is_refused_in_one_line(secured: Secured) -> None:
    line, took = _refused_line(secured, "worker", "not-the-password", "wrong-password")
    print(f"refused after {took:.1f}s: {line}")
    assert line.startswith("streamproc worker: Kafka refused User:worker: authentication failed")
