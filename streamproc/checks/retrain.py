"""The retraining trigger: one ``retrain`` event per incident, when the policy holds.

"Retrain when monitoring detects drift, rather than on a fixed schedule." Every closed
window of a model version is judged (:func:`retrain_result`); the result goes through
the alert lifecycle with :meth:`RetrainPolicy.lifecycle` — ``windows`` breaching closed
windows in a row fire it, as many clean ones resolve it, no re-notification within a
week — so an incident gives one ``firing`` event and one ``resolved`` event, deduplicated
and checkpointed like alerts. The worker publishes them to the retrain topic, not to the
alerts topic (:func:`retrain_event`, ``schemas/retrain_event.schema.json``).

A closed window breaches when any of these holds (defaults of issue #16):

* **drift**: at least ``drift_share`` (30 %) of the reference's features have a
  critical ``feature_drift`` verdict on the window;
* **performance**: a critical ``estimated_performance_drop`` (CBPE) on the window;
* **labeled volume**: the labeled rows of the model version's windows in retention
  reach ``labeled_volume`` (0: off) — enough new truth to retrain on.

Realized performance is judged apart, when labels arrive, since they come long after a
window closes — at once in a live stream, after every prediction in a backfill
(:func:`realized_retrain_result`): ``windows`` consecutive windows, ending with the one
whose labels changed, each with a critical realized ``performance_drop`` fire; as many
with none resolve. That incident has the fingerprint of ``feature`` =
``realized_performance``, so its verdict depends only on the windows' labels, never on
whether they came before or after a window closed, and a replay gives the live events.

The event carries the evidence, the reference it was judged against and the range of
event time to retrain on (the breaching windows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from streamproc.checks.alerts import Alert, rfc3339
from streamproc.checks.lifecycle import LifecyclePolicy
from streamproc.checks.result import (
    ESTIMATED_PERFORMANCE_DROP,
    FEATURE_DRIFT,
    PERFORMANCE_DROP,
    RETRAIN,
    CheckResult,
)

WEEK_MS: Final = 7 * 86_400_000
MAX_LISTED: Final = 20
"""Drifted features named in an event (the count is always complete)."""


@dataclass(frozen=True)
class RetrainPolicy:
    drift_share: float = 0.3
    """Share of features with a critical drift verdict that breaches a window."""
    windows: int = 3
    """Consecutive breaching closed windows that fire (and clean ones that resolve)."""
    labeled_volume: int = 0
    """Labeled rows in retention that breach (0: not a reason)."""

    def __post_init__(self) -> None:
        if not 0 < self.drift_share <= 1 or self.windows < 1 or self.labeled_volume < 0:
            raise ValueError("need 0 < drift_share <= 1, windows >= 1, labeled_volume >= 0")

    def lifecycle(self, base: LifecyclePolicy) -> LifecyclePolicy:
        """``base`` with ``windows``-of-``windows`` firing and resolving, weekly renotify."""
        n = self.windows
        return replace(base, fire_after=n, fire_window=n, resolve_after=n, renotify_ms=WEEK_MS)

    def realized_lifecycle(self, base: LifecyclePolicy) -> LifecyclePolicy:
        """``base`` for :func:`realized_retrain_result`, whose verdict already spans
        ``windows`` windows: one breach fires, one clean verdict resolves."""
        return replace(base, fire_after=1, fire_window=1, resolve_after=1, renotify_ms=WEEK_MS)


def retrain_result(
    window_results: Sequence[CheckResult],
    *,
    model: str,
    model_version: str,
    window_start_ms: int,
    window_end_ms: int,
    n_features: int,
    n_reference: int,
    labeled: int,
    policy: RetrainPolicy,
) -> CheckResult:
    """The retrain verdict of one closed window from its (window-scope) check results."""
    drifted = sorted(
        {
            r.feature
            for r in window_results
            if r.check == FEATURE_DRIFT and r.breached and r.severity == "critical" and r.feature
        }
    )
    share = len(drifted) / n_features if n_features else 0.0
    performance = [
        r
        for r in window_results
        if r.check in (PERFORMANCE_DROP, ESTIMATED_PERFORMANCE_DROP)
        and r.breached
        and r.severity == "critical"
    ]
    reasons = []
    if drifted and share >= policy.drift_share:
        reasons.append("drift")
    if performance:
        reasons.append("performance")
    if policy.labeled_volume and labeled >= policy.labeled_volume:
        reasons.append("labeled_volume")
    parts = []
    if "drift" in reasons:
        parts.append(
            f"{len(drifted)} of {n_features} features drifted critically "
            f"({share:.0%} >= {policy.drift_share:.0%})"
        )
    for r in performance:
        parts.append(r.summary or f"{r.check} {r.statistic} {r.value:.3g}")
    if "labeled_volume" in reasons:
        parts.append(f"{labeled} labeled rows since the reference (>= {policy.labeled_volume})")
    evidence: dict[str, Any] = {
        "reasons": reasons,
        "drifted_features": drifted[:MAX_LISTED],
        "drifted_count": len(drifted),
        "drifted_share": share,
        "performance": [
            {"check": r.check, "statistic": r.statistic, "value": r.value, "summary": r.summary}
            for r in performance
        ],
        "labeled": labeled,
    }
    return CheckResult(
        check=RETRAIN,
        model=model,
        model_version=model_version,
        feature=None,
        breached=bool(reasons),
        severity="critical" if reasons else None,
        statistic="retrain_reasons",
        value=float(len(reasons)),
        threshold=1.0,
        n_reference=n_reference,
        n_current=n_features,
        window_start_ms=window_start_ms,
        window_end_ms=window_end_ms,
        summary="; ".join(parts) if parts else "no retraining reason",
        evidence=evidence,
    )


REALIZED: Final = "realized_performance"
"""``feature`` of the incident that realized performance drops fire."""


def realized_retrain_result(
    run: Sequence[tuple[int, int, CheckResult | None]],
    *,
    model: str,
    model_version: str,
    n_reference: int,
    labeled: int,
    policy: RetrainPolicy,
) -> CheckResult | None:
    """The realized-performance retrain verdict of the last window of ``run``.

    ``run``: (start ms, end ms, its realized ``performance_drop`` result or None while it
    has too few labels) of the model version's windows up to and including the one whose
    labels changed, oldest first. The last ``policy.windows`` must be consecutive in event
    time and all judged: breached when each drop is critical, clean when none is; None
    (no step in the lifecycle) otherwise."""
    tail = list(run[-policy.windows :])
    if len(tail) < policy.windows or any(r is None for _s, _e, r in tail):
        return None
    if any(tail[i][0] != tail[i - 1][1] for i in range(1, len(tail))):
        return None  # a gap: windows without predictions are not "in a row"
    results = [r for _s, _e, r in tail if r is not None]
    critical = [r for r in results if r.breached and r.severity == "critical"]
    if critical and len(critical) < len(results):
        return None  # neither every window critical nor every window clean: hold
    breached = bool(critical)
    summary = (
        f"realized {results[-1].statistic.removesuffix('_drop')} dropped critically in "
        f"{len(results)} windows in a row: " + "; ".join(r.summary for r in results)
        if breached
        else f"realized performance without a critical drop in {len(results)} windows in a row"
    )
    return CheckResult(
        check=RETRAIN,
        model=model,
        model_version=model_version,
        feature=REALIZED,
        breached=breached,
        severity="critical" if breached else None,
        statistic="retrain_reasons",
        value=1.0 if breached else 0.0,
        threshold=1.0,
        n_reference=n_reference,
        n_current=sum(r.n_current for r in results),
        window_start_ms=tail[-1][0],
        window_end_ms=tail[-1][1],
        summary=summary,
        evidence={
            "reasons": ["performance"] if breached else [],
            "drifted_features": [],
            "drifted_count": 0,
            "drifted_share": 0.0,
            "performance": [
                {
                    "check": r.check,
                    "statistic": r.statistic,
                    "value": r.value,
                    "summary": r.summary,
                }
                for r in critical
            ],
            "labeled": labeled,
        },
    )


def retrain_event(
    message: Alert, *, reference: Mapping[str, Any], window_ms: int, policy: RetrainPolicy
) -> dict[str, Any]:
    """The retrain-topic message of a ``retrain`` lifecycle message: the alert's fields,
    the reference judged against and the event-time range to retrain on (the
    ``windows`` closed windows that fired it, ending at the message's window end)."""
    end = _ms(message["window"]["end"])
    return {
        **message,
        "kind": "retrain",
        "reference": dict(reference),
        "retrain_window": {
            "start": rfc3339(end - policy.windows * window_ms),
            "end": message["window"]["end"],
        },
    }


def _ms(text: str) -> int:
    from datetime import datetime

    return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


__all__ = [
    "REALIZED",
    "RetrainPolicy",
    "realized_retrain_result",
    "retrain_event",
    "retrain_result",
]
