"""The demo's synthetic model and its incident: shapes, and what the checks make of them."""

from __future__ import annotations

import numpy as np
import pytest

from streamproc.checks.evaluate import evaluate_window
from streamproc.core.feature_profile import WINDOW_K
from streamproc.core.model_profile import ModelProfile
from streamproc.demo import model
from streamproc.demo.model import Incident, build_reference, income_sd, sample

N = 40_000


@pytest.fixture(scope="module")
def reference() -> ModelProfile:
    return build_reference(n=30_000)


def _null_share(values: np.ndarray) -> float:
    return float(np.mean([v is None for v in values]))


def test_income_mean_moves_by_one_reference_sd() -> None:
    normal = sample(np.random.default_rng(1), N)
    drifted = sample(np.random.default_rng(2), N, Incident())
    sd = income_sd()
    shift = drifted.features["income"].mean() - normal.features["income"].mean()
    assert shift == pytest.approx(sd, rel=0.05)
    assert normal.features["income"].std() == pytest.approx(sd, rel=0.05)


def test_untouched_numeric_features_keep_their_distribution() -> None:
    normal = sample(np.random.default_rng(1), N)
    drifted = sample(np.random.default_rng(2), N, Incident())
    for name in ("age", "credit_score", "loan_amount", "credit_utilization"):
        a, b = normal.features[name], drifted.features[name]
        assert abs(a.mean() - b.mean()) < 0.05 * a.std(), name


def test_employment_years_null_share_is_30_percent_only_in_the_incident() -> None:
    normal = sample(np.random.default_rng(1), N)
    drifted = sample(np.random.default_rng(2), N, Incident())
    assert _null_share(normal.features["employment_years"]) == pytest.approx(0.01, abs=0.003)
    assert _null_share(drifted.features["employment_years"]) == pytest.approx(0.30, abs=0.01)
    for name in ("income", "age", "channel"):
        assert _null_share(drifted.features[name]) == 0.0


def test_new_channel_only_in_the_incident_and_loan_purpose_reweighted() -> None:
    normal = sample(np.random.default_rng(1), N)
    drifted = sample(np.random.default_rng(2), N, Incident())
    assert model.NEW_CHANNEL not in set(normal.features["channel"])
    share = np.mean(drifted.features["channel"] == model.NEW_CHANNEL)
    assert share == pytest.approx(Incident().new_category_share, abs=0.01)
    assert set(normal.features["channel"]) == set(model.CHANNELS)
    business = [np.mean(s.features["loan_purpose"] == "business") for s in (normal, drifted)]
    assert business[0] == pytest.approx(0.05, abs=0.01)
    assert business[1] == pytest.approx(0.32, abs=0.01)


def test_scores_are_probabilities_and_labels_follow_them() -> None:
    s = sample(np.random.default_rng(3), 5_000)
    assert ((s.scores > 0) & (s.scores < 1)).all()
    assert set(s.labels[s.scores >= 0.5]) <= {"deny"}
    assert 0.05 < np.mean(s.labels == "deny") < 0.5
    assert (s.latency_ms > 0).all()


def test_reference_schema_and_baseline_nulls(reference: ModelProfile) -> None:
    assert set(reference.features) == set(model.FEATURES)
    assert {n for n, p in reference.features.items() if p.kind.value == "categorical"} == set(
        model.CATEGORICAL
    )
    assert reference.features["employment_years"].null_rate == pytest.approx(0.01, abs=0.003)
    assert reference.features["income"].nonfinite_rate == 0.0


def _breaches(reference: ModelProfile, incident: Incident | None, seed: int, n: int) -> set:
    s = sample(np.random.default_rng(seed), n, incident)
    kinds = {name: p.kind for name, p in reference.features.items()}
    assert reference.predicted_label is not None
    window = ModelProfile.new(
        model.MODEL,
        model.MODEL_VERSION,
        kinds,
        k=WINDOW_K,
        label_kind=reference.predicted_label.kind,
    )
    window.update_columns(
        s.features, predictions=s.scores, predicted_labels=s.labels, latency_ms=s.latency_ms
    )
    results = evaluate_window(reference, window, None, window_start_ms=0, window_end_ms=1)
    return {(r.check, r.feature) for r in results if r.breached}


@pytest.mark.parametrize("n", [1_000, 30_000])
def test_normal_traffic_breaches_nothing(reference: ModelProfile, n: int) -> None:
    for seed in range(3):
        assert _breaches(reference, None, seed, n) == set()


def test_incident_breaches_exactly_the_scripted_checks(reference: ModelProfile) -> None:
    assert _breaches(reference, Incident(), 5, 30_000) == {
        ("feature_drift", "income"),
        ("feature_drift", "loan_purpose"),
        ("feature_drift", "channel"),  # the new category also moves channel's distribution
        ("cardinality", "channel"),
        ("completeness", "employment_years"),
        ("prediction_drift", "__prediction__"),  # the score follows income
        ("prediction_drift", "__predicted_label__"),
    }
