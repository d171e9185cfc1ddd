"""The label join over the in-memory and the RocksDB store: every arrival pattern."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

from streamproc.core.performance import ClassificationPerformance
from streamproc.labels.join import (
    DAY_MS,
    NO_PREDICTION,
    PAST_RETENTION,
    JoinOutput,
    JoinPolicy,
    LabelJoin,
    PredictionRows,
)
from streamproc.labels.kv import KV, MemoryKV, RocksKV
from streamproc.labels.store import PendingStore, sample_hash

T0 = 1_714_000_000_000
HOUR = 3_600_000
WINDOW = 60_000


@pytest.fixture(params=["memory", "rocksdb"])
def kv_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator:
    made: list[KV] = []

    def make() -> KV:
        kv: KV = MemoryKV() if request.param == "memory" else RocksKV(tmp_path / f"db{len(made)}")
        made.append(kv)
        return kv

    yield make
    for kv in made:
        kv.close()


def _join(kv: KV, **policy: int | float) -> LabelJoin:
    return LabelJoin(PendingStore(kv), JoinPolicy(**policy))  # type: ignore[arg-type]


def _preds(ids: list[str], times: list[int], scores: list[float] | None = None) -> PredictionRows:
    scores = scores or [0.5] * len(ids)
    return PredictionRows(
        ["m"] * len(ids), ids, times, [t // WINDOW * WINDOW for t in times], ["v1"] * len(ids),
        [None] * len(ids), scores,
    )  # fmt: skip


def _labels(join: LabelJoin, ids: list[str], times: list[int], labels: list) -> JoinOutput:
    return join.apply_labels(["m"] * len(ids), ids, times, labels)


def test_delayed_labels_match_their_window(kv_factory) -> None:
    j = _join(kv_factory())
    j.apply_predictions(_preds(["a", "b"], [T0, T0 + WINDOW + 5]))
    j.advance(T0 + 3 * DAY_MS)
    out = _labels(j, ["a", "b"], [T0 + 2 * DAY_MS, T0 + 5 * DAY_MS], [1, 0])
    assert [
        (m.prediction.request_id, m.label, m.prediction.window_start_ms) for m in out.matched
    ] == [
        ("a", 1, T0 // WINDOW * WINDOW),
        ("b", 0, (T0 + WINDOW + 5) // WINDOW * WINDOW),
    ]
    assert out.matched[0].lag_ms == 2 * DAY_MS
    assert out.pending == 2 and out.waiting == 0


def test_out_of_order_labels_all_match(kv_factory) -> None:
    j = _join(kv_factory())
    ids = [f"r{i}" for i in range(200)]
    j.apply_predictions(_preds(ids, [T0 + i * 1000 for i in range(200)]))
    order = list(range(200))
    random.Random(1).shuffle(order)
    out = _labels(
        j, [ids[i] for i in order], [T0 + HOUR + i for i in order], [i % 2 for i in order]
    )
    assert sorted(m.prediction.request_id for m in out.matched) == sorted(ids)
    assert all(m.label == int(m.prediction.request_id[1:]) % 2 for m in out.matched)


def test_label_before_prediction_waits_for_the_grace_period(kv_factory) -> None:
    j = _join(kv_factory(), grace_ms=HOUR)
    out = _labels(j, ["early", "never"], [T0, T0], ["x", "y"])
    assert out.matched == [] and out.waiting == 2
    j.advance(T0 + HOUR // 2)
    out = j.apply_predictions(_preds(["early"], [T0 - 1000]))
    assert [(m.prediction.request_id, m.label) for m in out.matched] == [("early", "x")]
    assert out.waiting == 1
    out = j.advance(T0 + HOUR + 1)
    assert [(u.request_id, u.reason) for u in out.unmatched] == [("never", NO_PREDICTION)]
    assert out.unmatched[0].to_event() == {
        "model": "m", "request_id": "never", "timestamp": T0, "label": "y",
    }  # fmt: skip
    # the prediction after the grace period is stored, not matched
    out = j.apply_predictions(_preds(["never"], [T0]))
    assert out.matched == [] and out.pending == 2


def test_duplicates_and_corrections(kv_factory) -> None:
    j = _join(kv_factory())
    j.apply_predictions(_preds(["a"], [T0]))
    out = _labels(
        j, ["a", "a", "a", "a", "a"], [T0 + 1, T0 + 2, T0 + 3, T0 + 4, T0 + 5], [1, 1, 0, 0, 1]
    )
    assert [m.label for m in out.matched] == [1]
    assert out.duplicates == 2  # the second 1, the second 0
    assert [(c.first_label, c.label) for c in out.corrections] == [(1, 0), (1, 1)]
    assert out.corrections[0].window_start_ms == T0 // WINDOW * WINDOW
    # types matter: True is not 1 as a JSON value
    out = _labels(j, ["a"], [T0 + 6], [True])
    assert len(out.corrections) == 1


def test_duplicates_while_waiting(kv_factory) -> None:
    j = _join(kv_factory())
    out = _labels(j, ["w", "w", "w"], [T0, T0 + 1, T0 + 2], ["x", "x", "z"])
    assert out.duplicates == 1 and [
        (c.first_label, c.label, c.window_start_ms) for c in out.corrections
    ] == [("x", "z", None)]
    out = j.apply_predictions(_preds(["w"], [T0]))
    assert [m.label for m in out.matched] == ["x"]
    out = _labels(j, ["w"], [T0 + 3], ["z"])
    assert out.duplicates == 1  # equal to the latest label seen


def test_unknown_ids_are_unmatched_after_grace(kv_factory) -> None:
    j = _join(kv_factory(), grace_ms=HOUR)
    j.apply_predictions(_preds(["known"], [T0]))
    out = _labels(j, ["known", "nope"], [T0 + 5, T0 + 5], [1, 1])
    assert len(out.matched) == 1 and out.waiting == 1
    out = j.advance(T0 + 2 * HOUR)
    assert [(u.request_id, u.reason) for u in out.unmatched] == [("nope", NO_PREDICTION)]
    assert out.waiting == 0


def test_retention_expires_predictions_and_late_labels(kv_factory) -> None:
    j = _join(kv_factory(), horizon_ms=7 * DAY_MS, grace_ms=HOUR)
    j.apply_predictions(_preds(["old", "old2", "kept"], [T0, T0 + 1, T0 + 3 * DAY_MS]))
    _labels(j, ["old2"], [T0 + 10], [1])
    out = j.advance(T0 + 7 * DAY_MS + 2)
    assert out.expired == {("m", T0 // WINDOW * WINDOW): 1}  # old2 was labeled
    assert out.pending == 1
    out = _labels(j, ["old", "kept"], [T0 + 1, T0 + 7 * DAY_MS], [1, 0])  # cut: T0 + 2
    assert [(u.request_id, u.reason) for u in out.unmatched] == [("old", PAST_RETENTION)]
    assert [m.prediction.request_id for m in out.matched] == ["kept"]
    out = j.apply_predictions(_preds(["late"], [T0]))
    assert out.late_predictions == 1 and out.pending == 1


def test_outputs_do_not_depend_on_max_work(kv_factory) -> None:
    def run(max_work: int) -> tuple:
        j = _join(kv_factory(), horizon_ms=DAY_MS, grace_ms=HOUR, max_work=max_work)
        rng = random.Random(7)
        matched, unmatched, expired = [], [], {}
        t = T0
        for step in range(40):
            ids = [f"p{step}-{i}" for i in range(25)]
            j.apply_predictions(_preds(ids, [t + i for i in range(25)]))
            label_ids = [f"p{rng.randrange(step + 1)}-{rng.randrange(30)}" for _ in range(25)]
            outs = [_labels(j, label_ids, [t + 10] * 25, [1] * 25), j.advance(t)]
            for o in outs:
                matched += [m.prediction.request_id for m in o.matched]
                unmatched += [(u.request_id, u.reason) for u in o.unmatched]
                for k, v in o.expired.items():
                    expired[k] = expired.get(k, 0) + v
            t += HOUR
        for _ in range(2000):
            o = j.advance(t + 2 * DAY_MS)
            unmatched += [(u.request_id, u.reason) for u in o.unmatched]
            for k, v in o.expired.items():
                expired[k] = expired.get(k, 0) + v
            if o.pending == o.waiting == 0:
                break
        return sorted(matched), sorted(unmatched), expired, j.store.meta["pending"]

    big, small = run(100_000), run(3)
    assert big == small
    assert big[3] == 0 and len(big[0]) > 100 and len(big[1]) > 50


def test_replay_from_the_changelog_gives_the_same_state(kv_factory) -> None:
    a = _join(kv_factory())
    log: list = []
    log += a.apply_predictions(_preds(["x", "y"], [T0, T0 + 1])).changelog
    log += _labels(a, ["x", "z"], [T0 + 5, T0 + 6], [1, 0]).changelog
    log += a.advance(T0 + 10).changelog
    b_kv = kv_factory()
    b_store = PendingStore(b_kv)
    b_store.restore(log)
    b = LabelJoin(b_store)
    assert b.store.meta == a.store.meta
    out_a = a.apply_predictions(_preds(["z"], [T0]))
    out_b = b.apply_predictions(_preds(["z"], [T0]))
    assert out_a.matched == out_b.matched and out_a.changelog == out_b.changelog


def test_state_survives_reopening_rocksdb(tmp_path: Path) -> None:
    kv = RocksKV(tmp_path / "db")
    j = LabelJoin(PendingStore(kv))
    j.apply_predictions(_preds(["a"], [T0], [0.9]))
    kv.close()
    kv = RocksKV(tmp_path / "db")
    out = LabelJoin(PendingStore(kv)).apply_labels(["m"], ["a"], [T0 + 1], [1])
    assert out.matched[0].prediction.score == 0.9 and out.pending == 1
    kv.close()


def test_budget_halves_the_sample_rate_deterministically(kv_factory) -> None:
    j = _join(kv_factory(), budget=300, max_work=150)
    ids = [f"id{i}" for i in range(1000)]
    j.apply_predictions(_preds(ids, [T0] * 1000))
    rates = []
    for _ in range(12):
        rates.append(j.advance(T0).sample_rate)
    assert rates[0] == 0.5 and min(rates) == 0.25
    assert j.store.meta["pending"] <= 300
    kept = {p.request_id for p in j.store.predictions_from(b"", 10_000)[0]}
    assert kept == {i for i in ids if sample_hash(i) < 0.25}
    out = _labels(j, ids, [T0 + 1] * 1000, [1] * 1000)
    assert len(out.matched) == len(kept)
    assert out.sampled_out_labels == 1000 - len(kept) and out.waiting == 0
    new = j.apply_predictions(_preds([f"new{i}" for i in range(400)], [T0] * 400))
    assert new.sampled_out_predictions == sum(sample_hash(f"new{i}") >= 0.25 for i in range(400))


def test_hostile_ids_are_bounded_keys(kv_factory) -> None:
    j = _join(kv_factory())
    huge = "x" * 100_000
    j.apply_predictions(PredictionRows(["m" * 70_000], [huge], [T0], [T0], ["v"], [None], [0.1]))
    out = j.apply_labels(["m" * 70_000], [huge], [T0 + 1], ["\x00\ud7ff"])
    assert len(out.matched) == 1


def test_joined_metrics_equal_sklearn_on_the_joined_truth(kv_factory) -> None:
    """Delayed, shuffled, duplicated and corrected labels; metrics per window from the
    join equal scikit-learn's on the first label of each prediction (known here)."""
    rng = np.random.default_rng(3)
    n = 3000
    ids = [f"q{i}" for i in range(n)]
    times = (T0 + np.sort(rng.integers(0, 10 * WINDOW, n))).tolist()
    truth = rng.random(n) < 0.4
    scores = np.clip(rng.beta(2, 4, n) + 0.3 * truth, 0, 1)
    j = _join(kv_factory(), grace_ms=HOUR)
    # a tenth of the labels come first; the rest after, delayed, shuffled, some twice
    first = rng.random(n) < 0.1
    early = np.flatnonzero(first).tolist()
    _labels(
        j, [ids[i] for i in early], [times[i] + 1 for i in early], [int(truth[i]) for i in early]
    )
    matched = []
    for chunk in np.array_split(np.arange(n), 10):
        c = chunk.tolist()
        out = j.apply_predictions(
            _preds([ids[i] for i in c], [times[i] for i in c], scores[c].tolist())
        )
        matched += out.matched
    late = [i for i in rng.permutation(n).tolist() if not first[i]]
    dup = rng.choice(late, 300).tolist()
    wrong = rng.choice(late, 100).tolist()
    lab_ids = [ids[i] for i in late + dup + wrong]
    lab_vals = [int(truth[i]) for i in late + dup] + [1 - int(truth[i]) for i in wrong]
    out = _labels(j, lab_ids, [T0 + DAY_MS] * len(lab_ids), lab_vals)
    matched += out.matched
    assert len(matched) == n and out.corrections and out.duplicates >= 300
    per_window: dict[int, ClassificationPerformance] = {}
    for m in matched:
        perf = per_window.setdefault(
            m.prediction.window_start_ms, ClassificationPerformance(positive="1")
        )
        perf.update([m.label], [None], np.array([m.prediction.score]), np.array([m.lag_ms / 1000]))
    total = ClassificationPerformance(positive="1")
    for w in sorted(per_window):
        total = total.merge(per_window[w])
        sel = [i for i in range(n) if times[i] // WINDOW * WINDOW == w]
        got = per_window[w].metrics()
        assert got["accuracy"] == pytest.approx(accuracy_score(truth[sel], scores[sel] >= 0.5))
    m_all = total.metrics()
    assert m_all["accuracy"] == pytest.approx(accuracy_score(truth, scores >= 0.5))
    assert (
        abs(m_all["roc_auc"] - roc_auc_score(truth, scores)) <= m_all["roc_auc_error_bound"] + 1e-12
    )
