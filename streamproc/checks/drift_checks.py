"""Distribution checks: ``feature_drift``, ``prediction_drift``, ``slow_drift``, ``dataset_drift``.

All read one :class:`~streamproc.core.drift.FeatureDrift` per feature (computed once by
``compare_features`` and shared with the cardinality check). Which statistics may alert:

* numeric: PSI, Jensen–Shannon, KS, and Wasserstein-1 ÷ reference scale (only when the
  policy sets a threshold for it);
* categorical and boolean: PSI and Jensen–Shannon.

Every statistic breaches only when the distribution's two-sample test also rejects at
``drift_test_alpha`` (a significance gate, 1e-4 by default; see
:mod:`streamproc.checks.policy`): for numerics the asymptotic KS p-value of D − ε (Smirnov
1948; ε = ``ks_error_bound``, the sketches' error, so conservative by ε), for categoricals
the chi-squared test of homogeneity with sparse cells pooled (expected count ≥ 5). So a
window drawn from the reference breaches with probability at most α whatever the effect
sizes do, wherever the test is valid.

PSI and JS are graded after their small-sample correction: the excess over their
expected value between two samples of one distribution on K bins,
PSI − (K − 1)(1/n + 1/m) and sqrt(max(0, JS² − (K − 1)(1/n + 1/m)/(8 ln 2)))
(:mod:`streamproc.core.small_sample`); the raw values stay in the evidence.

The result reports the worst breached statistic, or PSI (the primary statistic) when
clean. Evidence: the top shifted bins (numeric) or categories (categorical) from the
FeatureDrift, then one ``{"statistics": {...}}`` item with every statistic computed. A
category item carries ``count`` and ``reference_count`` (the records with that category
in the window and in the reference), by which alert messages decide whether the value
may be shown raw.

Predictions use the feature names of :mod:`streamproc.core.drift`: ``"__prediction__"``
(score distribution) and ``"__predicted_label__"`` (predicted-label shares), so each has
its own alert fingerprint. ``slow_drift`` is the same evaluation on the rolling horizon
(a merge of recent windows), with its own fingerprints so that window and horizon
alerts fire and resolve independently.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from streamproc.checks.context import Candidate, Window, worst
from streamproc.checks.policy import EvaluationPolicy
from streamproc.checks.result import CheckResult
from streamproc.core.drift import PREDICTED_LABEL, PREDICTION, FeatureDrift
from streamproc.core.kinds import FeatureKind
from streamproc.core.small_sample import benjamini_hochberg, js2_null_mean, psi_null_mean

_REPORTED = (
    "psi",
    "js",
    "ks",
    "ks_critical_value",
    "ks_error_bound",
    "ks_pvalue",
    "wasserstein",
    "mean_shift",
    "out_of_range_share",
    "chi2",
    "chi2_pvalue",
    "chi2_dof",
    "new_category_share",
    "expected_new_share",
    "bins",
)


def _statistics(fd: FeatureDrift) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key in _REPORTED:
        v = fd.statistics.get(key)
        if v is not None:
            out[key] = float(v) if math.isfinite(v) else None
    return out


def _wasserstein(policy: EvaluationPolicy, value: float) -> Candidate | None:
    warn, crit = policy.wasserstein_warning, policy.wasserstein_critical
    if warn is None and crit is None:
        return None
    warn = warn if warn is not None else crit
    crit = crit if crit is not None else math.inf
    assert warn is not None
    return Candidate.of("wasserstein", value, warn, crit)


def corrected_psi_js(fd: FeatureDrift) -> tuple[float | None, float | None]:
    """(PSI, JS) less their expected value under no drift (see the module docstring)."""
    st = fd.statistics
    psi, js, bins = st.get("psi"), st.get("js"), int(st.get("bins") or 0)
    n, m = fd.n_reference, fd.n_current
    psi_c = None if psi is None else max(0.0, psi - psi_null_mean(bins, n, m))
    js_c = None if js is None else math.sqrt(max(0.0, js * js - js2_null_mean(bins, n, m)))
    return psi_c, js_c


def drift_result(
    window: Window,
    check: str,
    fd: FeatureDrift,
    policy: EvaluationPolicy,
    *,
    subject: str | None = None,
) -> CheckResult | None:
    """One drift evaluation of ``fd``; None below ``min_samples`` valid values a side."""
    t = policy.thresholds.for_feature(fd.name)
    st = fd.statistics
    psi, js = corrected_psi_js(fd)
    if min(fd.n_reference, fd.n_current) < t.min_samples or psi is None:
        return None
    primary = Candidate.of("psi", psi, t.psi_warning, t.psi_critical)
    candidates = [primary]
    if js is not None:
        candidates.append(Candidate.of("js", js, t.js_warning, t.js_critical))
    note = ""
    if fd.kind is FeatureKind.NUMERIC:
        test, pvalue = "KS", st.get("ks_pvalue")
        ks, ks_crit = st.get("ks"), st.get("ks_critical_value")
        eps = st.get("ks_error_bound") or 0.0
        if ks is not None and ks_crit is not None and ks - eps > ks_crit:
            candidates.append(Candidate.of("ks", ks, t.ks_warning, t.ks_critical))
        w = st.get("wasserstein")
        wc = _wasserstein(policy, w) if w is not None else None
        if wc is not None:
            candidates.append(wc)
    else:
        test, pvalue = "chi-squared", st.get("chi2_pvalue")
    alpha = policy.drift_test_alpha
    if pvalue is None or not pvalue < alpha:
        gated = [dataclasses.replace(c, severity=None) for c in candidates]
        if any(c.value > c.threshold for c in gated):
            p = "n/a" if pvalue is None else f"{pvalue:.2g}"
            note = f" (not significant: {test} p = {p} ≥ α = {alpha:g})"
        primary, candidates = gated[0], []
    if check == "slow_drift":
        note += " (rolling horizon)"
    chosen = worst(candidates, primary)
    reported = {**_statistics(fd), "psi_corrected": psi, "js_corrected": js}
    evidence: list[dict[str, Any]] = [*fd.evidence, {"statistics": reported}]
    return window.result(
        check,
        fd.name,
        chosen,
        n_reference=fd.n_reference,
        n_current=fd.n_current,
        evidence=evidence,
        note=note,
        subject=subject,
    )


def prediction_subject(model: str, name: str) -> str | None:
    """Readable subject for the prediction pseudo-features in summaries."""
    if name == PREDICTION:
        return f"{model} prediction scores"
    if name == PREDICTED_LABEL:
        return f"{model} predicted labels"
    return None


def drift_pvalue(result: CheckResult) -> float:
    """The drift test's p-value in a drift result's evidence (KS, else chi-squared); 1
    when neither was computed."""
    items = result.evidence if isinstance(result.evidence, list) else [result.evidence]
    for item in items:
        st = item.get("statistics") if isinstance(item, dict) else None
        if isinstance(st, dict):
            for key in ("ks_pvalue", "chi2_pvalue"):
                v = st.get(key)
                if isinstance(v, int | float):
                    return float(v)
    return 1.0


def dataset_drift_result(
    window: Window,
    feature_results: list[CheckResult],
    policy: EvaluationPolicy,
    *,
    n_reference: int,
    n_current: int,
) -> CheckResult | None:
    """One ``dataset_drift`` result from the per-feature drift results (inputs only, no
    predictions): the share of evaluated features that breached and whose drift test's
    p-value is a Benjamini–Hochberg discovery at ``dataset_drift_fdr`` across the
    features, ≥ the policy's share. None below ``dataset_drift_min_features`` features."""
    evaluated = len(feature_results)
    if evaluated < policy.dataset_drift_min_features:
        return None
    found = benjamini_hochberg([drift_pvalue(r) for r in feature_results], policy.dataset_drift_fdr)
    drifted = sorted(
        (r for r, d in zip(feature_results, found, strict=True) if r.breached and d),
        key=lambda r: (r.severity != "critical", -(r.value / r.threshold if r.threshold else 0)),
    )
    share = len(drifted) / evaluated
    chosen = Candidate.of(
        "drifted_feature_share",
        share,
        policy.dataset_drift_share_warning,
        policy.dataset_drift_share_critical,
        inclusive=True,
    )
    evidence = [
        {
            "feature": r.feature,
            "severity": r.severity,
            "statistic": r.statistic,
            "measured": r.value,
            "threshold": r.threshold,
        }
        for r in drifted
    ]
    names = ", ".join(str(r.feature) for r in drifted[:10])
    more = f" and {len(drifted) - 10} more" if len(drifted) > 10 else ""
    note = f" ({len(drifted)} of {evaluated} features: {names}{more})" if drifted else ""
    return window.result(
        "dataset_drift",
        None,
        chosen,
        n_reference=n_reference,
        n_current=n_current,
        evidence=evidence,
        note=note,
    )
