"""Ingest-side buffers: decoded rows of one (model, version, window) between flushes.

Rows are buffered as decoded column chunks and sketched once per flush, so each
sketch update sees one large array instead of many small ones (KLL and HLL updates
have a fixed cost per call). ``build_delta`` turns a buffer into a
:class:`~streamproc.monitor.delta.ProfileDelta`; ``build_deltas`` does the same but
splits a buffer whose delta would exceed a byte limit into several deltas, each with
its own contiguous run of source offsets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Final

import numpy as np
import pyarrow as pa

from streamproc.contracts.limits import cap_category
from streamproc.contracts.prediction import PredictionBatch, typed_columns
from streamproc.core import ops
from streamproc.core.errors import ProfileFormatError
from streamproc.core.feature_profile import WINDOW_K
from streamproc.core.model_profile import ModelProfile
from streamproc.core.performance import ClassificationPerformance
from streamproc.core.reference_performance import ReferencePerformance
from streamproc.core.slice_profiles import SliceProfiles, SliceSpec, segments_of
from streamproc.monitor.delta import ProfileDelta


@dataclass
class BufferedChunk:
    """One decoded batch slice plus the Kafka metadata of its rows."""

    batch: PredictionBatch
    append_s: np.ndarray
    """float64 Kafka append (log) time of each row, epoch seconds."""
    received_s: float
    """Wall-clock time the rows were consumed, epoch seconds."""


MAX_DELTA_BYTES: Final = 16 * 1024 * 1024
"""What ingest should pass as ``build_deltas(max_bytes=...)``: half the 32 MiB producer
and profiles-topic message limit, leaving room for the Kafka record framing."""


@dataclass
class WindowBuffer:
    model: str
    model_version: str
    window_start_ms: int
    window_end_ms: int
    chunks: list[BufferedChunk] = field(default_factory=list)
    ranges: dict[int, list[int]] = field(default_factory=dict)
    rows: int = 0
    partitions: list[np.ndarray] = field(default_factory=list)
    """int64 source partition of each row, one array per chunk."""
    offsets: list[np.ndarray] = field(default_factory=list)
    """int64 source offset of each row, one array per chunk."""

    def add(self, chunk: BufferedChunk, partitions: np.ndarray, offsets: np.ndarray) -> None:
        """Buffer ``chunk``; ``partitions``/``offsets`` are those of its rows."""
        partitions = np.asarray(partitions, dtype=np.int64)
        offsets = np.asarray(offsets, dtype=np.int64)
        if partitions.shape != (chunk.batch.n,) or offsets.shape != (chunk.batch.n,):
            raise ValueError(
                f"{chunk.batch.n} rows but {partitions.shape} partitions, {offsets.shape} offsets"
            )
        self.chunks.append(chunk)
        self.partitions.append(partitions)
        self.offsets.append(offsets)
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
        names.update(dict.fromkeys(c.batch.sparse))
    expected_set = set(expected)
    columns: dict[str, list[Any] | pa.Array] = {}
    missing: dict[str, int] = {}
    unexpected: dict[str, int] = {}
    for name in names:
        if name not in expected_set and all(name not in c.batch.features for c in chunks):
            # only sparse (rare) in every chunk: all an unexpected name needs is its count
            present = sum(len(c.batch.sparse[name][0]) for c in chunks if name in c.batch.sparse)
            unexpected[name] = present
            continue
        cols = [_dense(c.batch, name) for c in chunks]
        absent = 0
        for c, col in zip(chunks, cols, strict=True):
            if col is None:
                absent += c.batch.n
            elif name in c.batch.sparse:
                absent += c.batch.n - len(c.batch.sparse[name][0])
            else:
                absent += c.batch.missing.get(name, 0)
        if name in expected_set:
            columns[name] = _concat_column(cols, [c.batch.n for c in chunks])
            if absent:
                missing[name] = absent
        else:
            present = sum(c.batch.n for c in chunks) - absent
            if present:
                unexpected[name] = present
    return columns, missing, unexpected


def _dense(batch: PredictionBatch, name: str) -> list[Any] | pa.Array | None:
    """The batch's column of ``name`` (a sparse one filled out with None), or None."""
    col = batch.features.get(name)
    if col is not None or name not in batch.sparse:
        return col
    rows, values = batch.sparse[name]
    dense: list[Any] = [None] * batch.n
    for j, v in zip(rows.tolist(), values, strict=True):
        dense[j] = v
    return dense


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


