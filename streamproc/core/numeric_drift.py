"""Drift statistics between two numeric feature profiles, computed from sketches.

All CDF evaluations are vectorized: one ``get_cdf`` call per sketch over many split
points. Conventions (match the exact computations in the tests):

* Bins: edges e_1 < … < e_m are the distinct reference quantiles at ranks
  1/B, …, (B−1)/B; bins are (−∞, e_1), [e_1, e_2), …, [e_m, +∞). A bin's share is
  F(e_{i+1}⁻) − F(e_i⁻), i.e. ``get_cdf(edges, inclusive=False)``; exactly
  ``searchsorted(sorted_values, edges, "left")`` on raw data.
* KS: sup |F_ref(x) − F_cur(x)| over x in the union of both sketches' retained
  items, with inclusive CDFs; the error bound is ε_ref + ε_cur (each KLL's
  single-rank 99% error, 0 when the sketch still holds every value). The CDFs come
  from each sketch's sorted view (retained items, cumulative weights) by
  ``searchsorted`` — identical to ``get_cdf(inclusive=True)``; the reference's view,
  edges, shares and scale are memoized on the profile (:meth:`FeatureProfile.derived`).
* Current bin shares: exact, ``bin_counts / Σ bin_counts``, when the current profile
  counted its values on exactly these edges (window profiles created against the
  reference, see :meth:`ModelProfile.new`); otherwise from its KLL sketch as above.
  The reference's shares always come from its sketch (≈ 1/B by construction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import datasketches as ds
import numpy as np

from streamproc.core.divergence import js_distance, psi, psi_contributions
from streamproc.core.feature_profile import FeatureProfile, same_edges


@dataclass
class NumericDrift:
    psi: float
    js: float
    ks: float
    ks_error_bound: float
    wasserstein: float
    mean_shift: float | None
    out_of_range_share: float
    evidence: list[dict[str, Any]] = field(default_factory=list)
    exact_current_bins: bool = False
    """PSI/JS used the current profile's exact bin counts (not its sketch)."""
    bins: int = 0
    """Bins PSI and JS were computed on (len(edges) + 1)."""


def reference_edges(ref: FeatureProfile, bins: int) -> np.ndarray:
    """Distinct reference quantiles at ranks 1/bins … (bins−1)/bins (the bin edges).

    Read-only: the memoized array is shared by the window profiles that count their
    values on it (``FeatureProfile(bin_edges=...)``)."""
    assert ref.kll is not None
    qs = np.arange(1, bins, dtype=np.float64) / bins
    edges = np.unique(np.asarray(ref.kll.get_quantiles(qs), dtype=np.float64))
    edges.setflags(write=False)
    return edges


def psi_edges(ref: FeatureProfile, bins: int) -> np.ndarray:
    """:func:`reference_edges`, memoized on ``ref`` (the same cache drift uses)."""
    edges: np.ndarray = ref.derived(("edges", bins), lambda r: reference_edges(r, bins))
    return edges


def current_shares(cur: FeatureProfile, edges: np.ndarray) -> tuple[np.ndarray, bool]:
    """Current bin shares on ``edges``: exact if ``cur`` counted on them, else sketched."""
    counts = cur.bin_counts
    if counts is not None and same_edges(cur.bin_edges, edges):
        total = int(counts.sum())
        if total > 0:
            return counts / total, True
    return bin_shares(cur.kll, edges), False


def bin_shares(sk: ds.kll_doubles_sketch | None, edges: np.ndarray) -> np.ndarray:
    """Share of the sketch's values in each bin defined by ``edges`` (len(edges)+1)."""
    assert sk is not None
    cdf = np.asarray(sk.get_cdf(edges, inclusive=False), dtype=np.float64)
    return np.diff(np.concatenate(([0.0], cdf)))


def rank_error(sk: ds.kll_doubles_sketch) -> float:
    """KLL single-rank error (99% confidence); 0 while the sketch is exact."""
    if not sk.is_estimation_mode():
        return 0.0
    return float(ds.kll_doubles_sketch.get_normalized_rank_error(sk.k, False))


