"""Compare a current profile with a reference profile: statistics and verdicts.

``compare_features`` computes every statistic that applies to the feature's kind
(the others are None), then applies :class:`~streamproc.core.thresholds.Thresholds`
to give a status — "ok", "warning", "critical" or "insufficient_data" — and the list
of breached statistics. ``compare_profiles`` does that for every reference feature
plus the prediction ("__prediction__") and predicted label ("__predicted_label__").
Formulas and sources: docs/STATISTICS.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from streamproc.core.categorical_drift import OTHER, categorical_drift
from streamproc.core.divergence import ks_critical_value, ks_pvalue
from streamproc.core.feature_profile import FeatureProfile
from streamproc.core.kinds import FeatureKind
from streamproc.core.model_profile import ModelProfile
from streamproc.core.numeric_drift import numeric_drift
from streamproc.core.thresholds import DEFAULT_THRESHOLDS, Thresholds

OK, WARNING, CRITICAL, INSUFFICIENT = "ok", "warning", "critical", "insufficient_data"
_RANK = {INSUFFICIENT: 0, OK: 1, WARNING: 2, CRITICAL: 3}
PREDICTION, PREDICTED_LABEL = "__prediction__", "__predicted_label__"

STATISTICS = (
    "psi",
    "ks",
    "ks_critical_value",
    "ks_error_bound",
    "ks_pvalue",
    "js",
    "wasserstein",
    "mean_shift",
    "out_of_range_share",
    "chi2",
    "chi2_pvalue",
    "chi2_dof",
    "new_category_share",
    "expected_new_share",
    "expected_new_share_se",
    "bins",
    "distinct_ratio",
    "null_rate_ratio",
    "invalid_rate_reference",
    "invalid_rate_current",
    "nonfinite_rate_reference",
    "nonfinite_rate_current",
)


@dataclass
class Breach:
    statistic: str
    value: float
    threshold: float
    severity: str  # "warning" | "critical"

    def to_dict(self) -> dict[str, Any]:
        return {
            "statistic": self.statistic,
            "value": _clean(self.value),
            "threshold": self.threshold,
            "severity": self.severity,
        }


@dataclass
class FeatureDrift:
    """Statistics and verdict for one feature. ``n_*`` are valid-value sample sizes;
    ``count_*`` are rows seen (valid + null + invalid + non-finite)."""

    name: str
    kind: FeatureKind
    n_reference: int
    n_current: int
    count_reference: int
    count_current: int
    null_rate_reference: float
    null_rate_current: float
    statistics: dict[str, float | None]
    status: str
    breaches: list[Breach] = field(default_factory=list)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    top_new_categories: list[tuple[str, int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "count_reference": self.count_reference,
            "count_current": self.count_current,
            "null_rate_reference": self.null_rate_reference,
            "null_rate_current": self.null_rate_current,
            "statistics": {k: _clean(v) for k, v in self.statistics.items()},
            "status": self.status,
            "breaches": [b.to_dict() for b in self.breaches],
            "evidence": self.evidence,
            "top_new_categories": [list(t) for t in self.top_new_categories],
        }


@dataclass
class DriftReport:
    model: str
    n_reference: int
    n_current: int
    features: dict[str, FeatureDrift]

    @property
    def status(self) -> str:
        if not self.features:
            return INSUFFICIENT
        return max((f.status for f in self.features.values()), key=_RANK.__getitem__)

    @property
    def drifted_features(self) -> list[str]:
        """Features in warning or critical, most severe first, then by name."""
        bad = [f for f in self.features.values() if f.status in (WARNING, CRITICAL)]
        return [f.name for f in sorted(bad, key=lambda f: (-_RANK[f.status], f.name))]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "status": self.status,
            "drifted_features": self.drifted_features,
            "features": {n: f.to_dict() for n, f in self.features.items()},
        }


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _severity(value: float | None, warn: float, crit: float) -> str | None:
    if value is None or not math.isfinite(value):
        return None if value is None or math.isnan(value) else CRITICAL
    if value > crit:
        return CRITICAL
    if value > warn:
        return WARNING
    return None


def _with_counts(
    evidence: list[dict[str, Any]], ref: FeatureProfile, cur: FeatureProfile
) -> list[dict[str, Any]]:
    """Each category evidence item with the records that carry its category: ``count`` in
    the current profile, ``reference_count`` in the reference — exact counts, or a
    sketch's lower bounds (never above the true count, so the alert layer's "enough
    records to show the value raw" rule errs on the side of hiding). The folded
    ``__other__`` bin of a sketched comparison is no value: it counts its share."""
    assert ref.categories is not None and cur.categories is not None
    rc, cc = ref.categories, cur.categories
    rb, cb = rc.bounds(), cc.bounds()
    folded = not (rc.is_exact and cc.is_exact)
    out = []
    for item in evidence:
        cat = str(item["category"])
        if folded and cat == OTHER:
            count = round(item["current_share"] * cc.total)
            reference_count = round(item["reference_share"] * rc.total)
        else:
            count, reference_count = cb.get(cat, (0, 0))[0], rb.get(cat, (0, 0))[0]
        out.append({**item, "count": int(count), "reference_count": int(reference_count)})
    return out


def compare_features(
    ref: FeatureProfile,
    cur: FeatureProfile,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    *,
    name: str,
) -> FeatureDrift:
    """Every applicable statistic for one feature, and its verdict."""
    t = thresholds.for_feature(name)
    st: dict[str, float | None] = dict.fromkeys(STATISTICS)
    n_ref, n_cur = ref.valid_count, cur.valid_count
    breaches: list[Breach] = []
    evidence: list[dict[str, Any]] = []
    top_new: list[tuple[str, int]] = []

    def check(stat: str, value: float | None, warn: float, crit: float) -> None:
        sev = _severity(value, warn, crit)
        if sev is not None and value is not None:
            breaches.append(Breach(stat, value, crit if sev == CRITICAL else warn, sev))

    nr_ref, nr_cur = ref.null_rate, cur.null_rate
    st["null_rate_ratio"] = nr_cur / nr_ref if nr_ref > 0 else (1.0 if nr_cur == 0 else None)
    st["invalid_rate_reference"], st["invalid_rate_current"] = ref.invalid_rate, cur.invalid_rate
    st["nonfinite_rate_reference"] = ref.nonfinite_rate
    st["nonfinite_rate_current"] = cur.nonfinite_rate

    if ref.kind is not cur.kind:
        breaches.append(Breach("kind", 1.0, 0.0, CRITICAL))
        return FeatureDrift(
            name, ref.kind, n_ref, n_cur, ref.count, cur.count, nr_ref, nr_cur, st, CRITICAL,
            breaches,
        )  # fmt: skip

    if ref.kind is FeatureKind.NUMERIC:
        nd = numeric_drift(ref, cur, bins=t.psi_bins, eps=t.psi_smoothing)
        if nd is not None:
            st.update(
                psi=nd.psi,
                js=nd.js,
                ks=nd.ks,
                ks_error_bound=nd.ks_error_bound,
                wasserstein=nd.wasserstein,
                mean_shift=nd.mean_shift,
                out_of_range_share=nd.out_of_range_share,
                bins=float(nd.bins),
                ks_pvalue=ks_pvalue(nd.ks, nd.ks_error_bound, n_ref, n_cur),
            )
            evidence = nd.evidence
    else:
        cd = categorical_drift(ref, cur, eps=t.psi_smoothing)
        if cd is not None:
            st.update(
                psi=cd.psi,
                js=cd.js,
                chi2=cd.chi2,
                chi2_pvalue=cd.chi2_pvalue,
                chi2_dof=float(cd.chi2_dof),
                new_category_share=cd.new_category_share,
                distinct_ratio=cd.distinct_ratio,
                bins=float(cd.bins),
                expected_new_share=cd.expected_new_share,
                expected_new_share_se=cd.expected_new_share_se,
            )
            evidence, top_new = _with_counts(cd.evidence, ref, cur), cd.top_new_categories
    crit_ks = ks_critical_value(n_ref, n_cur, t.ks_alpha)
    st["ks_critical_value"] = crit_ks if ref.kind is FeatureKind.NUMERIC else None

    enough_rows = min(ref.count, cur.count) >= t.min_samples
    enough_values = min(n_ref, n_cur) >= t.min_samples
    if enough_rows:
        floor = nr_ref + t.null_rate_absolute_floor
        if nr_cur > floor:
            ratio = nr_cur / nr_ref if nr_ref > 0 else math.inf
            check("null_rate", ratio, t.null_rate_ratio_warning, t.null_rate_ratio_critical)
        check(
            "invalid_rate",
            cur.invalid_rate - ref.invalid_rate,
            t.invalid_rate_warning,
            t.invalid_rate_critical,
        )
        check(
            "nonfinite_rate",
            cur.nonfinite_rate - ref.nonfinite_rate,
            t.nonfinite_rate_warning,
            t.nonfinite_rate_critical,
        )
    if enough_values:
        check("psi", st["psi"], t.psi_warning, t.psi_critical)
        check("js", st["js"], t.js_warning, t.js_critical)
        ks, ks_eps = st["ks"], st["ks_error_bound"] or 0.0
        if ks is not None and ks - ks_eps > crit_ks:  # significant beyond the sketch error
            check("ks", ks, t.ks_warning, t.ks_critical)
        check(
            "new_category_share",
            st["new_category_share"],
            t.new_category_share_warning,
            t.new_category_share_critical,
        )
    if breaches:
        status = max((b.severity for b in breaches), key=_RANK.__getitem__)
    else:
        status = OK if enough_rows and enough_values else INSUFFICIENT
    return FeatureDrift(
        name,
        ref.kind,
        n_ref,
        n_cur,
        ref.count,
        cur.count,
        nr_ref,
        nr_cur,
        st,
        status,
        breaches,
        evidence,
        top_new,
    )


def compare_profiles(
    reference: ModelProfile,
    current: ModelProfile,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> DriftReport:
    """Drift of every reference feature (and prediction, predicted label) in ``current``.

    A feature missing from ``current`` is compared with an empty profile of its kind
    (status "insufficient_data"); features only in ``current`` are not reported.

    >>> import numpy as np
    >>> ref = ModelProfile.build_reference("credit", "7", {"income": np.linspace(20, 80, 10_000)})
    >>> same = ModelProfile.build_reference("credit", "7", {"income": np.linspace(20, 80, 5_000)})
    >>> report = compare_profiles(ref, same)
    >>> report.status, report.drifted_features
    ('ok', [])
    >>> moved = ModelProfile.build_reference("credit", "7", {"income": np.linspace(40, 100, 5_000)})
    >>> report = compare_profiles(ref, moved)
    >>> report.status, report.drifted_features, report.n_reference, report.n_current
    ('critical', ['income'], 10000, 5000)
    >>> income = report.features["income"]
    >>> sorted(b.statistic for b in income.breaches)
    ['js', 'ks', 'psi']
    >>> round(income.statistics["ks"], 1)  # a third of the range moved out
    0.3
    """
    pairs: list[tuple[str, FeatureProfile, FeatureProfile | None]] = [
        (n, p, current.features.get(n)) for n, p in reference.features.items()
    ]
    if reference.prediction is not None:
        pairs.append((PREDICTION, reference.prediction, current.prediction))
    if reference.predicted_label is not None:
        pairs.append((PREDICTED_LABEL, reference.predicted_label, current.predicted_label))
    out: dict[str, FeatureDrift] = {}
    for name, ref, cur in pairs:
        cur_p = cur if cur is not None else FeatureProfile.new(ref.kind, k=ref.k)
        out[name] = compare_features(ref, cur_p, thresholds, name=name)
    return DriftReport(reference.model, reference.row_count, current.row_count, out)
