"""Model-service health from the prediction log: latency, errors, fallbacks, volume, versions.

The same windows and alert lifecycle as the data checks. Defaults (``ServicePolicy``):

=================  ==========================================  ========  ========
check              statistic                                   warning   critical
=================  ==========================================  ========  ========
``latency``        p95 ÷ configured SLA (when an SLA is set)    > 1       > 2
``latency``        p95 ÷ reference p95                          > 2       > 5
``error_rate``     share of records with ``error`` set          > 1 %     > 5 %
``fallback_rate``  share of records served by the fallback      > 5 %     > 20 %
``fallback_rate``  ≥ 50 % over a whole window: circuit breaker  —         open
``volume``         |count − baseline| ÷ baseline (closed)       > 50 %    > 80 %
``model_version``  a version outside the expected set           any       —
``model_version``  several versions serving outside a rollout   > 1       —
=================  ==========================================  ========  ========

The volume baseline is the same window one day earlier when retention still holds it,
else the median of the trailing closed windows (at least ``volume_min_baseline``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from streamproc.checks.context import Candidate, Window
from streamproc.checks.result import (
    ERROR_RATE,
    FALLBACK_RATE,
    LATENCY,
    MODEL_VERSION,
    VOLUME,
    CheckResult,
)
from streamproc.core.feature_profile import FeatureProfile
from streamproc.core.model_profile import ModelProfile
from streamproc.core.ops import ERROR, FALLBACK

DAY_MS = 86_400_000


@dataclass(frozen=True)
class ServicePolicy:
    """Service-health thresholds (module doc). These defaults are the only copy: the
    [service] section of :mod:`streamproc.config` takes its defaults from them."""

    latency_sla_ms: float | None = None
    """p95 latency SLA in milliseconds; None checks latency against the reference only."""
    latency_ratio_warning: float = 2.0
    latency_ratio_critical: float = 5.0
    error_rate_warning: float = 0.01
    error_rate_critical: float = 0.05
    fallback_rate_warning: float = 0.05
    fallback_rate_critical: float = 0.20
    circuit_open_share: float = 0.5
    volume_change_warning: float = 0.5
    volume_change_critical: float = 0.8
    volume_min_baseline: int = 3
    expected_versions: frozenset[str] = field(default_factory=frozenset)
    """Versions allowed to serve; empty allows any."""
    rollout: bool = False
    """A declared rollout: several versions may serve at once."""
    min_samples: int = 100


def _share_true(profile: FeatureProfile | None) -> tuple[float, int]:
    """(share of True among valid values, number of valid values) of a boolean profile."""
    if profile is None or profile.valid_count == 0:
        return math.nan, 0
    counts = dict(profile.top_categories(2))
    n = profile.valid_count
    return counts.get("true", 0) / n, n


def latency_result(
    window: Window, current: ModelProfile, reference: ModelProfile, policy: ServicePolicy
) -> CheckResult | None:
    cur = current.latency_ms
    if cur is None or cur.valid_count < policy.min_samples:
        return None
    p50, p95, p99 = (float(q) for q in cur.quantiles((0.5, 0.95, 0.99)))
    candidates = []
    ref_p95 = math.nan
    if reference.latency_ms is not None and reference.latency_ms.valid_count:
        ref_p95 = float(reference.latency_ms.quantiles((0.95,))[0])
        if ref_p95 > 0:
            candidates.append(
                Candidate.of(
                    "p95_vs_reference",
                    p95 / ref_p95,
                    policy.latency_ratio_warning,
                    policy.latency_ratio_critical,
                )
            )
    if policy.latency_sla_ms:
        candidates.append(Candidate.of("p95_vs_sla", p95 / policy.latency_sla_ms, 1.0, 2.0))
    if not candidates:
        return None
    breached = [c for c in candidates if c.severity is not None]
    chosen = max(breached, key=lambda c: c.value / c.threshold) if breached else candidates[0]
    evidence: list[dict[str, Any]] = [
        {"p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "reference_p95_ms": ref_p95},
        {"sla_ms": policy.latency_sla_ms},
    ]
    return window.result(
        LATENCY,
        None,
        chosen,
        n_reference=reference.latency_ms.valid_count if reference.latency_ms else 0,
        n_current=cur.valid_count,
        evidence=evidence,
        note=f" (p95 {p95:.0f} ms)",
    )


def rate_results(window: Window, ops: ModelProfile, policy: ServicePolicy) -> list[CheckResult]:
    out = []
    error_share, n_err = _share_true(ops.features.get(ERROR))
    if n_err >= policy.min_samples:
        chosen = Candidate.of(
            "error_rate", error_share, policy.error_rate_warning, policy.error_rate_critical
        )
        out.append(window.result(ERROR_RATE, None, chosen, n_reference=0, n_current=n_err))
    fallback_share, n_fb = _share_true(ops.features.get(FALLBACK))
    if n_fb >= policy.min_samples:
        chosen = Candidate.of(
            "fallback_rate",
            fallback_share,
            policy.fallback_rate_warning,
            policy.fallback_rate_critical,
        )
        circuit_open = fallback_share >= policy.circuit_open_share
        if circuit_open:
            chosen = Candidate(
                "fallback_rate", fallback_share, chosen.warning, chosen.critical, "critical"
            )
        out.append(
            window.result(
                FALLBACK_RATE,
                None,
                chosen,
                n_reference=0,
                n_current=n_fb,
                evidence={"circuit_breaker": "open" if circuit_open else "closed"},
                note=" — circuit breaker likely open" if circuit_open else "",
            )
        )
    return out


def volume_baseline(
    window_start_ms: int, counts_by_start: dict[int, int], window_ms: int, min_windows: int
) -> tuple[float, str] | None:
    """(baseline count, how) for a closed window from earlier closed windows' counts."""
    day_before = counts_by_start.get(window_start_ms - DAY_MS)
    if day_before is not None:
        return float(day_before), "same window one day earlier"
    earlier = [n for s, n in counts_by_start.items() if s < window_start_ms]
    if len(earlier) < min_windows:
        return None
    # The median: one partial window (start-up, a short stall) must not move the baseline.
    return float(statistics.median(earlier)), f"median of the {len(earlier)} previous windows"


