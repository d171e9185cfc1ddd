"""Rollout checks: a champion (A) against a challenger (B), shadow or A/B, to a verdict.

Pure functions from the comparison state and a :class:`RolloutPolicy` to a
:class:`RolloutFinding` (check name ``rollout``), whose verdict follows the decision
table of :func:`streamproc.core.version_compare.decide`: ``kill`` is critical,
``investigate`` a warning, ``ship`` and ``extend`` are not breaches (the message
still reports them). Below ``min_n`` labeled rows (A/B: per arm) the verdict is
``extend``.

* :func:`judge_shadow` — paired: McNemar on accuracy or DeLong on ROC AUC
  (:mod:`streamproc.core.shadow`), with agreement, score correlation and the score
  difference in the evidence.
* :func:`judge_ab` — different traffic: the primary rate by the two-proportion test
  (:func:`~streamproc.core.version_compare.compare_rates`).
* :func:`guardrails` — error and fallback rates (one-sided Newcombe bound above an
  absolute tolerance) and mean latency (one-sided Welch test above a tolerance in ms)
  from each arm's :class:`ArmStats`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from streamproc.checks.result import Severity
from streamproc.core.shadow import ShadowPairs
from streamproc.core.version_compare import (
    Comparison,
    Decision,
    Guardrail,
    Verdict,
    compare_rates,
    decide,
    mean_guardrail,
    rate_guardrail,
)

CHECK: Final = "rollout"
SEVERITY: Final[dict[Verdict, Severity | None]] = {
    "kill": "critical",
    "investigate": "warning",
    "ship": None,
    "extend": None,
}


@dataclass(frozen=True)
class RolloutPolicy:
    """How a rollout is judged (configuration)."""

    primary_metric: str = "accuracy"
    """Shadow: ``accuracy`` (McNemar) or ``roc_auc`` (DeLong); A/B: the rate's name."""
    higher_is_better: bool = True
    alpha: float = 0.05
    power: float = 0.8
    mde: float | None = 0.01
    """Minimum detectable effect (absolute) for the rows still needed."""
    min_n: int = 200
    error_tolerance: float = 0.0
    fallback_tolerance: float = 0.0
    latency_tolerance_ms: float = 0.0

    def __post_init__(self) -> None:
        if not (0 < self.alpha < 1 and 0 < self.power < 1) or self.min_n < 0:
            raise ValueError("alpha and power must be in (0, 1), min_n >= 0")


@dataclass(frozen=True)
class ArmStats:
    """One version's service counters over the window (from its ops profile)."""

    n: int
    errors: int = 0
    fallbacks: int = 0
    latency_n: int = 0
    latency_mean_ms: float = 0.0
    latency_var_ms2: float = 0.0
    """Sample variance (n − 1) of the latency, ms²."""


@dataclass(frozen=True)
class RolloutFinding:
    check: str
    mode: Literal["shadow", "ab"]
    decision: Decision
    guardrails: tuple[Guardrail, ...]
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> Verdict:
        return self.decision.verdict

    @property
    def severity(self) -> Severity | None:
        return SEVERITY[self.decision.verdict]

    @property
    def breached(self) -> bool:
        return self.severity is not None

    @property
    def summary(self) -> str:
        return f"{self.mode} {self.verdict}: {self.decision.reason}"


def guardrails(a: ArmStats, b: ArmStats, policy: RolloutPolicy) -> list[Guardrail]:
    """Error rate, fallback rate and mean latency of B against A."""
    alpha = policy.alpha
    out = [
        rate_guardrail(
            "error_rate",
            a.errors,
            a.n,
            b.errors,
            b.n,
            tolerance=policy.error_tolerance,
            alpha=alpha,
        ),
        rate_guardrail(
            "fallback_rate",
            a.fallbacks,
            a.n,
            b.fallbacks,
            b.n,
            tolerance=policy.fallback_tolerance,
            alpha=alpha,
        ),
    ]
    if a.latency_n and b.latency_n:
        out.append(
            mean_guardrail(
                "latency_mean_ms",
                (a.latency_n, a.latency_mean_ms, a.latency_var_ms2),
                (b.latency_n, b.latency_mean_ms, b.latency_var_ms2),
                tolerance=policy.latency_tolerance_ms,
                alpha=alpha,
            )
        )
    return out


def _guard_evidence(guards: Sequence[Guardrail]) -> list[dict[str, Any]]:
    return [
        {
            "name": g.name,
            "degraded": g.degraded,
            "a": g.value_a,
            "b": g.value_b,
            "pvalue": g.pvalue,
            "detail": g.detail,
        }
        for g in guards
    ]


def _comparison_evidence(c: Comparison) -> dict[str, Any]:
    out: dict[str, Any] = {
        "metric": c.metric,
        "a": c.value_a,
        "b": c.value_b,
        "difference": c.difference,
        "pvalue": c.pvalue,
        "test": c.test,
        "n": c.n,
        "needed": c.needed_per_arm,
    }
    if c.interval is not None:
        out |= {"low": c.interval.low, "high": c.interval.high}
    return out


def judge_shadow(
    pairs: ShadowPairs, policy: RolloutPolicy, guards: Sequence[Guardrail] = ()
) -> RolloutFinding | None:
    """The shadow verdict; None until a comparison exists (no labeled pairs, or a
    sample without both classes for ROC AUC)."""
    if policy.primary_metric == "roc_auc":
        cmp = pairs.auc_comparison(policy.alpha)
    elif policy.primary_metric == "accuracy":
        cmp = pairs.accuracy_comparison(policy.alpha, policy.mde, policy.power)
    else:
        raise ValueError(f"shadow metric must be accuracy or roc_auc: {policy.primary_metric!r}")
    if cmp is None:
        return None
    agree, corr = pairs.agreement(), pairs.correlation()
    evidence = {
        "primary": _comparison_evidence(cmp),
        "pairs": pairs.pairs,
        "labeled_pairs": pairs.labeled,
        "agreement": None if agree is None else agree.to_dict(),
        "correlation": None if corr is None else corr.to_dict(),
        "score_difference": pairs.difference_summary(),
        "guardrails": _guard_evidence(guards),
    }
    decision = decide(cmp, guards, policy.min_n)
    return RolloutFinding(CHECK, "shadow", decision, tuple(guards), evidence)


def judge_ab(
    x_a: int,
    n_a: int,
    x_b: int,
    n_b: int,
    policy: RolloutPolicy,
    guards: Sequence[Guardrail] = (),
) -> RolloutFinding:
    """The A/B verdict on the primary rate x/n of each arm."""
    cmp = compare_rates(
        policy.primary_metric,
        x_a,
        n_a,
        x_b,
        n_b,
        higher_is_better=policy.higher_is_better,
        alpha=policy.alpha,
        mde=policy.mde,
        power=policy.power,
    )
    if min(n_a, n_b) < policy.min_n:
        why = f"{min(n_a, n_b)} rows in the smaller arm of the {policy.min_n} needed"
        decision = Decision("extend", why, cmp, tuple(g.name for g in guards if g.degraded))
    else:
        decision = decide(cmp, guards)
    evidence = {
        "primary": _comparison_evidence(cmp),
        "guardrails": _guard_evidence(guards),
    }
    return RolloutFinding(CHECK, "ab", decision, tuple(guards), evidence)
