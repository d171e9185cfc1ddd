"""Realized performance per slice, fairness over labeled rows, shadow pairs: the labels
side's sidecar of a window's performance.

:class:`LabeledSlices` holds, for the labeled rows of one (model, version, prediction
window): a performance accumulator per slice key (the slices of the labeled rows' own
segments, as ingest slices predictions: :mod:`streamproc.core.slice_profiles`), the
labeled :class:`~streamproc.core.fairness.FairnessCounts` of each protected attribute,
and — for a champion in a shadow rollout — the :class:`~streamproc.core.shadow.ShadowPairs`
of its requests that the challenger scored too. All of it merges; the merge keeps at
most ``max_slices`` slice accumulators (the largest by labeled rows; an evicted value's
rows go to its dimension's OTHER slice, an evicted crossing's are dropped).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from streamproc.core import codec
from streamproc.core import performance as classification
from streamproc.core import regression_performance as regression
from streamproc.core.errors import ProfileFormatError
from streamproc.core.fairness import FairnessCounts
from streamproc.core.performance import ClassificationPerformance
from streamproc.core.regression_performance import RegressionPerformance
from streamproc.core.segments import DEFAULT_MAX_SLICES
from streamproc.core.shadow import ShadowPairs
from streamproc.core.slice_profiles import cap_slices

MAGIC: Final = b"SPLS"

Performance = ClassificationPerformance | RegressionPerformance


def performance_from_bytes(data: bytes) -> Performance:
    """A classification or regression accumulator, by its own magic."""
    if data[:4] == regression.MAGIC:
        return RegressionPerformance.from_bytes(data)
    if data[:4] == classification.MAGIC:
        return ClassificationPerformance.from_bytes(data)
    raise ProfileFormatError("not a performance accumulator")


def merge_performance(a: Performance | None, b: Performance) -> Performance:
    """``a`` merged with ``b`` (``b`` alone when ``a`` is None); a task mismatch (a
    reference rebuilt with another positive class, or regression vs classification)
    keeps the newer accumulator rather than failing the stage."""
    if a is None:
        return b
    if isinstance(a, ClassificationPerformance) and isinstance(b, ClassificationPerformance):
        try:
            return a.merge(b)
        except ValueError:
            return b
    if isinstance(a, RegressionPerformance) and isinstance(b, RegressionPerformance):
        return a.merge(b)
    return b


@dataclass(eq=False)
class LabeledSlices:
    """Per-slice performance, labeled fairness counts and shadow pairs of one window."""

    performance: dict[str, Performance] = field(default_factory=dict)
    fairness: dict[str, FairnessCounts] = field(default_factory=dict)
    shadow: ShadowPairs | None = None
    max_slices: int = DEFAULT_MAX_SLICES

    def empty(self) -> bool:
        return not self.performance and not self.fairness and self.shadow is None

    def merge(self, other: LabeledSlices) -> LabeledSlices:
        """Both inputs' rows; neither is modified."""
        perf: dict[str, Performance] = dict(self.performance)
        for key, p in other.performance.items():
            perf[key] = merge_performance(perf.get(key), p)
        fairness = dict(self.fairness)
        for attr, fc in other.fairness.items():
            mine = fairness.get(attr)
            fairness[attr] = fc if mine is None else mine.merge(fc)
        shadow = self.shadow
        if other.shadow is not None:
            try:
                shadow = other.shadow if shadow is None else shadow.merge(other.shadow)
            except ValueError:  # a changed threshold: keep the newer
                shadow = other.shadow
        cap = min(self.max_slices, other.max_slices)
        capped = cap_slices(perf, cap, lambda p: p.n, merge_performance)
        return LabeledSlices(capped, fairness, shadow, cap)

    def to_bytes(self) -> bytes:
        keys, attrs = sorted(self.performance), sorted(self.fairness)
        meta = {
            "slices": keys,
            "fairness": attrs,
            "shadow": self.shadow is not None,
            "max_slices": self.max_slices,
        }
        blobs = [self.performance[k].to_bytes() for k in keys]
        blobs += [self.fairness[a].to_bytes() for a in attrs]
        if self.shadow is not None:
            blobs.append(self.shadow.to_bytes())
        return codec.pack(MAGIC, meta, blobs)

    @classmethod
    def from_bytes(cls, data: bytes) -> LabeledSlices:
        """Inverse of :meth:`to_bytes`; ProfileFormatError on bytes that are not one."""
        meta, blobs = codec.unpack(data, MAGIC, "labeled slices")
        try:
            keys = [str(k) for k in meta["slices"]]
            attrs = [str(a) for a in meta["fairness"]]
            has_shadow = bool(meta["shadow"])
            if len(blobs) != len(keys) + len(attrs) + has_shadow:
                raise ValueError(f"{len(blobs)} parts for {len(keys)} slices")
            perf = {k: performance_from_bytes(b) for k, b in zip(keys, blobs, strict=False)}
            rest = blobs[len(keys) :]
            fairness = {a: FairnessCounts.from_bytes(b) for a, b in zip(attrs, rest, strict=False)}
            shadow = ShadowPairs.from_bytes(rest[len(attrs)]) if has_shadow else None
            return cls(perf, fairness, shadow, int(meta["max_slices"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileFormatError(f"labeled slices: corrupt ({exc!r})") from exc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabeledSlices):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]


def merge_labeled(a: LabeledSlices | None, b: LabeledSlices | None) -> LabeledSlices | None:
    if a is None or b is None:
        return a if b is None else b
    return a.merge(b)
