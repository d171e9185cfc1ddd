"""Fine fixed-bin histograms of probability scores: the mergeable state behind ROC AUC,
calibration and confidence-based estimation.

Scores are probabilities in [0, 1]; bin b of :data:`SCORE_BINS` = 1024 holds
[b/1024, (b+1)/1024), the last one also 1.0. The edges are binary fractions, so a score's
bin is exact in float64 and never depends on the order of updates: counts add on merge
exactly, unlike a KLL sketch, whose merge is randomized.

**AUC from binned scores.** With P₊(b), P₋(b) the positives' and negatives' counts in bin
b, the Mann–Whitney form (ties count ½, as ``sklearn.metrics.roc_auc_score``):

    AUC = Σ_b P₊(b) · (Σ_{c<b} P₋(c) + ½ P₋(b)) / (n₊ n₋)

is exact except for the pairs that share a bin, which it counts as ties. Their true
contribution lies in [0, P₊(b)·P₋(b)], so the error is at most

    ε_AUC = ½ Σ_b P₊(b) P₋(b) / (n₊ n₋)  ≤  ½ max_b P₋(b)/n₋,

computed from the same counts and reported with every AUC (:func:`binned_auc`). For
scores with a density below f on [0, 1] this is ≤ f/2048; e.g. ≤ 0.0005 for a uniform
score, and far less when positives and negatives crowd different ends. The same formula
takes real-valued weights (the expected counts of :mod:`streamproc.core.cbpe`).

Serialized per row: dense little-endian int64 (8 KB) or sparse (u16 bin, i64 count per
non-empty bin), whichever is smaller — a window with few labels costs a few hundred bytes.
"""

from __future__ import annotations

import struct
from typing import Final

import numpy as np

SCORE_BINS: Final = 1024
"""Bins of [0, 1] (width 1/1024 ≈ 0.001)."""
_U32: Final = struct.Struct("<I")


def valid_scores(scores: np.ndarray) -> np.ndarray:
    """Mask of the scores that are probabilities (finite, within [0, 1])."""
    s = np.asarray(scores, dtype=np.float64)
    return (s >= 0.0) & (s <= 1.0)  # NaN fails both


def score_bins(scores: np.ndarray) -> np.ndarray:
    """Bin index (int64) of each score; the caller passes only valid scores."""
    s = np.asarray(scores, dtype=np.float64)
    return np.minimum((s * SCORE_BINS).astype(np.int64), SCORE_BINS - 1)


def bin_centers() -> np.ndarray:
    """Midpoint of each bin."""
    return (np.arange(SCORE_BINS, dtype=np.float64) + 0.5) / SCORE_BINS


def histogram(scores: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Counts (int64) or summed weights (float64) per bin of valid ``scores``."""
    b = score_bins(scores)
    if weights is None:
        return np.bincount(b, minlength=SCORE_BINS).astype(np.int64)
    return np.bincount(b, weights=weights, minlength=SCORE_BINS)


def binned_auc(pos: np.ndarray, neg: np.ndarray) -> tuple[float, float]:
    """``(AUC, ε_AUC)`` from per-bin positive and negative counts or weights (see the
    module docstring); ``(NaN, NaN)`` when either class is empty."""
    p = np.asarray(pos, dtype=np.float64)
    q = np.asarray(neg, dtype=np.float64)
    n_pos, n_neg = float(p.sum()), float(q.sum())
    if n_pos <= 0.0 or n_neg <= 0.0:
        return float("nan"), float("nan")
    below = np.cumsum(q) - q
    auc = float(np.dot(p, below + 0.5 * q)) / (n_pos * n_neg)
    bound = 0.5 * float(np.dot(p, q)) / (n_pos * n_neg)
    return min(max(auc, 0.0), 1.0), bound


def encode_counts(counts: np.ndarray) -> bytes:
    """One row of int64 counts, dense (form 0) or sparse (form 1), the smaller."""
    c = np.asarray(counts, dtype=np.int64)
    nz = np.flatnonzero(c)
    if 4 + 10 * len(nz) < 8 * len(c):
        return (
            b"\x01"
            + _U32.pack(len(nz))
            + nz.astype("<u2").tobytes()
            + c[nz].astype("<i8").tobytes()
        )
    return b"\x00" + c.astype("<i8").tobytes()


def decode_counts(data: bytes, size: int = SCORE_BINS) -> np.ndarray:
    """Inverse of :func:`encode_counts`; ValueError on bytes that do not fit."""
    form = data[:1]
    if form == b"\x00":
        if len(data) != 1 + 8 * size:
            raise ValueError(f"dense counts: {len(data)} bytes do not hold {size} bins")
        out = np.frombuffer(data, "<i8", size, 1).astype(np.int64)
    elif form == b"\x01":
        if len(data) < 5:
            raise ValueError("sparse counts: truncated")
        (k,) = _U32.unpack_from(data, 1)
        if len(data) != 5 + 10 * k:
            raise ValueError(f"sparse counts: {len(data)} bytes do not hold {k} bins")
        idx = np.frombuffer(data, "<u2", k, 5).astype(np.int64)
        if k and (idx.max() >= size or (np.diff(idx) <= 0).any()):
            raise ValueError("sparse counts: bin index out of range or unsorted")
        out = np.zeros(size, dtype=np.int64)
        out[idx] = np.frombuffer(data, "<i8", k, 5 + 2 * k)
    else:
        raise ValueError("unknown counts form")
    if (out < 0).any():
        raise ValueError("negative count")
    return out
