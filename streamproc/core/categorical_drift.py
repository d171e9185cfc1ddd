"""Drift statistics between two categorical (or boolean) feature profiles.

**Both sides exact** (under the distinct-value cap): categories are aligned over the
union of both sides' categories, so categories unseen in the reference never crash
anything: they get a reference share of 0, smoothed for PSI. Every statistic is exact.

**Either side past its cap** (frequent-items sketch): a category missing from the
reference's sketch head is not unseen, it may sit in the reference's uncounted tail,
and the sketches' count estimates are only good to their error bound. So both sides
are compared on a *common support*: the reference categories whose counts are
reliable — lower bound ≥ ``RELIABILITY`` × the larger of the two sides' per-item
error, as shares of each side's total — each with its own bin, and everything else
on both sides folded into one ``OTHER`` bin. Counts are the sketches' estimates
(upper bounds; exact for heavy items that were never evicted), an untracked category
gets half the sketch's error, so a support bin's relative error is at most
1/``RELIABILITY`` (measured: ~0, PSI ≤ 0.003 on unshifted 10k–50k-category features).
New categories are counted only when the
reference is exact (otherwise ``new_category_share`` is None): then a current
category absent from the reference is truly new, and its share is the sum of the
current's lower bounds (a lower bound when the current is a sketch).

Chi-squared is the 2×K contingency test of homogeneity (Pearson 1900) on raw counts,
reference row vs current row, categories with zero total dropped, no Yates
correction: ``scipy.stats.chi2_contingency(table, correction=False)``. It is exact
while both sides are under the distinct-value cap.

**Sparse cells.** Chi-squared, PSI and JS are computed on the table after
:func:`~streamproc.core.small_sample.merge_sparse_cells`: categories rare on both sides
(expected count < 5 in the smaller row) are pooled into one cell, so the chi-squared
approximation holds and PSI/JS do not add up sampling noise of hundreds of near-empty
cells. A category that is frequent on either side keeps its own cell. ``bins`` is the
number of cells compared (for the small-sample correction of PSI/JS in the checks).

**Expected unseen mass.** With an exact reference, ``expected_new_share`` is its
Good–Turing unseen mass f₁/n (singletons ÷ values) and ``expected_new_share_se`` its
standard error (Esty 1983): the share of a fresh sample of the reference distribution
that the reference never saw. ``distinct_ratio`` then divides the current's distinct
count by the distinct count a sample of the window's size from the reference
distribution is expected to show (:func:`~streamproc.core.small_sample.
expected_distinct`), not by the reference's own: a long tail shows more values in a
bigger sample. For a sparse long tail (unseen mass ≥ 1%) and a window over
``EXTRAPOLATION_LIMIT`` × the reference's size it is None: the extrapolation is a lower
bound there (the new-category share test still judges unseen values). Past the
reference's cap it is the ratio of the two distinct estimates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from streamproc.core.categories import CategoryCounts
from streamproc.core.divergence import js_distance, psi
from streamproc.core.feature_profile import FeatureProfile
from streamproc.core.small_sample import (
    LONG_TAIL_UNSEEN,
    expected_distinct,
    good_turing_unseen,
    merge_sparse_cells,
)

OTHER = "__other__"
RELIABILITY = 5
EXTRAPOLATION_LIMIT = 2
"""Chao–Shen extrapolation of the distinct count is trusted up to this × the reference's
size (Shen, Chao & Lin 2003); beyond it a sparse long tail's ``distinct_ratio`` is None."""
"""Support categories: reference lower-bound share ≥ this × the larger per-item error share."""


@dataclass
class CategoricalDrift:
    psi: float
    js: float
    chi2: float
    chi2_pvalue: float
    chi2_dof: int
    new_category_share: float | None  # None when the reference is past its cap
    top_new_categories: list[tuple[str, int]]
    distinct_ratio: float | None
    evidence: list[dict[str, Any]] = field(default_factory=list)
    bins: int = 0
    """Cells compared by chi-squared, PSI and JS (after pooling sparse cells)."""
    expected_new_share: float | None = None
    expected_new_share_se: float | None = None


