"""Live prediction-log traffic for the demo: paced, scripted, on a background thread.

Every tick (100 ms) :class:`Traffic` draws the tick's share of ``rate`` records from the
synthetic model (:mod:`streamproc.demo.model`) — with the incident applied while the
script says so, none at all during the stall — encodes them as prediction-log records
(``schemas/prediction_log.schema.json``; event time = the wall clock, spread across the
tick) and produces them keyed by request id, so they spread over the topic's partitions.

With a labels topic it also plays the ground truth: for the script's ``labels.share`` of
the predictions it draws the outcome (:func:`streamproc.demo.model.outcomes`, with the
concept drift applied while the script says so) and produces a label event
(``schemas/label_event.schema.json``) once its delay has passed, timestamped then.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import numpy as np
import orjson
from confluent_kafka import KafkaError, Message, Producer

from streamproc.demo.model import (
    MODEL,
    MODEL_VERSION,
    ConceptDrift,
    Incident,
    Sample,
    outcomes,
    sample,
)
from streamproc.demo.script import Labels, Phase, Script

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


def label_event(request_id: str, label: str, at_s: float) -> tuple[bytes, bytes]:
    """A label event (key, value) for ``request_id``, known at ``at_s``."""
    record = {"model": MODEL, "request_id": request_id, "timestamp": round(at_s, 6), "label": label}
    return request_id.encode(), orjson.dumps(record)


def label_delays(rng: np.random.Generator, n: int, labels: Labels) -> np.ndarray:
    """``n`` label delays (seconds): the minimum plus an exponential, capped."""
    extra = rng.exponential(labels.mean_delay_s, n) if labels.mean_delay_s > 0 else np.zeros(n)
    return np.minimum(labels.min_delay_s + extra, labels.max_delay_s)


class Traffic:
    """Produces the script's traffic until stopped; ``produced`` counts delivered
    prediction records, ``labels_produced`` delivered label events."""

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
        labels_topic: str | None = None,
        drift: ConceptDrift | None = None,
    ) -> None:
        self.topic = topic
        self.labels_topic = labels_topic
        self.drift = drift or ConceptDrift()
        self.label_rng = np.random.default_rng(seed + 1_000_003)
        self.pending: list[tuple[float, int, str, str]] = []
        """Label events not yet due: (due epoch seconds, request number, id, label)."""
        self.labels_sent = 0
        self.labels_produced = 0
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
        self._due_labels(now_s)
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
            self._produce(self.topic, key, value, self._delivered)
        if self.labels_topic is not None:
            self._schedule_labels(rows, now_s)
        self.sent += n
        return n

    def _produce(
        self, topic: str, key: bytes, value: bytes, on_delivery: Callable[..., None]
    ) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key, on_delivery=on_delivery)
                return
            except BufferError:
                self.producer.poll(0.05)

    def _schedule_labels(self, rows: Sample, now_s: float) -> None:
        """Draw the outcomes of this tick's rows; queue the labeled share's events."""
        rng, n, labels = self.label_rng, rows.n, self.script.labels
        truth = outcomes(rng, rows.scores, self.drift if self.phase.concept_drift else None)
        chosen = np.flatnonzero(rng.random(n) < labels.share)
        delays = label_delays(rng, len(chosen), labels)
        step = TICK_S / n
        for j, delay in zip(chosen.tolist(), delays.tolist(), strict=True):
            number = self.sent + j
            due = now_s + j * step + delay
            heapq.heappush(self.pending, (due, number, f"r-{number}", str(truth[j])))

    def _due_labels(self, now_s: float) -> None:
        """Produce the label events whose delay has passed (timestamped when due)."""
        if self.labels_topic is None:
            return
        while self.pending and self.pending[0][0] <= now_s:
            due, _number, rid, label = heapq.heappop(self.pending)
            key, value = label_event(rid, label, due)
            self._produce(self.labels_topic, key, value, self._label_delivered)
            self.labels_sent += 1

    def _label_delivered(self, err: KafkaError | None, _msg: Message) -> None:
        with self._lock:
            if err is None:
                self.labels_produced += 1
            else:
                self.failed += 1
                self.last_error = str(err)

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