def sorted_view(sk: ds.kll_doubles_sketch | None) -> tuple[np.ndarray, np.ndarray]:
    """(sorted retained items, inclusive CDF at each): the sketch's own sorted view.

    One Python-level pass over the retained items (the binding has no array accessor);
    ``cdf[searchsorted(items, x, "right") - 1]`` is then ``get_cdf([x], inclusive=True)``.
    """
    assert sk is not None
    vw = np.fromiter(sk, dtype=np.dtype((np.float64, 2)), count=sk.num_retained)
    order = np.argsort(vw[:, 0], kind="stable")
    cum = np.cumsum(vw[order, 1])
    return vw[order, 0], cum / cum[-1]


def _cdf_at(view: tuple[np.ndarray, np.ndarray], pts: np.ndarray) -> np.ndarray:
    items, cdf = view
    idx = np.searchsorted(items, pts, side="right")
    out: np.ndarray = np.where(idx > 0, cdf[np.maximum(idx - 1, 0)], 0.0)
    return out


def reference_scale(ref: FeatureProfile) -> float:
    """Scale for Wasserstein: std if positive and finite, else IQR if positive, else 1."""
    std = ref.std
    if std is not None and math.isfinite(std) and std > 0:
        return std
    q1, q3 = ref.quantiles([0.25, 0.75])
    iqr = float(q3 - q1)
    return iqr if math.isfinite(iqr) and iqr > 0 else 1.0


def numeric_drift(
    ref: FeatureProfile, cur: FeatureProfile, *, bins: int, eps: float, n_evidence: int = 3
) -> NumericDrift | None:
    """All numeric statistics, or None if either side has no finite values."""
    if ref.kll is None or cur.kll is None or ref.kll.is_empty() or cur.kll.is_empty():
        return None
    rk, ck = ref.kll, cur.kll
    # the reference rarely changes: its edges, shares and retained items are memoized
    edges = psi_edges(ref, bins)
    p = ref.derived(("shares", bins), lambda r: bin_shares(r.kll, edges))
    q, exact_bins = current_shares(cur, edges)

    ref_view = ref.derived("sorted_view", lambda r: sorted_view(r.kll))
    cur_view = sorted_view(ck)
    pts = np.union1d(ref_view[0], cur_view[0])
    fr, fc = _cdf_at(ref_view, pts), _cdf_at(cur_view, pts)
    diff = np.abs(fr - fc)
    ks = float(diff.max())
    w = float(np.sum(diff[:-1] * np.diff(pts))) if pts.size > 1 else 0.0
    scale = ref.derived("scale", reference_scale)

    mean_shift: float | None
    ref_std, ref_mean, cur_mean = ref.std, ref.mean, cur.mean
    assert ref_mean is not None and cur_mean is not None
    if ref_std is not None and ref_std > 0 and math.isfinite(ref_std):
        mean_shift = (cur_mean - ref_mean) / ref_std
    else:
        mean_shift = 0.0 if cur_mean == ref_mean else None
    if mean_shift is not None and not math.isfinite(mean_shift):
        mean_shift = None

    rmin, rmax = ref.min, ref.max
    cmin, cmax = cur.min, cur.max
    assert rmin is not None and rmax is not None and cmin is not None and cmax is not None
    if cmin >= rmin and cmax <= rmax:
        oor = 0.0
    else:
        below = ck.get_cdf([rmin], inclusive=False)[0]
        above = 1.0 - ck.get_cdf([rmax], inclusive=True)[0]
        oor = float(min(1.0, max(0.0, below + above)))

    contrib = psi_contributions(p, q, eps)
    order = np.argsort(-np.abs(contrib))[:n_evidence]
    lows = np.concatenate(([-math.inf], edges))
    highs = np.concatenate((edges, [math.inf]))
    evidence = [
        {
            "bin": [_json_float(lows[i]), _json_float(highs[i])],
            "reference_share": float(p[i]),
            "current_share": float(q[i]),
            "psi_contribution": float(contrib[i]),
        }
        for i in order
        if contrib[i] > 0
    ]
    return NumericDrift(
        psi=psi(p, q, eps),
        js=js_distance(p, q),
        ks=min(1.0, ks),
        ks_error_bound=rank_error(rk) + rank_error(ck),
        wasserstein=w / scale,
        mean_shift=mean_shift,
        out_of_range_share=oor,
        evidence=evidence,
        exact_current_bins=exact_bins,
        bins=int(p.size),
    )


def _json_float(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None
