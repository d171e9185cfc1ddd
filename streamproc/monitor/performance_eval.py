"""Performance checks and gauges of windows whose labels changed (pure; no Kafka).

For a window with a realized performance accumulator (labels stage → aggregate) and a
reference profile whose metadata holds the reference performance
(:mod:`streamproc.core.reference_performance`): the primary metric's drop
(``performance_drop``), the Brier score's increase (``calibration_drift``, binary with
scores) and the class prior's shift (``label_drift``), each only once the window holds
``PerformancePolicy.min_labeled`` labeled rows (:mod:`streamproc.checks.performance_checks`).
A reference without performance skips the checks; the gauges are exported either way.
With a sustained floor (``floor_for_s``) the evaluator hands in the run of windows below
it (:mod:`streamproc.checks.performance_trend`); ``performance_gap`` judges the labeled
windows of the rolling horizon merged. Label-lag quantiles (label time − prediction time)
of the window are in the evidence of every result and in ``label_lag_seconds``.
"""

from __future__ import annotations

import math

from streamproc.checks.label_checks import label_coverage
from streamproc.checks.performance_checks import (
    PerformanceFinding,
    PerformancePolicy,
    calibration_drift,
    estimated_drop,
    label_drift,
    realized_drop,
)
from streamproc.checks.performance_trend import (
    FloorRun,
    MetricWindow,
    gap_value,
    performance_gap,
    sustain_floor,
)
from streamproc.checks.result import (
    CALIBRATION_DRIFT,
    ESTIMATED_PERFORMANCE_DROP,
    LABEL_DRIFT,
    PERFORMANCE_DROP,
    PERFORMANCE_GAP,
    CheckResult,
)
from streamproc.core.cbpe import Estimate, estimate
from streamproc.core.errors import ProfileFormatError
from streamproc.core.model_profile import ModelProfile
from streamproc.core.performance import ClassificationPerformance
from streamproc.core.reference_performance import ReferencePerformance
from streamproc.monitor.model_gauges import SeriesBuilder
from streamproc.monitor.performance_delta import Performance
from streamproc.monitor.state import AggregateState, ModelKey, WindowState

_CHECK = {"performance": PERFORMANCE_DROP, "calibration": CALIBRATION_DRIFT, "gap": PERFORMANCE_GAP}
_ESTIMATED = ("accuracy", "precision", "recall", "f1", "roc_auc")
_SKIPPED = frozenset({"n", "n_scored", "roc_auc_error_bound"})
LAG_QUANTILES = (0.5, 0.95, 0.99)
_SCORED = frozenset({"roc_auc", "log_loss", "brier"})


def reference_performance(reference: ModelProfile) -> ReferencePerformance | None:
    try:
        return ReferencePerformance.from_metadata(reference.metadata)
    except ProfileFormatError:
        return None


def label_lag(perf: Performance | None) -> dict[str, float]:
    """Label-lag quantiles (seconds, ``"0.5"`` → value) of an accumulator's KLL sketch;
    empty without lags."""
    if perf is None or perf.lag.is_empty():
        return {}
    values = perf.lag.get_quantiles(list(LAG_QUANTILES))
    return {f"{q:g}": float(v) for q, v in zip(LAG_QUANTILES, values, strict=True)}


def metric_window(window: WindowState, metric: str) -> MetricWindow:
    """One window's ``metric`` and the labeled rows behind it (for a floor run)."""
    perf = window.performance
    if perf is None:
        return MetricWindow(window.start_ms, window.end_ms, None, 0)
    n = (
        perf.n_scored
        if metric in _SCORED and isinstance(perf, ClassificationPerformance)
        else perf.n
    )
    return MetricWindow(window.start_ms, window.end_ms, perf.metrics().get(metric), n)


def performance_results(
    window: WindowState,
    reference: ModelProfile,
    policy: PerformancePolicy,
    run: FloorRun | None = None,
) -> list[CheckResult]:
    """The performance checks of one window (none without labels or a reference);
    ``run``: the model's windows below a sustained floor (judged when it covers this one)."""
    perf, ref = window.performance, reference_performance(reference)
    if perf is None or ref is None or type(perf) is not type(ref.perf):
        return []
    ref_metrics = ref.metrics
    findings: list[tuple[PerformanceFinding, float]] = []
    drop = realized_drop(perf, ref_metrics, policy)
    if run is not None and (drop is None or not run.covers(window.start_ms, window.end_ms)):
        run = None
    if drop is not None:
        findings.append((sustain_floor(drop, run), policy.drop_warning))
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
    lag = label_lag(perf)
    span = (window.model, window.model_version, window.start_ms, window.end_ms)
    out = [_result(f, threshold, span, ref.perf.n, lag=lag) for f, threshold in findings]
    if run is not None and out and isinstance(out[0].evidence, dict):
        out[0].evidence["floor_run"] = run.to_dict()
    return out


