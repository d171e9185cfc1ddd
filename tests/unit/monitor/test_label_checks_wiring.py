"""The evaluator's label checks on real window states: a floor sustained over windows,
the train–production gap of the horizon, label coverage, label staleness and the
label-lag gauges. Expected values from sklearn / numpy on the raw rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.metrics import accuracy_score

from streamproc.checks.lifecycle import LifecyclePolicy
from streamproc.checks.performance_checks import PerformancePolicy
from streamproc.checks.policy import EvaluationPolicy
from streamproc.checks.result import fingerprint
from streamproc.contracts import validate
from streamproc.core.performance import ClassificationPerformance
from streamproc.core.reference_performance import build
from streamproc.monitor.evaluator import Evaluator
from streamproc.monitor.metrics import create
from streamproc.monitor.performance_delta import PerformanceDelta
from streamproc.monitor.references import ReferenceSet
from streamproc.monitor.state import AggregateState, ModelClock, ModelKey, WindowState
from tests.support.state import T0, W, window

MKEY = ModelKey("m", "1")
KLL_EPS = 0.02
"""Rank error allowed for a KLL quantile (k = 200: about 1.3%)."""


def _rows(n: int, accuracy: float, seed: int) -> tuple[list[str], list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.5
    pred = np.where(rng.random(n) < accuracy, y, ~y)
    truth = ["y" if v else "n" for v in y]
    predicted = ["y" if v else "n" for v in pred]
    return truth, predicted, np.where(pred, 0.8, 0.2)


def _reference() -> tuple[Any, float]:
    truth, pred, score = _rows(20_000, 0.96, seed=99)
    prof = window("m", "1", T0, 10).profile
    meta = build(truth, scores=score, predicted=pred, positive="y").to_meta()
    prof.metadata["performance"] = meta
    return prof, float(accuracy_score(truth, pred))


class Rows:
    """The raw rows of each labeled window, kept for the expected values."""

    def __init__(self) -> None:
        self.truth: dict[int, list[str]] = {}
        self.pred: dict[int, list[str]] = {}
        self.lag: dict[int, np.ndarray] = {}


def _state(accuracies: list[float], n: int = 1_000, rows: Rows | None = None) -> AggregateState:
    state = AggregateState(W, 60_000, 48 * 3_600_000)
    for i, a in enumerate(accuracies):
        truth, pred, score = _rows(n, a, seed=i)
        lag = np.random.default_rng(100 + i).exponential(3600.0, n)
        perf = ClassificationPerformance(positive="y")
        perf.update(truth, pred, score, lag_s=lag)
        w = window("m", "1", T0 + i * W, 2 * n, performance=perf, final=True)
        state.windows[w.key] = w
        if rows is not None:
            rows.truth[i], rows.pred[i], rows.lag[i] = truth, pred, lag
    state.clocks[MKEY] = ModelClock(newest_event_ms=T0 + len(accuracies) * W)
    return state


def _evaluator(policy: PerformancePolicy, horizon_ms: int = 3_600_000, **kw: Any) -> Evaluator:
    reference, _acc = _reference()
    return Evaluator(
        references=ReferenceSet.of([reference]),
        policy_for=lambda _m: EvaluationPolicy(),
        lifecycle=LifecyclePolicy(fire_after=1, fire_window=1),
        horizon_ms=horizon_ms,
        metrics=create(),
        performance_for=lambda _m: policy,
        **kw,
    )


def _keys(state: AggregateState) -> set[Any]:
    return set(state.windows)


def _lag_rank_ok(raw: np.ndarray, q: float, value: float) -> bool:
    rank = float(np.mean(raw <= value))
    return abs(rank - q) <= KLL_EPS


MILD = {"drop_warning": 0.5, "drop_critical": 0.6}  # only the floor can fire


def _drops(alerts: list[Any]) -> list[Any]:
    """The ``performance_drop`` alerts (calibration moves too when accuracy falls)."""
    return [a for a in alerts if a["check"] == "performance_drop"]


def test_a_floor_held_for_its_duration_fires_and_names_the_run() -> None:
    rows = Rows()
    accs = [0.97] * 3 + [0.85] * 7  # 7 windows of 5 min below 0.9: 35 min
    state = _state(accs, rows=rows)
    below = [i for i in rows.truth if accuracy_score(rows.truth[i], rows.pred[i]) < 0.9]
    assert below == list(range(3, 10))
    ev = _evaluator(PerformancePolicy(floor=0.9, floor_for_s=30 * 60.0, **MILD))
    alerts = _drops(ev.evaluate_performance(state, _keys(state)))
    assert len(alerts) == 1
    alert = alerts[0]
    validate("alert", alert)
    assert alert["severity"] == "critical" and "for 0.6 h (7 windows)" in alert["summary"]
    run = alert["evidence"]["floor_run"]
    assert (run["start_ms"], run["end_ms"], run["windows"]) == (T0 + 3 * W, T0 + 10 * W, 7)
    # the run (as of the newest labeled window) covers windows 3..9: oldest first, 3 fired
    assert alert["window"]["start"].startswith("2024-05-01T10:15")
    lag = alert["evidence"]["label_lag_s"]
    first = 3  # the first window of the run was judged first and fired
    for q in ("0.5", "0.95", "0.99"):
        assert _lag_rank_ok(rows.lag[first], float(q), lag[q])


def test_a_floor_not_yet_held_long_enough_does_not_fire() -> None:
    state = _state([0.97] * 3 + [0.85] * 7)
    ev = _evaluator(PerformancePolicy(floor=0.9, floor_for_s=3_600.0, **MILD))
    assert _drops(ev.evaluate_performance(state, _keys(state))) == []
    st = ev.alert_states[fingerprint("performance_drop", "m", "1", None)]
    assert st.status != "firing"
    at_once = _evaluator(PerformancePolicy(floor=0.9, **MILD))  # today's rule: per window
    fired = _drops(at_once.evaluate_performance(_state([0.97] * 3 + [0.85] * 7), _keys(state)))
    assert [a["severity"] for a in fired] == ["critical"]


def test_the_gap_gauge_and_check_judge_the_horizon_merged() -> None:
    rows = Rows()
    state = _state([0.99] * 6 + [0.90] * 6, n=1_500, rows=rows)
    _ref, ref_acc = _reference()
    ev = _evaluator(PerformancePolicy(), horizon_ms=6 * W)  # the last 6 windows (30 min)
    alerts = ev.evaluate_performance(state, _keys(state))
    recent = range(6, 12)
    truth = [t for i in recent for t in rows.truth[i]]
    pred = [p for i in recent for p in rows.pred[i]]
    realized = float(accuracy_score(truth, pred))
    gauges = ev.metrics.model_gauges
    gap = gauges.value("performance_gap", ("m", "1", "accuracy"))
    assert gap == pytest.approx(ref_acc - realized, abs=1e-12)
    gap_alerts = [a for a in alerts if a["check"] == "performance_gap"]
    assert len(gap_alerts) == 1
    validate("alert", gap_alerts[0])
    drop = (ref_acc - realized) / ref_acc
    assert 0.05 < drop <= 0.10 and gap_alerts[0]["severity"] == "warning"
    assert gap_alerts[0]["evidence"]["labeled"] == len(truth)
    assert gap_alerts[0]["evidence"]["windows"] == 6
    # the label-lag gauges: the newest labeled window's sketch
    newest = rows.lag[11]
    for q in (0.5, 0.95, 0.99):
        value = gauges.value("label_lag_seconds", ("m", "1", f"{q:g}"))
        assert value is not None and _lag_rank_ok(newest, q, value)  # KLL's rank error


def test_label_coverage_judges_the_newest_window_whose_labels_are_due() -> None:
    state = _state([0.95] * 12, n=400)  # each window: 800 predictions, 400 labeled
    # windows without labels: the labels stopped after window 11
    for i in range(12, 24):
        w = window("m", "1", T0 + i * W, 800, final=True)
        state.windows[w.key] = w
    state.clocks[MKEY] = ModelClock(newest_event_ms=T0 + 24 * W)
    from streamproc.monitor.performance_eval import coverage_result

    policy = PerformancePolicy(label_coverage_min=0.3, label_delay_s=30 * 60.0)
    r = coverage_result(state, MKEY, policy)
    # the newest window ending 30 min before the newest event: window 17 (no labels)
    assert r is not None and r.window_start_ms == T0 + 17 * W
    assert r.value == 0.0 and r.severity == "critical"
    alerts = _evaluator(policy).evaluate_model(state, MKEY)  # the evaluator's wiring
    coverage = [a for a in alerts if a["check"] == "label_coverage"]
    assert [a["severity"] for a in coverage] == ["critical"]
    validate("alert", coverage[0])
    assert coverage[0]["evidence"]["predicted"] == 800
    state.clocks[MKEY] = ModelClock(newest_event_ms=T0 + 16 * W)  # due: window 9
    r = coverage_result(state, MKEY, policy)
    assert r is not None and r.window_start_ms == T0 + 9 * W
    assert r.value == 400 / 800 and not r.breached
    assert coverage_result(state, MKEY, PerformancePolicy()) is None  # off by default


def _delta(start_ms: int, offset: int) -> PerformanceDelta:
    truth, pred, score = _rows(300, 0.9, seed=offset)
    perf = ClassificationPerformance(positive="y")
    perf.update(truth, pred, score)
    return PerformanceDelta("m", "1", start_ms, start_ms + W, "labels", [(0, offset, offset)],
                            "p-1", perf)  # fmt: skip


def test_label_staleness_by_the_timer_and_its_checkpoint() -> None:
    state = AggregateState(W, 60_000, 24 * 3_600_000)
    arrival = T0 + 2 * W
    assert state.apply_performance(_delta(T0, 0), arrival_ms=arrival)
    assert not state.apply_performance(_delta(T0, 0), arrival_ms=arrival + 5)  # duplicate
    clock = state.clocks[MKEY]
    assert clock.last_label_arrival_ms == arrival and MKEY in state.dirty_clocks
    clock.newest_event_ms = clock.last_arrival_ms = arrival  # predictions keep coming
    ev = _evaluator(PerformancePolicy(label_staleness_s=6 * 3600.0))
    wall = arrival + 7 * 3_600_000
    state.clocks[MKEY].newest_event_ms = wall - 1_000  # predictions are fresh
    alerts = ev.evaluate_staleness(state, wall)
    assert [(a["check"], a["severity"]) for a in alerts] == [("label_staleness", "critical")]
    validate("alert", alerts[0])
    age = ev.metrics.model_gauges.value("label_staleness_seconds", ("m",))
    assert age == (wall - arrival) / 1000
    # checkpointed with the clock; a checkpoint from before labels loads as "none yet"
    restored = AggregateState(W, 60_000, 24 * 3_600_000)
    restored.restore_clock(MKEY, state.clocks[MKEY].to_dict())
    assert restored.clocks[MKEY] == state.clocks[MKEY]
    old = {k: v for k, v in state.clocks[MKEY].to_dict().items() if k != "last_label_arrival_ms"}
    restored.restore_clock(MKEY, old)
    assert restored.clocks[MKEY].last_label_arrival_ms == 0


def test_label_staleness_waits_while_replaying_or_while_predictions_are_stale() -> None:
    state = AggregateState(W, 60_000, 24 * 3_600_000)
    state.apply_performance(_delta(T0, 0), arrival_ms=T0)
    wall = T0 + 7 * 3_600_000
    state.clocks[MKEY].newest_event_ms = wall - 1_000
    replay = _evaluator(PerformancePolicy(), replay=True)
    assert replay.evaluate_staleness(state, wall) == []
    assert replay.metrics.model_gauges.value("label_staleness_seconds", ("m",)) is None
    state.clocks[MKEY].newest_event_ms = T0  # predictions stopped too: `staleness` says so
    live = _evaluator(PerformancePolicy())
    assert [a["check"] for a in live.evaluate_staleness(state, wall)] == ["staleness"]


def test_a_window_opened_by_labels_has_no_staleness_gauge() -> None:
    state = AggregateState(W, 60_000, 24 * 3_600_000)
    state.apply_performance(_delta(T0, 0), arrival_ms=T0)
    ev = _evaluator(PerformancePolicy())
    ev.evaluate_staleness(state, T0 + 1_000)
    assert ev.metrics.model_gauges.value("staleness_seconds", ("m",)) is None
    assert ev.metrics.model_gauges.value("label_staleness_seconds", ("m",)) == 1.0
    assert isinstance(state.windows[next(iter(state.windows))], WindowState)
