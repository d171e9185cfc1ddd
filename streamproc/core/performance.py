"""Realized classification performance of a window: mergeable, serializable accumulators.

State per window (of the *predictions'* event time), over its labeled rows:

* ``confusion`` — counts by (true class, predicted class) over class names
  (:func:`class_key`; at most :data:`MAX_CLASSES`, later ones pooled in ``__other__``).
  Its row sums are the class prior (label drift / target shift).
* Binary tasks (a configured ``positive`` class; the score is P(positive)):
  fine score histograms of the positives and the negatives
  (:mod:`streamproc.core.score_histogram`, ROC AUC within a reported bound ε_AUC), the
  sums of the log loss and the Brier score, and :data:`CALIBRATION_BINS` equal-width
  calibration bins (count, positives, score sum) for the expected calibration error.
  A row without a predicted label is predicted positive when its score is at least
  ``threshold`` and :data:`NOT_POSITIVE` otherwise.
* A KLL sketch of the label lag (label time − prediction time, seconds).

Merging adds counts and sums — exact (floating sums up to rounding) — so windows merge
into rolling horizons and workers scale out. Metrics (:meth:`metrics`):

* accuracy (binary: (TP + TN)/n, positive against the rest); binary precision,
  recall, F1 of the positive class (None when 0/0);
  multiclass macro (unweighted mean over the classes seen, a 0/0 term counting 0 as in
  scikit-learn) and micro averages (micro P = R = F1 = accuracy for single-label data);
* ROC AUC (Mann–Whitney on the histograms), log loss (scores clipped to
  [ε, 1 − ε], ε = float64 machine epsilon, as scikit-learn), Brier score
  (Brier 1950), ECE = Σ_m (n_m/n)·|ȳ_m − p̄_m| over equal-width bins (Naeini, Cooper &
  Hauskrecht 2015; Guo et al. 2017).

Intervals (:meth:`intervals`): Wilson for accuracy/precision/recall, Hanley–McNeil for
AUC (:mod:`streamproc.core.intervals`). Multiclass AUC, log loss and Brier need every
class's probability, which the prediction log does not carry: they are not computed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import datasketches as ds
import numpy as np

from streamproc.core import codec
from streamproc.core.errors import ProfileFormatError
from streamproc.core.intervals import Interval, auc_interval, wilson_interval
from streamproc.core.score_histogram import (
    SCORE_BINS,
    binned_auc,
    decode_counts,
    encode_counts,
    histogram,
    valid_scores,
)

MAX_CLASSES: Final = 256
OTHER: Final = "__other__"
NOT_POSITIVE: Final = "__not_positive__"
"""Predicted class of a binary row without a predicted label whose score is below the
threshold."""
CALIBRATION_BINS: Final = 10
LAG_K: Final = 200
MAGIC: Final = b"SPPC"
_EPS: Final = float(np.finfo(np.float64).eps)


def class_key(value: Any) -> str | None:
    """A label or predicted class as a class name: strings as they are, booleans as
    ``"1"``/``"0"`` (a model predicting 1 is judged by a label ``true``), integral
    numbers as integers (``1.0`` → ``"1"``), other finite numbers by ``repr``; None for
    None and non-finite numbers."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        f = float(value)
        if not math.isfinite(f):
            return None
        return str(int(f)) if f.is_integer() and abs(f) < 2**53 else repr(f)
    return None


def _new_lag() -> ds.kll_doubles_sketch:
    return ds.kll_doubles_sketch(LAG_K)


