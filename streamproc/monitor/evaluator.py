"""Evaluation glue: windows of the aggregate state → checks → alert lifecycle → messages.

For each model version that received data since the last tick: every newly closed
window gets its final evaluation, and the rolling horizon ending with it (``slow_drift``),
oldest first; then, when live, a provisional one of the last 5 s of event time (the
recent deltas merged; the open window so far when those hold too few rows), so a sudden
break alerts within seconds wherever it falls in a window. The lifecycle
clock of these data checks is event time, and while replaying only closed windows
count, so a replay emits the alerts of its windows whatever the speed of the input.
Provisional spans overlap (the last 5 s, every 0.5 s); the lifecycle counts only
non-overlapping spans toward M-of-N (:mod:`streamproc.checks.lifecycle`), so at most one
provisional verdict per 5 s of event time is an observation. Staleness (of predictions,
and of labels: ``label_staleness``) is evaluated for every model on every tick against
the wall clock, except while the model's data is historical (replay). Windows whose
labels changed get the performance checks (with the run below a sustained floor), and
the model version's labeled windows of the rolling horizon the ``performance_gap``;
``label_coverage`` judges, by event time, the newest closed window whose labels are due.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streamproc.checks.alerts import AlertMessage
from streamproc.checks.context import Window
from streamproc.checks.evaluate import evaluate_window
from streamproc.checks.freshness_checks import evaluate_staleness
from streamproc.checks.label_checks import label_staleness
from streamproc.checks.lifecycle import AlertState, LifecyclePolicy, step
from streamproc.checks.model_settings import ModelSettings
from streamproc.checks.performance_checks import PerformancePolicy
from streamproc.checks.performance_trend import floor_run
from streamproc.checks.policy import EvaluationPolicy
from streamproc.checks.result import CARDINALITY, RETRAIN, CheckResult
from streamproc.checks.retrain import RetrainPolicy
from streamproc.checks.service_checks import (
    ServicePolicy,
    latency_result,
    rate_results,
    version_results,
    volume_baseline,
    volume_result,
)
from streamproc.core.model_profile import ModelProfile
from streamproc.core.ops import DATA_LAG, ERROR, FALLBACK, PIPELINE_LAG, PROCESSING_LAG
from streamproc.monitor.metrics import Metrics
from streamproc.monitor.model_gauges import (
    CLOCK_GROUP,
    ESTIMATED_GROUP,
    PERFORMANCE_GROUP,
    ROLLOUT_GROUP,
    SEGMENT_GROUP,
    VERSIONS_GROUP,
    WINDOW_GROUP,
    SeriesBuilder,
)
from streamproc.monitor.performance_eval import (
    coverage_result,
    estimated_results,
    estimated_series,
    gap_results,
    metric_window,
    performance_results,
    performance_series,
)
from streamproc.monitor.references import ReferenceSet
from streamproc.monitor.retrain_eval import closed_window_retrain, realized_retrain
from streamproc.monitor.rollout_eval import (
    judge_rollout,
    rollout_message,
    rollout_result,
    rollout_series,
)
from streamproc.monitor.slice_eval import (
    fairness_results,
    segment_performance_results,
    segment_results,
    segment_volume_results,
    slice_series,
)
from streamproc.monitor.state import AggregateState, ModelKey, WindowKey, WindowState

log = logging.getLogger(__name__)

Alert = AlertMessage


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
    performance_for: Callable[[str], PerformancePolicy] = lambda _model: PerformancePolicy()
    """Performance check thresholds per model."""
    retrain: RetrainPolicy | None = None
    """The retraining trigger (None: no retrain events)."""
    models_for: Callable[[str], ModelSettings] = lambda _model: ModelSettings()
    """``[models.<model>]``: slices, fairness and rollout per model."""
    alert_states: dict[str, AlertState] = field(default_factory=dict)
    owner: dict[str, ModelKey] = field(default_factory=dict)
    """Fingerprint → the model version it belongs to (for checkpoints and rebalances)."""
    changed_alerts: set[str] = field(default_factory=set)
    rollout_messages: list[dict[str, Any]] = field(default_factory=list)
    """Rollout comparisons since :meth:`take_rollout_messages` (for the rollouts topic)."""
    rollout_verdicts: dict[str, str] = field(default_factory=dict)
    """Model → its rollout's latest verdict (labels publish a comparison when it moves)."""

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
        retrain: list[CheckResult] = []
        estimated: SeriesBuilder | None = None
        closed_now: list[int] = []
        for window in state.newly_closed(mkey):
            if window.profile.row_count == 0:  # labels only (their predictions never came)
                window.final = True
                state.dirty.add(window.key)
                continue
            # estimated performance (CBPE) of the closed window, before its labels
            perf_policy = self.performance_for(mkey[0])
            closed = estimated_results(window, reference, perf_policy)
            estimated = estimated_series(window, reference)
            closed += evaluate_window(
                reference,
                window.profile,
                window.ops,
                policy,
                window_start_ms=window.start_ms,
                window_end_ms=window.end_ms,
            )
            results += closed
            slices = self._slices(window, reference, policy, closed)
            if window.slices is not None:
                aggregate = closed + self._volume(state, mkey, window)
                slices += segment_volume_results(
                    window, state.model_windows(mkey), self.service_for(mkey[0]),
                    policy.thresholds.min_samples, aggregate,
                )  # fmt: skip
            results += slices
            if self.retrain is not None:
                retrain.append(
                    closed_window_retrain(state, mkey, reference, window, closed, self.retrain)
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
            closed_now.append(window.end_ms)
            window.final = True
            state.dirty.add(window.key)
        if estimated is not None and estimated.series:
            self.metrics.model_gauges.replace(mkey, ESTIMATED_GROUP, estimated.series)
        if closed_now:
            results += self._rollout(state, mkey, closed_now[-1], window_closed=True)
        labeled = [w for w in state.model_windows(mkey) if w.performance is not None]
        if labeled:  # predictions that came after their labels move the coverage
            self._performance_gauges(mkey, labeled, reference, self.performance_for(mkey[0]))
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
        coverage = coverage_result(state, mkey, self.performance_for(mkey[0]))
        if coverage is not None:
            results.append(coverage)
        self.metrics.evaluation_seconds.observe(time.perf_counter() - began)
        alerts = self._advance(results, now_ms=newest)
        if retrain and self.retrain is not None:
            alerts += self._advance(retrain, now_ms=newest, lifecycle=self.retrain_lifecycle)
            # the windows that closed now may already hold their labels
            starts = [r.window_start_ms for r in retrain]
            alerts += self._realized_retrain(state, mkey, starts, newest)
        return alerts

    @property
    def retrain_lifecycle(self) -> LifecyclePolicy:
        assert self.retrain is not None
        return self.retrain.lifecycle(self.lifecycle)

    def _realized_retrain(
        self, state: AggregateState, mkey: ModelKey, starts: list[int], now_ms: int
    ) -> list[Alert]:
        """The realized-performance retrain verdicts of closed windows starting at
        ``starts`` (see :mod:`streamproc.monitor.retrain_eval`)."""
        reference = self.references.get(*mkey)
        if self.retrain is None or reference is None or not starts:
            return []
        performance = self.performance_for(mkey[0])
        results = realized_retrain(state, mkey, starts, reference, performance, self.retrain)
        lifecycle = self.retrain.realized_lifecycle(self.lifecycle)
        return self._advance(results, now_ms=now_ms, lifecycle=lifecycle)

    def evaluate_performance(self, state: AggregateState, keys: set[WindowKey]) -> list[Alert]:
        """The performance checks of windows whose labels changed (closed or not: a
        window is revised as its labels mature), oldest first, with the run below a
        sustained floor and the ``performance_gap`` of the labeled windows of the horizon
        ending with each; and the gauges of the latest window with labels."""
        alerts: list[Alert] = []
        for mkey in sorted({k.model_key for k in keys}):
            reference = self.references.get(*mkey)
            if reference is None:
                continue
            policy = self.performance_for(mkey[0])
            labeled = [w for w in state.model_windows(mkey) if w.performance is not None]
            run = None
            if policy.floor is not None and policy.floor_for_s:  # a sustained floor
                run = floor_run([metric_window(w, policy.primary_metric) for w in labeled], policy)
            results: list[CheckResult] = []
            settings = self.models_for(mkey[0])
            for key in sorted(k for k in keys if k.model_key == mkey):
                window = state.windows[key]
                own = performance_results(window, reference, policy, run)
                results += own
                results += segment_performance_results(window, reference, policy, own, settings.fdr)
                if window.labeled is not None and window.labeled.fairness:
                    results += fairness_results(window, settings.fairness)
                # the gap as of this window (so a backfill's labels, all at once, give
                # the live run's sequence of verdicts)
                results += self._gap(labeled, window.end_ms, reference, policy)[0]
            self._performance_gauges(mkey, labeled, reference, policy)
            closed_ends = [w.end_ms for w in state.model_windows(mkey) if w.final]
            if closed_ends:
                results += self._rollout(state, mkey, max(closed_ends))
            clock = state.clocks.get(mkey)
            now = clock.newest_event_ms if clock is not None and clock.newest_event_ms else 0
            now = max([now, *(r.window_end_ms for r in results)])
            alerts += self._advance(results, now_ms=now)
            starts = [k.start_ms for k in keys if k.model_key == mkey]
            alerts += self._realized_retrain(state, mkey, starts, now)
        return alerts

    def _performance_gauges(
        self,
        mkey: ModelKey,
        labeled: list[WindowState],
        reference: ModelProfile,
        policy: PerformancePolicy,
    ) -> None:
        """The gauges of the latest window with labels (and the horizon's gap)."""
        if labeled:
            gauges = performance_series(labeled[-1], reference).series
            gap_gauges = self._gap(labeled, labeled[-1].end_ms, reference, policy)[1]
            self.metrics.model_gauges.replace(
                mkey, PERFORMANCE_GROUP, {**gauges, **gap_gauges.series}
            )

    def _gap(
        self,
        labeled: list[WindowState],
        end_ms: int,
        reference: ModelProfile,
        policy: PerformancePolicy,
    ) -> tuple[list[CheckResult], SeriesBuilder]:
        """``performance_gap`` of the labeled windows of the horizon ending at ``end_ms``."""
        since = end_ms - self.horizon_ms
        horizon = [w for w in labeled if since < w.end_ms <= end_ms]
        return gap_results(horizon, reference, policy) if horizon else ([], SeriesBuilder())

    def _rollout(
        self, state: AggregateState, mkey: ModelKey, as_of_ms: int, window_closed: bool = False
    ) -> list[CheckResult]:
        """The declared rollout of ``mkey``'s model, as of ``as_of_ms``, when ``mkey`` is
        one of its arms: the result, the gauges and a comparison message (on every closed
        window of an arm; after new labels only when the verdict moved)."""
        spec = self.models_for(mkey[0]).rollout
        if spec is None or mkey[1] not in (spec.champion, spec.challenger) or as_of_ms <= 0:
            return []
        finding, extra = judge_rollout(state, mkey[0], spec, as_of_ms)
        if finding is None:
            return []
        start = min(
            (w.start_ms for v in (spec.champion, spec.challenger)
             for w in state.model_windows(ModelKey(mkey[0], v))),
            default=as_of_ms,
        )  # fmt: skip
        if window_closed or self.rollout_verdicts.get(mkey[0]) != finding.verdict:
            self.rollout_messages.append(
                rollout_message(mkey[0], spec, finding, extra, start, as_of_ms)
            )
        self.rollout_verdicts[mkey[0]] = finding.verdict
        champion = ModelKey(mkey[0], spec.champion)
        series = rollout_series(mkey[0], spec, finding).series
        self.metrics.model_gauges.replace(champion, ROLLOUT_GROUP, series)
        return [rollout_result(mkey[0], spec, finding, start, as_of_ms)]

    def take_rollout_messages(self) -> list[dict[str, Any]]:
        out, self.rollout_messages = self.rollout_messages, []
        return out

    def _slices(
        self,
        window: WindowState,
        reference: ModelProfile,
        policy: EvaluationPolicy,
        aggregate: list[CheckResult],
    ) -> list[CheckResult]:
        """A closed window's slice checks and fairness (``[models.<model>]``)."""
        if window.slices is None:
            return []
        settings = self.models_for(window.model)
        spec = settings.slice_spec()
        keys = spec.keys_for(reference) if spec is not None else {}
        out = segment_results(window, reference, keys, policy, aggregate, settings.fdr)
        if window.slices.fairness:
            out += fairness_results(window, settings.fairness)
        gauges = slice_series(window, out)
        self.metrics.model_gauges.replace(window.model_key, SEGMENT_GROUP, gauges.series)
        return out

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
        gauges = SeriesBuilder()
        for version in serving:
            gauges.set("model_version_serving", (model, version), 1)
        self.metrics.model_gauges.replace(ModelKey(model, ""), VERSIONS_GROUP, gauges.series)
        service = self.service_for(model)
        if self.models_for(model).rollout is not None and not service.rollout:
            service = dataclasses.replace(service, rollout=True)  # a declared challenger
        return version_results(
            model,
            serving,
            service,
            window_start_ms=newest - recent,
            window_end_ms=newest + 1,
        )

    def evaluate_staleness(self, state: AggregateState, wall_ms: int) -> list[Alert]:
        alerts: list[Alert] = []
        for mkey, clock in list(state.clocks.items()):
            policy = self.policy_for(mkey[0])
            age_s = max(0.0, (wall_ms - clock.newest_event_ms) / 1000)
            replaying = self.replaying(state, mkey)
            gauges = SeriesBuilder()
            gauges.set("replaying", (mkey[0],), 1 if replaying else 0)
            if not replaying and clock.newest_event_ms:
                gauges.set("staleness_seconds", (mkey[0],), age_s)
            if not replaying and clock.last_label_arrival_ms:
                label_age_s = max(0.0, (wall_ms - clock.last_label_arrival_ms) / 1000)
                gauges.set("label_staleness_seconds", (mkey[0],), label_age_s)
            self.metrics.model_gauges.replace(mkey, CLOCK_GROUP, gauges.series)
            labels = label_staleness(
                mkey[0],
                mkey[1],
                last_label_arrival_ms=clock.last_label_arrival_ms,
                now_ms=wall_ms,
                policy=self.performance_for(mkey[0]),
                replaying=replaying,
                serving=bool(clock.newest_event_ms) and age_s <= policy.staleness_s,
            )
            if labels is not None:
                alerts += self._advance([labels], now_ms=wall_ms)
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

    def _advance(
        self, results: list[CheckResult], now_ms: int, lifecycle: LifecyclePolicy | None = None
    ) -> list[Alert]:
        alerts: list[Alert] = []
        for result in results:
            fp = result.fingerprint
            before = self.alert_states.get(fp)
            after, message = step(before, result, now_ms, lifecycle or self.lifecycle)
            if after != before:
                self.alert_states[fp] = after
                self.owner[fp] = ModelKey(result.model, result.model_version)
                self.changed_alerts.add(fp)
            if message is not None:
                alerts.append(message)
                if result.check != RETRAIN:  # retrain events are counted as they are sent
                    self.metrics.alerts_emitted_total.labels(message["status"]).inc()
        if alerts:
            self._export_firing()
        return alerts

    def _export(
        self, mkey: ModelKey, results: list[CheckResult], profile: ModelProfile, ops: ModelProfile
    ) -> None:
        """The open window's gauges — size, null rates, drift statistics, unseen-category
        shares, latency, error and fallback rates, lag quantiles — replacing the last set."""
        model = mkey[0]
        g = SeriesBuilder()
        g.set("window_events", mkey, profile.row_count)
        for name, feature in profile.features.items():
            if feature.count:
                g.set("null_rate_ratio", (model, name), feature.null_rate)
        for r in results:
            if r.feature is None:
                continue
            if r.check in _DRIFT_CHECKS:
                for statistic, value in _drift_statistics(r).items():
                    g.set("drift_value", (model, r.feature, statistic), value)
            elif r.check == CARDINALITY and r.statistic == "new_category_share":
                g.set("unseen_category_share_ratio", (model, r.feature), r.value)
        if profile.latency_ms is not None and profile.latency_ms.valid_count:
            for q, value in zip(
                _LAG_QUANTILES, profile.latency_ms.quantiles(_LAG_QUANTILES), strict=True
            ):
                g.set("latency_ms", (model, f"{q:g}"), float(value))
        for name, gauge in ((ERROR, "error_rate_ratio"), (FALLBACK, "fallback_rate_ratio")):
            flag = ops.features.get(name)
            if flag is not None and flag.valid_count:
                share = dict(flag.top_categories(2)).get("true", 0) / flag.valid_count
                g.set(gauge, (model,), share)
        for lag in (PIPELINE_LAG, PROCESSING_LAG, DATA_LAG):
            sketch = ops.features.get(lag)
            if sketch is None or sketch.valid_count == 0:
                continue
            for q, value in zip(_LAG_QUANTILES, sketch.quantiles(_LAG_QUANTILES), strict=True):
                g.set("event_lag_seconds", (model, lag, f"{q:g}"), float(value))
        self.metrics.model_gauges.replace(mkey, WINDOW_GROUP, g.series)

    def _export_firing(self) -> None:
        counts: dict[tuple[str, str, str], int] = {}
        for st in self.alert_states.values():
            if st.status == "firing" and st.severity is not None and st.check != RETRAIN:
                key = (st.model, st.check, st.severity)
                counts[key] = counts.get(key, 0) + 1
        self.metrics.alerts_firing.clear()
        for (model, check, severity), n in counts.items():
            self.metrics.alerts_firing.labels(model, check, severity).set(n)

    # ----------------------------------------------------------------- alert states

    def changed_alert_states(self) -> list[tuple[str, ModelKey, AlertState]]:
        """(fingerprint, owning model version, state) of every alert state changed since
        it was last marked clean, in fingerprint order."""
        out = []
        for fp in sorted(self.changed_alerts):
            st, owner = self.alert_states.get(fp), self.owner.get(fp)
            if st is not None and owner is not None:
                out.append((fp, owner, st))
        return out

    def mark_alerts_clean(self, fingerprints: list[str]) -> None:
        """Alert states whose checkpoint committed."""
        self.changed_alerts.difference_update(fingerprints)

    def restore_alert(self, st: AlertState) -> None:
        """Load a checkpointed alert state (after a restart or a rebalance)."""
        self.alert_states[st.fingerprint] = st
        self.owner[st.fingerprint] = ModelKey(st.model, st.model_version)

    def drop_models(self, models: set[ModelKey]) -> None:
        """Forget the alert states and gauges of models another worker now owns."""
        for fp, owner in list(self.owner.items()):
            if owner in models:
                self.owner.pop(fp, None)
                self.alert_states.pop(fp, None)
                self.changed_alerts.discard(fp)
        self.metrics.model_gauges.drop(models)
        self._export_firing()


_DRIFT_CHECKS = frozenset({"feature_drift", "prediction_drift"})
_DRIFT_STATISTICS = ("psi", "js", "ks", "wasserstein")
"""Exported to ``drift_value`` on every evaluation that computed them."""


def _drift_statistics(result: CheckResult) -> dict[str, float]:
    """Every distance statistic a drift result computed (its evidence carries them all),
    so each series is refreshed whichever statistic the result reports."""
    computed: dict[str, Any] = {}
    evidence = result.evidence if isinstance(result.evidence, list) else [result.evidence]
    for item in evidence:
        if isinstance(item, dict) and isinstance(item.get("statistics"), dict):
            computed = item["statistics"]
    out = {k: float(v) for k in _DRIFT_STATISTICS if isinstance(v := computed.get(k), int | float)}
    if result.statistic in _DRIFT_STATISTICS and math.isfinite(result.value):
        out.setdefault(result.statistic, result.value)
    return {k: v for k, v in out.items() if math.isfinite(v)}


_LAG_QUANTILES = (0.5, 0.95, 0.99)


def _with_skip(policy: EvaluationPolicy, skip: bool) -> EvaluationPolicy:
    return dataclasses.replace(policy, skip_wall_clock_lags=skip)
