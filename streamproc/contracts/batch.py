"""Columnar output of the prediction decoders: :class:`PredictionBatch` and friends.

Both :func:`~streamproc.contracts.prediction.decode_predictions` (orjson) and
:func:`~streamproc.contracts.fast_decode.fast_decode` (pyarrow) return a
:class:`DecodeResult`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import numpy as np
import pyarrow as pa

BatchKey = tuple[str, str] | tuple[str, str, int]
"""(model, version) or (model, version, window start ms)."""


class Reject(NamedTuple):
    """A record that cannot be used: position in the input, reason code, human detail."""

    position: int
    """Index of the record in the decoded input list."""
    reason: str
    detail: str


SPARSE_SHARE = 0.05
"""A feature name carried by fewer than this share of a batch's rows is kept sparse."""


@dataclass(slots=True)
class PredictionBatch:
    """Columns for the accepted records of one (model, model_version), in input order.

    All columns have length ``n``. ``indices`` maps each row back to its position in the
    input list (for offsets and dead-lettering downstream).
    """

    model: str
    model_version: str
    indices: np.ndarray
    """int64 positions of the rows in the decoded input list."""
    timestamps: np.ndarray
    """float64 event time, epoch seconds."""
    features: dict[str, list[Any] | pa.Array]
    """Feature name → values; ``None`` for null *or* absent (see ``missing``). A typed
    pyarrow array instead of a list when the fast path (``fast_decode``) built it."""
    missing: dict[str, int]
    """Feature name → number of rows whose record lacked the key (a subset of the Nones)."""
    prediction_score: np.ndarray
    """float64 numeric prediction or ``score``; NaN when the prediction has none."""
    prediction_label: list[Any]
    """Label (str, bool or number from ``{"label": ...}``, or a str/bool prediction); None
    for a plain numeric prediction."""
    latency_ms: np.ndarray
    """float64, NaN when absent."""
    fallback: np.ndarray
    """bool."""
    error: np.ndarray
    """bool: ``error`` is true or a non-empty string."""
    features_as_of: np.ndarray
    """float64 epoch seconds, NaN when absent."""
    segments: list[dict[str, str] | None]
    request_ids: list[str] | None = None
    """Only when decoding with ``keep_request_ids=True``."""
    window_start_ms: int = 0
    """Start of the event-time window all rows fall in (decoding with ``window_ms``)."""
    missing_rows: dict[str, np.ndarray] = field(default_factory=dict)
    """Feature name → int64 row numbers whose record lacked the key (only names with any)."""
    sparse: dict[str, tuple[np.ndarray, list[Any]]] = field(default_factory=dict)
    """Names carried by few rows (see ``SPARSE_SHARE``) → (int64 rows that carry the key,
    their values). Not in ``features``/``missing``: a batch of records with random names
    then costs time and memory linear in its keys, never names × rows."""

    def present_rows(self, name: str) -> np.ndarray | None:
        """Rows whose record carries ``name`` as a key (None: the batch has no such name)."""
        if name in self.sparse:
            return self.sparse[name][0]
        if name not in self.features:
            return None
        absent = self.missing_rows.get(name)
        if absent is None:
            return np.arange(self.n, dtype=np.int64)
        present = np.ones(self.n, dtype=bool)
        present[absent] = False
        return np.flatnonzero(present)

    @property
    def n(self) -> int:
        """Number of rows."""
        return len(self.indices)

    def take(self, rows: np.ndarray) -> PredictionBatch:
        """The batch restricted to ``rows`` (int64 row numbers, ascending)."""
        rows = np.asarray(rows, dtype=np.int64)
        pick = rows.tolist()
        position = np.full(self.n, -1, dtype=np.int64)
        position[rows] = np.arange(len(rows))
        missing_rows = {}
        for name, where in self.missing_rows.items():
            kept = position[where]
            kept = kept[kept >= 0]
            if len(kept):
                missing_rows[name] = kept
        sparse = {}
        for name, (where, values) in self.sparse.items():
            moved = position[where]
            keep = np.flatnonzero(moved >= 0)
            if len(keep):
                sparse[name] = (moved[keep], [values[i] for i in keep.tolist()])
        return PredictionBatch(
            model=self.model,
            model_version=self.model_version,
            indices=self.indices[rows],
            timestamps=self.timestamps[rows],
            features={name: _take(col, rows, pick) for name, col in self.features.items()},
            missing={name: len(missing_rows.get(name, ())) for name in self.missing},
            prediction_score=self.prediction_score[rows],
            prediction_label=[self.prediction_label[i] for i in pick],
            latency_ms=self.latency_ms[rows],
            fallback=self.fallback[rows],
            error=self.error[rows],
            features_as_of=self.features_as_of[rows],
            segments=[self.segments[i] for i in pick],
            request_ids=None if self.request_ids is None else [self.request_ids[i] for i in pick],
            window_start_ms=self.window_start_ms,
            missing_rows=missing_rows,
            sparse=sparse,
        )

    def profile_columns(self) -> dict[str, Any]:
        """Keyword arguments for ``ModelProfile.update_columns`` (streamproc.core).

        JSON cannot carry NaN, so a NaN in the float columns always means "absent"; it
        is passed as a masked entry, which the core counts as null (a bare NaN would
        count as non-finite). Predictions without any score or label are left out.
        """
        kwargs: dict[str, Any] = {
            "columns": typed_columns(self.features),
            "latency_ms": np.ma.masked_invalid(self.latency_ms),
            "event_times": self.timestamps,
        }
        if not np.isnan(self.prediction_score).all():
            kwargs["predictions"] = np.ma.masked_invalid(self.prediction_score)
        if any(label is not None for label in self.prediction_label):
            kwargs["predicted_labels"] = self.prediction_label
        return kwargs