def _event_name(name: str) -> str:
    """``name``, capped at ``MAX_EVENT_NAME_BYTES`` like a long category value (prefix,
    mark, digest of the whole name: distinct long names stay distinct)."""
    return cap_category(name, ops.MAX_EVENT_NAME_BYTES)


def _cap_unexpected(
    chunks: list[BufferedChunk], unexpected: dict[str, int], cap: int
) -> dict[str, int]:
    """At most ``cap`` names (the most frequent, ties by name) plus ``OTHER_FEATURES``:
    the number of records carrying at least one of the remaining names, so every
    count stays a number of records. Long names are capped (:func:`_event_name`)."""
    ranked = sorted(unexpected.items(), key=lambda kv: (-kv[1], kv[0]))
    out: dict[str, int] = {}
    for name, n in ranked[: max(cap, 0)]:
        short = _event_name(name)
        out[short] = out.get(short, 0) + n
    rest = [name for name, _ in ranked[max(cap, 0) :]]
    if rest:
        records = sum(_records_with_any(c.batch, rest) for c in chunks)
        if records:
            out[ops.OTHER_FEATURES] = out.get(ops.OTHER_FEATURES, 0) + records
    return out


def _records_with_any(batch: PredictionBatch, names: list[str]) -> int:
    """Rows of ``batch`` whose record has at least one of ``names`` as a key."""
    hit = np.zeros(batch.n, dtype=bool)
    for name in names:
        rows = batch.present_rows(name)
        if rows is not None:
            hit[rows] = True
    return int(np.count_nonzero(hit))


def _event_list(counts: dict[str, int]) -> np.ndarray:
    """One entry per occurrence: {"a": 2, "b": 1} → ["a", "a", "b"]."""
    if not counts:
        return np.empty(0, dtype=object)
    return np.repeat(np.array(list(counts), dtype=object), list(counts.values()))


_SCORE_TASKS: dict[int, tuple[ModelProfile, tuple[str, float] | None]] = {}


def score_task(reference: ModelProfile) -> tuple[str, float] | None:
    """(positive class, threshold) when ``reference`` holds a calibration map (binary
    classification with scores, ``reference build --label-col``): windows then keep
    their score distribution for estimated performance. Memoized per reference."""
    hit = _SCORE_TASKS.get(id(reference))
    if hit is not None and hit[0] is reference:
        return hit[1]
    task = None
    try:
        ref = ReferencePerformance.from_metadata(reference.metadata)
    except ProfileFormatError:
        ref = None
    if (
        ref is not None
        and ref.calibration is not None
        and isinstance(ref.perf, ClassificationPerformance)
        and ref.perf.positive is not None
    ):
        task = (str(ref.perf.positive), float(ref.perf.threshold))
    _SCORE_TASKS[id(reference)] = (reference, task)
    return task


def _new_profiles(buf: WindowBuffer, reference: ModelProfile) -> tuple[ModelProfile, ModelProfile]:
    """Empty (feature, ops) profiles of a delta of ``buf`` against ``reference``."""
    profile = ModelProfile.new(
        buf.model,
        buf.model_version,
        {name: prof.kind for name, prof in reference.features.items()},
        k=WINDOW_K,
        max_categories=reference.max_categories,
        label_kind=reference.label_kind,
        metadata={"role": "window"},
        bin_edges=reference.psi_edges(),  # exact PSI bin counts; memoized on the reference
        joint_features=reference.joint_features(),  # co-moments of the same features
        joint_bounds=reference.joint_bounds(),  # clipped at the reference's fences
        score_task=score_task(reference),  # score counts for CBPE, if it can estimate
        numeric_distinct=False,  # no check reads a window's numeric distinct count
    )  # no created_at: deltas must merge and compare by content
    return profile, ops.new_ops_profile(buf.model, buf.model_version)


