"""Aggregate-stage state: event-time windows merged from deltas, per model version.

Pure data structures, no Kafka. Windows are keyed by event time only; nothing here
reads the wall clock, so replaying last year's data at full speed builds the same
windows as living through it. The watermark of a model version is its newest event
time minus the allowed lateness; a window whose end is at or before the watermark is
closed (evaluated finally, once) and is kept until it falls out of the retention
horizon, which is also measured from the newest event time — never from the wall
clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from streamproc.contracts.framing import decode_profile_delta, encode_profile_delta
from streamproc.core.labeled_slices import LabeledSlices, merge_labeled
from streamproc.core.model_profile import ModelProfile
from streamproc.core.ops import cap_event_names
from streamproc.core.slice_profiles import SliceProfiles, merge_slices
from streamproc.monitor.delta import ProfileDelta
from streamproc.monitor.performance_delta import (
    Performance,
    PerformanceDelta,
    merge_performance,
    performance_from_bytes,
)

RECENT_MS = 5_000
"""Event time covered by the "recent" profile that provisional verdicts judge."""


class ModelKey(NamedTuple):
    """One model version: the unit that owns windows, clocks and alert states."""

    model: str
    model_version: str


class WindowKey(NamedTuple):
    """One event-time window of a model version (``start_ms``: epoch ms, inclusive)."""

    model: str
    model_version: str
    start_ms: int

    @property
    def model_key(self) -> ModelKey:
        return ModelKey(self.model, self.model_version)


@dataclass
class WindowState:
    """One (model, version, window): merged feature and ops profiles, applied offsets."""

    model: str
    model_version: str
    start_ms: int
    end_ms: int
    profile: ModelProfile
    ops: ModelProfile
    applied: dict[str, int] = field(default_factory=dict)
    """``"topic:partition"`` → highest source offset merged in (for duplicate deltas)."""
    final: bool = False
    """True once the window closed and had its final evaluation."""
    performance: Performance | None = None
    """Realized performance of the window's labeled rows (labels stage), revised as
    labels arrive; None until the first."""
    slices: SliceProfiles | None = None
    """Per-slice profiles and fairness counts (models with slicing configured)."""
    labeled: LabeledSlices | None = None
    """Per-slice performance, labeled fairness counts and shadow pairs."""

    @property
    def key(self) -> WindowKey:
        return WindowKey(self.model, self.model_version, self.start_ms)

    @property
    def model_key(self) -> ModelKey:
        return ModelKey(self.model, self.model_version)

    def to_bytes(self) -> bytes:
        profile, ops = self.profile.to_bytes(), self.ops.to_bytes()
        header: dict[str, Any] = {
            "model": self.model,
            "model_version": self.model_version,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "applied": self.applied,
            "final": self.final,
            "profile_bytes": len(profile),
        }
        parts = {
            "performance_bytes": self.performance,
            "slices_bytes": self.slices,
            "labeled_bytes": self.labeled,
        }
        extras = {k: v.to_bytes() for k, v in parts.items() if v is not None}
        if not extras:  # the layout of checkpoints before performance
            return encode_profile_delta(header, profile + ops)
        header["ops_bytes"] = len(ops)
        header.update({k: len(v) for k, v in extras.items()})
        return encode_profile_delta(header, profile + ops + b"".join(extras.values()))

    @classmethod
    def from_bytes(cls, data: bytes) -> WindowState:
        head, body = decode_profile_delta(data)
        n = int(head["profile_bytes"])
        o = n + int(head["ops_bytes"]) if "ops_bytes" in head else len(body)
        pos = o
        raw: dict[str, bytes] = {}
        for key in ("performance_bytes", "slices_bytes", "labeled_bytes"):  # to_bytes' order
            if key in head:  # older checkpoints have fewer
                size = int(head[key])
                raw[key], pos = body[pos : pos + size], pos + size
        perf = raw.get("performance_bytes")
        slices = raw.get("slices_bytes")
        labeled = raw.get("labeled_bytes")
        return cls(
            model=head["model"],
            model_version=head["model_version"],
            start_ms=int(head["start_ms"]),
            end_ms=int(head["end_ms"]),
            profile=ModelProfile.from_bytes(body[:n]),
            ops=ModelProfile.from_bytes(body[n:o]),
            applied={str(k): int(v) for k, v in head["applied"].items()},
            final=bool(head["final"]),
            performance=None if perf is None else performance_from_bytes(perf),
            slices=None if slices is None else SliceProfiles.from_bytes(slices),
            labeled=None if labeled is None else LabeledSlices.from_bytes(labeled),
        )


class RecentDelta(NamedTuple):
    newest_ms: int
    profile: ModelProfile
    ops: ModelProfile


@dataclass
class ModelClock:
    """Event-time progress of one model version, plus when data last arrived."""

    newest_event_ms: int = 0
    last_arrival_ms: int = 0
    """Wall-clock time the newest delta arrived (for staleness), epoch ms."""
    arrival_lag_ms: int = 0
    """Wall clock minus newest event time when the newest delta arrived: large means replay."""
    last_label_arrival_ms: int = 0
    """Wall-clock time the newest performance delta (labels) arrived, epoch ms; 0: none
    yet (for ``label_staleness``)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "newest_event_ms": self.newest_event_ms,
            "last_arrival_ms": self.last_arrival_ms,
            "arrival_lag_ms": self.arrival_lag_ms,
            "last_label_arrival_ms": self.last_label_arrival_ms,
        }


