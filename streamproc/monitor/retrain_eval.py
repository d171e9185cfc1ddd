"""Retrain verdicts of an aggregate's windows (pure; no Kafka): the closed-window verdict
at a window's close, and the realized-performance verdict whenever labels change.

See :mod:`streamproc.checks.retrain` for the policy. The realized verdict judges only
closed windows (a window still open has not all its predictions), so it is asked both
when a window closes and when a closed window's labels change: whichever comes last, the
verdict is the same, which is what makes a backfill (every prediction first, then the
labels) send the live run's events.
"""

from __future__ import annotations

from collections.abc import Iterable

from streamproc.checks.performance_checks import PerformancePolicy
from streamproc.checks.result import PERFORMANCE_DROP, CheckResult
from streamproc.checks.retrain import RetrainPolicy, realized_retrain_result, retrain_result
from streamproc.core.model_profile import ModelProfile
from streamproc.monitor.performance_eval import performance_results
from streamproc.monitor.state import AggregateState, ModelKey, WindowState


def labeled_rows(state: AggregateState, mkey: ModelKey) -> int:
    """Labeled rows of the model version's windows in retention."""
    return sum(w.performance.n for w in state.model_windows(mkey) if w.performance)


def closed_window_retrain(
    state: AggregateState,
    mkey: ModelKey,
    reference: ModelProfile,
    window: WindowState,
    results: list[CheckResult],
    policy: RetrainPolicy,
) -> CheckResult:
    """The retrain verdict of a window as it closes, from its window-scope results."""
    return retrain_result(
        results,
        model=mkey[0],
        model_version=mkey[1],
        window_start_ms=window.start_ms,
        window_end_ms=window.end_ms,
        n_features=len(reference.features),
        n_reference=reference.row_count,
        labeled=labeled_rows(state, mkey),
        policy=policy,
    )


def realized_retrain(
    state: AggregateState,
    mkey: ModelKey,
    starts: Iterable[int],
    reference: ModelProfile,
    performance: PerformancePolicy,
    policy: RetrainPolicy,
) -> list[CheckResult]:
    """The realized-performance retrain verdicts of the closed windows starting at
    ``starts`` (whose labels changed, or that just closed), oldest first."""
    closed = [w for w in state.model_windows(mkey) if w.final and w.profile.row_count]
    index = {w.start_ms: i for i, w in enumerate(closed)}
    labeled = labeled_rows(state, mkey)
    out: list[CheckResult] = []
    for start in sorted(set(starts)):
        i = index.get(start)
        if i is None:
            continue
        run = [
            (w.start_ms, w.end_ms, _realized_drop(w, reference, performance))
            for w in closed[max(0, i - policy.windows + 1) : i + 1]
        ]
        result = realized_retrain_result(
            run,
            model=mkey[0],
            model_version=mkey[1],
            n_reference=reference.row_count,
            labeled=labeled,
            policy=policy,
        )
        if result is not None:
            out.append(result)
    return out


def _realized_drop(
    window: WindowState, reference: ModelProfile, policy: PerformancePolicy
) -> CheckResult | None:
    """The window's realized ``performance_drop`` result; None while it has too few
    labels (or no reference performance)."""
    for result in performance_results(window, reference, policy):
        if result.check == PERFORMANCE_DROP:
            return result
    return None
