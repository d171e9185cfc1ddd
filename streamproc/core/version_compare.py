"""Two model versions compared: the test of a rate, guardrails, and the rollout decision.

**A/B or canary** (versions serving different traffic): :func:`compare_rates` tests a
rate metric of B against A (pooled two-proportion z-test; Newcombe interval of
p_B − p_A) and says how many rows per arm a minimum detectable effect still needs
(:func:`~streamproc.core.proportions.sample_size_per_arm`, Fleiss, Levin & Paik 2003).
Guardrails (:func:`rate_guardrail` for error or fallback rates, :func:`mean_guardrail`
for mean latency) are one-sided tests that B is worse than A beyond a tolerance. The
paired (shadow) comparisons of :mod:`streamproc.core.shadow` produce the same
:class:`Comparison`.

**Decision** (:func:`decide`): significant negative → ``kill``; significant positive and
every guardrail held → ``ship``; significant positive but a guardrail degraded →
``investigate``; not significant → ``extend`` (with the rows still needed, when known).

A test evaluated on every window is a repeated look at accumulating data: its
false-positive rate exceeds α unless α is split over the looks (an O'Brien–Fleming or
Pocock boundary, or a fixed decision time), which the caller chooses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from scipy import stats

from streamproc.core.intervals import Interval
from streamproc.core.proportions import newcombe_interval, sample_size_per_arm, two_proportion_z

Verdict = Literal["ship", "investigate", "extend", "kill"]
PAIRED_TESTS: Final = frozenset({"mcnemar_exact", "mcnemar_chi2", "delong"})


@dataclass(frozen=True, slots=True)
class Comparison:
    """B against A on one metric: ``difference`` = B − A with its interval; ``better``
    is +1 when B is significantly better, −1 significantly worse, 0 otherwise."""

    metric: str
    value_a: float
    value_b: float
    interval: Interval | None
    pvalue: float
    better: int
    n: int
    test: str
    needed_per_arm: int | None = None
    """More rows per arm (or pairs) for the configured minimum detectable effect."""

    @property
    def difference(self) -> float:
        return self.value_b - self.value_a


def direction(diff: float, pvalue: float, alpha: float, higher_is_better: bool) -> int:
    """+1 / −1 when B − A = ``diff`` is significant (p < α) and good / bad, else 0."""
    if not pvalue < alpha or diff == 0.0:
        return 0
    return 1 if (diff > 0) == higher_is_better else -1


def compare_rates(
    metric: str,
    x_a: int,
    n_a: int,
    x_b: int,
    n_b: int,
    *,
    higher_is_better: bool = True,
    alpha: float = 0.05,
    mde: float | None = None,
    power: float = 0.8,
) -> Comparison:
    """Rate x_B/n_B against x_A/n_A (different traffic): pooled z-test, Newcombe interval
    of p_B − p_A; with ``mde`` (absolute), the rows per arm still needed to detect it at
    ``power`` from A's rate (0 when reached; None when A's rate is 0 or 1)."""
    _z, p = two_proportion_z(x_b, n_b, x_a, n_a)
    zc = float(stats.norm.isf(alpha / 2.0))
    iv = newcombe_interval(x_b, n_b, x_a, n_a, zc)
    pa = x_a / n_a if n_a else math.nan
    pb = x_b / n_b if n_b else math.nan
    needed = None
    if mde is not None and 0.0 < pa < 1.0 and 0.0 < pa + mde < 1.0:
        needed = max(0, sample_size_per_arm(pa, mde, alpha, power) - min(n_a, n_b))
    d = pb - pa if iv is not None else 0.0
    return Comparison(
        metric,
        pa,
        pb,
        iv,
        p,
        direction(d, p, alpha, higher_is_better),
        n_a + n_b,
        "two_proportion_z",
        needed,
    )


@dataclass(frozen=True, slots=True)
class Guardrail:
    """Whether B is significantly worse than A (beyond a tolerance) on a guardrail."""

    name: str
    degraded: bool
    value_a: float
    value_b: float
    pvalue: float | None
    detail: str = ""


def rate_guardrail(
    name: str,
    x_a: int,
    n_a: int,
    x_b: int,
    n_b: int,
    *,
    tolerance: float = 0.0,
    alpha: float = 0.05,
) -> Guardrail:
    """A rate where higher is worse (error, fallback): degraded when the one-sided
    level-α Newcombe lower bound of p_B − p_A exceeds ``tolerance`` (absolute)."""
    iv = newcombe_interval(x_b, n_b, x_a, n_a, float(stats.norm.isf(alpha)))
    if iv is None:
        return Guardrail(name, False, math.nan, math.nan, None, "an arm has no rows")
    pa, pb = x_a / n_a, x_b / n_b
    return Guardrail(
        name,
        iv.low > tolerance,
        pa,
        pb,
        None,
        f"{pb:.4g} vs {pa:.4g}, lower bound of the increase {iv.low:+.4g}",
    )


def mean_guardrail(
    name: str,
    a: tuple[int, float, float],
    b: tuple[int, float, float],
    *,
    tolerance: float = 0.0,
    alpha: float = 0.05,
) -> Guardrail:
    """A mean where higher is worse (latency): ``a``/``b`` are (n, mean, variance with
    n − 1); degraded when Welch's one-sided t-test (Welch 1947; Satterthwaite degrees
    of freedom) rejects mean_B − mean_A ≤ ``tolerance`` at ``alpha``."""
    (na, ma, va), (nb, mb, vb) = a, b
    if na < 2 or nb < 2:
        return Guardrail(name, False, ma, mb, None, "an arm has fewer than 2 rows")
    sa, sb = va / na, vb / nb
    se = math.sqrt(sa + sb)
    if se == 0.0:
        return Guardrail(name, mb - ma > tolerance, ma, mb, None, "no variance")
    t = (mb - ma - tolerance) / se
    dof = (sa + sb) ** 2 / (sa * sa / (na - 1) + sb * sb / (nb - 1))
    p = float(stats.t.sf(t, dof))
    return Guardrail(name, p < alpha, ma, mb, p, f"{mb:.4g} vs {ma:.4g} (Welch p={p:.3g})")


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    reason: str
    primary: Comparison
    degraded: tuple[str, ...]


def decide(primary: Comparison, guardrails: Sequence[Guardrail] = (), min_n: int = 0) -> Decision:
    """The decision table (module docstring); below ``min_n`` rows (or pairs) behind the
    primary comparison the verdict is ``extend`` whatever the test says."""
    degraded = tuple(g.name for g in guardrails if g.degraded)
    if primary.n < min_n:
        why = f"{primary.n} rows of the {min_n} needed before deciding on {primary.metric}"
        return Decision("extend", why, primary, degraded)
    ci = primary.interval
    what = f"{primary.metric} {primary.value_b:.4g} vs {primary.value_a:.4g}"
    if ci is not None:
        what += f" (difference {primary.difference:+.4g}, [{ci.low:+.4g}, {ci.high:+.4g}])"
    what += f", p={primary.pvalue:.3g}, {primary.test}"
    if primary.better < 0:
        return Decision("kill", f"significantly worse: {what}", primary, degraded)
    if primary.better > 0 and not degraded:
        return Decision("ship", f"significantly better, guardrails held: {what}", primary, ())
    if primary.better > 0:
        why = f"significantly better but guardrails degraded ({', '.join(degraded)}): {what}"
        return Decision("investigate", why, primary, degraded)
    unit = "pairs" if primary.test in PAIRED_TESTS else "rows per arm"
    more = "" if primary.needed_per_arm is None else f"; {primary.needed_per_arm} more {unit}"
    return Decision("extend", f"not significant: {what}{more}", primary, degraded)
