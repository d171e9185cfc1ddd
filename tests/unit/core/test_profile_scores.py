"""A window profile keeps its score distribution for CBPE: counted by predicted class,
merged, serialized (a key older readers ignore)."""

from __future__ import annotations

import numpy as np

from streamproc.core.kinds import FeatureKind
from streamproc.core.model_profile import ModelProfile


def _window(scores: np.ndarray, labels: list[str | None]) -> ModelProfile:
    prof = ModelProfile.new("m", "1", {"x": FeatureKind.NUMERIC}, score_task=("deny", 0.5))
    prof.update_columns({"x": scores}, predictions=scores, predicted_labels=labels)
    return prof


def test_scores_by_predicted_class_merge_and_round_trip() -> None:
    rng = np.random.default_rng(3)
    s1, s2 = rng.random(500), rng.random(300)
    l1: list[str | None] = list(np.where(rng.random(500) < 0.5, "deny", "approve"))
    l2: list[str | None] = [None] * 300  # no predicted label: by the threshold
    a, b = _window(s1, l1), _window(s2, l2)
    merged = a.merge(b)
    back = ModelProfile.from_bytes(merged.to_bytes())
    assert back == merged and back.scores is not None
    pos = np.concatenate([s1[np.array(l1) == "deny"], s2[s2 >= 0.5]])
    neg = np.concatenate([s1[np.array(l1) != "deny"], s2[s2 < 0.5]])
    bins = np.linspace(0, 1, 1025)
    assert np.array_equal(back.scores.pred_pos, np.histogram(pos, bins)[0])
    assert np.array_equal(back.scores.pred_neg, np.histogram(neg, bins)[0])


def test_a_profile_without_a_score_task_keeps_none() -> None:
    prof = ModelProfile.new("m", "1", {"x": FeatureKind.NUMERIC})
    prof.update_columns({"x": np.ones(3)}, predictions=np.ones(3))
    assert prof.scores is None and ModelProfile.from_bytes(prof.to_bytes()).scores is None