def volume_result(
    window: Window, count: int, baseline: tuple[float, str] | None, policy: ServicePolicy
) -> CheckResult | None:
    if baseline is None or baseline[0] <= 0:
        return None
    base, how = baseline
    change = abs(count - base) / base
    chosen = Candidate.of(
        "volume_change", change, policy.volume_change_warning, policy.volume_change_critical
    )
    direction = "more" if count > base else "fewer"
    return window.result(
        VOLUME,
        None,
        chosen,
        n_reference=int(base),
        n_current=count,
        evidence={"count": count, "baseline": base, "baseline_from": how},
        note=f" ({count:,} events vs {base:,.0f}, {direction}; baseline: {how})",
    )


def version_results(
    model: str,
    serving: Sequence[str],
    policy: ServicePolicy,
    *,
    window_start_ms: int,
    window_end_ms: int,
) -> list[CheckResult]:
    """Versions serving the model recently: unexpected ones, and several at once."""
    out = []
    if policy.expected_versions:
        for version in serving:
            unexpected = version not in policy.expected_versions
            chosen = Candidate(
                "unexpected_version",
                1.0 if unexpected else 0.0,
                0.5,
                2.0,
                "warning" if unexpected else None,
            )
            w = Window(model, version, window_start_ms, window_end_ms)
            out.append(
                w.result(
                    MODEL_VERSION,
                    None,
                    chosen,
                    n_reference=len(policy.expected_versions),
                    n_current=len(serving),
                    evidence={
                        "serving": list(serving),
                        "expected": sorted(policy.expected_versions),
                    },
                    note=f" (version {version!r} is not in {sorted(policy.expected_versions)})"
                    if unexpected
                    else "",
                )
            )
    if not policy.rollout:
        n = len(serving)
        chosen = Candidate(
            "versions_serving", float(n), 1.0, math.inf, "warning" if n > 1 else None
        )
        w = Window(model, "*", window_start_ms, window_end_ms)
        out.append(
            w.result(
                MODEL_VERSION,
                None,
                chosen,
                n_reference=1,
                n_current=n,
                evidence={"serving": list(serving)},
                note=f" ({', '.join(serving)} serve outside a declared rollout)" if n > 1 else "",
            )
        )
    return out
