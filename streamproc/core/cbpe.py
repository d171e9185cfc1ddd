"""Confidence-based performance estimation (CBPE) of a binary classifier before labels.

The idea is NannyML's CBPE (docs: *How it works → Confidence-based Performance
Estimation*; ``nannyml/performance_estimation/confidence_based/``): if the model's
scores, after a calibration map fitted on the reference, are calibrated probabilities
c = P(y = 1 | score), then a prediction with calibrated score c is a true positive with
probability c when it was predicted positive and a false positive with probability
1 − c, so the *expected* confusion matrix of a window follows from its scores alone:

    E[TP] = Σ_{ŷ=1} c,  E[FP] = Σ_{ŷ=1} (1 − c),  E[FN] = Σ_{ŷ=0} c,  E[TN] = Σ_{ŷ=0} (1 − c)

and accuracy, precision, recall and F1 are estimated as ratios of these expectations
(as NannyML does). ROC AUC is estimated as the Mann–Whitney statistic with each
prediction counted c times as a positive and 1 − c times as a negative
(:func:`~streamproc.core.score_histogram.binned_auc` on weights).

The assumption: the relation P(y | score) stays what it was on the reference — a
*covariate* shift (inputs move, the model's scores move with them) is estimated, a
*concept* shift (the same inputs now mean another outcome) is not visible without labels.

**Per window, mergeable.** A window keeps :class:`ScoreDistribution`, the counts of its
predictions' scores in the fine bins of :mod:`streamproc.core.score_histogram`, split by
predicted class; counts add on merge. The calibration map is constant on each bin, so the
estimate from the counts equals the estimate from the raw scores.

**Calibration map** (:class:`CalibrationMap`): isotonic regression by the pool-adjacent-
violators algorithm (Ayer et al. 1955; Barlow et al. 1972) on the reference's per-bin
positive rates, weighted by the bin counts — a non-decreasing step function, stored as
(first bin, value) blocks in the reference profile; bins the reference never filled take
their left neighbour's block value (the first block's value below it). Pure numpy, no
scikit-learn at run time.

**Uncertainty.** Under the assumption, the realized accuracy of a window is a mean of
independent Bernoulli(q_i) with q_i = c_i for ŷ = 1 and 1 − c_i otherwise; its standard
deviation about the estimate is √(Σ q_i (1 − q_i))/n (``accuracy_se``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from streamproc.core import codec
from streamproc.core.errors import ProfileFormatError
from streamproc.core.performance import class_key
from streamproc.core.score_histogram import (
    SCORE_BINS,
    binned_auc,
    decode_counts,
    encode_counts,
    histogram,
    score_bins,
    valid_scores,
)

MAGIC: Final = b"SPSD"


def pav(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted non-decreasing isotonic fit of ``y`` (pool adjacent violators); entries
    with weight 0 take the value of the block they fall in."""
    means: list[float] = []
    weights: list[float] = []
    sizes: list[int] = []
    for yi, wi in zip(y.tolist(), w.tolist(), strict=True):
        means.append(yi)
        weights.append(wi)
        sizes.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            wt = weights[-2] + weights[-1]
            m = (means[-2] * weights[-2] + means[-1] * weights[-1]) / wt if wt > 0 else means[-1]
            size = sizes[-2] + sizes[-1]
            del means[-1], weights[-1], sizes[-1]
            means[-1], weights[-1], sizes[-1] = m, wt, size
    return np.repeat(np.array(means), sizes)


