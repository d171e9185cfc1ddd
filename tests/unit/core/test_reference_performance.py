"""The reference performance travels in the profile metadata, backward compatibly."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, mean_absolute_error

from streamproc.core.errors import ProfileFormatError
from streamproc.core.model_profile import ModelProfile
from streamproc.core.reference_performance import KEY, ReferencePerformance, build


def test_classification_reference_round_trips_through_a_profile() -> None:
    rng = np.random.default_rng(0)
    s = rng.random(5000)
    y = (rng.random(5000) < s).astype(int)
    ref = build(y, scores=s, positive="1")
    assert ref.calibration is not None
    prof = ModelProfile.new("m", "v1", {"x": "numeric"}, metadata={KEY: ref.to_meta()})
    back = ReferencePerformance.from_metadata(ModelProfile.from_bytes(prof.to_bytes()).metadata)
    assert back is not None and back.calibration == ref.calibration
    assert back.metrics["accuracy"] == pytest.approx(accuracy_score(y, s >= 0.5))
    assert back.perf == ref.perf


def test_regression_reference_and_old_profiles() -> None:
    y = np.arange(100.0)
    ref = build(y, scores=y + 1.5, regression=True)
    assert ref.metrics["mae"] == pytest.approx(mean_absolute_error(y, y + 1.5))
    back = ReferencePerformance.from_metadata({KEY: ref.to_meta()})
    assert back is not None and back.calibration is None and back.perf == ref.perf
    assert ReferencePerformance.from_metadata({}) is None  # profiles from before
    with pytest.raises(ProfileFormatError):
        ReferencePerformance.from_metadata({KEY: {"task": "regression", "state": "!!"}})
