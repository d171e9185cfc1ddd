"""Per-slice window profiles and fairness counts: the sidecar of a window's profile.

A model with slicing configured (:class:`SliceSpec`) keeps, next to its window profile,
a :class:`SliceProfiles`: the heavy-hitter :class:`~streamproc.core.segments.SegmentCounts`
of its segments, one small :class:`~streamproc.core.model_profile.ModelProfile` per
slice (the *key features* and the model's outputs; no co-moments, no numeric HLL) and,
per declared protected attribute, the :class:`~streamproc.core.fairness.FairnessCounts`
of the decisions. Everything merges, so ingest builds one per delta and the aggregate
merges them per window, as it does the window profile.

Which values get a slice: each delta slices its own rows by its own top-K per dimension
(:meth:`SegmentCounts.slices`); a value outside them lands in its dimension's OTHER
slice. A value whose share of a flush is well above 1/K therefore always has its own
slice; one near the K-th place may be split between its slice and OTHER across
flushes — the slice then counts only part of its rows, which the checks' sample-size
rules handle like any small slice. The merge keeps at most ``max_slices`` slices per
window (the largest by rows, ties by key; every dimension's OTHER kept): an evicted
value's rows are merged into its dimension's OTHER slice, an evicted crossing's are
dropped (its two marginal slices still hold them). State is therefore bounded by
``max_slices`` small profiles per window whatever the data's cardinality.

Cost: a saturated slice profile holds about 3.6 KB per numeric key feature (``SLICE_K``)
plus its outputs; ``benchmarks/bench_slices.py`` and docs/SEGMENTS.md have the figures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import numpy as np
import pyarrow as pa

from streamproc.core import codec
from streamproc.core.errors import ProfileFormatError
from streamproc.core.fairness import FairnessCounts
from streamproc.core.kinds import FeatureKind
from streamproc.core.model_profile import ModelProfile
from streamproc.core.segments import OTHER, SegmentCounts, SlicingPolicy, parse_slice_key, slice_key

MAGIC: Final = b"SPSL"
T = TypeVar("T")
DEFAULT_MAX_KEY_FEATURES: Final = 5
"""Key features per slice when none are configured: the reference's first, by name."""
SLICE_K: Final = 128
"""KLL k of slice profiles: a quarter of ``WINDOW_K``'s memory (3.6 KB a saturated numeric
feature instead of 14 KB), rank error ≈ 2.5% instead of 0.7% — slices are small."""
DEFAULT_MAX_SLICES: Final = 50
"""``[models.<model>.slices] max_slices`` when not configured (memory: docs/SEGMENTS.md)."""


@dataclass(frozen=True)
class SliceSpec:
    """How one model is sliced (configuration, see ``[models.<model>.slices]``)."""

    policy: SlicingPolicy = field(default_factory=SlicingPolicy)
    feature_dimensions: tuple[str, ...] = ()
    """Categorical features sliced like ``segment`` keys (the feature name is the
    dimension)."""
    key_features: tuple[str, ...] = ()
    """Features profiled per slice; empty: the reference's first
    :data:`DEFAULT_MAX_KEY_FEATURES` by name."""
    protected: tuple[str, ...] = ()
    """Protected attributes (dimensions) whose groups get fairness counts."""
    positive: str | None = None
    """The predicted label that counts as a positive decision; None: a score at or
    above ``threshold``."""
    threshold: float = 0.5
    profile_slices: bool = True
    """Keep a profile per slice (``[slices]`` configured); False: fairness counts only."""

    def dimension_features(self, reference: ModelProfile) -> tuple[str, ...]:
        """Features read as dimensions: the configured ones and the protected
        attributes that are features of the reference."""
        extra = tuple(a for a in self.protected if a in reference.features)
        return tuple(dict.fromkeys((*self.feature_dimensions, *extra)))

    def keys_for(self, reference: ModelProfile) -> dict[str, FeatureKind]:
        """Kinds of the key features that the reference knows."""
        names = self.key_features or tuple(sorted(reference.features))[:DEFAULT_MAX_KEY_FEATURES]
        return {n: reference.features[n].kind for n in names if n in reference.features}

    def selected(self, scores: np.ndarray, labels: Sequence[Any]) -> np.ndarray:
        """Whether each decision is positive (bool array)."""
        if self.positive is not None:
            pos = self.positive
            return np.fromiter(
                (v is not None and str(v).lower() == pos.lower() for v in labels),
                dtype=bool,
                count=len(labels),
            )
        s = np.asarray(scores, dtype=np.float64)
        return np.nan_to_num(s, nan=-np.inf) >= self.threshold


