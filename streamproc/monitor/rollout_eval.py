"""A declared rollout (``[models.<model>.rollout]``) judged from the aggregate state.

Both arms are the model versions' windows held in retention, summed up to ``as_of_ms``
(event time), so the verdict covers the whole rollout so far, not one window:

* **A/B** — primary rate: accuracy (correct / labeled) from each arm's realized
  performance (:func:`~streamproc.checks.version_checks.judge_ab`, a two-proportion
  test, the rows still needed for ``mde``); before labels the verdict is ``extend``.
  Guardrails: error rate, fallback rate and mean latency of the challenger against the
  champion, from the arms' ops and latency profiles. The arms' prediction distributions
  are compared too (PSI, KS of the challenger's outputs against the champion's) and
  reported in the evidence.
* **Shadow** — the champion's windows hold the pairs the label join formed (both
  versions scored the same request id): agreement, score correlation, the distribution
  of score differences, and over labeled pairs McNemar (accuracy) or DeLong (ROC AUC)
  (:func:`~streamproc.checks.version_checks.judge_shadow`).

The decision table (:func:`~streamproc.core.version_compare.decide`): significant
positive with guardrails held → ship; positive but a guardrail degraded → investigate;
not significant → extend; significant negative → kill. Each evaluation yields one
comparison message (``schemas/rollout.schema.json``, the rollouts topic), gauges, and a
``rollout`` check result whose alert fires on kill (critical), investigate or ship
(warning: a verdict was reached).
"""

from __future__ import annotations

import math
from typing import Any, Final

from streamproc.checks.alerts import rfc3339
from streamproc.checks.model_settings import RolloutSpec
from streamproc.checks.result import ROLLOUT, CheckResult, Severity
from streamproc.checks.service_checks import _share_true
from streamproc.checks.version_checks import (
    ArmStats,
    RolloutFinding,
    guardrails,
    judge_ab,
    judge_shadow,
)
from streamproc.core.drift import compare_features
from streamproc.core.model_profile import ModelProfile
from streamproc.core.ops import ERROR, FALLBACK
from streamproc.core.performance import ClassificationPerformance
from streamproc.core.shadow import ShadowPairs
from streamproc.core.thresholds import DEFAULT_THRESHOLDS
from streamproc.monitor.model_gauges import SeriesBuilder
from streamproc.monitor.state import AggregateState, ModelKey, WindowState

SEVERITY: Final[dict[str, Severity | None]] = {
    "kill": "critical",
    "investigate": "warning",
    "ship": "warning",
    "extend": None,
}
"""A verdict's alert severity: ship is a verdict reached (the rollout can proceed)."""
SCHEMA_VERSION: Final = 1


def arm_windows(
    state: AggregateState, model: str, version: str, as_of_ms: int
) -> list[WindowState]:
    return [
        w
        for w in state.model_windows(ModelKey(model, version))
        if w.end_ms <= as_of_ms and w.profile.row_count > 0
    ]


def arm_stats(windows: list[WindowState]) -> ArmStats:
    """Service counters of one arm's windows (ops and latency profiles summed)."""
    n = errors = fallbacks = 0
    lat_n, lat_sum, lat_m2 = 0, 0.0, 0.0
    for w in windows:
        n += w.ops.row_count
        for name in (ERROR, FALLBACK):
            share, valid = _share_true(w.ops.features.get(name))
            k = 0 if valid == 0 or math.isnan(share) else round(share * valid)
            if name == ERROR:
                errors += k
            else:
                fallbacks += k
        lat = w.profile.latency_ms
        if lat is not None and lat.valid_count and lat.mean is not None:
            m, c = lat.mean, lat.valid_count
            var = lat.variance or 0.0
            if lat_n:  # Chan et al.'s parallel update of (n, mean, M2)
                delta = m - lat_sum / lat_n
                total = lat_n + c
                lat_m2 += var * c + delta**2 * lat_n * c / total
                lat_sum += m * c
                lat_n = total
            else:
                lat_n, lat_sum, lat_m2 = c, m * c, var * c
    mean = lat_sum / lat_n if lat_n else 0.0
    sample_var = lat_m2 / (lat_n - 1) if lat_n > 1 else 0.0
    return ArmStats(n, errors, fallbacks, lat_n, mean, sample_var)


def arm_accuracy(windows: list[WindowState]) -> tuple[int, int]:
    """(correct, labeled) over an arm's windows (classification)."""
    correct = labeled = 0
    for w in windows:
        perf = w.performance
        if isinstance(perf, ClassificationPerformance) and perf.n:
            acc = perf.metrics().get("accuracy")
            if acc is not None:
                correct += round(acc * perf.n)
                labeled += perf.n
    return correct, labeled


def _outputs(windows: list[WindowState]) -> ModelProfile | None:
    merged: ModelProfile | None = None
    for w in windows:
        merged = w.profile if merged is None else merged.merge(w.profile)
    return merged


