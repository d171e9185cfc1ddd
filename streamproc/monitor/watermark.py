"""Event-time progress per source partition that one bad record cannot hijack.

The newest event time of a partition decides which records are late (and, in the
aggregate, which windows close and which leave retention). A plain maximum lets a
single record stamped ``9999-12-31`` end monitoring of its model for good: every
later record looks late. So the *confirmed* newest event time of a (partition, model,
version) moves only as far as enough records support: to the k-th largest event time
of a consumed batch, k = max(3, 1 % of the batch's rows) — outliers that are fewer
than that never move it, however many batches carry them — or, for batches too small
to say (a slow live stream), to the 3rd largest of the records not yet confirmed.

Records far ahead of that confirmed time are suspect too: each would open a window of
its own, so a stream of them grows state without bound. A record more than
``max_jump_ms`` ahead of the confirmed newest event time (computed with the batch it
came in, so a burst of ``confirmations`` records confirms a real jump, e.g. a replay
that resumes after a gap) is rejected as ``future_timestamp`` — unless it is within
``skew_ms`` of the wall clock: live data resuming after an outage is never rejected,
and records ahead of the wall clock are rejected by the decoders already. Until a
partition has ``confirmations`` records, nothing is rejected by this rule.

A replayed sparse topic with a gap longer than ``max_jump_ms`` whose first consumed
batch after the gap holds fewer than ``confirmations`` records has those records
dead-lettered (with the reason, never silently).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

SourceKey = tuple[int, str, str]
"""(partition, model, version)."""

CONFIRMATIONS = 3
CONFIRM_SHARE = 0.01
MAX_JUMP_MS = 3_600_000
IDLE_S = 5.0

WATERMARK_HEADER = "streamproc.watermark_ms"
"""Header of every profile delta: the event time (epoch ms) its model version's data has
reached on every partition of the ingest worker that wrote it
(:meth:`Watermarks.model_watermark_ms`). The aggregate advances its clocks by this,
never by a delta's own newest event time, which one bad record can set."""


def parse_watermark_header(headers: object) -> int | None:
    """The watermark a delta's headers carry; None when absent (deltas of older versions)."""
    if not headers:
        return None
    items = headers.items() if isinstance(headers, dict) else headers
    for name, value in items:  # type: ignore[attr-defined]
        if name == WATERMARK_HEADER and value:
            try:
                return int(value)
            except (TypeError, ValueError):
                return None
    return None


@dataclass
class Watermarks:
    confirmations: int = CONFIRMATIONS
    confirm_share: float = CONFIRM_SHARE
    max_jump_ms: int = MAX_JUMP_MS
    skew_ms: int = 300_000
    _confirmed: dict[SourceKey, int] = field(default_factory=dict)
    """Per source, the confirmed newest event time (ms)."""
    idle_s: float = IDLE_S
    _pending: dict[SourceKey, np.ndarray] = field(default_factory=dict)
    """Per source, the largest ``confirmations`` accepted event times above it, ascending."""
    _advanced_at: dict[SourceKey, float] = field(default_factory=dict)
    """Per source, when (monotonic seconds) its confirmed newest event time last moved."""

    def newest_ms(self, key: SourceKey) -> int:
        """The confirmed newest event time of ``key`` (0 until it has enough records)."""
        return self._confirmed.get(key, 0)

    def _candidate(self, key: SourceKey, ts_ms: np.ndarray) -> int:
        """The confirmed newest event time once this batch of ``key`` is taken in: its
        k-th largest event time, k = max(confirmations, confirm_share × rows) — so a few
        outliers in a large batch never count — or, for a batch too small for that, the
        ``confirmations``-th largest of it and the earlier unconfirmed records."""
        confirmed = self._confirmed.get(key, 0)
        n, c = len(ts_ms), self.confirmations
        k = max(c, math.ceil(self.confirm_share * n))
        if n >= k:
            support = int(np.partition(ts_ms, n - k)[n - k])
        else:
            pending = self._pending.get(key, np.empty(0, np.int64))
            pool = np.concatenate([pending, ts_ms.astype(np.int64)])
            support = int(np.sort(pool)[-c]) if len(pool) >= c else 0
        return max(confirmed, support)

    def future_after_ms(self, key: SourceKey, ts_ms: np.ndarray) -> int | None:
        """Event time (ms) beyond which rows of this consumed batch of ``key`` are too far
        ahead of the partition (the confirmed newest with the batch, plus the allowed
        jump); None while the partition has too few records to say."""
        if len(ts_ms) == 0:
            return None
        newest = self._candidate(key, ts_ms)
        return None if newest == 0 else newest + self.max_jump_ms

    def too_far_ahead(self, ts_ms: np.ndarray, after_ms: int, wall_ms: int) -> np.ndarray:
        """Rows beyond ``after_ms`` that are not within the skew of the wall clock."""
        out: np.ndarray = (ts_ms > after_ms) & (ts_ms < wall_ms - self.skew_ms)
        return out

    def advance(self, key: SourceKey, ts_ms: np.ndarray) -> None:
        """Take in the accepted rows of one consumed batch of ``key``."""
        if len(ts_ms) == 0:
            return
        newest = self._candidate(key, ts_ms)
        if newest > self._confirmed.get(key, 0):
            self._advanced_at[key] = time.monotonic()
        self._confirmed[key] = newest
        pending = self._pending.get(key, np.empty(0, np.int64))
        above = np.concatenate([pending, ts_ms.astype(np.int64)])
        above = above[above > newest]
        if len(above) > self.confirmations:
            above = np.sort(above)[-self.confirmations :]
        self._pending[key] = np.sort(above)

    def model_watermark_ms(self, model: str, version: str, now_s: float | None = None) -> int:
        """The event time a model version's data has reached on every partition here: the
        least confirmed newest event time over its partitions, as Kafka Streams and Flink
        take the minimum over input partitions, so a window closes only once every
        partition is past it (a replay reads partitions at different speeds). A partition
        whose confirmed time has not moved for ``idle_s`` of wall-clock time is idle and
        left out, so one that stopped receiving the model's data cannot stall it."""
        now = time.monotonic() if now_s is None else now_s
        keys = [k for k, v in self._confirmed.items() if k[1] == model and k[2] == version and v]
        if not keys:
            return 0
        active = [k for k in keys if now - self._advanced_at.get(k, now) <= self.idle_s]
        return min(self._confirmed[k] for k in active or keys)

    def clear(self) -> None:
        self._confirmed.clear()
        self._pending.clear()
        self._advanced_at.clear()
