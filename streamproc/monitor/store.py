"""What one aggregate worker owns, and every transition of it — without Kafka.

:class:`AggregateStore` holds the event-time windows (:class:`AggregateState`), the
alert states (in the :class:`Evaluator`), which partition of the state topic each
model version's records go to, and the tombstones still to be written. The
aggregate loop only decodes messages, calls these operations and writes the bytes
they return, so every transition (apply, evaluate, checkpoint, commit, restore,
revoke) is testable without a broker:

* :meth:`apply` merges one delta read from a profiles partition;
* :meth:`evaluate` / :meth:`staleness` decide alerts (the evaluator's schedule);
* :meth:`checkpoint` lists the state records one checkpoint must write;
  :meth:`committed` marks them clean once their transaction committed (an aborted
  one marks nothing: the next checkpoint writes it all again);
* :meth:`restore_record` loads one record read back from the state topic;
* :meth:`revoke` forgets the model versions of partitions another worker now owns.

State records are keyed ``["w", model, version, start_ms]`` (a window),
``["a", fingerprint]`` (an alert state) or ``["c", model, version]`` (the model
version's event-time clock), JSON-encoded; a ``None`` value is a
tombstone, so the compacted topic forgets purged windows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import orjson

from streamproc.checks.lifecycle import AlertState
from streamproc.monitor.delta import ProfileDelta
from streamproc.monitor.evaluator import Alert, Evaluator
from streamproc.monitor.performance_delta import PerformanceDelta
from streamproc.monitor.state import AggregateState, ModelKey, WindowKey, WindowState

WINDOW_RECORD = "w"
ALERT_RECORD = "a"
CLOCK_RECORD = "c"


def window_record_key(key: WindowKey) -> bytes:
    return orjson.dumps([WINDOW_RECORD, key.model, key.model_version, key.start_ms])


def clock_record_key(mkey: ModelKey) -> bytes:
    return orjson.dumps([CLOCK_RECORD, mkey[0], mkey[1]])


def alert_record_key(fingerprint: str) -> bytes:
    return orjson.dumps([ALERT_RECORD, fingerprint])


class StateRecord(NamedTuple):
    """One message for the state topic: its partition, key and value (None: tombstone)."""

    partition: int
    key: bytes
    value: bytes | None


@dataclass(frozen=True)
class Checkpoint:
    """What one checkpoint writes, and what it marks clean once committed."""

    records: list[StateRecord]
    windows: list[WindowKey]
    tombstones: list[WindowKey]
    alerts: list[str]
    clocks: list[ModelKey]


class AggregateStore:
    """Windows, alert states and their state-topic partitions for one aggregate worker."""

    def __init__(self, state: AggregateState, evaluator: Evaluator) -> None:
        self.state = state
        self.evaluator = evaluator
        self.partition_of: dict[ModelKey, int] = {}
        """Model version → the profiles (and state) partition its data comes from."""
        self.tombstones: dict[WindowKey, int] = {}
        """Purged windows whose tombstone is not yet committed → their partition."""

    # ----------------------------------------------------------------- data

    def apply(
        self, delta: ProfileDelta, partition: int, arrival_ms: int, watermark_ms: int | None = None
    ) -> bool:
        """Merge a delta read from profiles ``partition``; False for a duplicate (or a
        delta whose window already left retention). ``watermark_ms``: see
        :meth:`AggregateState.apply`."""
        self.partition_of[ModelKey(delta.model, delta.model_version)] = partition
        return self.state.apply(delta, arrival_ms=arrival_ms, watermark_ms=watermark_ms)

    def apply_performance(
        self, delta: PerformanceDelta, partition: int, arrival_ms: int | None = None
    ) -> bool:
        """Merge a performance delta read from profiles ``partition`` (the labels stage
        keys it by model, like profile deltas); False for a duplicate. ``arrival_ms``:
        wall clock, for ``label_staleness``."""
        self.partition_of[ModelKey(delta.model, delta.model_version)] = partition
        return self.state.apply_performance(delta, arrival_ms=arrival_ms)

    def evaluate(self, wall_ms: int) -> list[Alert]:
        """One evaluation tick: every model version that received data, then staleness of
        all, then the purge of windows past retention (their tombstones are queued)."""
        alerts: list[Alert] = []
        for mkey in sorted(self.state.take_changed()):
            alerts += self.evaluator.evaluate_model(self.state, mkey)
        changed = self.state.take_performance_changed()
        if changed:
            alerts += self.evaluator.evaluate_performance(self.state, changed)
        alerts += self.staleness(wall_ms)
        for key in self.state.purge():
            part = self.partition_of.get(key.model_key)
            if part is not None:
                self.tombstones[key] = part
        return alerts

    def staleness(self, wall_ms: int) -> list[Alert]:
        """The staleness timer alone (between evaluations)."""
        return self.evaluator.evaluate_staleness(self.state, wall_ms)

    # ----------------------------------------------------------------- checkpoints

    def checkpoint(self, only: set[int] | None = None) -> Checkpoint:
        """The dirty windows, queued tombstones and changed alert states to write, limited
        to the partitions in ``only`` when given (a revocation checkpoints just those)."""

        def wanted(part: int | None) -> bool:
            return part is not None and (only is None or part in only)

        records: list[StateRecord] = []
        windows: list[WindowKey] = []
        tombstones: list[WindowKey] = []
        alerts: list[str] = []
        clocks: list[ModelKey] = []
        for key in sorted(self.state.dirty):
            window = self.state.windows.get(key)
            part = self.partition_of.get(key.model_key)
            if window is not None and wanted(part):
                assert part is not None
                records.append(StateRecord(part, window_record_key(key), window.to_bytes()))
                windows.append(key)
        for key, part in sorted(self.tombstones.items()):
            if wanted(part):
                records.append(StateRecord(part, window_record_key(key), None))
                tombstones.append(key)
        for fp, owner, st in self.evaluator.changed_alert_states():
            part = self.partition_for(owner)
            if wanted(part):
                assert part is not None
                records.append(StateRecord(part, alert_record_key(fp), orjson.dumps(st.to_dict())))
                alerts.append(fp)
        for mkey in sorted(self.state.dirty_clocks):
            clock = self.state.clocks.get(mkey)
            part = self.partition_of.get(mkey)
            if clock is not None and wanted(part):
                assert part is not None
                value = orjson.dumps(clock.to_dict())
                records.append(StateRecord(part, clock_record_key(mkey), value))
                clocks.append(mkey)
        return Checkpoint(records, windows, tombstones, alerts, clocks)

    def partition_for(self, owner: ModelKey) -> int | None:
        """The partition of ``owner``'s records. Alerts about a model as a whole (the
        serving versions, owner version ``"*"``) go with its versions: every version of a
        model is keyed by the model name, so all share one partition."""
        part = self.partition_of.get(owner)
        if part is None:
            part = next((p for m, p in self.partition_of.items() if m[0] == owner[0]), None)
        return part

    def committed(self, checkpoint: Checkpoint) -> None:
        """The checkpoint's transaction committed: what it wrote is clean."""
        self.state.mark_clean(checkpoint.windows, checkpoint.clocks)
        for key in checkpoint.tombstones:
            self.tombstones.pop(key, None)
        self.evaluator.mark_alerts_clean(checkpoint.alerts)

    # ----------------------------------------------------------------- rebalances

    def restore_records(self, records: Iterable[StateRecord]) -> int:
        """Load the latest record of each state-topic key: clocks first (they are
        authoritative over the windows' own event times), then windows and alerts."""
        ordered = sorted(records, key=lambda r: orjson.loads(r.key)[0] != CLOCK_RECORD)
        for record in ordered:
            self.restore_record(*record)
        return len(ordered)

    def restore_record(self, partition: int, key: bytes, value: bytes | None) -> None:
        """Load the latest record of one state-topic key (a tombstone loads nothing)."""
        if value is None:
            return
        parsed = orjson.loads(key)
        kind = parsed[0]
        if kind == CLOCK_RECORD:
            mkey = ModelKey(str(parsed[1]), str(parsed[2]))
            self.state.restore_clock(mkey, orjson.loads(value))
            self.partition_of.setdefault(mkey, partition)
        elif kind == WINDOW_RECORD:
            window = WindowState.from_bytes(value)
            self.state.restore(window)
            self.partition_of[window.model_key] = partition
        elif kind == ALERT_RECORD:
            st = AlertState.from_dict(orjson.loads(value))
            self.evaluator.restore_alert(st)
            self.partition_of.setdefault(ModelKey(st.model, st.model_version), partition)

    def revoke(self, partitions: set[int]) -> set[ModelKey]:
        """Forget the model versions of ``partitions`` (checkpoint them first)."""
        gone = {m for m, p in self.partition_of.items() if p in partitions}
        self.state.drop_models(gone)
        whole_models = {ModelKey(m[0], "*") for m in gone}
        self.evaluator.drop_models(gone | whole_models)
        for mkey in gone:
            self.partition_of.pop(mkey, None)
        for key in [k for k in self.tombstones if k.model_key in gone]:
            del self.tombstones[key]
        return gone
