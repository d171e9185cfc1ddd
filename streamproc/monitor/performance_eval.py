"""Performance checks and gauges of windows whose labels changed (pure; no Kafka).

For a window with a realized performance accumulator (labels stage → aggregate) and a
reference profile whose metadata holds the reference performance
(:mod:`streamproc.core.reference_performance`): the primary metric's drop
(``performance_drop``), the Brier score's increase (``calibration_drift``, binary with
scores) and the class prior's shift (``label_drift``), each only once the window holds
``PerformancePolicy.min_labeled`` labeled rows (:mod:`streamproc.checks.performance_checks`).
A reference without performance skips the checks; the gauges are exported either way.
"""

from __future__ import annotations

import math

from streamproc.checks.performance_checks import (
    PerformanceFinding,
    PerformancePolicy,
    calibration_drift,
    estimated_drop,
    label_drift,
    realized_drop,
)
from streamproc.checks.result import (
    CALIBRATION_DRIFT,
    ESTIMATED_PERFORMANCE_DROP,
    LABEL_DRIFT,
    PERFORMANCE_DROP,
    CheckResult,
)
from streamproc.core.cbpe import Estimate, estimate
from streamproc.core.errors import ProfileFormatError
from streamproc.core.model_profile import ModelProfile
from streamproc.core.performance import ClassificationPerformance
from streamproc.core.reference_performance import ReferencePerformance
from streamproc.monitor.model_gauges import SeriesBuilder
from streamproc.monitor.state import WindowState

_CHECK = {"performance": PERFORMANCE_DROP, "calibration": CALIBRATION_DRIFT}
_ESTIMATED = ("accuracy", "precision", "recall", "f1", "roc_auc")
_SKIPPED = frozenset({"n", "n_scored", "roc_auc_error_bound"})


def reference_performance(reference: ModelProfile) -> ReferencePerformance | None:
    try:
        return ReferencePerformance.from_metadata(reference.metadata)
    except ProfileFormatError:
        return None


def performance_results(
    window: WindowState, reference: ModelProfile, policy: PerformancePolicy
) -> list[CheckResult]:
    """The performance checks of one window (none without labels or a reference)."""
    perf, ref = window.performance, reference_performance(reference)
    if perf is None or ref is None or type(perf) is not type(ref.perf):
        return []
    ref_metrics = ref.metrics
    findings: list[tuple[PerformanceFinding, float]] = []
    drop = realized_drop(perf, ref_metrics, policy)
    if drop is not None:
        findings.append((drop, policy.drop_warning))
    if isinstance(perf, ClassificationPerformance) and isinstance(
        ref.perf, ClassificationPerformance
    ):
        brier = ref_metrics.get("brier")
        if brier is not None and perf.binary:
            cal = calibration_drift(perf, brier, policy)
            if cal is not None:
                findings.append((cal, policy.brier_warning))
        prior = label_drift(perf.priors(), ref.perf.priors(), policy)
        if prior is not None:
            findings.append((prior, policy.label_psi_warning))
    return [_result(f, threshold, window, ref.perf.n) for f, threshold in findings]


def window_estimate(window: WindowState, reference: ModelProfile) -> Estimate | None:
    """CBPE of a window's scores under the reference's calibration map (None: the
    reference has none, or the window kept no scores)."""
    ref, dist = reference_performance(reference), window.profile.scores
    if ref is None or ref.calibration is None or dist is None or dist.n == 0:
        return None
    return estimate(dist, ref.calibration)


def estimated_results(
    window: WindowState, reference: ModelProfile, policy: PerformancePolicy
) -> list[CheckResult]:
    """The estimated primary metric's drop of one window (CBPE; before labels)."""
    est, ref = window_estimate(window, reference), reference_performance(reference)
    if est is None or ref is None:
        return []
    drop = estimated_drop(est, ref.metrics, policy)
    if drop is None:
        return []
    return [_result(drop, policy.drop_warning, window, ref.perf.n, ESTIMATED_PERFORMANCE_DROP)]


def estimated_series(
    window: WindowState, reference: ModelProfile, *, errors_only: bool = False
) -> SeriesBuilder:
    """Gauges of one window's estimate: ``performance{kind="estimated"}`` (unless
    ``errors_only``) and, once it has labels, ``performance_estimation_error``
    (estimated − realized)."""
    g = SeriesBuilder()
    est = window_estimate(window, reference)
    if est is None:
        return g
    model, version = window.model, window.model_version
    realized = window.performance.metrics() if window.performance is not None else {}
    for metric in _ESTIMATED:
        value = getattr(est, metric)
        if value is None or not math.isfinite(value):
            continue
        if not errors_only:
            g.set("performance", (model, version, metric, "estimated"), value)
        actual = realized.get(metric)
        if actual is not None and math.isfinite(actual):
            g.set("performance_estimation_error", (model, version, metric), value - actual)
    return g


def _result(
    finding: PerformanceFinding,
    threshold: float,
    window: WindowState,
    n_reference: int,
    check: str | None = None,
) -> CheckResult:
    check = check or _CHECK.get(finding.check, LABEL_DRIFT)
    statistic = {
        PERFORMANCE_DROP: f"{finding.metric}_drop",
        ESTIMATED_PERFORMANCE_DROP: f"estimated_{finding.metric}_drop",
        CALIBRATION_DRIFT: "brier_increase",
        LABEL_DRIFT: "class_prior_psi",
    }[check]
    evidence: dict[str, object] = {
        "metric": finding.metric,
        "kind": finding.kind,
        "value": finding.value,
        "reference": finding.reference,
        "change": finding.change,
        "labeled": finding.n,
    }
    if finding.interval is not None:
        evidence["interval"] = [finding.interval.low, finding.interval.high]
    return CheckResult(
        check=check,
        model=window.model,
        model_version=window.model_version,
        feature=None,
        breached=finding.breached,
        severity=finding.severity,
        statistic=statistic,
        value=finding.change,
        threshold=threshold,
        n_reference=n_reference,
        n_current=finding.n,
        window_start_ms=window.start_ms,
        window_end_ms=window.end_ms,
        summary=finding.summary,
        evidence=evidence,
    )


def performance_series(window: WindowState, reference: ModelProfile) -> SeriesBuilder:
    """Gauges of one window: realized metrics, the reference's, label coverage, and how
    far its estimate (CBPE) was from the realized values."""
    g = estimated_series(window, reference, errors_only=True)
    perf = window.performance
    if perf is None:
        return g
    model, version = window.model, window.model_version
    for metric, value in perf.metrics().items():
        if metric not in _SKIPPED and value is not None and math.isfinite(value):
            g.set("performance", (model, version, metric, "realized"), value)
    ref = reference_performance(reference)
    if ref is not None:
        for metric, value in ref.metrics.items():
            if metric not in _SKIPPED and value is not None and math.isfinite(value):
                g.set("performance", (model, version, metric, "reference"), value)
    predicted = window.profile.row_count
    if predicted:
        g.set("label_coverage_ratio", (model, version), perf.n / predicted)
    return g
