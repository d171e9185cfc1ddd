"""The evaluator's schedule, without a broker: final verdicts once per closed window,
provisional verdicts of the recent data when live, the rolling horizon, and replay."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import orjson
import pytest
from scipy.spatial.distance import jensenshannon

from streamproc.checks.lifecycle import LifecyclePolicy
from streamproc.checks.policy import EvaluationPolicy
from streamproc.checks.result import fingerprint
from streamproc.contracts.prediction import decode_predictions
from streamproc.core.model_profile import ModelProfile
from streamproc.monitor.delta import ProfileDelta
from streamproc.monitor.evaluator import Evaluator
from streamproc.monitor.metrics import Metrics, create
from streamproc.monitor.references import ReferenceSet
from streamproc.monitor.state import AggregateState, ModelKey
from streamproc.monitor.store import AggregateStore
from streamproc.monitor.window_buffer import BufferedChunk, WindowBuffer, build_delta

WINDOW_MS = 10_000
LATENESS_MS = 1_000
T0_MS = 1_700_000_000_000  # a multiple of WINDOW_MS
MKEY = ModelKey("m", "1")
REF_SHARE_A = 0.7


@pytest.fixture(scope="module")
def reference() -> ModelProfile:
    rng = np.random.default_rng(0)
    n = 5_000
    cats = np.where(rng.random(n) < REF_SHARE_A, "a", "b").astype(object)
    return ModelProfile.build_reference("m", "1", {"x": rng.normal(size=n), "c": cats})


def _records(
    start_ms: int,
    span_ms: int,
    n: int,
    *,
    shift: float = 0.0,
    share_a: float = REF_SHARE_A,
    seed: int,
) -> tuple[list[bytes], int]:
    """``n`` records spread evenly over ``[start_ms, start_ms + span_ms)``; returns them and
    the number carrying category ``a``."""
    rng = np.random.default_rng(seed)
    xs = rng.normal(loc=shift, size=n)
    n_a = round(n * share_a)
    cats = ["a"] * n_a + ["b"] * (n - n_a)
    rng.shuffle(cats)
    out = [
        orjson.dumps(
            {
                "model": "m",
                "model_version": "1",
                "request_id": f"r{seed}-{i}",
                "timestamp": (start_ms + i * span_ms // n) / 1000,
                "features": {"x": float(xs[i]), "c": cats[i]},
                "prediction": 0.5,
            }
        )
        for i in range(n)
    ]
    return out, n_a


def _deltas(records: list[bytes], reference: ModelProfile, offset: int) -> Iterator[ProfileDelta]:
    """One delta per event-time window, as ingest would publish them."""
    result = decode_predictions(records, window_ms=WINDOW_MS)
    for batch in sorted(result.batches.values(), key=lambda b: b.window_start_ms):
        start = batch.window_start_ms
        buf = WindowBuffer("m", "1", start, start + WINDOW_MS)
        buf.add(
            BufferedChunk(batch, batch.timestamps, float(batch.timestamps.max())),
            np.zeros(batch.n),
            np.arange(batch.n) + offset,
        )
        yield build_delta(buf, reference, topic="in", producer_id="t")


@dataclass
class Harness:
    store: AggregateStore
    metrics: Metrics
    reference: ModelProfile
    offset: int = 0

    @property
    def evaluator(self) -> Evaluator:
        return self.store.evaluator

    def feed(self, records: list[bytes], arrival_ms: int | None = None) -> None:
        for delta in _deltas(records, self.reference, self.offset):
            newest = int((delta.profile.event_time_max or 0) * 1000)
            assert self.store.apply(delta, 0, newest if arrival_ms is None else arrival_ms)
        self.offset += len(records)

    def state_of(self, check: str, feature: str) -> object:
        return self.evaluator.alert_states.get(fingerprint(check, "m", "1", feature))


def _harness(reference: ModelProfile, *, replay: bool, horizon_ms: int = 30_000) -> Harness:
    metrics = create()
    evaluator = Evaluator(
        references=ReferenceSet.of([reference]),
        policy_for=lambda _m: EvaluationPolicy(),
        lifecycle=LifecyclePolicy(),
        horizon_ms=horizon_ms,
        metrics=metrics,
        replay=replay,
    )
    state = AggregateState(WINDOW_MS, LATENESS_MS, retention_ms=600_000)
    return Harness(AggregateStore(state, evaluator), metrics, reference)


def test_a_closed_window_gets_one_final_verdict(reference: ModelProfile) -> None:
    h = _harness(reference, replay=True)
    first, _ = _records(T0_MS, WINDOW_MS, 600, seed=1)
    h.feed(first)
    h.store.evaluate(wall_ms=0)
    assert not any(w.final for w in h.store.state.windows.values())  # still open
    assert h.state_of("feature_drift", "x") is None  # replay: no provisional verdict

    second, _ = _records(T0_MS + WINDOW_MS, 2_000, 600, seed=2)  # watermark passes window 0
    h.feed(second)
    h.store.evaluate(wall_ms=0)
    finals = sorted(w.start_ms for w in h.store.state.windows.values() if w.final)
    assert finals == [T0_MS]
    st = h.state_of("feature_drift", "x")
    assert st is not None and st.history == (False,)  # type: ignore[attr-defined]
    assert st.last_window_end_ms == T0_MS + WINDOW_MS  # type: ignore[attr-defined]

    h.store.evaluate(wall_ms=0)  # nothing new: the closed window is not judged again
    assert h.state_of("feature_drift", "x").history == (False,)  # type: ignore[union-attr]


def test_replay_gives_the_same_alerts_at_any_speed(reference: ModelProfile) -> None:
    batches = [
        _records(T0_MS + i * WINDOW_MS, WINDOW_MS, 600, shift=1.5, seed=i)[0] for i in range(4)
    ]
    closer, _ = _records(T0_MS + 4 * WINDOW_MS + LATENESS_MS, 1_000, 10, seed=9)

    slow = _harness(reference, replay=True)  # a delta at a time, evaluated after each
    slow_alerts = []
    for records in [*batches, closer]:
        slow.feed(records)
        slow_alerts += slow.store.evaluate(wall_ms=0)
    fast = _harness(reference, replay=True)  # everything at once, one evaluation
    fast.feed([r for records in [*batches, closer] for r in records])
    fast_alerts = fast.store.evaluate(wall_ms=0)

    def key(alerts: list) -> list:  # type: ignore[type-arg]
        return sorted((a["check"], a["feature"], a["status"], a["window"]["end"]) for a in alerts)

    assert key(slow_alerts) == key(fast_alerts)
    fired = {(a["check"], a["feature"]) for a in fast_alerts if a["status"] == "firing"}
    assert ("feature_drift", "x") in fired
    # fires on the second breaching window of four (2 of 3), counted once per window
    st = fast.state_of("feature_drift", "x")
    assert st.history == (True, True, True)  # type: ignore[union-attr]
    assert st.last_window_end_ms == T0_MS + 4 * WINDOW_MS  # type: ignore[union-attr]


def test_live_provisional_verdict_judges_the_recent_data(reference: ModelProfile) -> None:
    h = _harness(reference, replay=False)
    records, _ = _records(T0_MS, 4_000, 800, shift=2.0, seed=3)  # 4 s: one open window
    h.feed(records)
    h.store.evaluate(wall_ms=T0_MS + 4_000)
    st = h.state_of("feature_drift", "x")
    assert st is not None and st.history == (True,)  # type: ignore[attr-defined]
    newest = T0_MS + 4_000 - 4_000 // 800
    assert st.last_window_end_ms == newest + 1  # type: ignore[attr-defined]

    replay = _harness(reference, replay=True)
    replay.feed(records)
    replay.store.evaluate(wall_ms=T0_MS + 4_000)
    assert replay.state_of("feature_drift", "x") is None  # replay counts closed windows only


def test_rolling_horizon_judges_windows_too_small_alone(reference: ModelProfile) -> None:
    h = _harness(reference, replay=True, horizon_ms=3 * WINDOW_MS)
    policy = EvaluationPolicy()
    per_window = policy.thresholds.min_samples // 2 + 10  # below the minimum alone
    for i in range(3):
        h.feed(_records(T0_MS + i * WINDOW_MS, WINDOW_MS, per_window, shift=1.5, seed=10 + i)[0])
    h.feed(_records(T0_MS + 3 * WINDOW_MS + LATENESS_MS, 1_000, 5, seed=20)[0])
    h.store.evaluate(wall_ms=0)

    assert h.state_of("feature_drift", "x") is None  # no window alone has enough rows
    slow = h.state_of("slow_drift", "x")
    assert slow is not None  # the horizon has 2 × the minimum and more
    assert slow.history[-1] is True  # type: ignore[attr-defined]
    profile, _ops, start = h.store.state.horizon(
        MKEY, 3 * WINDOW_MS, as_of_ms=T0_MS + 3 * WINDOW_MS
    )
    assert start == T0_MS and profile.row_count == 3 * per_window


def _scrape(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _drift(samples: dict, feature: str, statistic: str) -> float | None:  # type: ignore[type-arg]
    labels = frozenset({("model", "m"), ("feature", feature), ("statistic", statistic)})
    return samples.get(("streamproc_drift_value", labels))


def test_gauges_follow_the_latest_evaluation_and_leave_with_the_model(
    reference: ModelProfile,
) -> None:
    h = _harness(reference, replay=False)
    drifted, drifted_a = _records(T0_MS, 4_000, 800, share_a=0.2, seed=4)
    h.feed(drifted)
    h.store.evaluate(wall_ms=T0_MS + 4_000)
    ref_counts = np.array(
        [dict(reference.features["c"].top_categories(10))[v] for v in ("a", "b")], float
    )

    def expected_js(n_a: int, n: int) -> float:
        return float(jensenshannon(ref_counts / ref_counts.sum(), [n_a / n, 1 - n_a / n], base=2))

    samples = _scrape(h.metrics)
    assert _drift(samples, "c", "js") == pytest.approx(expected_js(drifted_a, 800), rel=1e-9)
    assert _drift(samples, "c", "js") > 0.2

    # 6 s later (the recent profile no longer holds the drifted deltas): clean data
    clean, clean_a = _records(T0_MS + 10_000, 4_000, 800, seed=5)
    h.feed(clean)
    h.store.evaluate(wall_ms=T0_MS + 14_000)
    samples = _scrape(h.metrics)
    assert _drift(samples, "c", "js") == pytest.approx(expected_js(clean_a, 800), rel=1e-9)
    assert _drift(samples, "c", "js") < 0.01
    for statistic in ("psi", "js", "ks"):  # every statistic refreshed, whichever reported
        assert _drift(samples, "x", statistic) is not None
    assert not any(  # completeness no longer writes null_rate into the drift gauge
        name == "streamproc_drift_value" and ("statistic", "null_rate") in labels
        for name, labels in samples
    )
    events = ("streamproc_window_events", frozenset({("model", "m"), ("model_version", "1")}))
    assert samples[events] == 800

    h.store.revoke({0})  # a rebalance hands the model to another worker
    samples = _scrape(h.metrics)
    assert not [name for name, labels in samples if ("model", "m") in labels]