@dataclass(slots=True)
class DecodeResult:
    """Output of the decoders: batches of accepted rows, and the rejected records."""

    batches: dict[BatchKey, PredictionBatch]
    """Keyed by (model, version), or (model, version, window start ms) with ``window_ms``."""
    rejects: list[Reject] = field(default_factory=list)
    truncated_values: int = 0
    """String feature values and predicted labels of accepted rows that were longer than
    ``max_category_bytes`` and replaced by their capped form
    (:func:`~streamproc.contracts.limits.cap_category`)."""
    future_features_as_of: int = 0
    """Accepted records whose ``features_as_of`` was later than ``max_event_ms``: taken as
    absent (the field is invalid, the record is not)."""

    @property
    def n_accepted(self) -> int:
        return sum(b.n for b in self.batches.values())


def _take(col: list[Any] | pa.Array, rows: np.ndarray, pick: list[int]) -> list[Any] | pa.Array:
    if isinstance(col, pa.Array):
        return col.take(pa.array(rows, type=pa.int64()))
    return [col[i] for i in pick]


def typed_columns(features: dict[str, list[Any] | pa.Array]) -> dict[str, Any]:
    """Feature lists as typed arrays where the values allow it, so profiles skip the
    per-value Python pass: all numbers → float64 (nulls masked; JSON has no NaN, so a
    NaN here is always a null), all strings → pyarrow string array (nulls as nulls),
    all booleans → bool. Mixed or wrongly typed columns stay lists (the profile counts
    the odd values as invalid). Arrow arrays (already typed) pass through."""
    out: dict[str, Any] = {}
    for name, col in features.items():
        if isinstance(col, pa.Array):
            out[name] = col
            continue
        types = set(map(type, col))
        has_null = _NONE in types
        types.discard(_NONE)
        if not types:
            out[name] = col
        elif types <= _NUMBER_SET:
            arr = np.array(col, dtype=np.float64)
            out[name] = np.ma.masked_invalid(arr) if has_null else arr
        elif types == _STR_SET:
            out[name] = pa.array(col, type=pa.string())
        elif types == _BOOL_SET and not has_null:
            out[name] = np.array(col, dtype=np.bool_)
        else:
            out[name] = col
    return out


_NONE: Final = type(None)
_STR_SET: Final = frozenset({str})
_BOOL_SET: Final = frozenset({bool})
_NUMBER_SET: Final = frozenset({int, float})
