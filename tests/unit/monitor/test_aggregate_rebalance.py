"""A rebalance that takes a model away must not leave it half-known to the evaluator."""

from __future__ import annotations

from typing import Any

import numpy as np
from confluent_kafka import TopicPartition

from streamproc.checks.lifecycle import LifecyclePolicy
from streamproc.checks.policy import EvaluationPolicy
from streamproc.contracts.prediction import decode_predictions
from streamproc.core.model_profile import ModelProfile
from streamproc.monitor.aggregate import AggregateLoop, AggregateSettings
from streamproc.monitor.clients import KafkaClients
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
    loop.store.partition_of[("m", "1")] = 0

    assert loop.store.revoke({0}) == {("m", "1")}

    assert loop.state.windows == {} and loop.state.clocks == {}
    assert loop.state.changed_models == set()
    assert loop.evaluate() == []  # used to raise KeyError: ('m', '1')


class _AbortableError:
    def txn_requires_abort(self) -> bool:
        return True

    def retriable(self) -> bool:
        return False


class _Producer:
    def __init__(self, fail_commit: bool) -> None:
        self.fail_commit = fail_commit
        self.produced: list[bytes] = []
        self.aborted = 0

    def produce(self, topic: str, key: bytes, value: bytes | None, partition: int) -> None:
        self.produced.append(key)

    def send_offsets_to_transaction(self, *args: object) -> None:
        pass

    def commit_transaction(self, timeout: float) -> None:
        if self.fail_commit:
            from confluent_kafka import KafkaException

            raise KafkaException(_AbortableError())

    def abort_transaction(self, timeout: float) -> None:
        self.aborted += 1

    def begin_transaction(self) -> None:
        pass

    def init_transactions(self, timeout: float) -> None:
        pass

    def flush(self, timeout: float) -> int:
        return 0


class _Consumer:
    def assignment(self) -> list[TopicPartition]:
        return []

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return []

    def close(self) -> None:
        pass


def test_an_aborted_checkpoint_keeps_its_windows_dirty_for_the_next_one() -> None:
    rng = np.random.default_rng(2)
    reference = ModelProfile.build_reference("m", "1", {"x": rng.normal(size=1_000)})
    metrics = create()
    evaluator = Evaluator(
        references=ReferenceSet.of([reference]),
        policy_for=lambda _m: EvaluationPolicy(),
        lifecycle=LifecyclePolicy(),
        horizon_ms=60_000,
        metrics=metrics,
    )
    producers = [_Producer(fail_commit=True), _Producer(fail_commit=False)]
    transactional = iter(producers)

    def producer_factory(config: dict[str, Any]) -> Any:
        # the state producer is the transactional one; alerts get a plain fake
        return next(transactional) if "transactional.id" in config else _Producer(False)

    loop = AggregateLoop(
        AggregateSettings("p", "p-state", "alerts", "g", WINDOW_MS, 1_000, 600_000),
        evaluator,
        metrics,
        clients=KafkaClients(consumer=lambda _c: _Consumer(), producer=producer_factory),  # type: ignore[arg-type, return-value]
    )
    values = [_record(i, T0 + i, x=float(i), c="a") for i in range(10)]
    (batch,) = decode_predictions(values, window_ms=WINDOW_MS).batches.values()
    buf = WindowBuffer("m", "1", batch.window_start_ms, batch.window_start_ms + WINDOW_MS)
    buf.add(BufferedChunk(batch, batch.timestamps, T0), np.zeros(10), np.arange(10))
    loop.store.apply(build_delta(buf, reference, topic="in", producer_id="t"), 0, 0)

    loop.open()
    failing, ok = producers
    assert loop.checkpoint() is False
    assert failing.aborted == 1 and len(failing.produced) == 2  # the window and its clock
    assert len(loop.state.dirty) == 1  # not lost: written again next time

    loop.open()  # a fresh transactional producer
    assert loop.checkpoint() is True
    assert len(ok.produced) == 2 and loop.state.dirty == set()
