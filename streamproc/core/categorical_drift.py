"""Drift statistics between two categorical (or boolean) feature profiles.

Categories are aligned over the union of both sides' categories (plus an "other"
bucket when either side overflowed into its frequent-items sketch), so categories
unseen in the reference never crash anything: they get a reference share of 0,
smoothed for PSI.

Chi-squared is the 2×K contingency test of homogeneity (Pearson 1900) on raw counts,
reference row vs current row, categories with zero total dropped, no Yates
correction: ``scipy.stats.chi2_contingency(table, correction=False)``. It is exact
while both sides are under the distinct-value cap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from streamproc.core.divergence import js_distance, psi
from streamproc.core.feature_profile import FeatureProfile

OTHER = "__other__"


@dataclass
class CategoricalDrift:
    psi: float
    js: float
    chi2: float
    chi2_pvalue: float
    chi2_dof: int
    new_category_share: float
    top_new_categories: list[tuple[str, int]]
    distinct_ratio: float | None
    evidence: list[dict[str, Any]] = field(default_factory=list)


def aligned_counts(
    ref: FeatureProfile, cur: FeatureProfile
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(categories, reference counts, current counts) over the union of categories."""
    assert ref.categories is not None and cur.categories is not None
    rc, r_other = ref.categories.counts()
    cc, c_other = cur.categories.counts()
    cats = sorted(set(rc) | set(cc))
    r = np.array([rc.get(c, 0) for c in cats], dtype=np.float64)
    c = np.array([cc.get(c, 0) for c in cats], dtype=np.float64)
    if r_other or c_other:
        cats.append(OTHER)
        r = np.append(r, r_other)
        c = np.append(c, c_other)
    return cats, r, c


def chi2_homogeneity(r: np.ndarray, c: np.ndarray) -> tuple[float, float, int]:
    """(statistic, p-value, dof) of the 2×K contingency test; (0, 1, 0) if K < 2."""
    keep = (r + c) > 0
    table = np.vstack((r[keep], c[keep]))
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
    unseen = np.array([(ri == 0 and name != OTHER) for name, ri in zip(cats, r, strict=True)])
    new_share = float(q[unseen].sum()) if unseen.any() else 0.0
    idx_new = np.flatnonzero(unseen)
    top_new = sorted(((cats[i], int(c[i])) for i in idx_new), key=lambda t: (-t[1], t[0]))
    rd, cd = ref.distinct_estimate(), cur.distinct_estimate()
    delta = q - p
    order = np.argsort(-np.abs(delta))[:n_evidence]
    evidence = [
        {"category": cats[i], "reference_share": float(p[i]), "current_share": float(q[i])}
        for i in order
        if delta[i] != 0
    ]
    return CategoricalDrift(
        psi=psi(p, q, eps),
        js=js_distance(p, q),
        chi2=chi2,
        chi2_pvalue=pval,
        chi2_dof=dof,
        new_category_share=new_share,
        top_new_categories=top_new[:n_evidence],
        distinct_ratio=cd / rd if rd > 0 else None,
        evidence=evidence,
    )
