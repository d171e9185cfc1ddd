"""CBPE against realized performance computed by scikit-learn on generated streams."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, precision_recall_fscore_support, roc_auc_score

from streamproc.core.cbpe import CalibrationMap, Estimate, ScoreDistribution, estimate, pav

TOL = 0.02
"""Stated tolerance: |estimate − realized| ≤ 0.02 for accuracy, precision, recall, F1 and
ROC AUC at 20 000 predictions per window (≈ 4–6 accuracy standard errors)."""


def _stream(n: int, rng: np.random.Generator, a: float, b: float, sharpen: float = 1.0):
    """True probabilities ~ Beta(a, b); labels ~ Bernoulli(them); the model's score is
    the true probability pushed through logit ↦ sharpen·logit (1: calibrated)."""
    p = np.clip(rng.beta(a, b, n), 1e-6, 1 - 1e-6)
    y = rng.random(n) < p
    logit = np.log(p / (1 - p)) * sharpen
    return 1 / (1 + np.exp(-logit)), y


def _realized(score: np.ndarray, y: np.ndarray) -> dict[str, float]:
    pred = score >= 0.5
    p, r, f, _ = precision_recall_fscore_support(y, pred, average="binary")
    return {
        "accuracy": accuracy_score(y, pred),
        "precision": p,
        "recall": r,
        "f1": f,
        "roc_auc": roc_auc_score(y, score),
    }


def _estimate(cmap: CalibrationMap, score: np.ndarray, parts: int = 20) -> Estimate:
    dist = ScoreDistribution(positive="1")
    for chunk in np.array_split(score, parts):  # windows built from merged deltas
        part = ScoreDistribution(positive="1")
        part.update(chunk)
        dist = dist.merge(ScoreDistribution.from_bytes(part.to_bytes()))
    return estimate(dist, cmap)


def _assert_close(est: Estimate, real: dict[str, float]) -> None:
    for name, value in real.items():
        got = getattr(est, name)
        assert got is not None
        assert abs(got - value) <= TOL, (name, got, value)


@pytest.mark.parametrize("sharpen", [1.0, 2.0, 0.6])
def test_stable_stream_estimate_matches_realized(sharpen: float) -> None:
    rng = np.random.default_rng(int(sharpen * 10))
    ref_s, ref_y = _stream(50_000, rng, 0.6, 0.9, sharpen)
    cmap = CalibrationMap.fit_scores(ref_s, ref_y)
    score, y = _stream(20_000, rng, 0.6, 0.9, sharpen)
    est = _estimate(cmap, score)
    _assert_close(est, _realized(score, y))
    assert est.accuracy_se is not None and est.accuracy_se < 0.005


def test_covariate_shift_toward_half_lowers_the_estimate() -> None:
    rng = np.random.default_rng(5)
    ref_s, ref_y = _stream(50_000, rng, 0.6, 0.9, 1.5)
    cmap = CalibrationMap.fit_scores(ref_s, ref_y)
    base_s, base_y = _stream(20_000, rng, 0.6, 0.9, 1.5)
    shift_s, shift_y = _stream(20_000, rng, 4.0, 4.0, 1.5)  # scores crowd 0.5
    base, shifted = _estimate(cmap, base_s), _estimate(cmap, shift_s)
    real_base, real_shift = _realized(base_s, base_y), _realized(shift_s, shift_y)
    assert real_shift["accuracy"] < real_base["accuracy"] - 0.1  # the known effect
    assert shifted.accuracy < base.accuracy - 0.1  # type: ignore[operator]
    assert shifted.roc_auc < base.roc_auc - 0.05  # type: ignore[operator]
    _assert_close(shifted, real_shift)


def test_calibration_map_is_monotone_and_round_trips() -> None:
    rng = np.random.default_rng(6)
    s, y = _stream(30_000, rng, 1.0, 1.0, 2.0)
    cmap = CalibrationMap.fit_scores(s, y)
    per_bin = cmap.per_bin()
    assert (np.diff(per_bin) >= 0).all()
    assert per_bin[0] >= 0 and per_bin[-1] <= 1
    # overconfident scores: calibrated values are pulled toward 0.5
    assert cmap(np.array([0.95]))[0] < 0.9 and cmap(np.array([0.05]))[0] > 0.1
    assert CalibrationMap.from_meta(cmap.to_meta()) == cmap
    with pytest.raises(ValueError):
        CalibrationMap.from_meta({"starts": [0, 5], "values": [0.6, 0.2]})


def test_pav_matches_a_brute_force_isotonic_fit() -> None:
    y = np.array([0.1, 0.5, 0.3, 0.2, 0.9, 0.8, 1.0])
    w = np.array([1.0, 2.0, 1.0, 1.0, 3.0, 1.0, 0.0])
    fit = pav(y, w)
    assert (np.diff(fit) >= 0).all()
    # the blocks: [0.1], [0.5, 0.3, 0.2] pooled (weights 2,1,1) = 0.375, [0.9, 0.8] = 0.875
    assert fit.tolist() == pytest.approx([0.1, 0.375, 0.375, 0.375, 0.875, 0.875, 1.0])


def test_predicted_labels_override_threshold() -> None:
    dist = ScoreDistribution(positive="fraud")
    dist.update(np.array([0.9, 0.2, 0.7, np.nan]), ["fraud", "fraud", "ok", None])
    assert dist.pred_pos.sum() == 2 and dist.pred_neg.sum() == 1 and dist.unscored == 1
    cmap = CalibrationMap((0,), (0.5,))
    est = estimate(dist, cmap)
    assert est.tp == pytest.approx(1.0) and est.accuracy == pytest.approx(0.5)
