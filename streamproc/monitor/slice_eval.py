"""Evaluation of a closed window's slices and protected groups (pure glue).

* **Segments** — each slice profile is judged by the window checks against the
  reference restricted to the key features (:func:`slice_reference`): feature and
  prediction drift, completeness, cardinality, range and degenerate output. Per check and
  feature the slices' drift breaches are kept only at Benjamini–Hochberg discoveries
  across the slices (:func:`~streamproc.checks.segment_checks.segment_findings`,
  ``[models.<model>.slices] fdr``), and each result names its slice (``segment``) and
  says whether the aggregate breached too. Slices are judged on closed windows only:
  with up to 200 slices, provisional verdicts every 0.5 s would multiply the looks.
* **Volume per segment** — each slice's count against its own baseline, as the model's
  ``volume`` check (slices with a baseline of at least ``min_samples`` rows).
* **Performance per segment** — each slice's realized performance
  (:func:`~streamproc.monitor.performance_eval.performance_results`, the same
  sample-size rules: ``min_labeled`` and the drop's significance gate).
* **Fairness** — per protected attribute, the prediction-side and labeled counts of the
  window merged, :func:`~streamproc.core.fairness.fairness_report`,
  :func:`~streamproc.checks.fairness_checks.judge_fairness`; one result per metric
  (feature ``"<attribute>/<metric>"``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Final

from streamproc.checks.context import Window
from streamproc.checks.drift_checks import drift_pvalue
from streamproc.checks.fairness_checks import CHECK as FAIRNESS_CHECK
from streamproc.checks.fairness_checks import FairnessPolicy, judge_fairness
from streamproc.checks.performance_checks import PerformancePolicy
from streamproc.checks.policy import EvaluationPolicy
from streamproc.checks.result import CheckResult
from streamproc.checks.segment_checks import segment_findings
from streamproc.checks.service_checks import ServicePolicy, volume_baseline, volume_result
from streamproc.core.fairness import FairnessCounts, fairness_report
from streamproc.core.model_profile import ModelProfile
from streamproc.monitor.model_gauges import SeriesBuilder
from streamproc.monitor.performance_eval import performance_results
from streamproc.monitor.state import WindowState

SLICE_CHECKS: Final = frozenset(
    {
        "feature_drift",
        "prediction_drift",
        "completeness",
        "cardinality",
        "range",
        "degenerate_output",
    }
)
_DRIFT: Final = frozenset({"feature_drift", "prediction_drift"})
SLICE_PERFORMANCE_CHECKS: Final = frozenset({"performance_drop", "calibration_drift"})

_REFS: dict[tuple[int, tuple[str, ...]], tuple[ModelProfile, ModelProfile]] = {}


def slice_reference(reference: ModelProfile, features: Iterable[str]) -> ModelProfile:
    """``reference`` with only ``features`` (and its outputs), memoized per reference."""
    names = tuple(sorted(n for n in features if n in reference.features))
    key = (id(reference), names)
    hit = _REFS.get(key)
    if hit is not None and hit[0] is reference:
        return hit[1]
    sub = dataclasses.replace(
        reference,
        features={n: reference.features[n] for n in names},
        schema={n: s for n, s in reference.schema.items() if n in names},
        joint=None,
    )
    if len(_REFS) > 256:
        _REFS.clear()
    _REFS[key] = (reference, sub)
    return sub


def _aggregate_breaches(results: Iterable[CheckResult]) -> dict[tuple[str, str | None], str]:
    return {
        (r.check, r.feature): r.effective_severity
        for r in results
        if r.breached and r.segment is None
    }


def _with_findings(
    per_key: dict[str, CheckResult],
    aggregate: str | None,
    fdr: float,
    drift: bool,
) -> list[CheckResult]:
    """Per-slice results of one (check, feature), BH-controlled for drift."""
    severities = {k: (r.effective_severity if r.breached else None) for k, r in per_key.items()}
    pvalues = {k: drift_pvalue(r) for k, r in per_key.items()} if drift else None
    out = []
    for f in segment_findings(severities, aggregate, pvalues, fdr):  # type: ignore[arg-type]
        r = per_key[f.key]
        breached = f.severity is not None
        summary = r.summary
        if breached:
            summary = f"segment {f.key}: {r.summary or r.check}{f.note()}"
        out.append(
            dataclasses.replace(
                r,
                breached=breached,
                severity=f.severity if breached else None,
                summary=summary,
                segment=f.key,
            )
        )
    return out


def segment_results(
    window: WindowState,
    reference: ModelProfile,
    key_features: Iterable[str],
    policy: EvaluationPolicy,
    aggregate: Iterable[CheckResult],
    fdr: float,
) -> list[CheckResult]:
    """The slice checks of a closed window (module docstring)."""
    from streamproc.checks.evaluate import evaluate_window

    if window.slices is None or not window.slices.profiles:
        return []
    ref = slice_reference(reference, key_features)
    grouped: dict[tuple[str, str | None], dict[str, CheckResult]] = {}
    for key, prof in sorted(window.slices.profiles.items()):
        if prof.row_count == 0:
            continue
        for r in evaluate_window(
            ref, prof, None, policy, window_start_ms=window.start_ms, window_end_ms=window.end_ms
        ):
            if r.check in SLICE_CHECKS:
                grouped.setdefault((r.check, r.feature), {})[key] = r
    breaches = _aggregate_breaches(aggregate)
    out: list[CheckResult] = []
    for (check, feature), per_key in sorted(grouped.items(), key=lambda kv: str(kv[0])):
        out += _with_findings(per_key, breaches.get((check, feature)), fdr, check in _DRIFT)
    return out


def segment_volume_results(
    window: WindowState,
    earlier: Iterable[WindowState],
    policy: ServicePolicy,
    min_rows: int,
    aggregate: Iterable[CheckResult],
) -> list[CheckResult]:
    """Each slice's count against its baseline (the same rule as the model's ``volume``:
    the same window a day earlier, else the median of earlier closed windows), for
    slices whose baseline holds at least ``min_rows`` rows (smaller ones are noise)."""
    if window.slices is None:
        return []
    counts: dict[str, dict[int, int]] = {}
    for w in earlier:
        if w.slices is not None and w.final and w.start_ms < window.start_ms:
            for key, earlier_prof in w.slices.profiles.items():
                counts.setdefault(key, {})[w.start_ms] = earlier_prof.row_count
    span = Window(window.model, window.model_version, window.start_ms, window.end_ms)
    size = window.end_ms - window.start_ms
    per_key: dict[str, CheckResult] = {}
    for key in sorted({*counts, *window.slices.profiles}):
        prof = window.slices.profiles.get(key)
        rows = prof.row_count if prof is not None else 0
        baseline = volume_baseline(window.start_ms, counts.get(key, {}), size,
                                   policy.volume_min_baseline)  # fmt: skip
        if baseline is None or baseline[0] < min_rows:
            continue
        r = volume_result(span, rows, baseline, policy)
        if r is not None:
            per_key[key] = r
    aggregate_breached = _aggregate_breaches(aggregate).get(("volume", None))
    return _with_findings(per_key, aggregate_breached, 0.05, drift=False) if per_key else []


def segment_performance_results(
    window: WindowState,
    reference: ModelProfile,
    policy: PerformancePolicy,
    aggregate: Iterable[CheckResult],
    fdr: float,
) -> list[CheckResult]:
    """Realized performance checks per slice of a window's labeled rows."""
    if window.labeled is None or not window.labeled.performance:
        return []
    grouped: dict[tuple[str, str | None], dict[str, CheckResult]] = {}
    for key, perf in sorted(window.labeled.performance.items()):
        view = dataclasses.replace(window, performance=perf)
        for r in performance_results(view, reference, policy):
            if r.check in SLICE_PERFORMANCE_CHECKS:
                grouped.setdefault((r.check, r.feature), {})[key] = r
    breaches = _aggregate_breaches(aggregate)
    out: list[CheckResult] = []
    for (check, feature), per_key in sorted(grouped.items(), key=lambda kv: str(kv[0])):
        out += _with_findings(per_key, breaches.get((check, feature)), fdr, drift=False)
    return out


