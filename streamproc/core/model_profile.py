"""Model profile: every feature's profile plus predictions, latency and event times.

A *reference* profile is built once from training (or a trusted period's) data with
``REFERENCE_K`` sketches and records the learned schema; *window* profiles are built
by the streaming path from small deltas with ``WINDOW_K`` sketches and merged. A
profile that will be compared with a reference is created with the reference's PSI
edges (``ModelProfile.new(..., bin_edges=reference.psi_edges())``) so that its numeric
features count their values exactly per PSI bin (docs/STATISTICS.md).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from streamproc.core import codec
from streamproc.core.categories import DEFAULT_MAX_CATEGORIES
from streamproc.core.cbpe import ScoreDistribution
from streamproc.core.comoments import (
    JOINT_BUCKETS,
    JointMoments,
    default_joint_features,
    joint_fences,
    merge_joint,
)
from streamproc.core.errors import ProfileFormatError
from streamproc.core.feature_profile import (
    DEFAULT_LG_HLL,
    NO_DISTINCT,
    REFERENCE_K,
    WINDOW_K,
    FeatureProfile,
)
from streamproc.core.kinds import FeatureKind, infer_kind
from streamproc.core.numeric_drift import psi_edges
from streamproc.core.thresholds import DEFAULT_THRESHOLDS

Column = Any  # np.ndarray | pa.Array | pa.ChunkedArray | Sequence
_SPECIAL = ("prediction", "predicted_label", "latency_ms")


@dataclass(frozen=True)
class FeatureSchema:
    """What the reference learned about one feature from training data."""

    kind: FeatureKind
    categories: tuple[str, ...] = ()  # observed categories (up to the cap), by frequency
    min: float | None = None
    max: float | None = None
    null_rate: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "categories": list(self.categories),
            "min": self.min,
            "max": self.max,
            "null_rate": self.null_rate,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureSchema:
        return cls(
            FeatureKind(d["kind"]),
            tuple(d.get("categories", ())),
            d.get("min"),
            d.get("max"),
            float(d.get("null_rate", 0.0)),
        )


def _column_len(col: Column) -> int:
    return len(col)


def _time_range(values: Column) -> tuple[float, float] | None:
    if isinstance(values, pa.ChunkedArray | pa.Array):
        if pa.types.is_timestamp(values.type):
            values = values.cast(pa.timestamp("us")).cast(pa.int64())
            values = pc.divide(values.cast(pa.float64()), 1e6)
        values = pc.drop_null(values).to_numpy(zero_copy_only=False)
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return None
    return float(x.min()), float(x.max())


@dataclass(eq=False)
class ModelProfile:
    """Profiles of one model's inputs and outputs over a set of rows."""

    model: str
    model_version: str
    features: dict[str, FeatureProfile]
    prediction: FeatureProfile | None = None
    predicted_label: FeatureProfile | None = None
    latency_ms: FeatureProfile | None = None
    event_time_min: float | None = None  # epoch seconds
    event_time_max: float | None = None
    row_count: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    schema: dict[str, FeatureSchema] = field(default_factory=dict)
    k: int = WINDOW_K
    max_categories: int = DEFAULT_MAX_CATEGORIES
    label_kind: FeatureKind = FeatureKind.CATEGORICAL
    joint: JointMoments | None = None  # co-moments of numeric features (joint drift)
    scores: ScoreDistribution | None = None
    """Scores per fine bin by predicted class, for estimated performance (CBPE) before
    labels; kept when the window was made for a reference with a calibration map."""

    @classmethod
    def new(
        cls,
        model: str,
        model_version: str,
        feature_kinds: Mapping[str, FeatureKind],
        *,
        k: int = WINDOW_K,
        max_categories: int = DEFAULT_MAX_CATEGORIES,
        label_kind: FeatureKind = FeatureKind.CATEGORICAL,
        metadata: Mapping[str, Any] | None = None,
        bin_edges: Mapping[str, np.ndarray] | None = None,
        created_at: float | None = None,
        joint_features: Sequence[str] | None = None,
        joint_parts: int | None = None,
        joint_bounds: Mapping[str, tuple[float, float]] | None = None,
        score_task: tuple[str, float] | None = None,
        numeric_distinct: bool = True,
    ) -> ModelProfile:
        """An empty profile with one FeatureProfile per declared feature.

        The prediction (numeric score), predicted label (``label_kind``) and latency
        profiles are created on the first batch that carries them. ``bin_edges``
        (usually ``reference.psi_edges()``): per numeric feature, the reference's PSI
        edges to count values on exactly; edges for names not declared numeric here
        are ignored (such a feature cannot be compared on them anyway).

        ``created_at`` (epoch seconds) is recorded as ``metadata["created_at"]``; the
        core never reads the clock, so a caller that wants it passes ``time.time()``.
        Without it the metadata has no ``created_at`` (window deltas leave it out, so
        they merge and compare by content).

        ``joint_features``: the numeric features whose co-moments are kept for the
        joint-drift check (:mod:`streamproc.core.comoments`; default: the first
        ``JOINT_MAX_FEATURES`` numeric ones by name; empty: none), in ``joint_parts``
        parts (default: ``JOINT_BUCKETS`` for ``metadata["role"] == "reference"``, else 1),
        values clipped to ``joint_bounds`` (a window: ``reference.joint_bounds()``, so
        both sides hold moments of the same winsorized values; a feature without bounds
        there is not clipped; None: no clipping).

        ``score_task`` (positive class, threshold): keep the scores' distribution by
        predicted class (:class:`~streamproc.core.cbpe.ScoreDistribution`), for CBPE.

        ``numeric_distinct=False``: numeric features keep no HLL (window profiles; see
        :data:`~streamproc.core.feature_profile.NO_DISTINCT`).
        """
        meta = dict(metadata or {})
        if created_at is not None:
            meta = {"created_at": created_at, **meta}
        edges = bin_edges or {}
        feats = {
            name: FeatureProfile.new(
                FeatureKind(kind),
                k=k,
                max_categories=max_categories,
                bin_edges=edges.get(name) if FeatureKind(kind) is FeatureKind.NUMERIC else None,
                lg_hll=DEFAULT_LG_HLL
                if numeric_distinct or FeatureKind(kind) is not FeatureKind.NUMERIC
                else NO_DISTINCT,
            )
            for name, kind in feature_kinds.items()
        }
        if joint_features is None:
            joint_features = default_joint_features(feature_kinds)
        numeric = [n for n in joint_features if n in feats and feats[n].kind is FeatureKind.NUMERIC]
        if joint_parts is None:
            joint_parts = JOINT_BUCKETS if meta.get("role") == "reference" else 1
        return cls(
            model,
            model_version,
            feats,
            metadata=meta,
            k=k,
            max_categories=max_categories,
            label_kind=FeatureKind(label_kind),
            joint=(
                JointMoments.new(numeric, joint_parts, _bounds(numeric, joint_bounds))
                if len(numeric) > 1
                else None
            ),
            scores=None if score_task is None else ScoreDistribution(*score_task),
        )

    @classmethod
    def build_reference(
        cls,
        model: str,
        model_version: str,
        columns: Mapping[str, Column],
        *,
        feature_kinds: Mapping[str, FeatureKind] | None = None,
        predictions: Column | None = None,
        predicted_labels: Column | None = None,
        latency_ms: Column | None = None,
        event_times: Column | None = None,
        source: str = "",
        k: int = REFERENCE_K,
        max_categories: int = DEFAULT_MAX_CATEGORIES,
        created_at: float | None = None,
    ) -> ModelProfile:
        """Reference profile from training data: kinds inferred (``feature_kinds``
        overrides), ``REFERENCE_K`` sketches, schema learned; ``created_at`` as in
        :meth:`new`."""
        overrides = dict(feature_kinds or {})
        kinds = {n: overrides.get(n) or infer_kind(c) for n, c in columns.items()}
        label_kind = (
            infer_kind(predicted_labels)
            if predicted_labels is not None
            else FeatureKind.CATEGORICAL
        )
        if label_kind is FeatureKind.NUMERIC:
            label_kind = FeatureKind.CATEGORICAL  # integer class ids are labels
        prof = cls.new(
            model,
            model_version,
            kinds,
            k=k,
            max_categories=max_categories,
            label_kind=label_kind,
            metadata={"source": source, "role": "reference"},
            created_at=created_at,
        )
        prof.update_columns(
            columns,
            predictions=predictions,
            predicted_labels=predicted_labels,
            latency_ms=latency_ms,
            event_times=event_times,
        )
        joint = prof.fenced_joint()  # second pass: the co-moments clipped at the fences
        if joint is not None:
            joint.update(columns, prof.row_count)
            prof.joint = joint
        prof.learn_schema()
        return prof

    def fenced_joint(self) -> JointMoments | None:
        """Empty co-moments of this profile's joint features and parts, clipped at its own
        fences (:func:`~streamproc.core.comoments.joint_fences` of its PSI edges): the
        second pass of a reference build, fed the same rows again; None without joint
        features."""
        if self.joint is None:
            return None
        edges = self.psi_edges()
        bounds = tuple(joint_fences(edges.get(n)) for n in self.joint.names)
        return JointMoments.new(self.joint.names, len(self.joint.parts), bounds)

    def psi_edges(self, bins: int = DEFAULT_THRESHOLDS.psi_bins) -> dict[str, np.ndarray]:
        """PSI bin edges of every numeric feature with finite values (for a reference).

        Memoized on each feature profile (the cache drift itself uses), so calling this
        once per delta costs a dict lookup per feature, not a sketch query."""
        return {
            name: psi_edges(prof, bins)
            for name, prof in self.features.items()
            if prof.kind is FeatureKind.NUMERIC and prof.valid_count > 0
        }

    # ------------------------------------------------------------------------ updates

    def _special(self, name: str, kind: FeatureKind) -> FeatureProfile:
        prof: FeatureProfile | None = getattr(self, name)
        if prof is None:
            prof = FeatureProfile.new(kind, k=self.k, max_categories=self.max_categories)
            setattr(self, name, prof)
        return prof

    def update_columns(
        self,
        columns: Mapping[str, Column],
        *,
        predictions: Column | None = None,
        predicted_labels: Column | None = None,
        latency_ms: Column | None = None,
        event_times: Column | None = None,
    ) -> None:
        """Add one batch of rows given as equal-length columns.

        Declared features absent from ``columns`` count as null for the whole batch;
        undeclared columns are ignored. Values that do not match a feature's declared
        kind count as type-invalid (see :mod:`streamproc.core.columns`).
        """
        extra = (predictions, predicted_labels, latency_ms, event_times)
        given = [c for c in extra if c is not None]
        lengths = {_column_len(c) for c in (*columns.values(), *given)}
        if len(lengths) > 1:
            raise ValueError(f"columns of one batch differ in length: {sorted(lengths)}")
        if not lengths:
            return
        n = lengths.pop()
        for name, prof in self.features.items():
            col = columns.get(name)
            if col is None:
                prof.add_nulls(n)
            else:
                prof.update(col)
        if self.joint is not None:
            self.joint.update(columns, n)
        if predictions is not None:
            self._special("prediction", FeatureKind.NUMERIC).update(predictions)
            if self.scores is not None:
                values = np.ma.filled(np.ma.asarray(predictions, dtype=np.float64), np.nan)
                self.scores.update(values, predicted_labels)
        if predicted_labels is not None:
            self._special("predicted_label", self.label_kind).update(predicted_labels)
        if latency_ms is not None:
            self._special("latency_ms", FeatureKind.NUMERIC).update(latency_ms)
        if event_times is not None:
            rng = _time_range(event_times)
            if rng is not None:
                lo, hi = rng
                old_lo, old_hi = self.event_time_min, self.event_time_max
                self.event_time_min = lo if old_lo is None else min(old_lo, lo)
                self.event_time_max = hi if old_hi is None else max(old_hi, hi)
        self.row_count += n

    def learn_schema(self) -> dict[str, FeatureSchema]:
        """Fill (and return) ``schema`` from the features' current contents."""
        schema = {}
        for name, prof in self.features.items():
            cats = tuple(c for c, _ in prof.top_categories(prof.max_categories))
            schema[name] = FeatureSchema(prof.kind, cats, prof.min, prof.max, prof.null_rate)
        self.schema = schema
        return schema

    # -------------------------------------------------------------------------- merge

    def merge(self, other: ModelProfile) -> ModelProfile:
        """Profile of both inputs' rows; neither input is modified.

        Features present on one side only are copied. Metadata and schema come from
        ``self`` (the left side), with keys only ``other`` has added.
        """
        if (self.model, self.model_version) != (other.model, other.model_version):
            raise ValueError(
                f"cannot merge profiles of {self.model}:{self.model_version} "
                f"and {other.model}:{other.model_version}"
            )
        feats: dict[str, FeatureProfile] = {}
        for name in {**self.features, **other.features}:
            feats[name] = _merge_opt(self.features.get(name), other.features.get(name))  # type: ignore[assignment]
        mins = [t for t in (self.event_time_min, other.event_time_min) if t is not None]
        maxs = [t for t in (self.event_time_max, other.event_time_max) if t is not None]
        return ModelProfile(
            self.model,
            self.model_version,
            feats,
            prediction=_merge_opt(self.prediction, other.prediction),
            predicted_label=_merge_opt(self.predicted_label, other.predicted_label),
            latency_ms=_merge_opt(self.latency_ms, other.latency_ms),
            event_time_min=min(mins) if mins else None,
            event_time_max=max(maxs) if maxs else None,
            row_count=self.row_count + other.row_count,
            metadata={**other.metadata, **self.metadata},
            schema={**other.schema, **self.schema},
            k=min(self.k, other.k),
            max_categories=min(self.max_categories, other.max_categories),
            label_kind=self.label_kind,
            joint=merge_joint(self.joint, self.row_count, other.joint, other.row_count),
            scores=_merge_scores(self.scores, other.scores),
        )

    def joint_features(self) -> tuple[str, ...]:
        """The features whose co-moments this profile keeps (none: no joint check)."""
        return self.joint.names if self.joint is not None else ()

    def joint_bounds(self) -> dict[str, tuple[float, float]] | None:
        """The bounds this profile's co-moments clip values to (None: not clipped); a
        window built against a reference passes them to :meth:`new`."""
        if self.joint is None or self.joint.bounds is None:
            return None
        return dict(zip(self.joint.names, self.joint.bounds, strict=True))

    # -------------------------------------------------------------------- serialization

    def to_bytes(self) -> bytes:
        names = sorted(self.features)
        parts: list[tuple[str, FeatureProfile | None]] = [(n, self.features[n]) for n in names]
        parts += [(f"__{s}__", getattr(self, s)) for s in _SPECIAL]
        blobs = [p.to_bytes() if p is not None else b"" for _, p in parts]
        meta = {
            "model": self.model,
            "model_version": self.model_version,
            "features": names,
            "event_time_min": self.event_time_min,
            "event_time_max": self.event_time_max,
            "row_count": self.row_count,
            "metadata": self.metadata,
            "schema": {n: s.to_dict() for n, s in sorted(self.schema.items())},
            "k": self.k,
            "max_categories": self.max_categories,
            "label_kind": self.label_kind.value,
        }
        if self.joint is not None:  # a key older readers ignore
            meta["joint"] = self.joint.to_meta()
        if self.scores is not None:  # likewise
            meta["scores"] = base64.b64encode(self.scores.to_bytes()).decode()
        return codec.pack(codec.MAGIC_MODEL, meta, blobs)

    def serialized_size(self) -> int:
        return len(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> ModelProfile:
        meta, blobs = codec.unpack(data, codec.MAGIC_MODEL, "model profile")  # v1 == v2 here
        try:
            names = list(meta["features"])
            if len(blobs) != len(names) + len(_SPECIAL):
                raise ValueError(f"{len(blobs)} blobs for {len(names)} features")
            feats = {n: FeatureProfile.from_bytes(b) for n, b in zip(names, blobs, strict=False)}
            special = [FeatureProfile.from_bytes(b) if b else None for b in blobs[len(names) :]]
            return cls(
                str(meta["model"]),
                str(meta["model_version"]),
                feats,
                prediction=special[0],
                predicted_label=special[1],
                latency_ms=special[2],
                event_time_min=meta["event_time_min"],
                event_time_max=meta["event_time_max"],
                row_count=int(meta["row_count"]),
                metadata=dict(meta["metadata"]),
                schema={n: FeatureSchema.from_dict(s) for n, s in meta["schema"].items()},
                k=int(meta["k"]),
                max_categories=int(meta["max_categories"]),
                label_kind=FeatureKind(meta["label_kind"]),
                joint=JointMoments.from_meta(meta["joint"]) if meta.get("joint") else None,
                scores=(
                    ScoreDistribution.from_bytes(base64.b64decode(meta["scores"]))
                    if meta.get("scores")
                    else None
                ),
            )
        except ProfileFormatError as exc:
            raise ProfileFormatError(f"model profile: {exc}") from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileFormatError(f"model profile: corrupt content ({exc!r})") from exc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ModelProfile):
            return NotImplemented
        plain: tuple[str, ...] = ("model", "model_version", "event_time_min", "event_time_max")
        plain += ("row_count", "metadata", "schema", "k", "max_categories", "label_kind")
        return (
            all(getattr(self, a) == getattr(other, a) for a in plain)
            and self.features == other.features
            and all(getattr(self, s) == getattr(other, s) for s in _SPECIAL)
            and self.joint == other.joint
            and _same_scores(self.scores, other.scores)
        )

    __hash__ = None  # type: ignore[assignment]


