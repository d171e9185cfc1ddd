"""``reference build --label-col``: the reference performance equals scikit-learn's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, brier_score_loss, mean_absolute_error

from streamproc.core.reference_performance import ReferencePerformance
from streamproc.offline.reference import build_reference


def test_binary_reference_performance_matches_sklearn(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    score = rng.random(2_000)
    y = (rng.random(2_000) < score).astype(int)
    path = tmp_path / "ref.csv"
    rows = "\n".join(
        f"{a:.6f},{float(s)!r},{t}"
        for a, s, t in zip(rng.normal(size=2_000), score, y, strict=True)
    )
    path.write_text("x,score,y\n" + rows + "\n")
    prof = build_reference(
        [path], model="m", prediction_col="score", label_col="y", positive_class="1"
    )
    ref = ReferencePerformance.from_metadata(prof.metadata)
    assert ref is not None and ref.calibration is not None
    assert ref.metrics["accuracy"] == pytest.approx(accuracy_score(y, score >= 0.5), rel=1e-12)
    assert ref.metrics["brier"] == pytest.approx(brier_score_loss(y, score), rel=1e-9)
    assert "y" not in prof.features


def test_regression_reference_and_none_without_label(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    pred = rng.normal(size=500)
    truth = pred + rng.normal(0, 0.5, 500)
    path = tmp_path / "reg.csv"
    path.write_text(
        "x,pred,t\n"
        + "\n".join(f"1.5,{float(p)!r},{float(t)!r}" for p, t in zip(pred, truth, strict=True))
        + "\n"
    )
    prof = build_reference([path], model="m", prediction_col="pred", label_col="t")
    ref = ReferencePerformance.from_metadata(prof.metadata)
    assert ref is not None
    assert ref.metrics["mae"] == pytest.approx(mean_absolute_error(truth, pred), rel=1e-9)
    assert (
        ReferencePerformance.from_metadata(
            build_reference([path], model="m", prediction_col="pred").metadata
        )
        is None
    )
