"""Realized performance accumulators against scikit-learn on the raw arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    confusion_matrix,
    log_loss,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    precision_recall_fscore_support,
    r2_score,
    roc_auc_score,
)

from streamproc.core.errors import ProfileFormatError
from streamproc.core.intervals import hanley_mcneil_se, wilson_interval
from streamproc.core.performance import (
    MAX_CLASSES,
    OTHER,
    ClassificationPerformance,
    class_key,
)
from streamproc.core.regression_performance import RegressionPerformance


def _binary_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.3
    score = np.clip(rng.beta(2, 5, n) + 0.35 * y, 0.0, 1.0)
    pred = score >= 0.5
    return y.astype(int), pred.astype(int), score


def _ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    b = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for k in range(bins):
        sel = b == k
        if sel.any():
            total += sel.sum() * abs(y[sel].mean() - p[sel].mean())
    return total / len(y)


def _check_binary(perf: ClassificationPerformance, y, pred, score) -> None:
    m = perf.metrics()
    p, r, f, _ = precision_recall_fscore_support(y, pred, average="binary", pos_label=1)
    assert m["n"] == len(y)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=1e-12)
    assert m["precision"] == pytest.approx(p, abs=1e-12)
    assert m["recall"] == pytest.approx(r, abs=1e-12)
    assert m["f1"] == pytest.approx(f, abs=1e-12)
    exact_auc = roc_auc_score(y, score)
    assert m["roc_auc_error_bound"] is not None
    assert abs(m["roc_auc"] - exact_auc) <= m["roc_auc_error_bound"] + 1e-12
    assert m["roc_auc_error_bound"] < 2e-3
    assert m["log_loss"] == pytest.approx(log_loss(y, score), rel=1e-9)
    assert m["brier"] == pytest.approx(brier_score_loss(y, score), rel=1e-9)
    assert m["ece"] == pytest.approx(_ece(y, score), abs=1e-12)


def test_binary_metrics_match_sklearn() -> None:
    y, pred, score = _binary_data(20_000, 1)
    perf = ClassificationPerformance(positive="1")
    perf.update(y, pred, score)
    _check_binary(perf, y, pred, score)


def test_binary_labels_derived_from_score_threshold() -> None:
    y, pred, score = _binary_data(5000, 2)
    perf = ClassificationPerformance(positive="1", threshold=0.5)
    perf.update(y, [None] * len(y), score)  # no predicted label: score >= 0.5 → "1"
    _check_binary(perf, y, pred, score)


def test_merge_of_many_windows_equals_one_accumulator() -> None:
    y, pred, score = _binary_data(30_000, 3)
    whole = ClassificationPerformance(positive="1")
    whole.update(y, pred, score)
    merged = ClassificationPerformance(positive="1")
    for chunk in np.array_split(np.arange(len(y)), 300):
        part = ClassificationPerformance(positive="1")
        part.update(y[chunk], pred[chunk], score[chunk])
        merged = merged.merge(ClassificationPerformance.from_bytes(part.to_bytes()))
    assert np.array_equal(merged.confusion, whole.confusion)
    assert np.array_equal(merged.score_pos, whole.score_pos)
    assert np.array_equal(merged.calib_count, whole.calib_count)
    mm, wm = merged.metrics(), whole.metrics()
    for name, value in wm.items():
        assert mm[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
    _check_binary(merged, y, pred, score)


@pytest.mark.parametrize("positive", ["deny", None])
def test_tiny_updates_whose_predictions_bring_a_new_class_match_sklearn(
    positive: str | None,
) -> None:
    """Updates of 1–4 rows, as a live join flushes them: a prediction often names a
    class that no label of the accumulator has yet (CI: a live window's accuracy was off
    by 2/500 with n right)."""
    rng = np.random.default_rng(12)
    classes = ["approve", "deny", "refer"] if positive is None else ["approve", "deny"]
    y = list(rng.choice(classes, 3000))
    pred = [c if rng.random() < 0.6 else str(rng.choice(classes)) for c in y]
    merged = ClassificationPerformance(positive=positive)
    at = 0
    while at < len(y):
        k = int(rng.integers(1, 5))
        part = ClassificationPerformance(positive=positive)
        part.update(y[at : at + k], pred[at : at + k])
        merged = merged.merge(part)
        at += k
    single = ClassificationPerformance(positive=positive)
    for t, p in zip(y, pred, strict=True):
        single.update([t], [p])
    want = confusion_matrix(y, pred, labels=sorted(classes))
    for perf in (merged, single):
        assert perf.classes == tuple(sorted(classes))
        assert np.array_equal(perf.confusion, want)
        assert perf.metrics()["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=1e-12)
    first = ClassificationPerformance(positive=positive)
    first.update(["deny", "deny", "deny"], ["approve", "approve", "deny"])
    assert first.metrics()["accuracy"] == pytest.approx(1 / 3)


def test_merge_does_not_mutate_and_aligns_classes() -> None:
    a = ClassificationPerformance()
    a.update(["cat", "dog"], ["cat", "cat"])
    b = ClassificationPerformance()
    b.update(["bird", "dog"], ["bird", "dog"])
    before = a.to_bytes()
    ab = a.merge(b)
    assert a.to_bytes() == before
    assert ab.classes == ("bird", "cat", "dog")
    assert ab.priors() == {"bird": 1, "cat": 1, "dog": 2}
    assert ab.metrics()["accuracy"] == pytest.approx(3 / 4)


def test_multiclass_macro_micro_match_sklearn() -> None:
    rng = np.random.default_rng(4)
    classes = np.array(["a", "b", "c", "d"])
    y = classes[rng.integers(0, 4, 8000)]
    pred = np.where(rng.random(8000) < 0.7, y, classes[rng.integers(0, 4, 8000)])
    pred[pred == "d"] = np.where(rng.random((pred == "d").sum()) < 0.5, "a", "d")
    perf = ClassificationPerformance()
    for chunk in np.array_split(np.arange(8000), 7):
        part = ClassificationPerformance()
        part.update(list(y[chunk]), list(pred[chunk]))
        perf = perf.merge(part)
    m = perf.metrics()
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    for avg in ("macro", "micro"):
        p, r, f, _ = precision_recall_fscore_support(y, pred, average=avg, zero_division=0)
        assert m[f"precision_{avg}"] == pytest.approx(p)
        assert m[f"recall_{avg}"] == pytest.approx(r)
        assert m[f"f1_{avg}"] == pytest.approx(f)


def test_class_cap_pools_rare_classes() -> None:
    perf = ClassificationPerformance()
    names = [f"c{i:04d}" for i in range(MAX_CLASSES + 50)]
    perf.update(names, names)
    assert len(perf.classes) == MAX_CLASSES
    assert OTHER in perf.classes
    assert perf.n == len(names)


def test_class_key_rules() -> None:
    assert class_key(True) == "1" and class_key(False) == "0"
    assert class_key(1) == "1" and class_key(1.0) == "1" and class_key(2.5) == "2.5"
    assert class_key("x") == "x"
    assert class_key(None) is None and class_key(float("nan")) is None


def test_unusable_and_invalid_scores_are_counted_not_used() -> None:
    perf = ClassificationPerformance(positive="1")
    perf.update([1, None, 0, 1], [1, 1, None, 0], np.array([0.9, 0.8, 2.0, np.nan]))
    # row 2: no label, score 2.0 is not a probability -> no class, unusable
    assert perf.n == 2 and perf.unusable == 2
    assert perf.n_scored == 1


def test_wilson_and_hanley_mcneil() -> None:
    iv = wilson_interval(81, 263)  # Wilson's worked example (Newcombe 1998, table I)
    assert iv is not None
    assert (iv.low, iv.high) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    # Hanley & McNeil 1982, eq. 2 by hand: Q1 = 0.9/1.1, Q2 = 1.62/1.9
    q1, q2 = 0.9 / 1.1, 1.62 / 1.9
    by_hand = math.sqrt((0.09 + 49 * (q1 - 0.81) + 49 * (q2 - 0.81)) / 2500)
    assert hanley_mcneil_se(0.9, 50, 50) == pytest.approx(by_hand, rel=1e-12)
    # and it matches the spread of sklearn's AUC over replicates (exponential scores,
    # the model behind Q1/Q2): negatives Exp(1), positives Exp(1/θ), AUC = θ/(1+θ)
    rng = np.random.default_rng(11)
    aucs = [
        roc_auc_score(
            np.r_[np.ones(60), np.zeros(90)], np.r_[rng.exponential(4, 60), rng.exponential(1, 90)]
        )
        for _ in range(400)
    ]
    assert np.std(aucs) == pytest.approx(hanley_mcneil_se(0.8, 60, 90), rel=0.15)
    perf = ClassificationPerformance(positive="1")
    y, pred, score = _binary_data(2000, 5)
    perf.update(y, pred, score)
    ivs = perf.intervals()
    assert ivs["accuracy"].low < perf.metrics()["accuracy"] < ivs["accuracy"].high  # type: ignore[operator]
    assert {"precision", "recall", "roc_auc"} <= ivs.keys()


def test_classification_bytes_round_trip_and_corruption() -> None:
    y, pred, score = _binary_data(500, 6)
    perf = ClassificationPerformance(positive="1")
    perf.update(y, pred, score, lag_s=np.full(len(y), 30.0))
    back = ClassificationPerformance.from_bytes(perf.to_bytes())
    assert back == perf
    assert back.lag.get_quantile(0.5) == 30.0
    assert len(perf.to_bytes()) < 12_000
    with pytest.raises(ProfileFormatError):
        ClassificationPerformance.from_bytes(perf.to_bytes()[:-3])


# ------------------------------------------------------------------------- regression


def _regression_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.gamma(3.0, 10.0, n) + 1.0
    pred = y + rng.normal(0.5, 4.0, n)
    return y, pred


def _check_regression(perf: RegressionPerformance, y: np.ndarray, pred: np.ndarray) -> None:
    m = perf.metrics()
    assert m["n"] == len(y)
    assert m["mae"] == pytest.approx(mean_absolute_error(y, pred), rel=1e-10)
    assert m["rmse"] == pytest.approx(math.sqrt(mean_squared_error(y, pred)), rel=1e-10)
    assert m["mape"] == pytest.approx(mean_absolute_percentage_error(y, pred), rel=1e-10)
    assert m["bias"] == pytest.approx(float(np.mean(pred - y)), rel=1e-9)
    assert m["r2"] == pytest.approx(r2_score(y, pred), rel=1e-10)
    exact_median = float(np.median(pred - y))
    rank = float(np.mean((pred - y) <= m["residual_p50"]))  # type: ignore[operator]
    assert abs(rank - 0.5) < 0.02, exact_median


def test_regression_metrics_match_sklearn() -> None:
    y, pred = _regression_data(20_000, 7)
    perf = RegressionPerformance()
    perf.update(y, pred)
    _check_regression(perf, y, pred)


def test_regression_merge_of_many_windows() -> None:
    y, pred = _regression_data(30_000, 8)
    merged = RegressionPerformance()
    for chunk in np.array_split(np.arange(len(y)), 250):
        part = RegressionPerformance()
        part.update(y[chunk], pred[chunk])
        merged = merged.merge(RegressionPerformance.from_bytes(part.to_bytes()))
    whole = RegressionPerformance()
    whole.update(y, pred)
    assert merged.n == whole.n
    for name, value in whole.metrics().items():
        if name.startswith("residual_"):
            continue  # sketch quantiles: checked by rank in _check_regression
        assert merged.metrics()[name] == pytest.approx(value, rel=1e-9), name
    _check_regression(merged, y, pred)


def test_regression_intervals_cover_population_error() -> None:
    rng = np.random.default_rng(9)
    hits_mae = hits_rmse = 0
    for _ in range(200):
        y = rng.normal(0, 1, 400)
        pred = y + rng.normal(0, 2.0, 400)  # |e| mean = 2·sqrt(2/π), RMSE = 2
        perf = RegressionPerformance()
        perf.update(y, pred)
        iv = perf.intervals()
        hits_mae += iv["mae"].low <= 2 * math.sqrt(2 / math.pi) <= iv["mae"].high
        hits_rmse += iv["rmse"].low <= 2.0 <= iv["rmse"].high
    assert 0.9 <= hits_mae / 200 <= 0.99
    assert 0.9 <= hits_rmse / 200 <= 0.99


def test_regression_bad_values_are_unusable() -> None:
    perf = RegressionPerformance()
    perf.update([1.0, None, "x", 3.0, 10**400], [1.5, 2.0, 2.0, float("inf"), 1.0])
    assert perf.n == 1 and perf.unusable == 4
    back = RegressionPerformance.from_bytes(perf.to_bytes())
    assert back == perf
    assert RegressionPerformance().metrics()["mae"] is None
