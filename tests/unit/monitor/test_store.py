"""The aggregate store's checkpoint, commit, restore and revoke transitions, without Kafka."""

from __future__ import annotations

import orjson

from streamproc.core.model_profile import ModelProfile
from streamproc.monitor.state import ModelKey, WindowKey
from streamproc.monitor.store import AggregateStore, Checkpoint
from tests.unit.monitor.test_evaluator import (
    LATENESS_MS,
    T0_MS,
    WINDOW_MS,
    _harness,
    _records,
)
from tests.unit.monitor.test_evaluator import reference as reference  # a fixture


def _replay_through(plan: Checkpoint, into: AggregateStore) -> None:
    latest = {r.key: r for r in plan.records}  # the compacted topic keeps the last per key
    for r in latest.values():
        into.restore_record(r.partition, r.key, r.value)


def test_checkpoint_writes_dirty_windows_and_alerts_then_commit_marks_them_clean(
    reference: ModelProfile,
) -> None:
    h = _harness(reference, replay=False)
    h.feed(_records(T0_MS, 4_000, 800, shift=2.0, seed=1)[0])
    h.store.evaluate(wall_ms=T0_MS + 4_000)

    plan = h.store.checkpoint()
    kinds = sorted(orjson.loads(r.key)[0] for r in plan.records)
    n_alerts = len(h.evaluator.alert_states)
    assert kinds == ["a"] * n_alerts + ["c", "w"]
    assert plan.windows == [WindowKey("m", "1", T0_MS)]
    assert all(r.partition == 0 for r in plan.records)
    assert h.store.checkpoint(only={1}).records == []  # another partition: nothing

    h.store.committed(plan)
    assert h.store.checkpoint().records == []  # clean until something changes

    restored = _harness(reference, replay=False).store
    _replay_through(plan, restored)
    assert set(restored.state.windows) == set(h.store.state.windows)
    window = restored.state.windows[WindowKey("m", "1", T0_MS)]
    assert window.profile.row_count == 800
    assert restored.evaluator.alert_states == h.evaluator.alert_states
    assert restored.partition_for(ModelKey("m", "1")) == 0
    assert restored.partition_for(ModelKey("m", "*")) == 0  # the model-wide alerts
    newest = h.store.state.clocks[("m", "1")].newest_event_ms
    assert restored.state.clocks[("m", "1")].newest_event_ms == newest


def test_an_uncommitted_checkpoint_is_written_again(reference: ModelProfile) -> None:
    h = _harness(reference, replay=False)
    h.feed(_records(T0_MS, 4_000, 600, seed=2)[0])
    first = h.store.checkpoint()  # its transaction aborts: committed() is never called
    again = h.store.checkpoint()
    assert [r.key for r in again.records] == [r.key for r in first.records] != []


def test_purged_windows_become_tombstones_once(reference: ModelProfile) -> None:
    h = _harness(reference, replay=True)
    h.store.state.retention_ms = 2 * WINDOW_MS
    h.feed(_records(T0_MS, WINDOW_MS, 600, seed=3)[0])
    h.store.committed(h.store.checkpoint())
    h.feed(_records(T0_MS + 3 * WINDOW_MS + LATENESS_MS, 1_000, 10, seed=4)[0])
    h.store.evaluate(wall_ms=0)  # window 0 leaves retention

    plan = h.store.checkpoint()
    tombstones = [r for r in plan.records if r.value is None]
    assert [orjson.loads(r.key) for r in tombstones] == [["w", "m", "1", T0_MS]]
    h.store.committed(plan)
    assert not [r for r in h.store.checkpoint().records if r.value is None]


def test_revoke_forgets_only_the_revoked_partitions_models(reference: ModelProfile) -> None:
    h = _harness(reference, replay=False)
    h.feed(_records(T0_MS, 4_000, 600, seed=5)[0])
    h.store.evaluate(wall_ms=T0_MS + 4_000)
    assert h.store.revoke({3}) == set()
    assert h.store.state.windows and h.evaluator.alert_states
    assert h.store.revoke({0}) == {("m", "1")}
    assert h.store.state.windows == {} and h.evaluator.alert_states == {}
    assert h.store.checkpoint().records == []


def test_a_tombstone_restores_nothing(reference: ModelProfile) -> None:
    store = _harness(reference, replay=False).store
    store.restore_record(0, orjson.dumps(["w", "m", "1", T0_MS]), None)
    assert store.state.windows == {} and store.partition_of == {}