def _delta(
    buf: WindowBuffer,
    profile: ModelProfile,
    ops_profile: ModelProfile,
    topic: str,
    producer_id: str,
) -> ProfileDelta:
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


def build_delta(
    buf: WindowBuffer,
    reference: ModelProfile,
    *,
    topic: str,
    producer_id: str,
    max_unexpected_features: int = ops.MAX_UNEXPECTED_FEATURES,
    slices: SliceSpec | None = None,
) -> ProfileDelta:
    """Sketch a buffer's rows into a delta with the reference's feature kinds.

    Feature names the reference lacks are counted in the ops profile's
    ``unexpected_feature`` events, at most ``max_unexpected_features`` distinct names
    plus the ``OTHER_FEATURES`` bucket (see :mod:`streamproc.core.ops`). Its size is not
    bounded: use :func:`build_deltas` for what goes to Kafka. With ``slices``, the delta
    carries the rows' :class:`~streamproc.core.slice_profiles.SliceProfiles`.
    """
    chunks = buf.chunks
    profile, ops_profile = _new_profiles(buf, reference)
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
    typed = typed_columns(columns)
    outputs: dict[str, Any] = {
        "predictions": np.ma.masked_invalid(scores) if has_scores else None,
        "predicted_labels": labels if has_labels else None,
        "latency_ms": np.ma.masked_invalid(latency) if not np.isnan(latency).all() else None,
        "event_times": timestamps,
    }
    profile.update_columns(typed, **outputs)
    sliced = None
    if slices is not None:
        segments = segments_of(
            list(chain.from_iterable(c.batch.segments for c in chunks)),
            typed,
            slices.dimension_features(reference),
        )
        sliced = SliceProfiles.build(
            slices, reference, buf.model, buf.model_version, segments, typed,
            scores=scores, labels=labels, **outputs,
        )  # fmt: skip

    append_s = cat([c.append_s for c in chunks])
    received_s = cat([np.full(c.batch.n, c.received_s) for c in chunks])
    as_of = cat([c.batch.features_as_of for c in chunks])
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
        capped = _cap_unexpected(chunks, unexpected, max_unexpected_features)
        ops_profile.features[ops.UNEXPECTED_FEATURE].update(_event_list(capped))
    delta = _delta(buf, profile, ops_profile, topic, producer_id)
    delta.slices = sliced
    return delta


def build_deltas(
    buf: WindowBuffer,
    reference: ModelProfile,
    *,
    topic: str,
    producer_id: str,
    max_bytes: int,
    max_unexpected_features: int = ops.MAX_UNEXPECTED_FEATURES,
    slices: SliceSpec | None = None,
) -> list[ProfileDelta]:
    """:func:`build_delta`, split into several deltas where one would exceed ``max_bytes``.

    The rows are ordered by (source partition, offset) and cut into contiguous runs, one
    delta per run, so a later delta's offsets on a partition are all higher than an
    earlier one's: each carries a ``last`` offset no delta before it reached, and the
    aggregate (which drops a delta whose every ``last`` it has already applied) applies
    them all. Together they count exactly the rows the single delta would.

    Every delta is at most ``max_bytes`` when that is possible. A single row that is too
    big goes out alone. When the fixed part of a delta (the empty sketches of every
    reference feature) alone exceeds ``max_bytes``, no delta can fit: the rows are then
    cut so that each delta's row content stays within ``max_bytes`` on top of it. An
    empty buffer gives no delta. Ingest passes :data:`MAX_DELTA_BYTES`.
    """
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be positive, got {max_bytes}")
    if buf.rows == 0:
        return []
    whole = build_delta(
        buf,
        reference,
        topic=topic,
        producer_id=producer_id,
        max_unexpected_features=max_unexpected_features,
        slices=slices,
    )
    size = len(whole.to_bytes())
    if size <= max_bytes or buf.rows == 1:
        return [whole]
    splitter = _Splitter(
        buf, reference, topic, producer_id, max_bytes, max_unexpected_features, slices
    )
    return splitter.fit(whole, size)