@dataclass(frozen=True)
class CalibrationMap:
    """A non-decreasing step map from score bin to calibrated P(y = 1)."""

    starts: tuple[int, ...]
    """First bin of each block (ascending, the first is 0)."""
    values: tuple[float, ...]

    @classmethod
    def fit(cls, pos: np.ndarray, neg: np.ndarray) -> CalibrationMap:
        """From the reference's per-bin counts of positives and negatives."""
        p = np.asarray(pos, dtype=np.float64)
        total = p + np.asarray(neg, dtype=np.float64)
        filled = np.flatnonzero(total > 0)
        if not filled.size:
            raise ValueError("a calibration map needs labeled, scored reference rows")
        fitted = pav(p[filled] / total[filled], total[filled])
        # each filled bin starts a run until the next filled bin; the first run from 0
        value = np.empty(SCORE_BINS)
        starts = filled.copy()
        starts[0] = 0
        for s, e, v in zip(starts, [*starts[1:], SCORE_BINS], fitted, strict=True):
            value[s:e] = v
        change = np.flatnonzero(np.r_[True, np.diff(value) != 0])
        return cls(tuple(int(i) for i in change), tuple(float(value[i]) for i in change))

    @classmethod
    def fit_scores(cls, scores: np.ndarray, is_positive: np.ndarray) -> CalibrationMap:
        """From raw reference scores and booleans (invalid scores are left out)."""
        s = np.asarray(scores, dtype=np.float64)
        y = np.asarray(is_positive, dtype=bool)
        ok = valid_scores(s)
        return cls.fit(histogram(s[ok & y]), histogram(s[ok & ~y]))

    def per_bin(self) -> np.ndarray:
        """Calibrated value of every bin."""
        sizes = np.diff(np.r_[self.starts, SCORE_BINS]).astype(np.int64)
        return np.repeat(np.array(self.values, dtype=np.float64), sizes)

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of valid ``scores``."""
        return self.per_bin()[score_bins(scores)]

    def to_meta(self) -> dict[str, Any]:
        return {"starts": list(self.starts), "values": list(self.values)}

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> CalibrationMap:
        starts = tuple(int(s) for s in meta["starts"])
        values = tuple(float(v) for v in meta["values"])
        if (
            not starts
            or starts[0] != 0
            or len(starts) != len(values)
            or any(b <= a for a, b in itertools.pairwise(starts))
            or starts[-1] >= SCORE_BINS
            or any(not (0.0 <= v <= 1.0) for v in values)
            or any(b < a for a, b in itertools.pairwise(values))
        ):
            raise ValueError(
                "not a calibration map: blocks must start at 0, ascend and be monotone"
            )
        return cls(starts, values)


@dataclass(eq=False)
class ScoreDistribution:
    """A window's prediction scores per fine bin, by predicted class (mergeable)."""

    positive: str
    threshold: float = 0.5
    pred_pos: np.ndarray = field(default_factory=lambda: np.zeros(SCORE_BINS, dtype=np.int64))
    pred_neg: np.ndarray = field(default_factory=lambda: np.zeros(SCORE_BINS, dtype=np.int64))
    unscored: int = 0
    """Predictions without a valid score (not estimated)."""

    @property
    def n(self) -> int:
        return int(self.pred_pos.sum() + self.pred_neg.sum())

    def update(self, scores: np.ndarray, predicted: Sequence[Any] | None = None) -> None:
        """Add predictions: scores P(positive) and predicted labels (None: by threshold)."""
        s = np.asarray(scores, dtype=np.float64)
        ok = valid_scores(s)
        if predicted is None:
            is_pos = s >= self.threshold
        else:
            if len(predicted) != len(s):
                raise ValueError("scores and predicted labels must have the same length")
            keys = [class_key(v) for v in predicted]
            is_pos = np.array(
                [
                    k == self.positive if k is not None else bool(x >= self.threshold)
                    for k, x in zip(keys, s.tolist(), strict=True)
                ],
                dtype=bool,
            ).reshape(len(s))
        self.unscored += int((~ok).sum())
        self.pred_pos += histogram(s[ok & is_pos])
        self.pred_neg += histogram(s[ok & ~is_pos])

    def merge(self, other: ScoreDistribution) -> ScoreDistribution:
        if (self.positive, self.threshold) != (other.positive, other.threshold):
            raise ValueError("cannot merge score distributions of different tasks")
        return ScoreDistribution(
            self.positive,
            self.threshold,
            self.pred_pos + other.pred_pos,
            self.pred_neg + other.pred_neg,
            self.unscored + other.unscored,
        )

    def to_bytes(self) -> bytes:
        meta = {"positive": self.positive, "threshold": self.threshold, "unscored": self.unscored}
        return codec.pack(MAGIC, meta, [encode_counts(self.pred_pos), encode_counts(self.pred_neg)])

    @classmethod
    def from_bytes(cls, data: bytes) -> ScoreDistribution:
        meta, blobs = codec.unpack(data, MAGIC, "score distribution")
        try:
            return cls(
                str(meta["positive"]),
                float(meta["threshold"]),
                decode_counts(blobs[0]),
                decode_counts(blobs[1]),
                int(meta["unscored"]),
            )
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ProfileFormatError(f"score distribution: corrupt ({exc})") from exc


@dataclass(frozen=True)
class Estimate:
    """Estimated performance of one window (None where a ratio is 0/0)."""

    n: int
    tp: float
    fp: float
    fn: float
    tn: float
    accuracy: float | None
    precision: float | None
    recall: float | None
    f1: float | None
    roc_auc: float | None
    accuracy_se: float | None

    def to_dict(self) -> dict[str, float | None]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def estimate(dist: ScoreDistribution, cmap: CalibrationMap) -> Estimate:
    """CBPE of ``dist`` under the reference calibration ``cmap`` (module docstring)."""
    c = cmap.per_bin()
    pp, pn = dist.pred_pos.astype(np.float64), dist.pred_neg.astype(np.float64)
    tp, fp = float(pp @ c), float(pp @ (1.0 - c))
    fn, tn = float(pn @ c), float(pn @ (1.0 - c))
    n = dist.n
    auc, _bound = binned_auc((pp + pn) * c, (pp + pn) * (1.0 - c))
    var = float(((pp + pn) * c * (1.0 - c)).sum())
    return Estimate(
        n=n,
        tp=tp,
        fp=fp,
        fn=fn,
        tn=tn,
        accuracy=(tp + tn) / n if n else None,
        precision=_ratio(tp, tp + fp),
        recall=_ratio(tp, tp + fn),
        f1=_ratio(2 * tp, 2 * tp + fp + fn),
        roc_auc=None if math.isnan(auc) else auc,
        accuracy_se=math.sqrt(var) / n if n else None,
    )


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None
