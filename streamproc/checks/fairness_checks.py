"""Fairness checks: a disparity between protected groups, graded only when it is both
large and statistically clear.

Pure functions from a :class:`~streamproc.core.fairness.FairnessReport` and a
:class:`FairnessPolicy` to :class:`FairnessFinding` s, one per metric that has a value
(the worker maps them onto the alert lifecycle, check name ``fairness``, the metric as
the subject):

* **disparate impact ratio** (min ÷ max selection rate): warning below 0.8 (the
  four-fifths rule), critical below 0.6; graded only when the Katz interval's upper
  bound is below 1 (the gap is not sampling noise).
* **demographic parity difference**, **equalized odds difference** (max − min of the
  selection rates; the larger of the TPR and FPR gaps): warning above 0.1, critical
  above 0.2; graded only when the Newcombe interval's lower bound is above 0.
* **calibration gap** (the largest |mean score − observed positive rate| of a group):
  warning above 0.05, critical above 0.1; graded only when the group's mean score lies
  outside the Wilson interval of its observed rate.

The thresholds are conventions, not law: the four-fifths rule is the EEOC's rule of
thumb for adverse impact (29 CFR 1607.4(D)); the others follow common practice for
fairlearn's metrics. Evidence carries every group's values except the names and values
of groups below the minimum group size, unless ``allow_raw_small_groups``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from streamproc.checks.context import grade
from streamproc.checks.result import Severity
from streamproc.core.fairness import DEFAULT_MIN_GROUP_SIZE, Disparity, FairnessReport
from streamproc.core.intervals import Interval

CHECK: Final = "fairness"


@dataclass(frozen=True)
class FairnessPolicy:
    """Thresholds of the fairness checks."""

    min_group_size: int = DEFAULT_MIN_GROUP_SIZE
    disparate_impact_warning: float = 0.8
    """Warning below this ratio (four-fifths rule)."""
    disparate_impact_critical: float = 0.6
    parity_warning: float = 0.1
    parity_critical: float = 0.2
    equalized_odds_warning: float = 0.1
    equalized_odds_critical: float = 0.2
    calibration_warning: float = 0.05
    calibration_critical: float = 0.1
    allow_raw_small_groups: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.disparate_impact_critical <= self.disparate_impact_warning <= 1:
            raise ValueError("need 0 < disparate_impact_critical <= warning <= 1")
        for name in ("parity", "equalized_odds", "calibration"):
            w, c = getattr(self, f"{name}_warning"), getattr(self, f"{name}_critical")
            if not 0 <= w <= c:
                raise ValueError(f"{name}: need 0 <= warning <= critical, got {w}, {c}")
        if self.min_group_size < 1:
            raise ValueError("min_group_size must be >= 1")


@dataclass(frozen=True)
class FairnessFinding:
    check: str
    attribute: str
    metric: str
    value: float
    threshold: float
    """The threshold crossed (critical or warning); the warning one when clean."""
    severity: Severity | None
    interval: Interval | None
    groups: tuple[str | None, str | None]
    """(lower, higher) group of the gap; calibration: (the group, None)."""
    summary: str
    evidence: dict[str, Any]

    @property
    def breached(self) -> bool:
        return self.severity is not None


def judge_fairness(report: FairnessReport, policy: FairnessPolicy) -> list[FairnessFinding]:
    """Every fairness finding of one attribute's report (module docstring)."""
    evidence = report.to_dict(raw_small_groups=policy.allow_raw_small_groups)
    out = []
    di = report.disparate_impact
    if di.value is not None and di.interval is not None:
        sev = grade(-di.value, -policy.disparate_impact_warning, -policy.disparate_impact_critical)
        if not di.interval.high < 1.0:
            sev = None
        out.append(
            _finding(
                report,
                di,
                sev,
                policy.disparate_impact_warning,
                policy.disparate_impact_critical,
                "below",
                evidence,
            )
        )
    for gap, w, c in (
        (report.demographic_parity_difference, policy.parity_warning, policy.parity_critical),
        (
            report.equalized_odds_difference,
            policy.equalized_odds_warning,
            policy.equalized_odds_critical,
        ),
    ):
        if gap.value is None or gap.interval is None:
            continue
        sev = grade(gap.value, w, c)
        if not gap.interval.low > 0.0:
            sev = None
        out.append(_finding(report, gap, sev, w, c, "above", evidence))
    cal = _calibration(report, policy, evidence)
    if cal is not None:
        out.append(cal)
    return out


def _finding(
    report: FairnessReport,
    gap: Disparity,
    sev: Severity | None,
    warning: float,
    critical: float,
    side: str,
    evidence: dict[str, Any],
) -> FairnessFinding:
    assert gap.value is not None and gap.interval is not None
    iv = gap.interval
    threshold = critical if sev == "critical" else warning
    summary = (
        f"{gap.metric} of {report.attribute} {gap.value:.3g} "
        f"(95% interval [{iv.low:.3g}, {iv.high:.3g}]; {gap.low_group!r} vs "
        f"{gap.high_group!r}), {'breaches' if sev else 'within'} the {side}-{threshold:g} "
        "threshold"
    )
    return FairnessFinding(
        CHECK,
        report.attribute,
        gap.metric,
        gap.value,
        threshold,
        sev,
        iv,
        (gap.low_group, gap.high_group),
        summary,
        evidence,
    )


def _calibration(
    report: FairnessReport, policy: FairnessPolicy, evidence: dict[str, Any]
) -> FairnessFinding | None:
    gaps = {g: c for g, c in report.calibration.items() if c.gap is not None}
    if not gaps:
        return None
    group = max(gaps, key=lambda g: (abs(gaps[g].gap or 0.0), g))
    cal = gaps[group]
    gap, iv, mean = cal.gap or 0.0, cal.observed.interval, cal.mean_score
    sev = grade(abs(gap), policy.calibration_warning, policy.calibration_critical)
    if iv is None or mean is None or iv.low <= mean <= iv.high:
        sev = None
    threshold = policy.calibration_critical if sev == "critical" else policy.calibration_warning
    summary = (
        f"calibration gap of {report.attribute}={group!r}: mean score {mean:.3g} vs observed "
        f"positive rate {cal.observed.value:.3g} (n={cal.observed.n})"
    )
    return FairnessFinding(
        CHECK,
        report.attribute,
        "calibration_gap",
        abs(gap),
        threshold,
        sev,
        iv,
        (group, None),
        summary,
        evidence,
    )