def gap_results(
    windows: list[WindowState], reference: ModelProfile, policy: PerformancePolicy
) -> tuple[list[CheckResult], SeriesBuilder]:
    """``performance_gap`` of ``windows`` (one model version's labeled windows of the
    horizon, oldest first) merged, and the ``performance_gap`` gauges of every metric
    both have: reference − realized where higher is better, realized − reference where
    lower is better (positive: production is worse)."""
    g = SeriesBuilder()
    ref = reference_performance(reference)
    perfs = [w.performance for w in windows if w.performance is not None]
    if ref is None or not perfs or any(type(p) is not type(ref.perf) for p in perfs):
        return [], g
    merged = perfs[0]
    for p in perfs[1:]:
        merged = merged.merge(p)  # type: ignore[arg-type]
    first, last = windows[0], windows[-1]
    for metric, value in merged.metrics().items():
        refv = ref.metrics.get(metric)
        if metric in _SKIPPED or value is None or refv is None:
            continue
        if math.isfinite(value) and math.isfinite(refv):
            g.set("performance_gap", (last.model, last.model_version, metric),
                  gap_value(metric, value, refv))  # fmt: skip
    found = performance_gap(merged, ref.metrics, policy)
    if found is None:
        return [], g
    span = (last.model, last.model_version, first.start_ms, last.end_ms)
    result = _result(found, policy.drop_warning, span, ref.perf.n, lag=label_lag(merged))
    assert isinstance(result.evidence, dict)
    result.evidence["windows"] = len(perfs)
    result.evidence["gap"] = gap_value(found.metric, found.value, found.reference)
    return [result], g


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
    span = (window.model, window.model_version, window.start_ms, window.end_ms)
    return [_result(drop, policy.drop_warning, span, ref.perf.n, ESTIMATED_PERFORMANCE_DROP)]


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
    span: tuple[str, str, int, int],
    n_reference: int,
    check: str | None = None,
    lag: dict[str, float] | None = None,
) -> CheckResult:
    """``span``: (model, version, start_ms, end_ms) of the judged rows."""
    check = check or _CHECK.get(finding.check, LABEL_DRIFT)
    model, version, start_ms, end_ms = span
    statistic = {
        PERFORMANCE_DROP: f"{finding.metric}_drop",
        PERFORMANCE_GAP: f"{finding.metric}_gap",
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
    if lag:
        evidence["label_lag_s"] = lag
    return CheckResult(
        check=check,
        model=model,
        model_version=version,
        feature=None,
        breached=finding.breached,
        severity=finding.severity,
        statistic=statistic,
        value=finding.change,
        threshold=threshold,
        n_reference=n_reference,
        n_current=finding.n,
        window_start_ms=start_ms,
        window_end_ms=end_ms,
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
    for q, value in label_lag(perf).items():
        if math.isfinite(value):
            g.set("label_lag_seconds", (model, version, q), value)
    return g


def coverage_result(
    state: AggregateState, mkey: ModelKey, policy: PerformancePolicy
) -> CheckResult | None:
    """``label_coverage`` of the newest closed window whose labels are due: its end at
    least ``label_delay_s`` of event time before the model's newest event."""
    if not policy.label_coverage_min or mkey not in state.clocks:
        return None
    due_ms = state.clocks[mkey].newest_event_ms - round(policy.label_delay_s * 1000)
    due = [w for w in state.model_windows(mkey) if w.final and w.end_ms <= due_ms]
    due = [w for w in due if w.profile.row_count]
    if not due:
        return None
    w = due[-1]
    return label_coverage(
        mkey[0],
        mkey[1],
        window_start_ms=w.start_ms,
        window_end_ms=w.end_ms,
        labeled=w.performance.n if w.performance is not None else 0,
        predicted=w.profile.row_count,
        policy=policy,
    )
