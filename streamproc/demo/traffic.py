"""Live prediction-log traffic for the demo: paced, scripted, on a background thread.

Every tick (100 ms) :class:`Traffic` draws the tick's share of ``rate`` records from the
synthetic model (:mod:`streamproc.demo.model`) — with the incident applied while the
script says so, none at all during the stall — encodes them as prediction-log records
(``schemas/prediction_log.schema.json``; event time = the wall clock, spread across the
tick) and produces them keyed by request id, so they spread over the topic's partitions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import numpy as np
import orjson
from confluent_kafka import KafkaError, Message, Producer

from streamproc.demo.model import MODEL, MODEL_VERSION, Incident, Sample, sample
from streamproc.demo.script import Phase, Script

log = logging.getLogger(__name__)

TICK_S: Final = 0.1
AFTER_SCRIPT: Final = Phase("normal", float("inf"), title="the script is over; normal traffic")


def encode(s: Sample, *, start_s: float, span_s: float, first_id: int) -> list[tuple[bytes, bytes]]:
    """Prediction-log records (key, value) for the rows of ``s``, event times spread
    evenly over ``[start_s, start_s + span_s)``; request ids ``r-<first_id + row>``."""
    n = s.n
    names = list(s.features)
    columns = [s.features[name].tolist() for name in names]
    scores, labels, latency = s.scores.tolist(), s.labels.tolist(), s.latency_ms.tolist()
    step = span_s / n if n else 0.0
    out = []
    for j in range(n):
        rid = f"r-{first_id + j}"
        record = {
            "model": MODEL,
            "model_version": MODEL_VERSION,
            "request_id": rid,
            "timestamp": round(start_s + j * step, 6),
            "features": {name: col[j] for name, col in zip(names, columns, strict=True)},
            "prediction": {"label": labels[j], "score": scores[j]},
            "latency_ms": latency[j],
        }
        out.append((rid.encode(), orjson.dumps(record)))
    return out


class Traffic:
    """Produces the script's traffic until stopped; ``produced`` counts delivered records."""

    def __init__(
        self,
        kafka: dict[str, Any],
        topic: str,
        script: Script,
        rate: float,
        *,
        seed: int = 1,
        incident: Incident | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.topic = topic
        self.script = script
        self.rate = rate
        self.incident = incident or Incident()
        self.clock = clock
        self.rng = np.random.default_rng(seed)
        self.producer = Producer({**kafka, "linger.ms": 20, "compression.type": "lz4"})
        self.sent = 0
        self.produced = 0
        self.failed = 0
        self.last_error = ""
        self.phase_index = 0
        self.phase = script.phases[0]
        self.began = 0.0
        self._carry = 0.0
        self._lock = threading.Lock()

    def phase_now(self, elapsed_s: float) -> tuple[int, Phase]:
        """The phase to run ``elapsed_s`` into the script (normal traffic after its end)."""
        found = self.script.phase_at(elapsed_s)
        return found if found is not None else (len(self.script.phases), AFTER_SCRIPT)

    def tick(self, elapsed_s: float, now_s: float) -> int:
        """Produce one tick's records; returns how many were handed to the producer."""
        self.phase_index, self.phase = self.phase_now(elapsed_s)
        self.producer.poll(0)
        if not self.phase.produce:
            self._carry = 0.0
            return 0
        want = self.rate * TICK_S + self._carry
        n = int(want)
        self._carry = want - n
        if n == 0:
            return 0
        rows = sample(self.rng, n, self.incident if self.phase.incident else None)
        records = encode(rows, start_s=now_s, span_s=TICK_S, first_id=self.sent)
        for key, value in records:
            while True:
                try:
                    self.producer.produce(self.topic, value, key, on_delivery=self._delivered)
                    break
                except BufferError:
                    self.producer.poll(0.05)
        self.sent += n
        return n

    def _delivered(self, err: KafkaError | None, _msg: Message) -> None:
        with self._lock:
            if err is None:
                self.produced += 1
            else:
                self.failed += 1
                self.last_error = str(err)

    def run(self, stop: threading.Event, began_monotonic: float) -> None:
        """Tick every :data:`TICK_S` until ``stop``; ``began_monotonic`` is the script's t=0."""
        self.began = began_monotonic
        next_tick = began_monotonic
        try:
            while not stop.is_set():
                elapsed = time.monotonic() - began_monotonic
                self.tick(elapsed, self.clock())
                next_tick += TICK_S
                delay = next_tick - time.monotonic()
                if delay > 0:
                    stop.wait(delay)
                else:
                    next_tick = time.monotonic()  # fell behind: do not burst to catch up
        finally:
            self.producer.flush(10)