@dataclass(eq=False)
class ClassificationPerformance:
    """Mergeable classification performance state (see the module docstring)."""

    positive: str | None = None
    """The positive class of a binary task; None for multiclass."""
    threshold: float = 0.5
    classes: tuple[str, ...] = ()
    confusion: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    score_pos: np.ndarray = field(default_factory=lambda: np.zeros(SCORE_BINS, dtype=np.int64))
    score_neg: np.ndarray = field(default_factory=lambda: np.zeros(SCORE_BINS, dtype=np.int64))
    log_loss_sum: float = 0.0
    brier_sum: float = 0.0
    calib_count: np.ndarray = field(
        default_factory=lambda: np.zeros(CALIBRATION_BINS, dtype=np.int64)
    )
    calib_pos: np.ndarray = field(
        default_factory=lambda: np.zeros(CALIBRATION_BINS, dtype=np.int64)
    )
    calib_score: np.ndarray = field(default_factory=lambda: np.zeros(CALIBRATION_BINS))
    invalid_scores: int = 0
    """Labeled rows whose score was not a probability (not used for score metrics)."""
    unusable: int = 0
    """Labeled rows with no class (label or prediction missing): not counted at all."""
    lag: ds.kll_doubles_sketch = field(default_factory=_new_lag)

    @property
    def binary(self) -> bool:
        return self.positive is not None

    @property
    def n(self) -> int:
        """Labeled rows counted (the sample size of every confusion metric)."""
        return int(self.confusion.sum())

    @property
    def n_scored(self) -> int:
        """Labeled rows with a valid score (the sample size of the score metrics)."""
        return int(self.calib_count.sum())

    # ------------------------------------------------------------------------ update

    def _index(self, names: Sequence[str]) -> np.ndarray:
        """Class indices of ``names``, growing the class set (capped) as needed."""
        new = sorted(set(names) - set(self.classes))
        if new:
            room = MAX_CLASSES - len(self.classes)
            if len(new) > room:
                new = sorted({*new[: max(room - 1, 0)], OTHER} - set(self.classes))
            self._reindex(tuple(sorted({*self.classes, *new})))
        where = {c: i for i, c in enumerate(self.classes)}
        other = where.get(OTHER, -1)
        return np.fromiter((where.get(c, other) for c in names), np.int64, len(names))

    def _reindex(self, classes: tuple[str, ...]) -> None:
        pos = [classes.index(c) for c in self.classes]
        m = np.zeros((len(classes), len(classes)), dtype=np.int64)
        m[np.ix_(pos, pos)] = self.confusion
        self.classes, self.confusion = classes, m

    def update(
        self,
        y_true: Sequence[Any],
        y_pred: Sequence[Any] | None = None,
        scores: np.ndarray | None = None,
        lag_s: np.ndarray | None = None,
    ) -> None:
        """Add labeled rows: true labels, predicted labels (None entries: derive from the
        score in a binary task), scores (P(positive); NaN: none) and label lags (s)."""
        n = len(y_true)
        truth = [class_key(v) for v in y_true]
        preds = [None] * n if y_pred is None else [class_key(v) for v in y_pred]
        s = np.full(n, np.nan) if scores is None else np.asarray(scores, dtype=np.float64)
        if len(preds) != n or s.shape != (n,):
            raise ValueError("y_true, y_pred and scores must have the same length")
        ok_score = valid_scores(s)
        if self.binary:
            preds = [
                p if p is not None or not ok else (self.positive if sc >= self.threshold else None)
                for p, ok, sc in zip(preds, ok_score.tolist(), s.tolist(), strict=True)
            ]
            preds = [
                NOT_POSITIVE if p is None and ok else p
                for p, ok in zip(preds, ok_score.tolist(), strict=True)
            ]
        keep = np.fromiter(
            (t is not None and p is not None for t, p in zip(truth, preds, strict=True)), bool, n
        )
        self.unusable += int(n - keep.sum())
        rows = np.flatnonzero(keep).tolist()
        t_names = [truth[i] for i in rows]
        p_names = [preds[i] for i in rows]
        # one call for both: growing the class set reorders it, which would leave
        # indices taken before the growth pointing at other classes
        both = self._index([*t_names, *p_names])  # type: ignore[list-item]
        ti, pi = both[: len(t_names)], both[len(t_names) :]
        k = len(self.classes)
        self.confusion += np.bincount(ti * k + pi, minlength=k * k).reshape(k, k)
        if self.binary:
            self._update_scores(np.array([t == self.positive for t in t_names], bool), s[keep])
        if lag_s is not None:
            lag = np.asarray(lag_s, dtype=np.float64)[keep]
            lag = lag[np.isfinite(lag)]
            if lag.size:
                self.lag.update(np.ascontiguousarray(lag))

    def _update_scores(self, is_pos: np.ndarray, s: np.ndarray) -> None:
        ok = valid_scores(s)
        self.invalid_scores += int((~ok & ~np.isnan(s)).sum())
        y, p = is_pos[ok].astype(np.float64), s[ok]
        self.score_pos += histogram(p[y == 1.0])
        self.score_neg += histogram(p[y == 0.0])
        pc = np.clip(p, _EPS, 1.0 - _EPS)
        self.log_loss_sum += float(-(y * np.log(pc) + (1.0 - y) * np.log1p(-pc)).sum())
        self.brier_sum += float(((p - y) ** 2).sum())
        b = np.minimum((p * CALIBRATION_BINS).astype(np.int64), CALIBRATION_BINS - 1)
        self.calib_count += np.bincount(b, minlength=CALIBRATION_BINS)
        self.calib_pos += np.bincount(b, weights=y, minlength=CALIBRATION_BINS).astype(np.int64)
        self.calib_score += np.bincount(b, weights=p, minlength=CALIBRATION_BINS)

    # ------------------------------------------------------------------------- merge

    def merge(self, other: ClassificationPerformance) -> ClassificationPerformance:
        """Both windows' rows; neither input is modified."""
        if (self.positive, self.threshold) != (other.positive, other.threshold):
            raise ValueError("cannot merge performance of different tasks (positive/threshold)")
        out = self.copy()
        ti = out._index(list(other.classes))
        m = np.zeros_like(out.confusion)
        np.add.at(m, np.ix_(ti, ti), other.confusion)
        out.confusion += m
        out.score_pos = out.score_pos + other.score_pos
        out.score_neg = out.score_neg + other.score_neg
        out.log_loss_sum += other.log_loss_sum
        out.brier_sum += other.brier_sum
        out.calib_count = out.calib_count + other.calib_count
        out.calib_pos = out.calib_pos + other.calib_pos
        out.calib_score = out.calib_score + other.calib_score
        out.invalid_scores += other.invalid_scores
        out.unusable += other.unusable
        out.lag.merge(other.lag)
        return out

    def copy(self) -> ClassificationPerformance:
        return ClassificationPerformance.from_bytes(self.to_bytes())

    # ----------------------------------------------------------------------- metrics

    def _binary_counts(self) -> tuple[int, int, int, int]:
        """(TP, FP, FN, TN) of the positive class against all others."""
        if self.positive not in self.classes:
            total = self.n
            return 0, 0, 0, total
        i = self.classes.index(self.positive)
        tp = int(self.confusion[i, i])
        fp = int(self.confusion[:, i].sum()) - tp
        fn = int(self.confusion[i, :].sum()) - tp
        return tp, fp, fn, self.n - tp - fp - fn

    def _correct(self) -> int:
        """Rows predicted right: the diagonal, or in a binary task TP + TN (any two
        classes other than the positive one agree)."""
        if not self.binary:
            return int(np.trace(self.confusion))
        tp, _fp, _fn, tn = self._binary_counts()
        return tp + tn

    def priors(self) -> dict[str, int]:
        """Labeled rows per true class (the class prior, as counts)."""
        counts = self.confusion.sum(axis=1)
        return {c: int(k) for c, k in zip(self.classes, counts, strict=True) if k}

    def metrics(self) -> dict[str, float | None]:
        """Every derived metric (None when undefined at this window's counts)."""
        n = self.n
        out: dict[str, float | None] = {"n": float(n), "n_scored": float(self.n_scored)}
        out["accuracy"] = self._correct() / n if n else None
        if self.binary:
            tp, fp, fn, _tn = self._binary_counts()
            out["precision"] = _ratio(tp, tp + fp)
            out["recall"] = _ratio(tp, tp + fn)
            out["f1"] = _ratio(2 * tp, 2 * tp + fp + fn)
            m = self.n_scored
            auc, bound = binned_auc(self.score_pos, self.score_neg)
            out["roc_auc"] = None if math.isnan(auc) else auc
            out["roc_auc_error_bound"] = None if math.isnan(bound) else bound
            out["log_loss"] = self.log_loss_sum / m if m else None
            out["brier"] = self.brier_sum / m if m else None
            out["ece"] = self.ece()
            out["positive_rate"] = _ratio(tp + fn, n)
        else:
            out.update(self._averaged())
        return out

    def _averaged(self) -> dict[str, float | None]:
        n = self.n
        if not n:
            return dict.fromkeys(("precision_macro", "recall_macro", "f1_macro"), None) | {
                "precision_micro": None,
                "recall_micro": None,
                "f1_micro": None,
            }
        tp = np.diag(self.confusion).astype(np.float64)
        pred = self.confusion.sum(axis=0).astype(np.float64)
        true = self.confusion.sum(axis=1).astype(np.float64)
        prec = np.divide(tp, pred, out=np.zeros_like(tp), where=pred > 0)
        rec = np.divide(tp, true, out=np.zeros_like(tp), where=true > 0)
        den = prec + rec
        f1 = np.divide(2 * prec * rec, den, out=np.zeros_like(tp), where=den > 0)
        micro = float(tp.sum()) / n
        return {
            "precision_macro": float(prec.mean()),
            "recall_macro": float(rec.mean()),
            "f1_macro": float(f1.mean()),
            "precision_micro": micro,
            "recall_micro": micro,
            "f1_micro": micro,
        }

    def ece(self) -> float | None:
        """Expected calibration error over :data:`CALIBRATION_BINS` equal-width bins."""
        m = self.n_scored
        if not m:
            return None
        has = self.calib_count > 0
        cnt = self.calib_count[has].astype(np.float64)
        gap = np.abs(self.calib_pos[has] / cnt - self.calib_score[has] / cnt)
        return float((cnt * gap).sum() / m)

    def intervals(self) -> dict[str, Interval]:
        """95% intervals: Wilson (accuracy, precision, recall), Hanley–McNeil (AUC)."""
        out: dict[str, Interval] = {}
        acc = wilson_interval(self._correct(), self.n)
        if acc is not None:
            out["accuracy"] = acc
        if self.binary:
            tp, fp, fn, _tn = self._binary_counts()
            for name, iv in (
                ("precision", wilson_interval(tp, tp + fp)),
                ("recall", wilson_interval(tp, tp + fn)),
            ):
                if iv is not None:
                    out[name] = iv
            auc, _ = binned_auc(self.score_pos, self.score_neg)
            iv = auc_interval(auc, int(self.score_pos.sum()), int(self.score_neg.sum()))
            if iv is not None:
                out["roc_auc"] = iv
        return out

    # ----------------------------------------------------------------- serialization

    def to_bytes(self) -> bytes:
        meta = {
            "positive": self.positive,
            "threshold": self.threshold,
            "classes": list(self.classes),
            "confusion": self.confusion.ravel().tolist(),
            "log_loss_sum": self.log_loss_sum,
            "brier_sum": self.brier_sum,
            "calib_count": self.calib_count.tolist(),
            "calib_pos": self.calib_pos.tolist(),
            "calib_score": self.calib_score.tolist(),
            "invalid_scores": self.invalid_scores,
            "unusable": self.unusable,
        }
        blobs = [encode_counts(self.score_pos), encode_counts(self.score_neg), self.lag.serialize()]
        return codec.pack(MAGIC, meta, blobs)

    @classmethod
    def from_bytes(cls, data: bytes) -> ClassificationPerformance:
        """Inverse of :meth:`to_bytes`; ProfileFormatError on bytes that are not one."""
        meta, blobs = codec.unpack(data, MAGIC, "classification performance")
        try:
            classes = tuple(str(c) for c in meta["classes"])
            k = len(classes)
            out = cls(
                positive=None if meta["positive"] is None else str(meta["positive"]),
                threshold=float(meta["threshold"]),
                classes=classes,
                confusion=np.array(meta["confusion"], dtype=np.int64).reshape(k, k),
                score_pos=decode_counts(blobs[0]),
                score_neg=decode_counts(blobs[1]),
                log_loss_sum=float(meta["log_loss_sum"]),
                brier_sum=float(meta["brier_sum"]),
                calib_count=_ints(meta["calib_count"]),
                calib_pos=_ints(meta["calib_pos"]),
                calib_score=np.array(meta["calib_score"], dtype=np.float64),
                invalid_scores=int(meta["invalid_scores"]),
                unusable=int(meta["unusable"]),
                lag=ds.kll_doubles_sketch.deserialize(blobs[2]),
            )
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
            raise ProfileFormatError(f"classification performance: corrupt ({exc})") from exc
        if (out.confusion < 0).any() or out.calib_score.shape != (CALIBRATION_BINS,):
            raise ProfileFormatError("classification performance: corrupt counts")
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ClassificationPerformance):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]


def _ints(values: Any) -> np.ndarray:
    arr = np.array(values, dtype=np.int64)
    if arr.shape != (CALIBRATION_BINS,):
        raise ValueError("calibration bins of the wrong size")
    return arr


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None
