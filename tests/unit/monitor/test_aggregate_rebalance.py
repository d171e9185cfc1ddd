"""A rebalance that takes a model away must not leave it half-known to the evaluator."""

from __future__ import annotations

import numpy as np
from confluent_kafka import TopicPartition

from streamproc.checks.lifecycle import LifecyclePolicy
from streamproc.checks.policy import EvaluationPolicy
from streamproc.contracts.prediction import decode_predictions
from streamproc.core.model_profile import ModelProfile
from streamproc.monitor.aggregate import AggregateLoop, AggregateSettings
from streamproc.monitor.evaluator import Evaluator
from streamproc.monitor.metrics import create
from streamproc.monitor.references import ReferenceSet
from streamproc.monitor.window_buffer import BufferedChunk, WindowBuffer, build_delta
from tests.unit.monitor.test_window_pipeline import T0, WINDOW_MS, _record


def test_revoked_model_is_not_evaluated_afterwards() -> None:
    rng = np.random.default_rng(1)
    reference = ModelProfile.build_reference(
        "m", "1", {"x": rng.normal(size=1_000), "c": np.array(["a"] * 1_000, dtype=object)}
    )
    metrics = create()
    evaluator = Evaluator(
        references=ReferenceSet.of([reference]),
        policy_for=lambda _m: EvaluationPolicy(),
        lifecycle=LifecyclePolicy(),
        horizon_ms=60_000,
        metrics=metrics,
    )
    loop = AggregateLoop(
        AggregateSettings("p", "p-state", "alerts", "g", WINDOW_MS, 1_000, 600_000),
        evaluator,
        metrics,
    )
    values = [_record(i, T0 + i, x=float(i), c="a") for i in range(10)]
    (batch,) = decode_predictions(values, window_ms=WINDOW_MS).batches.values()
    buf = WindowBuffer("m", "1", batch.window_start_ms, batch.window_start_ms + WINDOW_MS)
    buf.add(BufferedChunk(batch, batch.timestamps, T0), np.zeros(10), np.arange(10))
    assert loop.state.apply(build_delta(buf, reference, topic="in", producer_id="t"), 0)
    loop.partition_of[("m", "1")] = 0

    loop._on_revoke(None, [TopicPartition("p", 0)])  # type: ignore[arg-type]

    assert loop.state.windows == {} and loop.state.clocks == {}
    assert loop.state.changed_models == set()
    assert loop.evaluate() == []  # used to raise KeyError: ('m', '1')
