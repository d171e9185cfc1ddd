"""Labels stopped arriving: ``label_staleness`` (wall clock) and ``label_coverage``
(event time). Pure: the caller passes "now" and the window's counts.

* ``label_staleness``: like prediction ``staleness``, by the timer — for a model version
  that has received labels before, now − the wall-clock time its last performance delta
  arrived > ``PerformancePolicy.label_staleness_s`` → critical. Not judged while
  replaying (arrival times then say nothing about the labeling pipeline), while the
  version's predictions are stale too, nor when off (0).
* ``label_coverage``: for a closed window whose end is at least ``label_delay_s`` of
  event time older than the model's newest event (its labels are due), labeled /
  predicted rows below ``label_coverage_min`` → warning, below half of it → critical —
  only when the coverage's 95% Wilson (1927) interval lies wholly below that bound, so
  a window of a few predictions does not alarm. Off when ``label_coverage_min`` is 0.
"""

from __future__ import annotations

from streamproc.checks.freshness_checks import age_text as _age_text
from streamproc.checks.performance_checks import PerformancePolicy
from streamproc.checks.result import LABEL_COVERAGE, LABEL_STALENESS, CheckResult, Severity
from streamproc.core.intervals import wilson_interval


def label_staleness(
    model: str,
    model_version: str,
    *,
    last_label_arrival_ms: int,
    now_ms: int,
    policy: PerformancePolicy,
    replaying: bool,
    serving: bool = True,
) -> CheckResult | None:
    """``label_staleness`` (module docstring); None when not judged — also while the
    version's predictions are stale themselves (``serving`` False: ``staleness`` says so,
    and a retired version expects no labels). The result's span is [last label arrival,
    now], so successive timer ticks are new evaluations."""
    threshold = policy.label_staleness_s
    if replaying or not serving or not threshold or last_label_arrival_ms <= 0:
        return None
    age_s = max(0.0, (now_ms - last_label_arrival_ms) / 1000.0)
    breached = age_s > threshold
    summary = (
        f"{model} {model_version}: no labels for {_age_text(age_s)} > {threshold:g} s"
        if breached
        else f"{model} {model_version}: labels arriving again (last {_age_text(age_s)} ago)"
    )
    return CheckResult(
        check=LABEL_STALENESS,
        model=model,
        model_version=model_version,
        feature=None,
        breached=breached,
        severity="critical" if breached else None,
        statistic="seconds_since_last_label",
        value=age_s,
        threshold=float(threshold),
        n_reference=0,
        n_current=0,
        window_start_ms=min(last_label_arrival_ms, now_ms),
        window_end_ms=now_ms,
        summary=summary,
        evidence={"last_label_arrival_ms": last_label_arrival_ms, "now_ms": now_ms},
    )


def label_coverage(
    model: str,
    model_version: str,
    *,
    window_start_ms: int,
    window_end_ms: int,
    labeled: int,
    predicted: int,
    policy: PerformancePolicy,
) -> CheckResult | None:
    """``label_coverage`` of one window whose labels are due (module docstring); None
    when off or the window has no predictions."""
    minimum = policy.label_coverage_min
    if not minimum or predicted <= 0:
        return None
    labeled = min(labeled, predicted)
    interval = wilson_interval(labeled, predicted, policy.z)
    assert interval is not None
    coverage = labeled / predicted
    severity: Severity | None = None
    if interval.high < minimum / 2:
        severity = "critical"
    elif interval.high < minimum:
        severity = "warning"
    delay_h = policy.label_delay_s / 3600
    summary = (
        f"{model} {model_version}: {coverage:.1%} of predictions labeled {delay_h:g} h after "
        f"the window (minimum {minimum:.1%}; 95% interval [{interval.low:.1%}, "
        f"{interval.high:.1%}], {labeled} of {predicted})"
    )
    return CheckResult(
        check=LABEL_COVERAGE,
        model=model,
        model_version=model_version,
        feature=None,
        breached=severity is not None,
        severity=severity,
        statistic="label_coverage_ratio",
        value=coverage,
        threshold=minimum,
        n_reference=0,
        n_current=predicted,
        window_start_ms=window_start_ms,
        window_end_ms=window_end_ms,
        summary=summary,
        evidence={
            "labeled": labeled,
            "predicted": predicted,
            "coverage": coverage,
            "interval": [interval.low, interval.high],
            "label_delay_s": policy.label_delay_s,
        },
    )
