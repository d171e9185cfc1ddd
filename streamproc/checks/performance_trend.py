"""Performance over many windows: a floor held for a duration, and the train–production gap.

Pure functions; the caller hands in the windows (no state is read here).

* **Sustained floor** (``floor_run`` / ``sustain_floor``): "accuracy below 0.95 for 30
  hours". With ``PerformancePolicy.floor_for_s`` > 0 the floor is not judged per window
  (:func:`~streamproc.checks.performance_checks.judge_drop` leaves it out) but over the
  *run*: the contiguous windows that hold at least ``min_labeled`` labeled rows, end
  with the newest such window, and all have the primary metric on the bad side of the
  floor (by the point value: the duration is the evidence of persistence). A window at
  or above the floor, a missing window, or one with too few labels ends the run. Once
  the run spans ``floor_for_s`` seconds of event time (first start to last end), the
  finding of every window in it is critical.
* **Train–production gap** (``performance_gap``): the primary metric of all labeled
  windows of the rolling horizon merged (the accumulators merge exactly), against the
  reference with ``judge_drop``'s thresholds and interval gate — more rows than one
  window, so a smaller lasting gap is statistically clear. The absolute floor is left
  to the per-window ``performance_drop``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streamproc.checks.performance_checks import (
    HIGHER_IS_BETTER,
    PerformanceFinding,
    PerformancePolicy,
    realized_drop,
)
from streamproc.core.performance import ClassificationPerformance
from streamproc.core.regression_performance import RegressionPerformance


@dataclass(frozen=True)
class MetricWindow:
    """One window's primary metric: ``[start_ms, end_ms)`` of event time, the value
    (None: undefined) and the labeled rows behind it."""

    start_ms: int
    end_ms: int
    value: float | None
    n: int


@dataclass(frozen=True)
class FloorRun:
    """Contiguous windows below the floor, ending with the newest labeled window."""

    start_ms: int
    end_ms: int
    windows: int
    floor: float
    required_s: float

    @property
    def duration_s(self) -> float:
        return (self.end_ms - self.start_ms) / 1000.0

    @property
    def sustained(self) -> bool:
        return self.duration_s >= self.required_s

    def covers(self, start_ms: int, end_ms: int) -> bool:
        return self.start_ms <= start_ms and end_ms <= self.end_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "floor": self.floor,
            "for_s": self.required_s,
            "below_s": self.duration_s,
            "windows": self.windows,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "sustained": self.sustained,
        }


def floor_run(windows: Sequence[MetricWindow], policy: PerformancePolicy) -> FloorRun | None:
    """The run below the floor that ends with the newest window holding
    ``min_labeled`` rows (module docstring); None without a sustained floor configured,
    without such a window, or when the newest one is not below the floor."""
    floor = policy.floor
    if floor is None or not policy.floor_for_s:
        return None
    sign = 1.0 if policy.primary_metric in HIGHER_IS_BETTER else -1.0
    eligible = sorted(
        (w for w in windows if w.n >= policy.min_labeled),
        key=lambda w: w.start_ms,
    )
    run: list[MetricWindow] = []
    for w in reversed(eligible):
        below = w.value is not None and math.isfinite(w.value) and sign * (floor - w.value) > 0
        if not below or (run and w.end_ms != run[-1].start_ms):
            break
        run.append(w)
    if not run:
        return None
    return FloorRun(run[-1].start_ms, run[0].end_ms, len(run), floor, policy.floor_for_s)


def sustain_floor(finding: PerformanceFinding, run: FloorRun | None) -> PerformanceFinding:
    """``finding`` of a window in ``run``: critical once the run is sustained, and its
    summary saying for how long the metric has been below the floor."""
    if run is None:
        return finding
    hours = run.duration_s / 3600
    text = (
        f"; below the floor {run.floor:.4g} for {hours:.1f} h ({run.windows} windows"
        f"{'' if run.sustained else f', alerting after {run.required_s / 3600:.1f} h'})"
    )
    severity = "critical" if run.sustained else finding.severity
    return dataclasses.replace(finding, severity=severity, summary=finding.summary + text)


def performance_gap(
    perf: ClassificationPerformance | RegressionPerformance,
    reference: Mapping[str, float | None],
    policy: PerformancePolicy,
) -> PerformanceFinding | None:
    """The primary metric of the horizon's merged accumulator against the reference
    (``judge_drop`` without the floor); None below ``min_labeled`` or undefined."""
    found = realized_drop(perf, reference, dataclasses.replace(policy, floor=None))
    if found is None:
        return None
    return dataclasses.replace(
        found, check="gap", summary=f"train–production gap over the horizon: {found.summary}"
    )


def gap_value(metric: str, value: float, reference: float) -> float:
    """Reference minus realized for a metric where higher is better, realized minus
    reference where lower is better: positive is worse either way."""
    return reference - value if metric in HIGHER_IS_BETTER else value - reference
