"""Timeliness checks: ``freshness`` (lags in a window) and ``staleness`` (no new events).

``freshness`` reads the ops profile (:mod:`streamproc.core.ops`): one result per lag,
with ``feature`` naming the lag (``data_lag``, ``pipeline_lag``, ``processing_lag``) so
each fires and resolves on its own. The statistic is the lag's p95 in seconds from its
KLL sketch; above the policy threshold → warning, above ``lag_critical_factor`` × the
threshold → critical. A lag with fewer than ``freshness_min_samples`` values is not
evaluated. Pipeline and processing lags involve the Kafka append time and the wall
clock, so they are skipped when ``policy.skip_wall_clock_lags`` is set (replay: re-produced
historical records are appended now, so their pipeline lag is their age).

``staleness`` is not a window check: it compares the newest event time seen with "now",
which the caller passes (never read from a clock here).
"""

from __future__ import annotations

import math

from streamproc.checks.context import Candidate, Window
from streamproc.checks.policy import EvaluationPolicy
from streamproc.checks.result import CheckResult
from streamproc.core.model_profile import ModelProfile
from streamproc.core.ops import DATA_LAG, PIPELINE_LAG, PROCESSING_LAG

_QUANTILES = (0.5, 0.95, 0.99)


def freshness_results(
    window: Window, ops: ModelProfile, policy: EvaluationPolicy
) -> list[CheckResult]:
    """One ``freshness`` result per lag with enough samples."""
    lags = [("data_lag", DATA_LAG, policy.data_lag_p95_s)]
    if not policy.skip_wall_clock_lags:
        lags.append(("pipeline_lag", PIPELINE_LAG, policy.pipeline_lag_p95_s))
        lags.append(("processing_lag", PROCESSING_LAG, policy.processing_lag_p95_s))
    out: list[CheckResult] = []
    for name, key, threshold in lags:
        prof = ops.features.get(key)
        if prof is None or prof.valid_count < policy.freshness_min_samples:
            continue
        p50, p95, p99 = (float(q) for q in prof.quantiles(_QUANTILES))
        if not math.isfinite(p95):
            continue
        chosen = Candidate.of("p95_seconds", p95, threshold, threshold * policy.lag_critical_factor)
        evidence = [{"p50_s": p50, "p95_s": p95, "p99_s": p99, "max_s": prof.max}]
        out.append(
            window.result(
                "freshness",
                name,
                chosen,
                n_reference=0,
                n_current=prof.valid_count,
                evidence=evidence,
                subject=f"{window.model} {name.replace('_', ' ')}",
            )
        )
    return out


def age_text(seconds: float) -> str:
    """A duration in words for summaries: "42 s", "17 min", "3.5 h"."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def evaluate_staleness(
    model: str,
    model_version: str,
    *,
    newest_event_ms: int | None,
    now_ms: int,
    threshold_s: float,
    replaying: bool,
) -> CheckResult | None:
    """``staleness``: now − newest event time > ``threshold_s`` → critical.

    None while replaying (event time is then the clock, so nothing is ever stale) or
    before any event was seen. The result's window is [newest event, now], so successive
    evaluations count as new ones in the alert lifecycle.
    """
    if replaying or newest_event_ms is None:
        return None
    age_s = max(0.0, (now_ms - newest_event_ms) / 1000.0)
    breached = age_s > threshold_s
    if breached:
        summary = (
            f"{model} has no new events: the newest event is {age_text(age_s)} old "
            f"> {threshold_s:g} s"
        )
    else:
        summary = (
            f"{model} events are fresh again: newest event {age_text(age_s)} old "
            f"≤ {threshold_s:g} s"
        )
    return CheckResult(
        check="staleness",
        model=model,
        model_version=model_version,
        feature=None,
        breached=breached,
        severity="critical" if breached else None,
        statistic="seconds_since_last_event",
        value=age_s,
        threshold=float(threshold_s),
        n_reference=0,
        n_current=0,
        window_start_ms=min(newest_event_ms, now_ms),
        window_end_ms=now_ms,
        summary=summary,
        evidence=[{"newest_event_ms": newest_event_ms, "now_ms": now_ms}],
    )