def prediction_comparison(a: list[WindowState], b: list[WindowState]) -> dict[str, Any]:
    """Drift statistics of the challenger's outputs against the champion's."""
    pa, pb = _outputs(a), _outputs(b)
    out: dict[str, Any] = {}
    if pa is None or pb is None:
        return out
    for name in ("prediction", "predicted_label"):
        ra, rb = getattr(pa, name), getattr(pb, name)
        if ra is None or rb is None or ra.kind is not rb.kind or not ra.valid_count:
            continue
        if not rb.valid_count:
            continue
        fd = compare_features(ra, rb, DEFAULT_THRESHOLDS, name=name)
        out[name] = {k: v for k, v in fd.statistics.items() if isinstance(v, int | float)}
    return out


def judge_rollout(
    state: AggregateState, model: str, spec: RolloutSpec, as_of_ms: int
) -> tuple[RolloutFinding | None, dict[str, Any]]:
    """The rollout's finding as of ``as_of_ms`` and the comparison's extra evidence."""
    a = arm_windows(state, model, spec.champion, as_of_ms)
    b = arm_windows(state, model, spec.challenger, as_of_ms)
    if not a or not b:
        return None, {}
    sa, sb = arm_stats(a), arm_stats(b)
    guards = guardrails(sa, sb, spec.policy)
    extra: dict[str, Any] = {
        "arms": {
            "champion": {"version": spec.champion, "records": sa.n, "windows": len(a)},
            "challenger": {"version": spec.challenger, "records": sb.n, "windows": len(b)},
        },
        "predictions": prediction_comparison(a, b),
    }
    if spec.mode == "shadow":
        pairs: ShadowPairs | None = None
        for w in a:
            sh = w.labeled.shadow if w.labeled is not None else None
            if sh is not None:
                pairs = sh if pairs is None else pairs.merge(sh)
        if pairs is None:
            return None, extra
        return judge_shadow(pairs, spec.policy, guards), extra
    x_a, n_a = arm_accuracy(a)
    x_b, n_b = arm_accuracy(b)
    return judge_ab(x_a, n_a, x_b, n_b, spec.policy, guards), extra


def rollout_result(
    model: str, spec: RolloutSpec, finding: RolloutFinding, start_ms: int, end_ms: int
) -> CheckResult:
    """The ``rollout`` check result of a finding (subject: the challenger version)."""
    primary = finding.evidence.get("primary", {})
    diff = primary.get("difference")
    value = float(diff) if isinstance(diff, int | float) and math.isfinite(diff) else math.nan
    severity = SEVERITY[finding.verdict]
    return CheckResult(
        ROLLOUT,
        model,
        spec.challenger,
        None,
        severity is not None,
        severity,
        str(primary.get("metric", spec.policy.primary_metric)) + "_difference",
        value,
        0.0,
        int(primary.get("n") or 0),
        int(primary.get("n") or 0),
        start_ms,
        max(start_ms, end_ms),
        summary=f"rollout {spec.champion} → {spec.challenger}: {finding.summary}",
        evidence={**finding.evidence, "verdict": finding.verdict, "champion": spec.champion},
    )


def rollout_message(
    model: str,
    spec: RolloutSpec,
    finding: RolloutFinding,
    extra: dict[str, Any],
    start_ms: int,
    end_ms: int,
) -> dict[str, Any]:
    """One comparison message for the rollouts topic (``schemas/rollout.schema.json``)."""
    d = finding.decision
    return {
        "schema_version": SCHEMA_VERSION,
        "model": model,
        "champion": spec.champion,
        "challenger": spec.challenger,
        "mode": spec.mode,
        "verdict": finding.verdict,
        "reason": d.reason,
        "degraded_guardrails": list(d.degraded),
        "window": {"start": rfc3339(start_ms), "end": rfc3339(max(start_ms, end_ms))},
        "primary": finding.evidence.get("primary"),
        "guardrails": finding.evidence.get("guardrails", []),
        "shadow": {
            k: finding.evidence[k]
            for k in ("pairs", "labeled_pairs", "agreement", "correlation", "score_difference")
            if k in finding.evidence
        }
        or None,
        **extra,
    }


def rollout_series(model: str, spec: RolloutSpec, finding: RolloutFinding) -> SeriesBuilder:
    """The ``rollout_verdict`` and ``rollout_difference`` gauges of a finding."""
    arm = (model, spec.champion, spec.challenger, spec.mode)
    gauges = SeriesBuilder()
    gauges.set("rollout_verdict", (*arm, finding.verdict), 1)
    primary = finding.evidence.get("primary", {})
    for stat in ("difference", "pvalue"):
        v = primary.get(stat)
        if isinstance(v, int | float) and math.isfinite(v):
            gauges.set("rollout_difference", (*arm, stat), float(v))
    return gauges
