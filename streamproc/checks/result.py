"""The outcome of one check evaluation, the check names, and alert fingerprints."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Final, Literal

Severity = Literal["warning", "critical"]

FEATURE_DRIFT: Final = "feature_drift"
PREDICTION_DRIFT: Final = "prediction_drift"
COMPLETENESS: Final = "completeness"
SCHEMA: Final = "schema"
CARDINALITY: Final = "cardinality"
FRESHNESS: Final = "freshness"
STALENESS: Final = "staleness"
DEGENERATE_OUTPUT: Final = "degenerate_output"
DATASET_DRIFT: Final = "dataset_drift"
SLOW_DRIFT: Final = "slow_drift"
LATENCY: Final = "latency"
ERROR_RATE: Final = "error_rate"
FALLBACK_RATE: Final = "fallback_rate"
VOLUME: Final = "volume"
MODEL_VERSION: Final = "model_version"
RANGE: Final = "range"
JOINT_DRIFT: Final = "joint_drift"
PERFORMANCE_DROP: Final = "performance_drop"
CALIBRATION_DRIFT: Final = "calibration_drift"
LABEL_DRIFT: Final = "label_drift"
ESTIMATED_PERFORMANCE_DROP: Final = "estimated_performance_drop"
PERFORMANCE_GAP: Final = "performance_gap"
LABEL_STALENESS: Final = "label_staleness"
LABEL_COVERAGE: Final = "label_coverage"
FAIRNESS: Final = "fairness"
ROLLOUT: Final = "rollout"
RETRAIN: Final = "retrain"
"""Not an alert: its messages go to the retrain topic (:mod:`streamproc.checks.retrain`)."""

CHECK_NAMES: Final = (
    FEATURE_DRIFT,
    PREDICTION_DRIFT,
    COMPLETENESS,
    SCHEMA,
    CARDINALITY,
    FRESHNESS,
    STALENESS,
    DEGENERATE_OUTPUT,
    DATASET_DRIFT,
    SLOW_DRIFT,
    LATENCY,
    ERROR_RATE,
    FALLBACK_RATE,
    VOLUME,
    MODEL_VERSION,
    RANGE,
    JOINT_DRIFT,
    PERFORMANCE_DROP,
    CALIBRATION_DRIFT,
    LABEL_DRIFT,
    ESTIMATED_PERFORMANCE_DROP,
    PERFORMANCE_GAP,
    LABEL_STALENESS,
    LABEL_COVERAGE,
    FAIRNESS,
    ROLLOUT,
    RETRAIN,
)
"""Every check; each has a section in docs/RUNBOOK.md whose anchor is the name with
``_`` replaced by ``-`` (e.g. ``#feature-drift``)."""

SEVERITIES: Final = ("warning", "critical")


def fingerprint(
    check: str, model: str, model_version: str, feature: str | None, segment: str | None = None
) -> str:
    """Stable identity of one alert: sha1 hex of the parts joined by NUL.

    NUL cannot appear in a check name and is unlikely in model or feature names, so
    distinct tuples give distinct joins; ``None`` (no feature) joins as the empty string
    and is distinct from every real feature name because the empty name is not allowed
    as a feature in a fingerprint. A ``segment`` (a slice key,
    :func:`~streamproc.core.segments.slice_key`) is a fifth part when given, so the
    aggregate's fingerprints stay what they were and each slice's alert is its own.
    """
    if feature == "":
        raise ValueError("feature must be a non-empty name or None")
    parts = (check, model, model_version, feature or "")
    joined = "\x00".join(parts if segment is None else (*parts, segment))
    return hashlib.sha1(joined.encode("utf-8"), usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One evaluation of one check for one (model, version, feature or none) and window.

    ``value`` and ``threshold`` are in the units of ``statistic`` (e.g. PSI, a null
    ratio, seconds). ``breached`` says whether the value crossed ``threshold``;
    ``severity`` is the severity of that breach (None when not breached; a breach with
    no severity counts as a warning). Window bounds are event-time epoch milliseconds,
    ``[window_start_ms, window_end_ms)``. ``evidence`` lists the top shifted bins or
    categories (dicts); raw category values in it are redacted in alert messages unless
    the caller allows raw values.
    """

    check: str
    model: str
    model_version: str
    feature: str | None
    breached: bool
    severity: Severity | None
    statistic: str
    value: float
    threshold: float
    n_reference: int
    n_current: int
    window_start_ms: int
    window_end_ms: int
    summary: str = ""
    evidence: list[dict[str, Any]] | dict[str, Any] = field(default_factory=list)
    segment: str | None = None
    """The slice key this result judges (``"country=DE"``); None: the whole model."""

    def __post_init__(self) -> None:
        if self.check not in CHECK_NAMES:
            raise ValueError(f"unknown check {self.check!r}; expected one of {CHECK_NAMES}")
        if self.severity is not None and self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES} or None: {self.severity!r}")
        if self.window_end_ms < self.window_start_ms:
            raise ValueError("window_end_ms is before window_start_ms")

    @property
    def fingerprint(self) -> str:
        """See :func:`fingerprint`."""
        return fingerprint(self.check, self.model, self.model_version, self.feature, self.segment)

    @property
    def effective_severity(self) -> Severity:
        """Severity of a breach: the given one, warning when unset."""
        return self.severity or "warning"
