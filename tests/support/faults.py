"""Fault injection for tests and the soak benchmark: a broker of one's own that can be
restarted, killed and brought back on the same port, and a feed that keeps its rate
through an outage."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from confluent_kafka import KafkaError, Producer

from streamproc.broker.local import BrokerInfo, LocalBroker, free_port


class FaultyBroker:
    """A broker (official jars, KRaft) on a port of its own, to stop, kill and start."""

    def __init__(self, prefix: str = "streamproc-faults-kafka-") -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.broker = LocalBroker(self.data_dir)
        self.port = free_port()
        self.info: BrokerInfo = self.broker.start(self.port)

    @property
    def bootstrap(self) -> str:
        return self.info.bootstrap_servers

    @property
    def running(self) -> bool:
        return self.broker.info() is not None

    def stop(self) -> None:
        """A clean shutdown (SIGTERM, then wait)."""
        self.broker.stop()

    def kill(self) -> None:
        """SIGKILL the broker's process group: no clean shutdown."""
        os.killpg(self.info.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while self.broker.info() is not None and time.monotonic() < deadline:
            time.sleep(0.1)

    def start(self) -> None:
        self.info = self.broker.start(self.port)

    def close(self) -> None:
        self.broker.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


class PatientFeed:
    """Sends ``chunks`` of (key, value) records at ``rate`` per second whatever the
    broker does: an idempotent producer buffers through an outage (its retries make no
    duplicates); delivery errors are collected in ``errors``."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        chunks: Iterable[list[tuple[bytes, bytes]]],
        rate: float,
    ) -> None:
        self.topic, self.chunks, self.rate = topic, chunks, rate
        self.errors: list[KafkaError] = []
        self.sent = 0
        self.stop = threading.Event()
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "linger.ms": 5,
                "message.timeout.ms": 900_000,
                "queue.buffering.max.messages": 2_000_000,
                "queue.buffering.max.kbytes": 2_000_000,
                "log_level": 2,  # its reconnect chatter is not what the tests read
            }
        )
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        per_slice = max(1, int(self.rate / 20))
        began = time.monotonic()
        for chunk in self.chunks:
            for i in range(0, len(chunk), per_slice):
                if self.stop.is_set():
                    return
                for key, value in chunk[i : i + per_slice]:
                    self.producer.produce(self.topic, value, key, on_delivery=self._delivered)
                self.sent += len(chunk[i : i + per_slice])
                self.producer.poll(0)
                time.sleep(max(0.0, began + self.sent / self.rate - time.monotonic()))
        remaining = self.producer.flush(900)
        if remaining:
            self.errors.append(KafkaError(KafkaError._MSG_TIMED_OUT, f"{remaining} unsent"))

    def _delivered(self, err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            self.errors.append(err)
