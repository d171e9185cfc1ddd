"""``joint_drift``: the window's joint distribution of numeric features against the reference.

Statistics from :func:`streamproc.core.joint_drift.compare_joint` (co-moments kept in the
profiles; docs/STATISTICS.md *Joint distribution*). Two candidates, the worst reported:

* ``correlation_change`` — the largest |Δr| among the pairs whose change is significant:
  |z| above the two-sided critical value at ``joint_alpha / 2`` Bonferroni-split over the
  pairs compared;
* ``reconstruction_error_ratio`` — the window's mean squared reconstruction error under
  the reference's principal components ÷ the reference's, when its z-score exceeds the
  one-sided critical value at ``joint_alpha / 2``.

Critical values are Student-t with the reference's parts − 1 degrees of freedom (their
spread is the noise estimate), normal when the reference has one part. A change above
its threshold but not significant is reported, not breached. Evidence: the top pairs by
|Δr| (both correlations, z, significant or not) and the reconstruction errors. Needs
``thresholds.min_samples`` rows of a pair on both sides (500 by default, as the other
distribution checks), and co-moments in both profiles (profiles written before them have
none: no result).
"""

from __future__ import annotations

from typing import Any, Final

from scipy import stats

from streamproc.checks.context import Candidate, Window, grade, worst
from streamproc.checks.policy import EvaluationPolicy
from streamproc.checks.result import CheckResult
from streamproc.core.joint_drift import JointDrift, compare_joint
from streamproc.core.model_profile import ModelProfile

TOP_PAIRS: Final = 5


def _critical(tail: float, dof: int | None) -> float:
    """Upper ``tail`` quantile: Student-t with ``dof`` degrees of freedom, else normal."""
    return float(stats.norm.isf(tail) if dof is None else stats.t.isf(tail, dof))


def _gated(statistic: str, value: float, warning: float, critical: float, ok: bool) -> Candidate:
    sev = grade(value, warning, critical) if ok else None
    return Candidate(statistic, value, warning, critical, sev)


def _evidence(jd: JointDrift, pair_critical: float) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [
        {
            "pair": [p.first, p.second],
            "correlation_reference": round(p.r_reference, 4),
            "correlation_current": round(p.r_current, 4),
            "change": round(p.change, 4),
            "z": round(p.z, 2),
            "significant": abs(p.z) > pair_critical,
            "rows": p.n_current,
        }
        for p in jd.pairs[:TOP_PAIRS]
    ]
    rec = jd.reconstruction
    if rec is not None:
        items.append(
            {
                "reconstruction_error_reference": round(rec.error_reference, 6),
                "reconstruction_error_current": round(rec.error_current, 6),
                "ratio": round(rec.ratio, 4),
                "z": round(rec.z, 2),
                "components": rec.components,
                "features": len(jd.features),
            }
        )
    return items


def joint_drift_result(
    window: Window, reference: ModelProfile, current: ModelProfile, policy: EvaluationPolicy
) -> CheckResult | None:
    """The ``joint_drift`` result of a window; None without co-moments on either side,
    fewer than two common features, or no pair with ``min_samples`` rows."""
    if reference.joint is None or current.joint is None:
        return None
    jd = compare_joint(
        reference.joint,
        current.joint,
        max_features=policy.joint_max_features,
        explained_variance=policy.joint_explained_variance,
        min_rows=policy.thresholds.min_samples,
    )
    if jd is None:
        return None
    half = policy.joint_alpha / 2
    pair_crit = _critical(half / (2 * len(jd.pairs)), jd.noise_dof)
    significant = [p for p in jd.pairs if abs(p.z) > pair_crit]
    top = significant[0] if significant else jd.pairs[0]  # pairs: largest |Δr| first
    corr = _gated(
        "correlation_change",
        abs(top.change),
        policy.joint_correlation_warning,
        policy.joint_correlation_critical,
        bool(significant),
    )
    candidates = [corr]
    rec = jd.reconstruction
    if rec is not None:
        candidates.append(
            _gated(
                "reconstruction_error_ratio",
                rec.ratio,
                policy.joint_reconstruction_warning,
                policy.joint_reconstruction_critical,
                rec.z > _critical(half, jd.noise_dof),
            )
        )
    chosen = worst(candidates, corr)
    note = (
        f"; largest correlation change {top.first}–{top.second}: "
        f"{top.r_reference:.2f} → {top.r_current:.2f}"
    )
    return window.result(
        "joint_drift",
        None,
        chosen,
        n_reference=jd.n_reference,
        n_current=jd.n_current,
        evidence=_evidence(jd, pair_crit),
        note=note,
    )