def _merge_scores(
    a: ScoreDistribution | None, b: ScoreDistribution | None
) -> ScoreDistribution | None:
    """Both sides' score counts; one side's alone when the other kept none, or when the
    tasks differ (a reference rebuilt with another positive class: the newer, ``b``)."""
    if a is None or b is None:
        return a if b is None else ScoreDistribution.from_bytes(b.to_bytes())
    try:
        return a.merge(b)
    except ValueError:
        return ScoreDistribution.from_bytes(b.to_bytes())


def _same_scores(a: ScoreDistribution | None, b: ScoreDistribution | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.to_bytes() == b.to_bytes()


def _bounds(
    names: Sequence[str], bounds: Mapping[str, tuple[float, float]] | None
) -> tuple[tuple[float, float], ...] | None:
    if bounds is None:
        return None
    out = []
    for n in names:
        lo, hi = bounds.get(n, (-np.inf, np.inf))
        out.append((float(lo), float(hi)))
    return tuple(out)


def _merge_opt(a: FeatureProfile | None, b: FeatureProfile | None) -> FeatureProfile | None:
    if a is None:
        return b.merge(FeatureProfile.new(b.kind, k=b.k)) if b is not None else None
    if b is None:
        return a.merge(FeatureProfile.new(a.kind, k=a.k))
    return a.merge(b)
