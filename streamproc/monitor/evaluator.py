"""Evaluation glue: windows of the aggregate state → checks → alert lifecycle → messages.

For each model version that received data since the last tick: every newly closed
window gets its final evaluation, and the rolling horizon ending with it (``slow_drift``),
oldest first; then, when live, a provisional one of the last 5 s of event time (the
recent deltas merged; the open window so far when those hold too few rows), so a sudden
break alerts within seconds wherever it falls in a window. The lifecycle
clock of these data checks is event time, and while replaying only closed windows
count, so a replay emits the alerts of its windows whatever the speed of the input. Staleness
is evaluated for every model on every tick against the wall clock, except while the
model's data is historical (replay).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streamproc.checks.context import Window
from streamproc.checks.evaluate import evaluate_window
from streamproc.checks.freshness_checks import evaluate_staleness
from streamproc.checks.lifecycle import AlertState, LifecyclePolicy, step
from streamproc.checks.policy import EvaluationPolicy
from streamproc.checks.result import CheckResult
from streamproc.checks.service_checks import (
    ServicePolicy,
    latency_result,
    rate_results,
    version_results,
    volume_baseline,
    volume_result,
)
from streamproc.core.model_profile import ModelProfile
from streamproc.monitor.metrics import Metrics
from streamproc.monitor.ops import DATA_LAG, ERROR, FALLBACK, PIPELINE_LAG, PROCESSING_LAG
from streamproc.monitor.references import ReferenceSet
from streamproc.monitor.state import AggregateState, ModelKey, WindowState

log = logging.getLogger(__name__)

Alert = dict[str, Any]


@dataclass
class Evaluator:
    references: ReferenceSet
    policy_for: Callable[[str], EvaluationPolicy]
    lifecycle: LifecyclePolicy
    horizon_ms: int
    metrics: Metrics
    service_for: Callable[[str], ServicePolicy] = lambda _model: ServicePolicy()
    """Model-service health thresholds per model."""
    replay: bool = False
    """Force replay mode: wall-clock checks (staleness, processing lag) never run."""
    alert_states: dict[str, AlertState] = field(default_factory=dict)
    owner: dict[str, ModelKey] = field(default_factory=dict)
    """Fingerprint → the model version it belongs to (for checkpoints and rebalances)."""
    changed_alerts: set[str] = field(default_factory=set)

    def replaying(self, state: AggregateState, mkey: ModelKey) -> bool:
        clock = state.clocks.get(mkey)
        if self.replay:
            return True
        policy = self.policy_for(mkey[0])
        return clock is not None and clock.arrival_lag_ms > policy.staleness_s * 1000

    def evaluate_model(self, state: AggregateState, mkey: ModelKey) -> list[Alert]:
        """Final, provisional and horizon evaluations of one model version's windows."""
        reference = self.references.get(*mkey)
        if reference is None or mkey not in state.clocks:
            return []  # unknown, or handed to another worker by a rebalance
        began = time.perf_counter()
        replaying = self.replaying(state, mkey)
        policy = self.policy_for(mkey[0])
        if replaying != policy.skip_wall_clock_lags:
            policy = _with_skip(policy, replaying)
        results: list[CheckResult] = []
        for window in state.newly_closed(mkey):
            results += evaluate_window(
                reference,
                window.profile,
                window.ops,
                policy,
                window_start_ms=window.start_ms,
                window_end_ms=window.end_ms,
            )
            profile, ops, start = state.horizon(mkey, self.horizon_ms, as_of_ms=window.end_ms)
            results += evaluate_window(
                reference,
                profile,
                ops,
                policy,
                window_start_ms=start,
                window_end_ms=window.end_ms,
                scope="rolling",
            )
            w = Window(mkey[0], mkey[1], window.start_ms, window.end_ms)
            results += self._service(mkey, reference, window.profile, window.ops, w)
            results += self._volume(state, mkey, window)
            window.final = True
            state.dirty.add(window.key)
        newest = state.clocks[mkey].newest_event_ms
        open_window = state.open_window(mkey)
        if open_window is not None:
            # Provisional verdicts judge the last RECENT_MS of event time when it holds
            # enough rows (a break shows at once, wherever it falls in the window),
            # else the open window so far.
            recent = state.recent_profile(mkey, policy.thresholds.min_samples)
            if recent is not None:
                profile, ops, start = recent
                end = max(start, newest + 1)
            else:
                profile, ops, start = open_window.profile, open_window.ops, open_window.start_ms
                end = max(start, min(newest + 1, open_window.end_ms))
            window_results = evaluate_window(
                reference, profile, ops, policy, window_start_ms=start, window_end_ms=end
            )
            window_results += self._service(
                mkey, reference, profile, ops, Window(mkey[0], mkey[1], start, end)
            )
            self._export(mkey, window_results, profile, ops)
            if not replaying:  # provisional verdicts depend on arrival timing: live only
                results += window_results
            results += self._versions(state, mkey[0])
        self.metrics.evaluation_seconds.observe(time.perf_counter() - began)
        self.metrics.replaying.labels(mkey[0]).set(1 if replaying else 0)
        return self._advance(results, now_ms=newest)

    def _service(
        self,
        mkey: ModelKey,
        reference: ModelProfile,
        profile: ModelProfile,
        ops: ModelProfile,
        window: Window,
    ) -> list[CheckResult]:
        """Latency, error and fallback rates of a window (or of the recent profile)."""
        policy = self.service_for(mkey[0])
        out = rate_results(window, ops, policy)
        latency = latency_result(window, profile, reference, policy)
        if latency is not None:
            out.append(latency)
        return out

    def _volume(
        self, state: AggregateState, mkey: ModelKey, window: WindowState
    ) -> list[CheckResult]:
        """A closed window's count against its baseline."""
        policy = self.service_for(mkey[0])
        counts = {
            x.start_ms: x.profile.row_count
            for x in state.model_windows(mkey)
            if x.final and x.start_ms < window.start_ms
        }
        size = window.end_ms - window.start_ms
        baseline = volume_baseline(window.start_ms, counts, size, policy.volume_min_baseline)
        w = Window(mkey[0], mkey[1], window.start_ms, window.end_ms)
        volume = volume_result(w, window.profile.row_count, baseline, policy)
        return [] if volume is None else [volume]

    def _versions(self, state: AggregateState, model: str) -> list[CheckResult]:
        """Which versions of ``model`` served within the last two windows of event time."""
        clocks = {v: c for (m, v), c in state.clocks.items() if m == model}
        newest = max(c.newest_event_ms for c in clocks.values())
        recent = 2 * state.window_ms
        serving = sorted(v for v, c in clocks.items() if c.newest_event_ms >= newest - recent)
        for version in serving:
            self.metrics.model_versions.labels(model, version).set(1)
        return version_results(
            model,
            serving,
            self.service_for(model),
            window_start_ms=newest - recent,
            window_end_ms=newest + 1,
        )

    def evaluate_staleness(self, state: AggregateState, wall_ms: int) -> list[Alert]:
        alerts: list[Alert] = []
        for mkey, clock in list(state.clocks.items()):
            policy = self.policy_for(mkey[0])
            age_s = max(0.0, (wall_ms - clock.newest_event_ms) / 1000)
            replaying = self.replaying(state, mkey)
            if not replaying:
                self.metrics.staleness_seconds.labels(mkey[0]).set(age_s)
            result = evaluate_staleness(
                mkey[0],
                mkey[1],
                newest_event_ms=clock.newest_event_ms or None,
                now_ms=wall_ms,
                threshold_s=policy.staleness_s,
                replaying=replaying,
            )
            if result is not None:
                alerts += self._advance([result], now_ms=wall_ms)
        return alerts

    def _advance(self, results: list[CheckResult], now_ms: int) -> list[Alert]:
        alerts: list[Alert] = []
        for result in results:
            fp = result.fingerprint
            before = self.alert_states.get(fp)
            after, message = step(before, result, now_ms, self.lifecycle)
            if after != before:
                self.alert_states[fp] = after
                self.owner[fp] = (result.model, result.model_version)
                self.changed_alerts.add(fp)
            if message is not None:
                alerts.append(dict(message))
                self.metrics.alerts_emitted_total.labels(message["status"]).inc()
        if alerts:
            self._export_firing()
        return alerts

    def _export(
        self, mkey: ModelKey, results: list[CheckResult], profile: ModelProfile, ops: ModelProfile
    ) -> None:
        """Gauges of the open window: size, null rates, drift statistics, lag quantiles."""
        model, m = mkey[0], self.metrics
        m.window_events.labels(model, mkey[1]).set(profile.row_count)
        for name, feature in profile.features.items():
            if feature.count:
                m.null_rate.labels(model, name).set(feature.null_rate)
        for r in results:
            if r.feature is None or r.check not in _EXPORTED:
                continue
            m.drift_value.labels(model, r.feature, r.statistic).set(r.value)
            if r.statistic == "new_category_share":
                m.unseen_category_share.labels(model, r.feature).set(r.value)
        if profile.latency_ms is not None and profile.latency_ms.valid_count:
            for q, value in zip(
                _LAG_QUANTILES, profile.latency_ms.quantiles(_LAG_QUANTILES), strict=True
            ):
                m.latency_ms.labels(model, f"{q:g}").set(float(value))
        for name, gauge in ((ERROR, m.error_rate), (FALLBACK, m.fallback_rate)):
            flag = ops.features.get(name)
            if flag is not None and flag.valid_count:
                gauge.labels(model).set(
                    dict(flag.top_categories(2)).get("true", 0) / flag.valid_count
                )
        for lag in (PIPELINE_LAG, PROCESSING_LAG, DATA_LAG):
            sketch = ops.features.get(lag)
            if sketch is None or sketch.valid_count == 0:
                continue
            for q, value in zip(_LAG_QUANTILES, sketch.quantiles(_LAG_QUANTILES), strict=True):
                m.event_lag_seconds.labels(model, lag, f"{q:g}").set(float(value))

    def _export_firing(self) -> None:
        counts: dict[tuple[str, str, str], int] = {}
        for st in self.alert_states.values():
            if st.status == "firing" and st.severity is not None:
                key = (st.model, st.check, st.severity)
                counts[key] = counts.get(key, 0) + 1
        self.metrics.alerts_firing.clear()
        for (model, check, severity), n in counts.items():
            self.metrics.alerts_firing.labels(model, check, severity).set(n)

    def drop_models(self, models: set[ModelKey]) -> None:
        """Forget the alert states of models another worker now owns."""
        for fp, owner in list(self.owner.items()):
            if owner in models:
                self.owner.pop(fp, None)
                self.alert_states.pop(fp, None)
                self.changed_alerts.discard(fp)


_EXPORTED = frozenset({"feature_drift", "prediction_drift", "completeness", "cardinality"})


_LAG_QUANTILES = (0.5, 0.95, 0.99)


def _with_skip(policy: EvaluationPolicy, skip: bool) -> EvaluationPolicy:
    import dataclasses

    return dataclasses.replace(policy, skip_wall_clock_lags=skip)
