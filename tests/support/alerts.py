"""Check results and the real alert messages the lifecycle makes of them.

One feature-drift fingerprint (``fraud``/``17``/``car_value``, PSI against 0.25) on
consecutive 5-minute windows from :data:`T0`: evaluation ``i`` covers
``[T0 + 5i min, T0 + 5(i+1) min)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from streamproc.checks.alerts import AlertMessage
from streamproc.checks.lifecycle import AlertState, LifecyclePolicy, step
from streamproc.checks.result import CheckResult

MIN = 60_000
T0 = 1_714_557_600_000  # 2024-05-01T10:00:00Z


def window_result(
    i: int, breached: bool, severity: str | None = None, **overrides: Any
) -> CheckResult:
    """Evaluation number ``i``; a breach is a warning unless ``severity`` says otherwise."""
    fields: dict[str, Any] = {
        "check": "feature_drift",
        "model": "fraud",
        "model_version": "17",
        "feature": "car_value",
        "breached": breached,
        "severity": severity if severity is not None else ("warning" if breached else None),
        "statistic": "psi",
        "value": 0.41 if breached else 0.05,
        "threshold": 0.25,
        "n_reference": 120_000,
        "n_current": 2_310,
        "window_start_ms": T0 + 5 * MIN * i,
        "window_end_ms": T0 + 5 * MIN * (i + 1),
    }
    fields.update(overrides)
    return CheckResult(**fields)


def flag_results(flags: Sequence[bool | str], **overrides: Any) -> list[CheckResult]:
    """One result per flag: True breaches, False is clean, a severity string breaches at it."""
    return [
        window_result(i, bool(flag), flag if isinstance(flag, str) else None, **overrides)
        for i, flag in enumerate(flags)
    ]


def lifecycle_messages(
    results: Iterable[CheckResult], policy: LifecyclePolicy | None = None
) -> list[AlertMessage]:
    """The messages the real lifecycle emits for ``results`` (each at its window end)."""
    policy = policy or LifecyclePolicy()
    state: AlertState | None = None
    out: list[AlertMessage] = []
    for r in results:
        state, message = step(state, r, r.window_end_ms, policy)
        if message is not None:
            out.append(message)
    return out