def _common_support(
    rc: CategoryCounts, cc: CategoryCounts
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Reliable reference categories plus ``OTHER``, with midpoint counts per side."""
    rb, cb = rc.bounds(), cc.bounds()
    r_err, c_err = rc.max_error(), cc.max_error()
    tau = RELIABILITY * max(r_err / rc.total, c_err / cc.total)
    floor = max(tau * rc.total, 1.0)
    cats = sorted(cat for cat, (lo, _hi) in rb.items() if lo >= floor)
    r = np.array([rb[c][1] for c in cats], dtype=np.float64)
    c = np.array([cb[k][1] if k in cb else 0.5 * c_err for k in cats], dtype=np.float64)
    r_other = max(0.0, rc.total - float(r.sum()))
    c_other = max(0.0, cc.total - float(c.sum()))
    return [*cats, OTHER], np.append(r, r_other), np.append(c, c_other)


def aligned_counts(
    ref: FeatureProfile, cur: FeatureProfile
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(bins, reference counts, current counts), the same bins for both sides.

    Both exact: the union of categories. Otherwise the common support (reliable
    reference categories, then ``OTHER``); see the module docstring."""
    assert ref.categories is not None and cur.categories is not None
    rcat, ccat = ref.categories, cur.categories
    if not (rcat.is_exact and ccat.is_exact):
        return _common_support(rcat, ccat)
    rc, _ = rcat.counts()
    cc, _ = ccat.counts()
    cats = sorted(set(rc) | set(cc))
    r = np.array([rc.get(c, 0) for c in cats], dtype=np.float64)
    c = np.array([cc.get(c, 0) for c in cats], dtype=np.float64)
    return cats, r, c


def new_categories(
    ref: FeatureProfile, cur: FeatureProfile
) -> tuple[float | None, list[tuple[str, int]]]:
    """(share of current values in categories the reference never saw, those categories
    with counts, most frequent first); (None, []) if the reference is past its cap.

    With an exact reference a category it lacks is truly new. The current's counts are
    exact, or its sketch's lower bounds (so the share is then a lower bound)."""
    assert ref.categories is not None and cur.categories is not None
    if not ref.categories.is_exact or cur.categories.total == 0:
        return None, []
    seen, _ = ref.categories.counts()
    new = [(c, lo) for c, (lo, _hi) in cur.categories.bounds().items() if c not in seen and lo]
    new.sort(key=lambda t: (-t[1], t[0]))
    return sum(n for _, n in new) / cur.categories.total, new


def chi2_homogeneity(r: np.ndarray, c: np.ndarray) -> tuple[float, float, int]:
    """(statistic, p-value, dof) of the 2×K contingency test on the table with sparse
    cells pooled (:func:`merge_sparse_cells`); (0, 1, 0) if fewer than 2 cells remain."""
    rm, cm, _ = merge_sparse_cells(r, c)
    table = np.vstack((rm, cm))
    if table.shape[1] < 2 or table[0].sum() == 0 or table[1].sum() == 0:
        return 0.0, 1.0, 0
    res = stats.chi2_contingency(table, correction=False)
    return float(res.statistic), float(res.pvalue), int(res.dof)


def categorical_drift(
    ref: FeatureProfile, cur: FeatureProfile, *, eps: float, n_evidence: int = 5
) -> CategoricalDrift | None:
    """All categorical statistics, or None if either side has no valid values."""
    if ref.categories is None or cur.categories is None:
        return None
    if ref.categories.total == 0 or cur.categories.total == 0:
        return None
    cats, r, c = aligned_counts(ref, cur)
    p, q = r / r.sum(), c / c.sum()
    chi2, pval, dof = chi2_homogeneity(r, c)
    rm, cm, _ = merge_sparse_cells(r, c)
    pm, qm = rm / rm.sum(), cm / cm.sum()
    unseen: tuple[float | None, float | None] = (None, None)
    rd, cd = ref.distinct_estimate(), cur.distinct_estimate()
    if ref.categories.is_exact:
        ref_counts = list(ref.categories.counts()[0].values())
        unseen = good_turing_unseen(ref_counts)
        m, n = cur.categories.total, ref.categories.total
        rd = expected_distinct(ref_counts, m)  # at the window's size
        if m > EXTRAPOLATION_LIMIT * n and (unseen[0] or 0.0) >= LONG_TAIL_UNSEEN:
            rd = 0.0  # a long tail's distinct count this far out is unknowable: not judged
    new_share, top_new = new_categories(ref, cur)
    delta = q - p
    order = np.argsort(-np.abs(delta))[:n_evidence]
    evidence = [
        {"category": cats[i], "reference_share": float(p[i]), "current_share": float(q[i])}
        for i in order
        if delta[i] != 0
    ]
    return CategoricalDrift(
        psi=psi(pm, qm, eps),
        js=js_distance(pm, qm),
        chi2=chi2,
        chi2_pvalue=pval,
        chi2_dof=dof,
        new_category_share=new_share,
        top_new_categories=top_new[:n_evidence],
        distinct_ratio=cd / rd if cd is not None and rd is not None and rd > 0 else None,
        evidence=evidence,
        bins=int(rm.size),
        expected_new_share=unseen[0],
        expected_new_share_se=unseen[1],
    )
