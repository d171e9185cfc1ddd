"""Ingest-side buffers: decoded rows of one (model, version, window) between flushes.

Rows are buffered as decoded column chunks and sketched once per flush, so each
sketch update sees one large array instead of many small ones (KLL and HLL updates
have a fixed cost per call). ``build_delta`` turns a buffer into a
:class:`~streamproc.monitor.delta.ProfileDelta`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np
import pyarrow as pa

from streamproc.contracts.prediction import PredictionBatch, typed_columns
from streamproc.core import ops
from streamproc.core.feature_profile import WINDOW_K
from streamproc.core.model_profile import ModelProfile
from streamproc.monitor.delta import ProfileDelta


@dataclass
class BufferedChunk:
    """One decoded batch slice plus the Kafka metadata of its rows."""

    batch: PredictionBatch
    append_s: np.ndarray
    """float64 Kafka append (log) time of each row, epoch seconds."""
    received_s: float
    """Wall-clock time the rows were consumed, epoch seconds."""


@dataclass
class WindowBuffer:
    model: str
    model_version: str
    window_start_ms: int
    window_end_ms: int
    chunks: list[BufferedChunk] = field(default_factory=list)
    ranges: dict[int, list[int]] = field(default_factory=dict)
    rows: int = 0

    def add(self, chunk: BufferedChunk, partitions: np.ndarray, offsets: np.ndarray) -> None:
        """Buffer ``chunk``; ``partitions``/``offsets`` are those of its rows."""
        self.chunks.append(chunk)
        self.rows += chunk.batch.n
        for p in np.unique(partitions):
            offs = offsets[partitions == p]
            lo, hi = int(offs.min()), int(offs.max())
            current = self.ranges.get(int(p))
            if current is None:
                self.ranges[int(p)] = [lo, hi]
            else:
                current[0], current[1] = min(current[0], lo), max(current[1], hi)


def _concat_features(
    chunks: list[BufferedChunk], expected: list[str]
) -> tuple[dict[str, list[Any] | pa.Array], dict[str, int], dict[str, int]]:
    """Columns over all chunks, with counts of missing expected / present unexpected names.

    A column is one Arrow array when every chunk that has it holds an Arrow array of
    one type (fast-path chunks; chunks without it contribute typed nulls), else a list
    (Arrow parts converted to Python values, as the orjson decoder would have built).
    """
    names: dict[str, None] = dict.fromkeys(expected)
    for c in chunks:
        names.update(dict.fromkeys(c.batch.features))
    expected_set = set(expected)
    columns: dict[str, list[Any] | pa.Array] = {}
    missing: dict[str, int] = {}
    unexpected: dict[str, int] = {}
    for name in names:
        cols = [c.batch.features.get(name) for c in chunks]
        absent = 0
        for c, col in zip(chunks, cols, strict=True):
            absent += c.batch.n if col is None else c.batch.missing.get(name, 0)
        if name in expected_set:
            columns[name] = _concat_column(cols, [c.batch.n for c in chunks])
            if absent:
                missing[name] = absent
        else:
            present = sum(c.batch.n for c in chunks) - absent
            if present:
                unexpected[name] = present
    return columns, missing, unexpected


def _concat_column(
    cols: list[list[Any] | pa.Array | None], sizes: list[int]
) -> list[Any] | pa.Array:
    """One column from per-chunk parts (None: the chunk lacks the name)."""
    types = {col.type for col in cols if isinstance(col, pa.Array)}
    if len(types) == 1 and all(isinstance(col, pa.Array) or col is None for col in cols):
        (t,) = types
        arrays = [
            pa.nulls(n, t) if col is None else col for col, n in zip(cols, sizes, strict=True)
        ]
        return arrays[0] if len(arrays) == 1 else pa.concat_arrays(arrays)
    parts: list[list[Any]] = []
    for col, n in zip(cols, sizes, strict=True):
        if col is None:
            parts.append([None] * n)
        elif isinstance(col, pa.Array):
            parts.append(col.to_pylist())
        else:
            parts.append(col)
    return parts[0] if len(parts) == 1 else list(chain.from_iterable(parts))


def _event_list(counts: dict[str, int]) -> np.ndarray:
    """One entry per occurrence: {"a": 2, "b": 1} → ["a", "a", "b"]."""
    if not counts:
        return np.empty(0, dtype=object)
    return np.repeat(np.array(list(counts), dtype=object), list(counts.values()))


def build_delta(
    buf: WindowBuffer,
    reference: ModelProfile,
    *,
    topic: str,
    producer_id: str,
) -> ProfileDelta:
    """Sketch a buffer's rows into a delta with the reference's feature kinds."""
    chunks = buf.chunks
    profile = ModelProfile.new(
        buf.model,
        buf.model_version,
        {name: prof.kind for name, prof in reference.features.items()},
        k=WINDOW_K,
        max_categories=reference.max_categories,
        label_kind=reference.label_kind,
        metadata={"role": "window"},
        bin_edges=reference.psi_edges(),  # exact PSI bin counts; memoized on the reference
    )  # no created_at: deltas must merge and compare by content
    expected = list(reference.features)
    columns, missing, unexpected = _concat_features(chunks, expected)

    def cat(arrays: list[np.ndarray]) -> np.ndarray:
        return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)

    timestamps = cat([c.batch.timestamps for c in chunks])
    scores = cat([c.batch.prediction_score for c in chunks])
    labels = list(chain.from_iterable(c.batch.prediction_label for c in chunks))
    latency = cat([c.batch.latency_ms for c in chunks])
    has_scores = reference.prediction is not None and not np.isnan(scores).all()
    has_labels = reference.predicted_label is not None and any(x is not None for x in labels)
    profile.update_columns(
        typed_columns(columns),
        predictions=np.ma.masked_invalid(scores) if has_scores else None,
        predicted_labels=labels if has_labels else None,
        latency_ms=np.ma.masked_invalid(latency) if not np.isnan(latency).all() else None,
        event_times=timestamps,
    )

    append_s = cat([c.append_s for c in chunks])
    received_s = cat([np.full(c.batch.n, c.received_s) for c in chunks])
    as_of = cat([c.batch.features_as_of for c in chunks])
    ops_profile = ops.new_ops_profile(buf.model, buf.model_version)
    ops_profile.update_columns(
        {
            ops.PIPELINE_LAG: append_s - timestamps,
            ops.PROCESSING_LAG: received_s - append_s,
            ops.DATA_LAG: np.ma.masked_invalid(timestamps - as_of),
            ops.FALLBACK: cat([c.batch.fallback for c in chunks]),
            ops.ERROR: cat([c.batch.error for c in chunks]),
        },
        event_times=timestamps,
    )
    if missing:
        ops_profile.features[ops.MISSING_FEATURE].update(_event_list(missing))
    if unexpected:
        ops_profile.features[ops.UNEXPECTED_FEATURE].update(_event_list(unexpected))
    return ProfileDelta(
        model=buf.model,
        model_version=buf.model_version,
        window_start_ms=buf.window_start_ms,
        window_end_ms=buf.window_end_ms,
        topic=topic,
        ranges=[(p, lo, hi) for p, (lo, hi) in sorted(buf.ranges.items())],
        producer_id=producer_id,
        profile=profile,
        ops=ops_profile,
    )