def segments_of(
    segments: Sequence[Mapping[str, Any] | None],
    columns: Mapping[str, Any],
    feature_dimensions: Sequence[str],
) -> list[dict[str, str] | None]:
    """Each row's segment: its ``segment`` object plus the values of the feature
    dimensions (a null or absent feature value adds nothing)."""
    out: list[dict[str, str] | None] = [dict(s) if s else None for s in segments]
    for name in feature_dimensions:
        col = columns.get(name)
        if col is None:
            continue
        values = col.to_pylist() if isinstance(col, pa.Array | pa.ChunkedArray) else list(col)
        for i, v in enumerate(values):
            if v is None or v is np.ma.masked:
                continue
            seg = out[i]
            if seg is None:
                seg = out[i] = {}
            seg[name] = v if isinstance(v, str) else str(v)
    return out


def take(col: Any, rows: np.ndarray) -> Any:
    """Rows ``rows`` of a column (Arrow array, numpy (masked) array or list)."""
    if col is None:
        return None
    if isinstance(col, pa.Array | pa.ChunkedArray):
        return col.take(pa.array(rows, type=pa.int64()))
    if isinstance(col, np.ndarray):
        return col[rows]
    return [col[i] for i in rows.tolist()]


@dataclass(eq=False)
class SliceProfiles:
    """The slices of one window (or delta): counts, per-slice profiles, fairness."""

    counts: SegmentCounts
    profiles: dict[str, ModelProfile] = field(default_factory=dict)
    fairness: dict[str, FairnessCounts] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        spec: SliceSpec,
        reference: ModelProfile,
        model: str,
        model_version: str,
        segments: Sequence[Mapping[str, Any] | None],
        columns: Mapping[str, Any],
        *,
        predictions: Any = None,
        predicted_labels: Sequence[Any] | None = None,
        latency_ms: Any = None,
        event_times: Any = None,
        scores: np.ndarray | None = None,
        labels: Sequence[Any] | None = None,
    ) -> SliceProfiles:
        """Slices of one batch of rows (``segments`` from :func:`segments_of`).
        ``predictions``/``predicted_labels``/``latency_ms``/``event_times`` as for
        :meth:`ModelProfile.update_columns`; ``scores``/``labels`` (raw, one per row)
        decide the fairness counts."""
        counts = SegmentCounts(spec.policy)
        counts.update(segments)
        out = cls(counts)
        kinds = spec.keys_for(reference)
        edges = reference.psi_edges()
        assigned = counts.slices().assign(segments) if spec.profile_slices else {}
        for key, rows in assigned.items():
            prof = ModelProfile.new(
                model,
                model_version,
                kinds,
                k=SLICE_K,
                max_categories=reference.max_categories,
                label_kind=reference.label_kind,
                metadata={"role": "slice"},
                bin_edges=edges,
                joint_features=(),
                numeric_distinct=False,
            )
            prof.update_columns(
                {n: take(columns.get(n), rows) for n in kinds if columns.get(n) is not None},
                predictions=take(predictions, rows),
                predicted_labels=take(predicted_labels, rows),
                latency_ms=take(latency_ms, rows),
                event_times=take(event_times, rows),
            )
            out.profiles[key] = prof
        if spec.protected:
            n = len(segments)
            sel = spec.selected(
                np.full(n, np.nan) if scores is None else scores,
                labels if labels is not None else [None] * n,
            )
            for attr in spec.protected:
                groups = [None if not s else s.get(attr) for s in segments]
                fc = FairnessCounts(attr)
                fc.add_predictions(groups, sel)
                out.fairness[attr] = fc
        return out

    @property
    def max_slices(self) -> int:
        return self.counts.policy.max_slices

    def merge(self, other: SliceProfiles) -> SliceProfiles:
        """Both inputs' slices; neither is modified. Capped (module docstring)."""
        counts = self.counts.merge(other.counts)
        profiles: dict[str, ModelProfile] = dict(self.profiles)
        for key, prof in other.profiles.items():
            mine = profiles.get(key)
            profiles[key] = prof if mine is None else mine.merge(prof)
        fairness = dict(self.fairness)
        for attr, fc in other.fairness.items():
            mine_fc = fairness.get(attr)
            fairness[attr] = fc if mine_fc is None else mine_fc.merge(fc)
        return SliceProfiles(
            counts, cap_slices(profiles, self.max_slices, _rows, ModelProfile.merge), fairness
        )

    # ----------------------------------------------------------------- serialization

    def to_bytes(self) -> bytes:
        keys = sorted(self.profiles)
        attrs = sorted(self.fairness)
        meta = {"slices": keys, "fairness": attrs}
        blobs = [self.counts.to_bytes()]
        blobs += [self.profiles[k].to_bytes() for k in keys]
        blobs += [self.fairness[a].to_bytes() for a in attrs]
        return codec.pack(MAGIC, meta, blobs)

    @classmethod
    def from_bytes(cls, data: bytes) -> SliceProfiles:
        """Inverse of :meth:`to_bytes`; ProfileFormatError on bytes that are not one."""
        meta, blobs = codec.unpack(data, MAGIC, "slice profiles")
        try:
            keys = [str(k) for k in meta["slices"]]
            attrs = [str(a) for a in meta["fairness"]]
            if len(blobs) != 1 + len(keys) + len(attrs):
                raise ValueError(f"{len(blobs)} parts for {len(keys)} slices, {len(attrs)} groups")
            profiles = {
                k: ModelProfile.from_bytes(b) for k, b in zip(keys, blobs[1:], strict=False)
            }
            fairness = {
                a: FairnessCounts.from_bytes(b)
                for a, b in zip(attrs, blobs[1 + len(keys) :], strict=True)
            }
            return cls(SegmentCounts.from_bytes(blobs[0]), profiles, fairness)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileFormatError(f"slice profiles: corrupt ({exc!r})") from exc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SliceProfiles):
            return NotImplemented
        return (
            self.counts == other.counts
            and self.profiles == other.profiles
            and self.fairness == other.fairness
        )

    __hash__ = None  # type: ignore[assignment]


