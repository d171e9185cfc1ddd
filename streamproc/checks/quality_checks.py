"""Data-quality checks: ``completeness``, ``schema``, ``cardinality``, ``degenerate_output``.

* ``completeness`` (per feature): current null rate above max(reference × ratio,
  reference + absolute floor) — the core ``null_rate_*`` thresholds; reported as the
  null rate itself, with the effective threshold, so the sentence reads in rates.
* ``schema`` (per feature): the worst of the type-invalid rate increase, the non-finite
  rate increase (numeric) and the missing-feature rate (records of the ops profile
  without this expected feature); a kind change (e.g. numeric → categorical) is
  critical. ``schema`` with no feature: unexpected features — the largest per-name rate
  of records carrying a feature the reference does not know, every name in evidence.
* ``cardinality`` (categorical features): the share of current values in categories
  unseen in the reference, against the share a fresh sample of the reference
  distribution would show — the reference's Good–Turing unseen mass U = f₁/n (only
  while its category counts are exact, otherwise "unseen" is unknowable). It breaches
  when above U + the ``new_category_share_*`` margin (warning 0: any excess; critical
  0.05) **and** a one-sided binomial test rejects "share ≤ U + 3 standard errors" at
  ``share_test_alpha``; and the distinct-count jump (current ÷ reference distinct).
* ``degenerate_output`` (per model): the share of the most common predicted label, and of
  the most common score (1 when all scores are equal; otherwise the point mass at the KLL
  median, which holds any value with more than half the mass). At or above 99% →
  warning, 99.9% → critical, and only when a one-sided binomial test rejects "the window
  is as concentrated as the reference" — the reference's share of that label (or its
  top-score share) plus its sampling error (:func:`~streamproc.core.small_sample.
  upper_share`) — at ``share_test_alpha``. A fraud model that predicts "legit" 98.5% of
  the time gives windows of 500 at ≥ 99% by chance; that is not a collapse.

Raw category values appear only in evidence under the ``category`` (or ``value``) key,
never in summaries, and each such evidence item carries ``count``, the records of the
window with that value: alert messages show the value raw only when enough records
share it (see :func:`streamproc.checks.alerts.redact_evidence`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from streamproc.checks.context import Candidate, Window, worst
from streamproc.checks.policy import EvaluationPolicy
from streamproc.checks.result import CheckResult
from streamproc.core.drift import FeatureDrift
from streamproc.core.feature_profile import FeatureProfile
from streamproc.core.kinds import FeatureKind
from streamproc.core.model_profile import ModelProfile
from streamproc.core.small_sample import binomial_excess_pvalue, upper_share
from streamproc.core.thresholds import Thresholds


def completeness_result(
    window: Window, name: str, ref: FeatureProfile, cur: FeatureProfile, t: Thresholds
) -> CheckResult | None:
    """Null-rate check of one feature; None below ``min_samples`` rows on either side."""
    if min(ref.count, cur.count) < t.min_samples:
        return None
    nr, nc = ref.null_rate, cur.null_rate
    floor = nr + t.null_rate_absolute_floor
    warn = max(nr * t.null_rate_ratio_warning, floor)
    crit = max(nr * t.null_rate_ratio_critical, floor)
    evidence = [
        {
            "null_rate_reference": nr,
            "null_rate_current": nc,
            "null_count": cur.null_count,
            "rows": cur.count,
        }
    ]
    return window.result(
        "completeness",
        name,
        Candidate.of("null_rate", nc, warn, crit),
        n_reference=ref.count,
        n_current=cur.count,
        evidence=evidence,
    )


def schema_result(
    window: Window,
    name: str,
    ref: FeatureProfile,
    cur: FeatureProfile | None,
    t: Thresholds,
    policy: EvaluationPolicy,
    *,
    missing_records: int,
    ops_rows: int,
) -> CheckResult | None:
    """Schema check of one expected feature; None when no part had enough rows."""
    candidates: list[Candidate] = []
    evidence: dict[str, Any] = {"kind_reference": ref.kind.value}
    note = ""
    if cur is not None and cur.kind is not ref.kind:
        evidence["kind_current"] = cur.kind.value
        candidates.append(Candidate.of("kind_mismatch", 1.0, 0.0, 0.0))
        note = f" ({ref.kind.value} in the reference, {cur.kind.value} now)"
    elif cur is not None and min(ref.count, cur.count) >= t.min_samples:
        inv = cur.invalid_rate - ref.invalid_rate
        candidates.append(
            Candidate.of(
                "invalid_rate_increase", inv, t.invalid_rate_warning, t.invalid_rate_critical
            )
        )
        evidence.update(
            invalid_rate_reference=ref.invalid_rate,
            invalid_rate_current=cur.invalid_rate,
            invalid_count=cur.invalid_count,
        )
        if ref.kind is FeatureKind.NUMERIC:
            nf = cur.nonfinite_rate - ref.nonfinite_rate
            candidates.append(
                Candidate.of(
                    "nonfinite_rate_increase",
                    nf,
                    t.nonfinite_rate_warning,
                    t.nonfinite_rate_critical,
                )
            )
            evidence.update(
                nonfinite_rate_reference=ref.nonfinite_rate,
                nonfinite_rate_current=cur.nonfinite_rate,
            )
    if ops_rows >= t.min_samples:
        rate = missing_records / ops_rows
        candidates.append(
            Candidate.of(
                "missing_feature_rate",
                rate,
                policy.missing_feature_rate_warning,
                policy.missing_feature_rate_critical,
            )
        )
        evidence.update(missing_feature_rate=rate, missing_records=missing_records)
    if not candidates:
        return None
    return window.result(
        "schema",
        name,
        worst(candidates, candidates[0]),
        n_reference=ref.count,
        n_current=cur.count if cur is not None else ops_rows,
        evidence=[evidence],
        note=note,
    )


def unexpected_features_result(
    window: Window, counts: dict[str, int], ops_rows: int, policy: EvaluationPolicy
) -> CheckResult | None:
    """Model-level schema check for features the reference does not know (``counts``:
    records per unexpected name); None below ``min_samples`` records."""
    if ops_rows < policy.thresholds.min_samples:
        return None
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    top = ranked[0][1] / ops_rows if ranked else 0.0
    chosen = Candidate.of(
        "unexpected_feature_rate",
        top,
        policy.unexpected_feature_rate_warning,
        policy.unexpected_feature_rate_critical,
    )
    evidence = [{"feature": n, "records": c, "rate": c / ops_rows} for n, c in ranked]
    offending = [n for n, c in ranked if c / ops_rows > policy.unexpected_feature_rate_warning]
    note = ""
    if offending:
        more = f" and {len(offending) - 5} more" if len(offending) > 5 else ""
        note = f" (unexpected features: {', '.join(offending[:5])}{more})"
    return window.result(
        "schema", None, chosen, n_reference=0, n_current=ops_rows, evidence=evidence, note=note
    )


def cardinality_result(
    window: Window,
    fd: FeatureDrift,
    ref: FeatureProfile,
    cur: FeatureProfile,
    t: Thresholds,
    policy: EvaluationPolicy,
) -> CheckResult | None:
    """Unseen categories and distinct-count jump of one categorical feature."""
    if ref.kind is not FeatureKind.CATEGORICAL or ref.categories is None:
        return None
    if min(fd.n_reference, fd.n_current) < t.min_samples:
        return None
    st = fd.statistics
    candidates: list[Candidate] = []
    share = st.get("new_category_share")
    expected: dict[str, Any] = {}
    if share is not None and ref.categories.is_exact:
        unseen = st.get("expected_new_share") or 0.0
        bound = min(1.0, unseen + 3.0 * (st.get("expected_new_share_se") or 0.0))
        pvalue = binomial_excess_pvalue(round(share * fd.n_current), fd.n_current, bound)
        cand = Candidate.of(
            "new_category_share",
            share,
            unseen + t.new_category_share_warning,
            unseen + t.new_category_share_critical,
        )
        if pvalue >= policy.share_test_alpha:
            cand = dataclasses.replace(cand, severity=None)
        candidates.append(cand)
        expected = {
            "expected_new_share": unseen,
            "expected_new_share_upper": bound,
            "pvalue": pvalue,
        }
    ratio = st.get("distinct_ratio")
    if ratio is not None:
        candidates.append(
            Candidate.of(
                "distinct_ratio",
                ratio,
                policy.distinct_ratio_warning,
                policy.distinct_ratio_critical,
            )
        )
    if not candidates:
        return None
    n = max(fd.n_current, 1)
    evidence: list[dict[str, Any]] = [
        {"category": c, "count": k, "share": k / n} for c, k in fd.top_new_categories
    ]
    evidence.append(
        {
            "distinct_reference": ref.distinct_estimate(),
            "distinct_current": cur.distinct_estimate(),
            **expected,
        }
    )
    return window.result(
        "cardinality",
        fd.name,
        worst(candidates, candidates[0]),
        n_reference=fd.n_reference,
        n_current=fd.n_current,
        evidence=evidence,
    )


def _top_label(prof: FeatureProfile) -> tuple[str, float, int]:
    """(most common label, its share, its count)."""
    top = prof.top_categories(1)
    total = prof.categories.total if prof.categories is not None else 0
    if not top or total <= 0:
        return "", 0.0, 0
    return top[0][0], top[0][1] / total, int(top[0][1])


def _share_of(prof: FeatureProfile | None, category: str) -> float:
    """Share of ``category`` among ``prof``'s values (a sketch's estimate past the cap)."""
    if prof is None or prof.categories is None or prof.categories.total <= 0:
        return 0.0
    head, _ = prof.categories.counts()
    return head.get(category, 0) / prof.categories.total


def _top_score(prof: FeatureProfile) -> tuple[float, float]:
    lo, hi, n = prof.min, prof.max, prof.valid_count
    if lo is None or hi is None or n == 0 or prof.kll is None:
        return float("nan"), 0.0
    if lo == hi:
        return lo, 1.0
    med = float(prof.quantiles([0.5])[0])
    at = prof.kll.get_cdf([med], inclusive=True)[0] - prof.kll.get_cdf([med], inclusive=False)[0]
    return med, min(float(at), 1.0 - 1.0 / n)


def degenerate_output_result(
    window: Window, reference: ModelProfile, current: ModelProfile, policy: EvaluationPolicy
) -> CheckResult | None:
    """Collapsed model output; None when neither output has ``degenerate_min_samples``."""
    w, c = policy.dominant_share_warning, policy.dominant_share_critical
    candidates: list[Candidate] = []
    evidence: list[dict[str, Any]] = []
    n_ref = n_cur = 0

    def add(
        statistic: str, share: float, ref_share: float, m: int, n: int, item: dict[str, Any]
    ) -> None:
        cand = Candidate.of(statistic, share, w, c, inclusive=True)
        bound = upper_share(ref_share, n) if n > 0 else 0.0  # no reference: thresholds
        pvalue = binomial_excess_pvalue(round(share * m), m, bound)
        if pvalue >= policy.share_test_alpha:  # no more concentrated than the reference
            cand = dataclasses.replace(cand, severity=None)
        candidates.append(cand)
        evidence.append({**item, "share": share, "reference_share": ref_share, "pvalue": pvalue})

    lab, ref_lab = current.predicted_label, reference.predicted_label
    if lab is not None and lab.valid_count >= policy.degenerate_min_samples:
        cat, share, count = _top_label(lab)
        ref_share = _share_of(ref_lab, cat)
        n_ref_lab = ref_lab.valid_count if ref_lab is not None else 0
        item: dict[str, Any] = {"output": "predicted_label", "category": cat, "count": count}
        add("top_label_share", share, ref_share, lab.valid_count, n_ref_lab, item)
        n_cur = max(n_cur, lab.valid_count)
        n_ref = max(n_ref, ref_lab.valid_count if ref_lab is not None else 0)
    score, ref_score = current.prediction, reference.prediction
    if score is not None and score.valid_count >= policy.degenerate_min_samples:
        value, share = _top_score(score)
        ref_share = _top_score(ref_score)[1] if ref_score is not None else 0.0
        count = int(share * score.valid_count)  # records at the top score (rounded down)
        item = {"output": "prediction", "value": value, "count": count, "std": score.std}
        n_ref_score = ref_score.valid_count if ref_score is not None else 0
        add("top_score_share", share, ref_share, score.valid_count, n_ref_score, item)
        n_cur = max(n_cur, score.valid_count)
        n_ref = max(n_ref, ref_score.valid_count if ref_score is not None else 0)
    if not candidates:
        return None
    primary = max(candidates, key=lambda cand: cand.value)
    return window.result(
        "degenerate_output",
        None,
        worst(candidates, primary),
        n_reference=n_ref,
        n_current=n_cur,
        evidence=evidence,
    )