class AggregateState:
    """All windows and clocks one aggregate worker owns."""

    def __init__(
        self,
        window_ms: int,
        allowed_lateness_ms: int,
        retention_ms: int,
        recent_ms: int = RECENT_MS,
    ) -> None:
        self.window_ms = window_ms
        self.recent_ms = recent_ms
        self.recent: dict[ModelKey, deque[RecentDelta]] = {}
        """Per model version, the deltas of the last ``recent_ms`` of event time."""
        self.allowed_lateness_ms = allowed_lateness_ms
        self.retention_ms = retention_ms
        self.windows: dict[WindowKey, WindowState] = {}
        self.clocks: dict[ModelKey, ModelClock] = {}
        self.dirty: set[WindowKey] = set()
        self.changed_models: set[ModelKey] = set()
        """Model versions that received data since the last :meth:`take_changed`."""
        self.dirty_clocks: set[ModelKey] = set()
        """Clocks advanced since their last committed checkpoint."""
        self.performance_changed: set[WindowKey] = set()
        """Windows whose performance changed since the last :meth:`take_performance_changed`."""
        self._restored_clocks: set[ModelKey] = set()

    # ----------------------------------------------------------------- updates

    def apply(self, delta: ProfileDelta, arrival_ms: int, watermark_ms: int | None = None) -> bool:
        """Merge ``delta`` into its window; False if it was already applied (or too old).

        ``watermark_ms`` is the confirmed newest event time the delta's writer had seen
        (:mod:`streamproc.monitor.watermark`): the model's clock advances by it, so a
        delta holding one far-future record cannot close or purge real windows. Without
        it (older writers) the clock follows the delta's own newest event time."""
        mkey = ModelKey(delta.model, delta.model_version)
        clock = self.clocks.setdefault(mkey, ModelClock())
        if delta.window_end_ms <= clock.newest_event_ms - self.retention_ms:
            return False
        wkey = WindowKey(delta.model, delta.model_version, delta.window_start_ms)
        window = self.windows.get(wkey)
        sources = [(f"{delta.topic}:{p}", last) for p, _first, last in delta.ranges]
        if (
            window is not None
            and sources
            and all(last <= window.applied.get(src, -1) for src, last in sources)
        ):
            return False
        if window is None:
            window = WindowState(
                delta.model,
                delta.model_version,
                delta.window_start_ms,
                delta.window_end_ms,
                delta.profile,
                delta.ops,
            )
            self.windows[wkey] = window
            window.slices = delta.slices
        elif window.profile.row_count == 0:  # opened by labels: the first prediction delta
            window.profile, window.ops = delta.profile, delta.ops
            window.slices = delta.slices
        else:
            window.profile = window.profile.merge(delta.profile)
            window.ops = window.ops.merge(delta.ops)
            cap_event_names(window.ops)  # fresh names in every delta stay bounded
            window.slices = merge_slices(window.slices, delta.slices)
        for src, last in sources:
            window.applied[src] = max(last, window.applied.get(src, -1))
        newest = delta.profile.event_time_max
        newest_ms: int | None = None if newest is None else int(newest * 1000)
        advance_to: int | None = newest_ms
        if watermark_ms is not None:
            # its rows past the writer's confirmed newest event time do not move the clock
            newest_ms = watermark_ms if newest_ms is None else min(newest_ms, watermark_ms)
            advance_to = watermark_ms
        if advance_to is not None and advance_to >= clock.newest_event_ms and advance_to > 0:
            if advance_to > clock.newest_event_ms:
                self.dirty_clocks.add(mkey)
            clock.newest_event_ms = advance_to
            clock.arrival_lag_ms = max(0, arrival_ms - advance_to)
        clock.last_arrival_ms = arrival_ms
        if newest_ms is not None:
            recent = self.recent.setdefault(mkey, deque())
            recent.append(RecentDelta(newest_ms, delta.profile, delta.ops))
            while recent and recent[0].newest_ms <= clock.newest_event_ms - self.recent_ms:
                recent.popleft()
        self.dirty.add(wkey)
        self.changed_models.add(mkey)
        return True

    def apply_performance(self, delta: PerformanceDelta, arrival_ms: int | None = None) -> bool:
        """Merge a performance delta into its window (opening a window without rows
        when its labels come before its predictions); False if already applied (its
        label offsets, as for profile deltas) or its window left retention. The clock
        is the predictions': labels never move its event time, only record (wall clock
        ``arrival_ms``) when labels last came."""
        mkey = ModelKey(delta.model, delta.model_version)
        clock = self.clocks.get(mkey)
        if clock is not None and delta.window_end_ms <= clock.newest_event_ms - self.retention_ms:
            return False
        wkey = WindowKey(delta.model, delta.model_version, delta.window_start_ms)
        window = self.windows.get(wkey)
        sources = [(f"{delta.topic}:{p}", last) for p, _first, last in delta.ranges]
        if (
            window is not None
            and sources
            and all(last <= window.applied.get(src, -1) for src, last in sources)
        ):
            return False
        if window is None:
            empty = ModelProfile(delta.model, delta.model_version, {})
            window = WindowState(
                delta.model,
                delta.model_version,
                delta.window_start_ms,
                delta.window_end_ms,
                empty,
                ModelProfile(delta.model, delta.model_version, {}),
            )
            self.windows[wkey] = window
        window.performance = merge_performance(window.performance, delta.performance)
        window.labeled = merge_labeled(window.labeled, delta.slices)
        for src, last in sources:
            window.applied[src] = max(last, window.applied.get(src, -1))
        self.dirty.add(wkey)
        self.performance_changed.add(wkey)
        if arrival_ms is not None:  # applied deltas only: a re-delivery is no new label
            clock = self.clocks.setdefault(mkey, ModelClock())
            if arrival_ms > clock.last_label_arrival_ms:
                clock.last_label_arrival_ms = arrival_ms
                self.dirty_clocks.add(mkey)
        return True

    def take_performance_changed(self) -> set[WindowKey]:
        """Windows whose performance changed since the last call (and forget them)."""
        changed, self.performance_changed = self.performance_changed, set()
        return {k for k in changed if k in self.windows}

    def restore(self, window: WindowState) -> None:
        """Load a checkpointed window (after a restart or a rebalance). Its newest event
        time moves the clock only for a model whose clock was never checkpointed."""
        self.windows[window.key] = window
        clock = self.clocks.setdefault(window.model_key, ModelClock())
        newest = window.profile.event_time_max
        if newest is not None and window.model_key not in self._restored_clocks:
            clock.newest_event_ms = max(clock.newest_event_ms, int(newest * 1000))

    def restore_clock(self, mkey: ModelKey, data: dict[str, Any]) -> None:
        """Load a checkpointed clock: it is authoritative over the windows' event times."""
        self.clocks[mkey] = ModelClock(
            newest_event_ms=int(data.get("newest_event_ms", 0)),
            last_arrival_ms=int(data.get("last_arrival_ms", 0)),
            arrival_lag_ms=int(data.get("arrival_lag_ms", 0)),
            last_label_arrival_ms=int(data.get("last_label_arrival_ms", 0)),  # older: none
        )
        self._restored_clocks.add(mkey)

    def take_changed(self) -> set[ModelKey]:
        """The model versions that received data since the last call (and forget them)."""
        changed, self.changed_models = self.changed_models, set()
        return changed

    def mark_clean(self, keys: Iterable[WindowKey], clocks: Iterable[ModelKey] = ()) -> None:
        """Windows (and clocks) whose checkpoint committed: not written again until they
        change."""
        self.dirty.difference_update(keys)
        self.dirty_clocks.difference_update(clocks)

    def drop_models(self, models: set[ModelKey]) -> None:
        """Forget every window, clock and recent delta of ``models`` (another worker owns
        them after a rebalance)."""
        for key in [k for k in self.windows if k.model_key in models]:
            del self.windows[key]
            self.dirty.discard(key)
            self.performance_changed.discard(key)
        for mkey in models:
            self.clocks.pop(mkey, None)
            self.recent.pop(mkey, None)
            self.changed_models.discard(mkey)
            self.dirty_clocks.discard(mkey)
            self._restored_clocks.discard(mkey)

    # ----------------------------------------------------------------- queries

    def watermark_ms(self, mkey: ModelKey) -> int:
        clock = self.clocks.get(mkey)
        return (clock.newest_event_ms if clock else 0) - self.allowed_lateness_ms

    def model_windows(self, mkey: ModelKey) -> list[WindowState]:
        """The model version's windows, oldest first."""
        return sorted(
            (w for w in self.windows.values() if w.model_key == mkey),
            key=lambda w: w.start_ms,
        )

    def newly_closed(self, mkey: ModelKey) -> list[WindowState]:
        """Closed windows not yet finally evaluated, oldest first."""
        mark = self.watermark_ms(mkey)
        return [w for w in self.model_windows(mkey) if not w.final and w.end_ms <= mark]

    def open_window(self, mkey: ModelKey) -> WindowState | None:
        """The window holding the newest event time, if still open for late data (never
        a window ahead of the clock, which only unconfirmed records opened)."""
        mark = self.watermark_ms(mkey)
        newest = self.clocks[mkey].newest_event_ms if mkey in self.clocks else 0
        windows = [
            w
            for w in self.model_windows(mkey)
            if w.end_ms > mark and w.start_ms <= newest and w.profile.row_count > 0
        ]
        return windows[-1] if windows else None

    def horizon(
        self, mkey: ModelKey, horizon_ms: int, as_of_ms: int | None = None
    ) -> tuple[ModelProfile, ModelProfile, int]:
        """Merged (profile, ops, start_ms) of the windows ending in
        ``(as_of − horizon, as_of]`` (``as_of`` defaults to the newest event time)."""
        until = self.clocks[mkey].newest_event_ms if as_of_ms is None else as_of_ms
        since = until - horizon_ms
        chosen = [
            w
            for w in self.model_windows(mkey)
            if since < w.end_ms and (as_of_ms is None or w.end_ms <= until) and w.profile.row_count
        ]
        if not chosen:
            raise KeyError(f"no windows for {mkey}")
        profile, ops = chosen[0].profile, chosen[0].ops
        for w in chosen[1:]:
            profile, ops = profile.merge(w.profile), ops.merge(w.ops)
        return profile, ops, chosen[0].start_ms

    def recent_profile(
        self, mkey: ModelKey, min_rows: int
    ) -> tuple[ModelProfile, ModelProfile, int] | None:
        """Merged (profile, ops, start_ms) of the deltas of the last ``recent_ms`` of event
        time, or None when they hold fewer than ``min_rows`` rows."""
        recent = self.recent.get(mkey)
        if not recent or sum(d.profile.row_count for d in recent) < min_rows:
            return None
        profile, ops = recent[0].profile, recent[0].ops
        for d in list(recent)[1:]:
            profile, ops = profile.merge(d.profile), ops.merge(d.ops)
        start = int((profile.event_time_min or 0) * 1000)
        return profile, ops, start

    def purge(self) -> list[WindowKey]:
        """Drop windows older than the retention horizon (by event time)."""
        gone = []
        for key, w in list(self.windows.items()):
            clock = self.clocks.get(w.model_key)
            if clock and w.end_ms <= clock.newest_event_ms - self.retention_ms:
                del self.windows[key]
                self.dirty.discard(key)
                gone.append(key)
        return gone

    def models(self) -> Iterator[ModelKey]:
        return iter(list(self.clocks))
