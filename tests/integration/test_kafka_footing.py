"""The footing: produce, consume, consumer-group resume and a Faust agent, on a real broker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from tests.support.kafka import consume_n, create_topic, produce_all

N_RECORDS = 10_000


def _records(n: int) -> list[tuple[bytes, bytes]]:
    return [(f"key-{i}".encode(), f'{{"i": {i}}}'.encode()) for i in range(n)]


def test_produce_and_consume_every_record(
    bootstrap_servers: str, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("footing")
    create_topic(bootstrap_servers, topic, partitions=4)
    assert produce_all(bootstrap_servers, topic, _records(N_RECORDS)) == N_RECORDS

    messages = consume_n(bootstrap_servers, topic, group=topic + ".g", n=N_RECORDS, linger_s=2)

    assert len(messages) == N_RECORDS
    got = {m.key(): m.value() for m in messages}
    assert got == dict(_records(N_RECORDS))
    assert {m.partition() for m in messages} == {0, 1, 2, 3}
    # Keys hash to one partition each: the same key never lands on two partitions.
    partitions_by_key: dict[bytes | None, set[int]] = {}
    for m in messages:
        partitions_by_key.setdefault(m.key(), set()).add(m.partition())
    assert all(len(p) == 1 for p in partitions_by_key.values())


def test_committed_group_resumes_where_it_stopped(
    bootstrap_servers: str, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("resume")
    group = topic + ".g"
    create_topic(bootstrap_servers, topic, partitions=1)
    produce_all(bootstrap_servers, topic, _records(1_000))

    first = consume_n(bootstrap_servers, topic, group, n=400)
    assert [m.offset() for m in first] == list(range(400))

    rest = consume_n(bootstrap_servers, topic, group, n=600, linger_s=2)
    assert [m.offset() for m in rest] == list(range(400, 1_000))
    assert [m.value() for m in first + rest] == [v for _, v in _records(1_000)]

    probe = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group})
    try:
        committed = probe.committed([TopicPartition(topic, 0)], timeout=10)
    finally:
        probe.close()
    assert committed[0].offset == 1_000


def test_faust_agent_counts_every_record(
    bootstrap_servers: str, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    topic = unique_topic("faust")
    create_topic(bootstrap_servers, topic, partitions=4)
    produce_all(bootstrap_servers, topic, _records(N_RECORDS))
    out = tmp_path / "count.txt"
    app = Path(__file__).parent / "apps" / "faust_counter.py"
    env = {
        **os.environ,
        "COUNTER_BROKER": bootstrap_servers,
        "COUNTER_TOPIC": topic,
        "COUNTER_APP_ID": topic + ".app",
        "COUNTER_OUT": str(out),
        "COUNTER_DATA_DIR": str(tmp_path / "faust-data"),
    }
    log = tmp_path / "faust.log"
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, str(app), "worker", "--loglevel", "warn", "--without-web"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        count = _wait_for_stable_count(out, N_RECORDS, timeout_s=120, proc=proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert count == N_RECORDS, log.read_text()[-3000:]


def _wait_for_stable_count(
    path: Path, expected: int, timeout_s: float, proc: subprocess.Popen[bytes]
) -> int:
    """Wait until the counter reaches ``expected``, then make sure it stays there."""
    deadline = time.monotonic() + timeout_s
    count = -1
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists() and path.read_text().strip():
            count = int(path.read_text())
            if count >= expected:
                time.sleep(3)  # any duplicate delivery would show up now
                return int(path.read_text())
        time.sleep(0.2)
    return count
