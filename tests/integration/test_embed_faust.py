"""Profiling inside a Faust app (streamproc.embed) feeds an unchanged aggregate stage.

A real faust-streaming app (a subprocess, as a team's own service runs) consumes a
predictions topic on the real broker and profiles it with ``profile_stream``; a
streamproc worker in-process, whose ingest reads an unused predictions topic of its own,
merges the deltas from the profiles topic. The per-window counts checkpointed on the
state topic equal the produced records exactly. Then at-least-once re-delivery: a second
app instance with a fresh consumer group profiles every record again (what a crash
before any offset commit looks like), and every delta on the profiles topic is produced
again as it was (a producer retry or a replayed topic): the aggregate drops them all
and the counts do not move.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from streamproc.monitor.worker import state_topic_name
from tests.integration.monitor_harness import (
    expected_counts,
    monitor_config,
    records,
    reference_profile,
    running_worker,
    save,
    wait_until,
    window_counts,
)
from tests.support.kafka import consume_n, create_topic, produce_all

N_RECORDS = 3_000
APP = Path(__file__).parent / "apps" / "faust_profiler.py"


@contextmanager
def faust_profiler(
    bootstrap: str, app_id: str, env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[[], dict[str, Any]]]:
    """Run the Faust app; yields a function returning its profiler's latest stats."""
    out = tmp_path / f"{app_id}.stats.json"
    log = tmp_path / f"{app_id}.log"
    full = {
        **os.environ,
        **env,
        "PROFILER_BROKER": bootstrap,
        "PROFILER_APP_ID": app_id,
        "PROFILER_OUT": str(out),
        "PROFILER_DATA_DIR": str(tmp_path / f"{app_id}.data"),
    }
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, str(APP), "worker", "--loglevel", "warn", "--without-web"],
            env=full,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )

    def stats() -> dict[str, Any]:
        if proc.poll() is not None:
            raise AssertionError(f"the Faust app exited: {log.read_text()[-3000:]}")
        try:
            data: dict[str, Any] = json.loads(out.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data

    try:
        yield stats
    except BaseException:
        print(log.read_text()[-3000:])
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def committed(bootstrap: str, group: str, topic: str, partitions: int = 4) -> int:
    """The sum of ``group``'s committed offsets on ``topic``."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(tps, timeout=10))
    finally:
        consumer.close()


def test_a_faust_app_feeds_the_aggregate_and_redelivery_counts_once(
    bootstrap_servers: str, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    prefix = unique_topic("embed")
    config = monitor_config(bootstrap_servers, prefix)
    source = f"{prefix}.faust-in"
    create_topic(bootstrap_servers, source, partitions=4)
    recs = records(N_RECORDS, start_s=time.time() - 120, rate=50, seed=11)  # 60 s: 6-7 windows
    produce_all(bootstrap_servers, source, recs)
    expected = expected_counts(recs, config.windows.size_ms)
    reference = reference_profile()
    env = {
        "PROFILER_TOPIC": source,
        "PROFILER_PROFILES_TOPIC": config.topics.profiles,
        "PROFILER_REFERENCE": str(save(reference, tmp_path / "credit.profile")),
        "PROFILER_WINDOW": f"{config.windows.size_ms}ms",
        "PROFILER_LATENESS": f"{config.windows.allowed_lateness_ms}ms",
    }
    state_topic = state_topic_name(config.topics.profiles)

    with running_worker(config, [reference]) as run:
        registry = run.worker.metrics.registry

        def value(name: str) -> float:
            return registry.get_sample_value(name) or 0.0

        def counts_are_exact() -> bool:
            return window_counts(bootstrap_servers, state_topic, timeout_s=10) == expected

        with faust_profiler(bootstrap_servers, f"{prefix}.app-a", env, tmp_path) as stats_a:
            assert wait_until(lambda: stats_a().get("rows_sent") == N_RECORDS, 180), stats_a()
            first = stats_a()
            assert first["accepted"] == N_RECORDS and not first["rejected"]
            assert wait_until(counts_are_exact, 60, every_s=1), window_counts(
                bootstrap_servers, state_topic
            )
            # every event acked after its delta was delivered, and the offsets committed
            group = f"{prefix}.app-a"
            assert wait_until(lambda: committed(bootstrap_servers, group, source) == N_RECORDS, 30)
        deltas_a = first["deltas_sent"]
        assert value("streamproc_deltas_applied_total") == deltas_a
        assert value("streamproc_deltas_duplicate_total") == 0

        # at-least-once re-delivery 1: another instance that committed nothing reads
        # every record again and ships deltas over the same offsets
        with faust_profiler(bootstrap_servers, f"{prefix}.app-b", env, tmp_path) as stats_b:
            assert wait_until(lambda: stats_b().get("rows_sent") == N_RECORDS, 180), stats_b()
            deltas_b = stats_b()["deltas_sent"]
        assert wait_until(lambda: value("streamproc_deltas_duplicate_total") >= deltas_b, 60)

        # re-delivery 2: every delta on the profiles topic produced again, byte for byte
        shipped = consume_n(
            bootstrap_servers,
            config.topics.profiles,
            f"{prefix}.replay",
            n=deltas_a + deltas_b,
            linger_s=1,
        )
        assert len(shipped) == deltas_a + deltas_b
        producer = Producer({"bootstrap.servers": bootstrap_servers, "acks": "all"})
        for msg in shipped:
            producer.produce(
                config.topics.profiles, key=msg.key(), value=msg.value(), headers=msg.headers()
            )
        assert producer.flush(30) == 0
        assert wait_until(
            lambda: value("streamproc_deltas_duplicate_total") >= deltas_b + len(shipped), 60
        )
        assert value("streamproc_deltas_applied_total") == deltas_a  # nothing more merged
        time.sleep(run.worker.checkpoint_interval_s + 1)  # a checkpoint after the re-sends
        assert window_counts(bootstrap_servers, state_topic) == expected
