"""evaluate_window: completeness, schema, cardinality, degenerate output, freshness; and
evaluate_staleness."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from streamproc.checks.evaluate import EvaluationPolicy, evaluate_staleness
from streamproc.checks.result import CheckResult
from streamproc.core.kinds import FeatureKind
from streamproc.core.model_profile import ModelProfile
from tests.unit.checks.test_evaluate import (
    KINDS,
    MODEL,
    T0,
    VERSION,
    by_key,
    clean_window,
    columns,
    evaluate,
    items,
    labels,
    ops_profile,
    reference,
    scores,
    window,
)

NUM = {"x3": FeatureKind.NUMERIC}


@pytest.fixture(scope="module")
def ref() -> ModelProfile:
    return reference()


def with_nulls(rng: np.random.Generator, n: int, nulls: int) -> np.ma.MaskedArray:
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, nulls, replace=False)] = True
    return np.ma.masked_array(rng.normal(0, 1, n), mask=mask)


def one_feature(n: int, nulls: int, *, seed: int, build: bool = False) -> ModelProfile:
    rng = np.random.default_rng(seed)
    col = {"x3": with_nulls(rng, n, nulls)}
    if build:
        return ModelProfile.build_reference(MODEL, VERSION, col, feature_kinds=NUM)
    return window(col, kinds=NUM)


# ------------------------------------------------------------------------ completeness


@pytest.mark.parametrize(
    ("nulls", "severity", "threshold"),
    [(250, "warning", 0.04), (750, "critical", 0.10), (150, None, 0.04)],
)
def test_null_rate_against_reference(nulls: int, severity: str | None, threshold: float) -> None:
    """Reference 2% nulls: warning above 2× (4%), critical above 5× (10%)."""
    ref = one_feature(20_000, 400, seed=1, build=True)
    r = by_key(evaluate(ref, one_feature(5_000, nulls, seed=2)))[("completeness", "x3")]
    assert r.statistic == "null_rate"
    assert r.value == pytest.approx(nulls / 5_000)
    assert r.threshold == pytest.approx(threshold)
    assert (r.breached, r.severity) == (severity is not None, severity)
    assert items(r)[0]["null_rate_reference"] == pytest.approx(0.02)


def test_tiny_absolute_null_change_does_not_fire() -> None:
    """0.01% → 0.03% is 3× the reference, but under the 1-point absolute floor."""
    ref = one_feature(20_000, 2, seed=3, build=True)
    r = by_key(evaluate(ref, one_feature(10_000, 3, seed=4)))[("completeness", "x3")]
    assert r.value == pytest.approx(0.0003)
    assert r.threshold == pytest.approx(0.0101)
    assert not r.breached


def test_null_spike_from_zero_is_critical(ref: ModelProfile) -> None:
    rng = np.random.default_rng(5)
    cols = columns(rng, 5_000)
    cols["x3"] = with_nulls(rng, 5_000, 600)
    r = by_key(evaluate(ref, window(cols)))[("completeness", "x3")]
    assert (r.breached, r.severity, r.value) == (True, "critical", pytest.approx(0.12))
    assert r.summary.startswith("x3 has too many nulls: null rate 0.12 > 0.01")


# ------------------------------------------------------------------------------ schema


def test_type_invalid_values(ref: ModelProfile) -> None:
    rng = np.random.default_rng(6)
    cols = columns(rng, 5_000)
    x4 = cols["x4"].astype(object)
    x4[:150] = "NaN-as-text"  # 3% strings in a numeric feature
    cols["x4"] = x4
    res = by_key(evaluate(ref, window(cols)))
    r = res[("schema", "x4")]
    assert (r.statistic, r.severity) == ("invalid_rate_increase", "warning")
    assert r.value == pytest.approx(0.03)
    assert items(r)[0]["invalid_count"] == 150
    assert not res[("schema", "x5")].breached


def test_missing_expected_feature(ref: ModelProfile) -> None:
    ops = ops_profile(7, missing={"x5": 800, "x6": 20})
    res = by_key(evaluate(ref, clean_window(7), ops))
    r = res[("schema", "x5")]
    assert (r.statistic, r.severity) == ("missing_feature_rate", "critical")
    assert r.value == pytest.approx(800 / 5_000)
    assert items(r)[0]["missing_records"] == 800
    assert "x5 breaks the expected schema: missing feature rate 0.16 > 0.1" in r.summary
    assert not res[("schema", "x6")].breached  # 0.4% of records: under 1%


def test_unexpected_features_one_result_per_model(ref: ModelProfile) -> None:
    ops = ops_profile(8, unexpected={"promo_code": 900, "debug": 10, "ab_arm": 100})
    res = evaluate(ref, clean_window(8), ops)
    model_level = [r for r in res if r.check == "schema" and r.feature is None]
    assert len(model_level) == 1
    r = model_level[0]
    assert (r.statistic, r.severity, r.value) == (
        "unexpected_feature_rate",
        "critical",
        pytest.approx(0.18),
    )
    assert [e["feature"] for e in items(r)] == ["promo_code", "ab_arm", "debug"]
    assert "unexpected features: promo_code, ab_arm)" in r.summary  # debug: 0.2% < 1%


def test_kind_change_is_a_critical_schema_breach(ref: ModelProfile) -> None:
    rng = np.random.default_rng(9)
    kinds = {**KINDS, "x0": FeatureKind.CATEGORICAL}
    cols = columns(rng, 5_000)
    cols["x0"] = np.array([f"v{int(v)}" for v in cols["x0"]], dtype=object)
    res = by_key(evaluate(ref, window(cols, kinds=kinds)))
    r = res[("schema", "x0")]
    assert (r.statistic, r.severity) == ("kind_mismatch", "critical")
    assert "numeric in the reference, categorical now" in r.summary
    assert ("feature_drift", "x0") not in res
    assert ("completeness", "x0") not in res


# ------------------------------------------------------------------------- cardinality


@pytest.mark.parametrize(("unseen", "severity"), [(100, "warning"), (400, "critical")])
def test_unseen_category_named_in_evidence(ref: ModelProfile, unseen: int, severity: str) -> None:
    rng = np.random.default_rng(10)
    cols = columns(rng, 5_000)
    c1 = cols["c1"].copy()
    c1[:unseen] = "new-partner"
    c1[unseen : unseen + 5] = "rare-new"
    cols["c1"] = c1
    res = by_key(evaluate(ref, window(cols)))
    r = res[("cardinality", "c1")]
    assert (r.statistic, r.severity) == ("new_category_share", severity)
    assert r.value == pytest.approx((unseen + 5) / 5_000)
    assert items(r)[:2] == [
        {"category": "new-partner", "count": unseen, "share": unseen / 5_000},
        {"category": "rare-new", "count": 5, "share": 5 / 5_000},
    ]
    assert "new-partner" not in r.summary  # raw values only in (redactable) evidence
    assert not res[("cardinality", "c0")].breached


def _high_cardinality(n: int, distinct: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array([f"id{i}" for i in rng.integers(0, distinct, n)], dtype=object)


@pytest.mark.parametrize(("distinct", "severity"), [(300, "warning"), (700, "critical")])
def test_distinct_count_jump(distinct: int, severity: str) -> None:
    """Reference: 100 ids, over its 50-category cap (so "unseen" is not judged); the
    window has 3× or 7× as many distinct ids."""
    kinds = {"uid": FeatureKind.CATEGORICAL}
    ref = ModelProfile.build_reference(
        MODEL,
        VERSION,
        {"uid": _high_cardinality(20_000, 100, 1)},
        feature_kinds=kinds,
        max_categories=50,
    )
    cur = window({"uid": _high_cardinality(5_000, distinct, 2)}, kinds=kinds)
    r = by_key(evaluate(ref, cur))[("cardinality", "uid")]
    assert (r.statistic, r.severity) == ("distinct_ratio", severity)
    assert r.value == pytest.approx(distinct / 100, rel=0.05)
    assert r.threshold == (2.0 if severity == "warning" else 5.0)


def test_boolean_features_have_no_cardinality_check(ref: ModelProfile) -> None:
    res = by_key(evaluate(ref, clean_window(11)))
    assert ("cardinality", "b0") not in res
    assert ("feature_drift", "b0") in res


# ------------------------------------------------------------------- degenerate output


def _degenerate(ref: ModelProfile, predictions: Any, predicted_labels: Any) -> CheckResult:
    rng = np.random.default_rng(12)
    cur = window(columns(rng, 5_000), predictions=predictions, predicted_labels=predicted_labels)
    return by_key(evaluate(ref, cur))[("degenerate_output", None)]


def _labels(ones: int, n: int = 5_000) -> np.ndarray:
    return np.array(["1"] * ones + ["0"] * (n - ones), dtype=object)


def test_constant_score_is_critical(ref: ModelProfile) -> None:
    rng = np.random.default_rng(13)
    r = _degenerate(ref, np.full(5_000, 0.5), labels(rng, 5_000))
    assert (r.statistic, r.value, r.severity) == ("top_score_share", 1.0, "critical")
    assert r.summary.startswith("fraud predictions collapsed: top score share 1 ≥ 0.999")


def test_single_label_is_critical(ref: ModelProfile) -> None:
    rng = np.random.default_rng(14)
    r = _degenerate(ref, scores(rng, 5_000), _labels(5_000))
    assert (r.statistic, r.value, r.severity) == ("top_label_share", 1.0, "critical")
    assert {"output": "predicted_label", "category": "1"}.items() <= items(r)[0].items()


@pytest.mark.parametrize(
    ("zeros", "severity"), [(4_975, "warning"), (4_998, "critical"), (4_900, None)]
)
def test_dominant_label_share(ref: ModelProfile, zeros: int, severity: str | None) -> None:
    rng = np.random.default_rng(15)
    r = _degenerate(ref, scores(rng, 5_000), _labels(5_000 - zeros))
    assert r.statistic == "top_label_share"
    assert r.value == pytest.approx(zeros / 5_000)
    assert r.severity == severity


def test_dominant_share_the_reference_already_had_is_not_alarming() -> None:
    rng = np.random.default_rng(16)
    n = 20_000
    ref = ModelProfile.build_reference(
        MODEL,
        VERSION,
        columns(rng, n),
        feature_kinds=KINDS,
        predictions=scores(rng, n),
        predicted_labels=_labels(100, n),  # 99.5% "0"
    )
    assert not _degenerate(ref, scores(rng, 5_000), _labels(20)).breached  # 99.6%
    r = _degenerate(ref, scores(rng, 5_000), _labels(0))  # 100%: collapsed after all
    assert (r.breached, r.severity) == (True, "critical")


def test_varied_scores_are_not_degenerate(ref: ModelProfile) -> None:
    rng = np.random.default_rng(17)
    rounded = np.round(scores(rng, 5_000), 2)  # ~60 distinct values
    r = _degenerate(ref, rounded, labels(rng, 5_000))
    assert not r.breached
    assert r.statistic == "top_label_share"  # 70% "0" is the larger share
    score = next(e for e in items(r) if e["output"] == "prediction")
    exact = float(np.mean(rounded == np.median(rounded)))  # point mass at the median
    assert score["share"] == pytest.approx(exact, abs=0.01)


# --------------------------------------------------------------------------- freshness


@pytest.mark.parametrize(
    ("scale", "severity"), [(5.0, None), (30.0, "warning"), (200.0, "critical")]
)
def test_pipeline_lag_p95(ref: ModelProfile, scale: float, severity: str | None) -> None:
    """Lags ~ Exponential(scale): p95 = 3.0 × scale; threshold 60 s, critical 5× = 300 s."""
    ops = ops_profile(18, pipeline_scale=scale)
    r = by_key(evaluate(ref, clean_window(18), ops))[("freshness", "pipeline_lag")]
    assert r.statistic == "p95_seconds"
    assert r.value == pytest.approx(scale * np.log(20), rel=0.08)
    assert r.severity == severity
    assert r.threshold == (300.0 if severity == "critical" else 60.0)
    if severity:
        assert r.summary.startswith("fraud pipeline lag is late: p95 seconds")


def test_data_lag_and_processing_lag(ref: ModelProfile) -> None:
    ops = ops_profile(19, data_scale=1500.0, processing_scale=40.0)
    res = by_key(evaluate(ref, clean_window(19), ops))
    assert res[("freshness", "data_lag")].severity == "warning"  # p95 ≈ 4500 s > 3600 s
    assert res[("freshness", "processing_lag")].severity == "warning"  # ≈ 120 s > 60 s
    replay = by_key(
        evaluate(ref, clean_window(19), ops, EvaluationPolicy(skip_wall_clock_lags=True))
    )
    assert ("freshness", "processing_lag") not in replay
    assert replay[("freshness", "data_lag")].breached


def test_freshness_needs_its_minimum_of_values(ref: ModelProfile) -> None:
    ops = ops_profile(20, n=10, pipeline_scale=500.0)
    res = evaluate(ref, clean_window(20), ops)
    assert not [r for r in res if r.check == "freshness"]


# --------------------------------------------------------------------------- staleness


def test_staleness_fires_after_the_threshold() -> None:
    kw: dict[str, Any] = {"newest_event_ms": T0, "threshold_s": 600.0, "replaying": False}
    fresh = evaluate_staleness(MODEL, VERSION, now_ms=T0 + 599_000, **kw)
    stale = evaluate_staleness(MODEL, VERSION, now_ms=T0 + 601_000, **kw)
    assert fresh is not None and stale is not None
    assert (fresh.breached, fresh.severity, fresh.value) == (False, None, 599.0)
    assert (stale.breached, stale.severity, stale.value) == (True, "critical", 601.0)
    assert (stale.check, stale.feature, stale.statistic) == (
        "staleness",
        None,
        "seconds_since_last_event",
    )
    assert stale.window_end_ms == T0 + 601_000
    assert stale.summary == "fraud has no new events: the newest event is 10 min old > 600 s"


def test_staleness_silent_while_replaying_or_before_any_event() -> None:
    kw: dict[str, Any] = {"now_ms": T0 + 10**9, "threshold_s": 600.0}
    assert evaluate_staleness(MODEL, VERSION, newest_event_ms=T0, replaying=True, **kw) is None
    assert evaluate_staleness(MODEL, VERSION, newest_event_ms=None, replaying=False, **kw) is None


# ------------------------------------------------------------------------------ policy


@pytest.mark.parametrize(
    "bad",
    [
        {"missing_feature_rate_warning": 0.2},
        {"dominant_share_warning": 0.9999},
        {"drift_test_alpha": 0.0},
        {"lag_critical_factor": 0.5},
        {"wasserstein_warning": 1.0, "wasserstein_critical": 0.5},
    ],
)
def test_policy_rejects_inconsistent_thresholds(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        EvaluationPolicy(**bad)
