"""Evaluate one window: from (reference, window, ops) profiles to :class:`CheckResult` s.

Pure: no Kafka, no clocks, no metrics. :func:`evaluate_window` returns one result for
every (check, feature) it evaluated, breached or clean — the alert lifecycle needs clean
evaluations to resolve alerts — and none for a check whose inputs have fewer samples than
its minimum (a window too small to judge says nothing, rather than "all clear").

Checks (thresholds: :class:`~streamproc.checks.policy.EvaluationPolicy`):

======================  ===========================  ==========================================
check                   feature                      module
======================  ===========================  ==========================================
``feature_drift``       each reference feature       :mod:`~streamproc.checks.drift_checks`
``prediction_drift``    ``__prediction__``,          :mod:`~streamproc.checks.drift_checks`
                        ``__predicted_label__``
``dataset_drift``       None                         :mod:`~streamproc.checks.drift_checks`
``completeness``        each reference feature       :mod:`~streamproc.checks.quality_checks`
``schema``              each reference feature;      :mod:`~streamproc.checks.quality_checks`
                        None (unexpected features)
``cardinality``         each categorical feature     :mod:`~streamproc.checks.quality_checks`
``range``               each numeric feature         :mod:`~streamproc.checks.range_checks`
``degenerate_output``   None                         :mod:`~streamproc.checks.quality_checks`
``joint_drift``         None                         :mod:`~streamproc.checks.joint_checks`
``freshness``           ``data_lag``,                :mod:`~streamproc.checks.freshness_checks`
                        ``pipeline_lag``,
                        ``processing_lag``
``staleness``           None (:func:`evaluate_staleness`, not per window)
``slow_drift``          features and predictions     ``scope="rolling"`` only
======================  ===========================  ==========================================

``scope="rolling"`` evaluates the rolling horizon (a merge of recent windows): only the
drift of features and predictions, reported as ``slow_drift`` so that its alerts have
their own fingerprints and lifecycle. Quality, freshness and output checks belong to the
window scope, where they are timely; repeating them on the horizon would double-alert.
"""

from __future__ import annotations

from typing import Final

from streamproc.checks.context import Window
from streamproc.checks.drift_checks import dataset_drift_result, drift_result, prediction_subject
from streamproc.checks.freshness_checks import evaluate_staleness, freshness_results
from streamproc.checks.joint_checks import joint_drift_result
from streamproc.checks.policy import DEFAULT_POLICY, EvaluationPolicy
from streamproc.checks.quality_checks import (
    cardinality_result,
    completeness_result,
    degenerate_output_result,
    schema_result,
    unexpected_features_result,
)
from streamproc.checks.range_checks import range_result
from streamproc.checks.result import CheckResult
from streamproc.core.drift import PREDICTED_LABEL, PREDICTION, compare_features
from streamproc.core.feature_profile import FeatureProfile
from streamproc.core.model_profile import ModelProfile
from streamproc.core.ops import MISSING_FEATURE, UNEXPECTED_FEATURE

__all__ = ["DEFAULT_POLICY", "SCOPES", "EvaluationPolicy", "evaluate_staleness", "evaluate_window"]

SCOPES: Final = ("window", "rolling")


def _event_counts(ops: ModelProfile | None, name: str) -> dict[str, int]:
    prof = ops.features.get(name) if ops is not None else None
    if prof is None or prof.categories is None:
        return {}
    return prof.categories.counts()[0]


def _enough_values(ref: FeatureProfile, cur: FeatureProfile, min_samples: int) -> bool:
    return min(ref.valid_count, cur.valid_count) >= min_samples


def evaluate_window(
    reference: ModelProfile,
    current: ModelProfile,
    ops: ModelProfile | None,
    policy: EvaluationPolicy = DEFAULT_POLICY,
    *,
    window_start_ms: int,
    window_end_ms: int,
    scope: str = "window",
) -> list[CheckResult]:
    """Every check of one window (or of the rolling horizon, ``scope="rolling"``).

    ``current`` and ``ops`` are the window's feature and ops profiles (``ops`` may be None:
    schema-event and freshness checks are then skipped). Results carry ``current``'s model
    and version and the window bounds (event-time epoch ms, ``[start, end)``).
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if reference.model != current.model:
        raise ValueError(
            f"reference is for model {reference.model!r}, window for {current.model!r}"
        )
    window = Window(current.model, current.model_version, window_start_ms, window_end_ms)
    rolling = scope == "rolling"
    thresholds = policy.thresholds
    out: list[CheckResult] = []
    feature_drift: list[CheckResult] = []
    missing = _event_counts(ops, MISSING_FEATURE)
    ops_rows = ops.row_count if ops is not None else 0

    for name, ref in reference.features.items():
        cur = current.features.get(name)
        t = thresholds.for_feature(name)
        same_kind = cur is not None and cur.kind is ref.kind
        if cur is not None and same_kind and _enough_values(ref, cur, t.min_samples):
            fd = compare_features(ref, cur, thresholds, name=name)
            r = drift_result(window, "slow_drift" if rolling else "feature_drift", fd, policy)
            if r is not None:
                out.append(r)
                feature_drift.append(r)
            if not rolling:
                card = cardinality_result(window, fd, ref, cur, t, policy)
                if card is not None:
                    out.append(card)
                rng = range_result(window, name, ref, cur, t, policy)
                if rng is not None:
                    out.append(rng)
        if rolling:
            continue
        if cur is not None and same_kind:
            comp = completeness_result(window, name, ref, cur, t)
            if comp is not None:
                out.append(comp)
        sch = schema_result(
            window,
            name,
            ref,
            cur,
            t,
            policy,
            missing_records=missing.get(name, 0),
            ops_rows=ops_rows,
        )
        if sch is not None:
            out.append(sch)

    outputs = (
        (PREDICTION, reference.prediction, current.prediction),
        (PREDICTED_LABEL, reference.predicted_label, current.predicted_label),
    )
    for name, ref_out, cur_out in outputs:
        if ref_out is None or cur_out is None or ref_out.kind is not cur_out.kind:
            continue
        if not _enough_values(ref_out, cur_out, thresholds.for_feature(name).min_samples):
            continue
        fd = compare_features(ref_out, cur_out, thresholds, name=name)
        check = "slow_drift" if rolling else "prediction_drift"
        subject = prediction_subject(current.model, name)
        r = drift_result(window, check, fd, policy, subject=subject)
        if r is not None:
            out.append(r)
    if rolling:
        return out

    ds = dataset_drift_result(
        window,
        feature_drift,
        policy,
        n_reference=reference.row_count,
        n_current=current.row_count,
    )
    if ds is not None:
        out.append(ds)
    joint = joint_drift_result(window, reference, current, policy)
    if joint is not None:
        out.append(joint)
    deg = degenerate_output_result(window, reference, current, policy)
    if deg is not None:
        out.append(deg)
    if ops is not None:
        unexpected = _event_counts(ops, UNEXPECTED_FEATURE)
        ux = unexpected_features_result(window, unexpected, ops_rows, policy)
        if ux is not None:
            out.append(ux)
        out.extend(freshness_results(window, ops, policy))
    return out
