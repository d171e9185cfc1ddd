"""Shared pieces of the window checks: the window being evaluated, grading, results.

A check computes one or more *candidates* (a statistic with its warning and critical
thresholds); the result reports the worst breached one, or the designated primary one
when nothing breached, so ``value``/``threshold`` always belong to ``statistic``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from streamproc.checks.alerts import summarize
from streamproc.checks.result import CheckResult, Severity

_RANK = {"warning": 1, "critical": 2}


def grade(
    value: float, warning: float, critical: float, *, inclusive: bool = False
) -> Severity | None:
    """Severity of ``value`` against the thresholds: strictly above (``inclusive``: at or
    above) critical → "critical", else above warning → "warning", else None. NaN → None."""
    if math.isnan(value):
        return None
    if value > critical or (inclusive and value >= critical):
        return "critical"
    if value > warning or (inclusive and value >= warning):
        return "warning"
    return None


@dataclass(frozen=True, slots=True)
class Candidate:
    """One statistic of one check, graded."""

    statistic: str
    value: float
    warning: float
    critical: float
    severity: Severity | None
    inclusive: bool = False

    @classmethod
    def of(
        cls,
        statistic: str,
        value: float,
        warning: float,
        critical: float,
        *,
        inclusive: bool = False,
    ) -> Candidate:
        sev = grade(value, warning, critical, inclusive=inclusive)
        return cls(statistic, value, warning, critical, sev, inclusive)

    @property
    def threshold(self) -> float:
        """The threshold crossed (critical or warning); the warning one when clean."""
        return self.critical if self.severity == "critical" else self.warning

    def _excess(self) -> float:
        t = self.threshold
        return self.value / t if t > 0 else (math.inf if self.value > t else 0.0)


def worst(candidates: list[Candidate], primary: Candidate) -> Candidate:
    """The most severe breached candidate (ties: largest value ÷ threshold), else ``primary``."""
    breached = [c for c in candidates if c.severity is not None]
    if not breached:
        return primary
    return max(breached, key=lambda c: (_RANK[c.severity or "warning"], c._excess()))


@dataclass(frozen=True, slots=True)
class Window:
    """The (model, version, event-time window) being evaluated; builds its results."""

    model: str
    model_version: str
    start_ms: int
    end_ms: int

    def result(
        self,
        check: str,
        feature: str | None,
        chosen: Candidate,
        *,
        n_reference: int,
        n_current: int,
        evidence: list[dict[str, Any]] | dict[str, Any] | None = None,
        note: str = "",
        subject: str | None = None,
    ) -> CheckResult:
        """A :class:`CheckResult` whose summary is :func:`~streamproc.checks.alerts.summarize`
        (the "resolved" wording for a clean evaluation, so the message that resolves an
        alert reads right), with ``subject`` replacing its leading subject and ``note``
        appended (never raw category values: summaries are not redacted)."""
        res = CheckResult(
            check=check,
            model=self.model,
            model_version=self.model_version,
            feature=feature,
            breached=chosen.severity is not None,
            severity=chosen.severity,
            statistic=chosen.statistic,
            value=float(chosen.value),
            threshold=float(chosen.threshold),
            n_reference=int(n_reference),
            n_current=int(n_current),
            window_start_ms=self.start_ms,
            window_end_ms=self.end_ms,
            evidence=evidence if evidence is not None else [],
        )
        text = summarize(res, resolved=not res.breached)
        if not res.breached and chosen.value > chosen.threshold:
            # Above the threshold but gated out (not significant): say so, not "≤".
            text = text.replace(" ≤ ", " > ", 1)
        elif res.breached and chosen.inclusive:
            text = text.replace(" > ", " ≥ ", 1)
        if subject is not None and feature is not None and text.startswith(feature):
            text = subject + text[len(feature) :]
        return dataclasses.replace(res, summary=text + note)