def _rows(profile: ModelProfile) -> int:
    return profile.row_count


def merge_slices(a: SliceProfiles | None, b: SliceProfiles | None) -> SliceProfiles | None:
    """``a`` merged with ``b``; either may be None. Different slicing policies (the
    configuration changed) keep the newer side rather than failing the stage."""
    if a is None or b is None:
        return a if b is None else b
    try:
        return a.merge(b)
    except ValueError:
        return b


def other_key(key: str) -> str | None:
    """The OTHER slice of a single-dimension key (None for a crossing)."""
    seg = parse_slice_key(key)
    if len(seg) != 1:
        return None
    (dim,) = seg
    return slice_key([(dim, OTHER)])


def cap_slices(
    items: dict[str, T], max_slices: int, size: Callable[[T], int], merge: Callable[[T, T], T]
) -> dict[str, T]:
    """At most ``max_slices`` slices: every OTHER slice, then the largest by ``size``
    (ties by key); an evicted value merges into its dimension's OTHER slice, an evicted
    crossing is dropped (its marginal slices hold its rows)."""
    if len(items) <= max_slices:
        return items
    others = {k for k in items if other_key(k) == k}
    named = sorted((k for k in items if k not in others), key=lambda k: (-size(items[k]), k))
    room = max(max_slices - len(others), 0)
    kept = {k: items[k] for k in (*sorted(others), *named[:room])}
    for k in named[room:]:
        target = other_key(k)
        if target is not None:
            kept[target] = items[k] if target not in kept else merge(kept[target], items[k])
    return kept