def window_fairness(window: WindowState) -> dict[str, FairnessCounts]:
    """Per protected attribute: the window's prediction and labeled counts merged."""
    out: dict[str, FairnessCounts] = {}
    for side in (window.slices, window.labeled):
        if side is None:
            continue
        for attr, fc in side.fairness.items():
            mine = out.get(attr)
            out[attr] = fc if mine is None else mine.merge(fc)
    return out


def fairness_results(window: WindowState, policy: FairnessPolicy) -> list[CheckResult]:
    """One result per fairness metric with a value, per protected attribute."""
    out = []
    for attr, counts in sorted(window_fairness(window).items()):
        report = fairness_report(counts, policy.min_group_size)
        n = sum(g.n for g in counts.groups.values())
        for f in judge_fairness(report, policy):
            out.append(
                CheckResult(
                    FAIRNESS_CHECK,
                    window.model,
                    window.model_version,
                    f"{attr}/{f.metric}",
                    f.breached,
                    f.severity,
                    f.metric,
                    f.value,
                    f.threshold,
                    0,
                    n,
                    window.start_ms,
                    window.end_ms,
                    summary=f.summary,
                    evidence=f.evidence,
                )
            )
    return out


def slice_series(window: WindowState, results: Iterable[CheckResult]) -> SeriesBuilder:
    """The ``segment_window_rows`` and ``fairness_metric`` gauges of a closed window."""
    gauges = SeriesBuilder()
    version = (window.model, window.model_version)
    if window.slices is not None:
        for key, prof in window.slices.profiles.items():
            gauges.set("segment_window_rows", (*version, key), prof.row_count)
    for r in results:
        if r.check == FAIRNESS_CHECK and r.feature is not None:
            attr, _, metric = r.feature.partition("/")
            gauges.set("fairness_metric", (*version, attr, metric), r.value)
    return gauges