class _Splitter:
    """Cuts a buffer's rows, in (partition, offset) order, into deltas that fit."""

    def __init__(
        self,
        buf: WindowBuffer,
        reference: ModelProfile,
        topic: str,
        producer_id: str,
        max_bytes: int,
        max_unexpected_features: int,
        slices: SliceSpec | None = None,
    ) -> None:
        self.buf, self.reference, self.slices = buf, reference, slices
        self.topic, self.producer_id = topic, producer_id
        self.max_unexpected_features = max_unexpected_features
        sizes = [c.batch.n for c in buf.chunks]
        parts, offs = np.concatenate(buf.partitions), np.concatenate(buf.offsets)
        self.order = np.lexsort((offs, parts))  # stable: equal keys keep buffer order
        self.chunk_of = np.repeat(np.arange(len(sizes)), sizes)
        self.row_of = np.concatenate([np.arange(n) for n in sizes])
        empty, empty_ops = _new_profiles(buf, reference)
        base = len(_delta(buf, empty, empty_ops, topic, producer_id).to_bytes())
        self.base = base
        self.budget = max_bytes - base if base < max_bytes else max_bytes
        """Bytes of row content a delta may hold on top of the empty delta."""

    def fits(self, size: int) -> bool:
        return size - self.base <= self.budget

    def build(self, lo: int, hi: int) -> tuple[ProfileDelta, int]:
        """The delta of the rows at sorted positions ``lo:hi``, and its size in bytes."""
        src = self.buf
        sub = WindowBuffer(src.model, src.model_version, src.window_start_ms, src.window_end_ms)
        picked = self.order[lo:hi]
        chunk_ids = self.chunk_of[picked]
        for ci in np.unique(chunk_ids):  # ascending: chunks keep their buffer order
            chunk = src.chunks[ci]
            rows = np.sort(self.row_of[picked[chunk_ids == ci]])
            batch = chunk.batch if rows.size == chunk.batch.n else chunk.batch.take(rows)
            sub.add(
                BufferedChunk(batch, chunk.append_s[rows], chunk.received_s),
                src.partitions[ci][rows],
                src.offsets[ci][rows],
            )
        delta = build_delta(
            sub,
            self.reference,
            topic=self.topic,
            producer_id=self.producer_id,
            max_unexpected_features=self.max_unexpected_features,
            slices=self.slices,
        )
        return delta, len(delta.to_bytes())

    def fit(self, whole: ProfileDelta, size: int) -> list[ProfileDelta]:
        """Deltas of consecutive runs of the sorted rows, each fitting where it can.

        The run length adapts: a run over the limit is retried shorter, in proportion to
        how far over it is (and by at least one row: sketch sizes grow less than linearly
        with rows); after a run that fits, the next may be longer, up to twice, in
        proportion to the room it left. A single row is taken whatever its size.
        """
        n = self.buf.rows
        out: list[ProfileDelta] = []
        pos, step = 0, n
        delta: ProfileDelta | None = whole
        while pos < n:
            end = min(n, pos + step)
            if delta is None:
                delta, size = self.build(pos, end)
            room = self.budget / max(size - self.base, 1)
            if self.fits(size) or end - pos == 1:
                out.append(delta)
                step = max(end - pos, min(2 * (end - pos), int((end - pos) * 0.9 * room)))
                pos = end
            else:
                step = max(1, min(end - pos - 1, int((end - pos) * 0.9 * room)))
            delta = None
        return out
