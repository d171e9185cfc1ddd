"""Performance deltas, their dedupe and merge into window state, the window checkpoint
with and without performance, and the labels stage's decode → window grouping (no Kafka)."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from sklearn.metrics import accuracy_score, brier_score_loss, recall_score

from streamproc.contracts.framing import decode_profile_delta
from streamproc.core.errors import ProfileFormatError
from streamproc.core.performance import ClassificationPerformance
from streamproc.core.reference_performance import build
from streamproc.core.regression_performance import RegressionPerformance
from streamproc.monitor import metrics as metrics_module
from streamproc.monitor.delta import ProfileDelta
from streamproc.monitor.labels import DUPLICATE_LABEL, NO_PREDICTION, LabelsLoop, LabelsSettings
from streamproc.monitor.performance_delta import PerformanceDelta, is_performance_delta
from streamproc.monitor.performance_eval import performance_results
from streamproc.monitor.references import ReferenceSet
from streamproc.monitor.state import AggregateState, WindowKey, WindowState
from tests.support.state import T0, W, window


def _data(n: int, seed: int) -> tuple[list[str], list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    score = rng.random(n)
    truth = ["y" if u < s else "n" for u, s in zip(rng.random(n), score, strict=True)]
    pred = ["y" if s >= 0.5 else "n" for s in score]
    return truth, pred, score


def _perf(truth: list[str], pred: list[str], score: np.ndarray) -> ClassificationPerformance:
    perf = ClassificationPerformance(positive="y")
    perf.update(truth, pred, score)
    return perf


def _delta(perf: Any, ranges: list[tuple[int, int, int]], start: int = T0) -> PerformanceDelta:
    return PerformanceDelta("m", "1", start, start + W, "labels", ranges, "p-1", perf)


def test_round_trip_and_kind_is_distinct_from_profile_deltas() -> None:
    truth, pred, score = _data(500, 1)
    delta = _delta(_perf(truth, pred, score), [(0, 10, 99), (2, 5, 7)])
    raw = delta.to_bytes()
    assert is_performance_delta(raw)
    back = PerformanceDelta.from_bytes(raw)
    assert (back.model, back.window_start_ms, back.ranges) == ("m", T0, [(0, 10, 99), (2, 5, 7)])
    assert back.performance == delta.performance
    assert back.performance.metrics()["accuracy"] == pytest.approx(accuracy_score(truth, pred))
    reg = RegressionPerformance()
    reg.update([1.0, 2.0, 4.0], [1.5, 2.0, 3.0])
    assert isinstance(PerformanceDelta.from_bytes(_delta(reg, []).to_bytes()).performance,
                      RegressionPerformance)  # fmt: skip
    with pytest.raises(ProfileFormatError):  # a performance delta is no profile delta
        ProfileDelta.from_bytes(raw)
    with pytest.raises(ProfileFormatError):
        PerformanceDelta.from_bytes(raw[:-3])
    profile_delta = window("m", "1", T0, 10).to_bytes()
    assert not is_performance_delta(profile_delta)


def test_merge_dedupe_and_revision_after_close() -> None:
    state = AggregateState(W, 60_000, 24 * 3_600_000)
    t1, p1, s1 = _data(400, 2)
    t2, p2, s2 = _data(300, 3)
    first = _delta(_perf(t1, p1, s1), [(0, 0, 399)])
    assert state.apply_performance(first)
    assert not state.apply_performance(PerformanceDelta.from_bytes(first.to_bytes()))  # again
    assert state.take_performance_changed() == {WindowKey("m", "1", T0)}
    assert state.apply_performance(_delta(_perf(t2, p2, s2), [(0, 400, 699)]))  # later labels
    perf = state.windows[WindowKey("m", "1", T0)].performance
    assert perf is not None and perf.n == 700
    truth, pred, score = t1 + t2, p1 + p2, np.concatenate([s1, s2])
    pos = np.array([t == "y" for t in truth], dtype=int)
    got = perf.metrics()
    assert got["accuracy"] == pytest.approx(accuracy_score(truth, pred), rel=1e-12)
    assert got["recall"] == pytest.approx(recall_score(truth, pred, pos_label="y"), rel=1e-12)
    assert got["brier"] == pytest.approx(brier_score_loss(pos, score), rel=1e-9)
    # a window opened by labels takes its predictions' profile as it comes
    ws = state.windows[WindowKey("m", "1", T0)]
    assert ws.profile.row_count == 0
    assert state.open_window(("m", "1")) is None  # type: ignore[arg-type]


def test_window_checkpoint_with_and_without_performance() -> None:
    plain = window("m", "1", T0, 50, applied={"p:0": 9})
    raw = plain.to_bytes()
    head, _body = decode_profile_delta(raw)
    assert "performance_bytes" not in head  # the layout checkpoints always had
    back = WindowState.from_bytes(raw)
    assert back.performance is None and back.profile.row_count == 50
    truth, pred, score = _data(250, 4)
    with_perf = window("m", "1", T0, 50, performance=_perf(truth, pred, score))
    back = WindowState.from_bytes(with_perf.to_bytes())
    assert back.performance == with_perf.performance
    assert back.profile.row_count == 50 and back.ops.row_count == with_perf.ops.row_count


def _reference(with_performance: bool = True) -> Any:
    truth, pred, score = _data(20_000, 9)
    prof = window("m", "1", T0, 10).profile
    if with_performance:
        prof.metadata["performance"] = build(truth, scores=score, predicted=pred,
                                             positive="y").to_meta()  # fmt: skip
    return prof


def test_performance_checks_fire_on_flipped_labels_only() -> None:
    truth, pred, score = _data(1_000, 5)
    healthy = window("m", "1", T0, 1_000, performance=_perf(truth, pred, score))
    flipped = ["n" if t == "y" else "y" for t in truth[:500]] + truth[500:]
    drifted = window("m", "1", T0, 1_000, performance=_perf(flipped, pred, score))
    from streamproc.checks.performance_checks import PerformancePolicy

    policy = PerformancePolicy()
    by_check = {r.check: r for r in performance_results(healthy, _reference(), policy)}
    assert not by_check["performance_drop"].breached
    acc = accuracy_score(flipped, pred)
    bad = {r.check: r for r in performance_results(drifted, _reference(), policy)}
    assert bad["performance_drop"].breached and bad["performance_drop"].severity == "critical"
    assert bad["performance_drop"].evidence["value"] == pytest.approx(acc)  # type: ignore[index]
    assert performance_results(drifted, _reference(False), policy) == []


class _Msg:
    def __init__(self, value: bytes | None, offset: int, partition: int = 0) -> None:
        self._v, self._o, self._p = value, offset, partition

    def value(self) -> bytes | None:
        return self._v

    def key(self) -> bytes:
        return b"k"

    def offset(self) -> int:
        return self._o

    def partition(self) -> int:
        return self._p

    def topic(self) -> str:
        return "labels"

    def headers(self) -> None:
        return None

    def error(self) -> None:
        return None


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, list[tuple[str, bytes]]]] = []

    def produce(self, topic: str, value: Any, key: Any, headers: Any) -> None:
        self.sent.append((topic, headers))


def test_labels_stage_groups_by_prediction_window_and_dead_letters_once() -> None:
    settings = LabelsSettings("labels", "profiles", "dlq", "g-labels", window_ms=W)
    loop = LabelsLoop(settings, ReferenceSet.of([_reference()]), metrics_module.create())
    producer = _Producer()
    loop._producer = producer  # type: ignore[assignment]

    def event(rid: str, truth: str, pred_ms: int, **pred: Any) -> bytes:
        body = {"label": "y", "score": 0.9, "timestamp": pred_ms / 1000, **pred}
        return orjson.dumps(
            {
                "model": "m",
                "request_id": rid,
                "timestamp": (pred_ms + 600_000) / 1000,
                "label": truth,
                "prediction": body,
            }
        )

    values = [
        event("a", "y", T0 + 1),
        event("b", "n", T0 + W + 5, label="n", score=0.2),  # next window
        event("a", "y", T0 + 1),  # duplicate
        orjson.dumps({"model": "m", "request_id": "c", "timestamp": T0 / 1000, "label": "y"}),
        b"{",
        event("d", "n", T0 + 2, model_version="1"),
    ]
    loop.process([_Msg(v, i) for i, v in enumerate(values)])  # type: ignore[misc]
    reasons = [dict(h)["streamproc.reason"].decode() for _t, h in producer.sent]
    assert sorted(reasons) == sorted([DUPLICATE_LABEL, NO_PREDICTION, "malformed_json"])
    windows = loop._windows
    assert set(windows) == {("m", "1", T0), ("m", "1", T0 + W)}
    first = windows[("m", "1", T0)]
    assert first.performance.n == 2 and first.ranges == {0: [0, 5]}
    assert first.performance.metrics()["accuracy"] == pytest.approx(0.5)  # a right, d wrong
    loop._rewind()  # an aborted transaction forgets the duplicates' first copies too
    loop.process([_Msg(values[0], 0)])  # type: ignore[list-item]
    assert len(producer.sent) == 3
