"""evaluate_window: drift checks, false-alarm guard, min samples, speed, and the path of
every result through the alert lifecycle into a schema-valid alert message."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from streamproc.checks import CHECK_NAMES, LifecyclePolicy, step
from streamproc.checks.evaluate import EvaluationPolicy, evaluate_staleness, evaluate_window
from streamproc.checks.result import CheckResult
from streamproc.contracts import validate
from streamproc.core.drift import PREDICTED_LABEL, PREDICTION, compare_features
from streamproc.core.kinds import FeatureKind
from streamproc.core.model_profile import ModelProfile
from streamproc.core.ops import (
    DATA_LAG,
    MISSING_FEATURE,
    PIPELINE_LAG,
    PROCESSING_LAG,
    UNEXPECTED_FEATURE,
    new_ops_profile,
)
from streamproc.core.thresholds import Thresholds

T0 = 1_714_557_600_000  # 2024-05-01T10:00:00Z
WINDOW_MS = 300_000
MODEL, VERSION = "fraud", "17"
NUMERIC = [f"x{i}" for i in range(10)]
CATS = ["a", "b", "c", "d", "e", "f"]
CAT_P = [0.3, 0.25, 0.2, 0.1, 0.1, 0.05]
KINDS: dict[str, FeatureKind] = {
    **dict.fromkeys(NUMERIC, FeatureKind.NUMERIC),
    "c0": FeatureKind.CATEGORICAL,
    "c1": FeatureKind.CATEGORICAL,
    "b0": FeatureKind.BOOLEAN,
}
NUMERIC_ONLY = dict.fromkeys(NUMERIC, FeatureKind.NUMERIC)


def columns(
    rng: np.random.Generator,
    n: int,
    *,
    shift: Mapping[str, float] | None = None,
    kinds: Mapping[str, FeatureKind] = KINDS,
    c0_p: list[float] | None = None,
) -> dict[str, Any]:
    """Seeded feature columns: x* ~ N(shift, 1), c* over CATS, b0 ~ Bernoulli(0.3)."""
    shift = shift or {}
    cols: dict[str, Any] = {x: rng.normal(shift.get(x, 0.0), 1.0, n) for x in NUMERIC}
    cols["c0"] = rng.choice(CATS, n, p=c0_p or CAT_P).astype(object)
    cols["c1"] = rng.choice(CATS, n, p=CAT_P).astype(object)
    cols["b0"] = rng.random(n) < 0.3
    return {k: v for k, v in cols.items() if k in kinds}


def scores(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.beta(2.0, 5.0, n)


def labels(rng: np.random.Generator, n: int, p1: float = 0.3) -> np.ndarray:
    return np.where(rng.random(n) < p1, "1", "0").astype(object)


def reference(
    seed: int = 0, n: int = 20_000, *, kinds: Mapping[str, FeatureKind] = KINDS
) -> ModelProfile:
    rng = np.random.default_rng(10_000 + seed)
    return ModelProfile.build_reference(
        MODEL,
        VERSION,
        columns(rng, n, kinds=kinds),
        feature_kinds=kinds,
        predictions=scores(rng, n),
        predicted_labels=labels(rng, n),
    )


def window(
    cols: Mapping[str, Any],
    *,
    predictions: Any = None,
    predicted_labels: Any = None,
    kinds: Mapping[str, FeatureKind] = KINDS,
    joint_bounds: Mapping[str, tuple[float, float]] | None = None,
) -> ModelProfile:
    prof = ModelProfile.new(MODEL, VERSION, kinds, joint_bounds=joint_bounds)
    prof.update_columns(cols, predictions=predictions, predicted_labels=predicted_labels)
    return prof


def clean_window(
    seed: int,
    n: int = 5_000,
    *,
    joint_bounds: Mapping[str, tuple[float, float]] | None = None,
    **kw: Any,
) -> ModelProfile:
    rng = np.random.default_rng(seed)
    return window(
        columns(rng, n, **kw),
        predictions=scores(rng, n),
        predicted_labels=labels(rng, n),
        joint_bounds=joint_bounds,
    )


def ops_profile(
    seed: int,
    n: int = 5_000,
    *,
    pipeline_scale: float = 5.0,
    processing_scale: float = 1.0,
    data_scale: float = 60.0,
    missing: Mapping[str, int] | None = None,
    unexpected: Mapping[str, int] | None = None,
) -> ModelProfile:
    """Ops profile of ``n`` records; lags ~ Exponential(scale), so p95 = 3.0 × scale."""
    rng = np.random.default_rng(seed)
    ops = new_ops_profile(MODEL, VERSION)
    ops.update_columns(
        {
            PIPELINE_LAG: rng.exponential(pipeline_scale, n),
            PROCESSING_LAG: rng.exponential(processing_scale, n),
            DATA_LAG: rng.exponential(data_scale, n),
        }
    )
    for feature, events in ((MISSING_FEATURE, missing), (UNEXPECTED_FEATURE, unexpected)):
        for name, count in (events or {}).items():
            ops.features[feature].update(np.array([name] * count, dtype=object))
    return ops


def evaluate(
    ref: ModelProfile,
    cur: ModelProfile,
    ops: ModelProfile | None = None,
    policy: EvaluationPolicy | None = None,
    *,
    start_ms: int = T0,
    scope: str = "window",
) -> list[CheckResult]:
    return evaluate_window(
        ref,
        cur,
        ops,
        policy or EvaluationPolicy(),
        window_start_ms=start_ms,
        window_end_ms=start_ms + WINDOW_MS,
        scope=scope,
    )


def by_key(results: list[CheckResult]) -> dict[tuple[str, str | None], CheckResult]:
    out = {(r.check, r.feature): r for r in results}
    assert len(out) == len(results), "two results for one (check, feature)"
    return out


def items(r: CheckResult) -> list[dict[str, Any]]:
    """Evidence as a list (every check here produces a list)."""
    assert isinstance(r.evidence, list)
    return r.evidence


def statistics(r: CheckResult) -> dict[str, Any]:
    """The trailing ``{"statistics": ...}`` evidence item of a drift result."""
    stats: dict[str, Any] = items(r)[-1]["statistics"]
    return stats


@pytest.fixture(scope="module")
def ref() -> ModelProfile:
    return reference()


# ----------------------------------------------------------------------- feature drift


def test_only_shifted_features_drift_with_the_right_severity(ref: ModelProfile) -> None:
    rng = np.random.default_rng(1)
    cols = columns(
        rng,
        5_000,
        shift={"x0": 1.0, "x1": 0.35},
        c0_p=[0.1, 0.1, 0.2, 0.2, 0.2, 0.2],
    )
    cur = window(cols, predictions=scores(rng, 5_000), predicted_labels=labels(rng, 5_000))
    res = by_key(evaluate(ref, cur))
    drift = {f: r for (c, f), r in res.items() if c == "feature_drift"}
    assert set(drift) == set(KINDS)
    breached = {f: r.severity for f, r in drift.items() if r.breached}
    assert breached == {"x0": "critical", "x1": "warning", "c0": "critical"}

    for name in KINDS:
        r = drift[name]
        fd = compare_features(ref.features[name], cur.features[name], name=name)
        st = fd.statistics
        null = (st["bins"] - 1) * (1 / fd.n_reference + 1 / fd.n_current)  # no-drift mean
        expected = {  # PSI and JS less their expected value under no drift; KS as is
            "psi": max(0.0, st["psi"] - null),
            "js": math.sqrt(max(0.0, st["js"] ** 2 - null / (8 * math.log(2)))),
            "ks": st["ks"],
        }[r.statistic]
        assert r.value == pytest.approx(expected)
        assert r.n_reference == fd.n_reference == 20_000
        assert r.n_current == fd.n_current == 5_000
        if r.breached:
            assert r.value > r.threshold
            assert r.summary.startswith(f"{name} drifted: ")
        else:
            assert (r.statistic, r.threshold) == ("psi", 0.1)  # the primary statistic
            assert r.value <= 0.1
    x0 = drift["x0"]
    assert x0.statistic in ("psi", "ks", "js")
    assert x0.threshold == {"psi": 0.25, "ks": 0.2, "js": 0.2}[x0.statistic]
    bins = items(x0)[:-1]
    assert bins and all(set(b) >= {"bin", "reference_share", "current_share"} for b in bins)
    assert statistics(x0)["ks"] > 0.3  # a 1σ shift: KS ≈ 0.38
    shifted = {e["category"] for e in items(drift["c0"])[:-1]}
    assert {"a", "b"} <= shifted  # the categories that lost mass
    assert "10:00–10:05 UTC on 2024-05-01" in x0.summary
    assert "5,000 events" in x0.summary


def test_ks_must_also_be_significant(ref: ModelProfile) -> None:
    """With a tiny window the KS critical value exceeds the KS thresholds: no KS breach."""
    rng = np.random.default_rng(2)
    policy = EvaluationPolicy(thresholds=Thresholds(min_samples=50, psi_critical=100.0))
    policy = dataclasses.replace(
        policy,
        thresholds=policy.thresholds.with_overrides(
            {"psi_warning": 99.0, "js_warning": 0.99, "js_critical": 1.0}
        ),
    )
    cur = window(columns(rng, 60, shift={"x0": 0.15}))
    r = by_key(evaluate(ref, cur, policy=policy))[("feature_drift", "x0")]
    ks = statistics(r)["ks"]
    assert ks > 0.1  # large enough for the warning threshold ...
    assert ks < statistics(r)["ks_critical_value"]  # ... but not significant
    assert not r.breached
    big = window(columns(rng, 5_000, shift={"x0": 0.3}))
    r2 = by_key(evaluate(ref, big, policy=policy))[("feature_drift", "x0")]
    assert (r2.breached, r2.statistic, r2.severity) == (True, "ks", "warning")


def test_chi2_gates_categorical_drift() -> None:
    """PSI 0.106 > 0.1 and JS 0.138 > 0.1 on 600 vs 500 values, chi-squared p = 0.074: no
    breach. Two samples of one distribution on 20 cells give PSI ≈ 19·(1/600 + 1/500) =
    0.070 on average, so the PSI graded is the excess over that (0.037), and even with
    the gate opened (α = 0.1) this is sampling noise, not drift."""
    cats = [f"k{i:02d}" for i in range(20)]
    kinds = {"cat": FeatureKind.CATEGORICAL}
    ref_col = np.array([c for c in cats for _ in range(30)], dtype=object)
    ref = ModelProfile.build_reference(MODEL, VERSION, {"cat": ref_col}, feature_kinds=kinds)
    counts = [33] * 10 + [17] * 10
    cur = window(
        {"cat": np.array([c for c, k in zip(cats, counts, strict=True) for _ in range(k)])},
        kinds=kinds,
    )
    gated = by_key(evaluate(ref, cur))[("feature_drift", "cat")]
    stats = statistics(gated)
    assert stats["psi"] == pytest.approx(0.10613, abs=1e-4)
    assert stats["chi2_pvalue"] == pytest.approx(0.0737, abs=1e-3)
    assert stats["psi_corrected"] == pytest.approx(0.10613 - 19 * (1 / 600 + 1 / 500), abs=1e-4)
    assert not gated.breached
    assert (gated.statistic, gated.value) == ("psi", pytest.approx(stats["psi_corrected"]))
    loose = by_key(evaluate(ref, cur, policy=EvaluationPolicy(drift_test_alpha=0.1)))
    assert not loose[("feature_drift", "cat")].breached
    moved = [40] * 10 + [10] * 10  # a real shift: 5% → 8% and 2% per category
    cur = window(
        {"cat": np.array([c for c, k in zip(cats, moved, strict=True) for _ in range(k)])},
        kinds=kinds,
    )
    r = by_key(evaluate(ref, cur))[("feature_drift", "cat")]
    assert (r.breached, r.severity) == (True, "critical")


def test_wasserstein_reported_but_alerts_only_when_configured(ref: ModelProfile) -> None:
    cur = clean_window(3, shift={"x0": 0.1})
    r = by_key(evaluate(ref, cur))[("feature_drift", "x0")]
    w = statistics(r)["wasserstein"]
    assert 0.05 < w < 0.15  # a 0.1σ shift moves W₁/σ by ≈ 0.1
    assert not r.breached
    policy = EvaluationPolicy(wasserstein_warning=0.05, wasserstein_critical=0.5)
    r2 = by_key(evaluate(ref, cur, policy=policy))[("feature_drift", "x0")]
    assert (r2.breached, r2.statistic, r2.severity, r2.threshold) == (
        True,
        "wasserstein",
        "warning",
        0.05,
    )
    assert r2.value == pytest.approx(w)


def test_per_feature_threshold_override(ref: ModelProfile) -> None:
    cur = clean_window(4, shift={"x1": 0.35})
    loose = Thresholds().with_overrides(
        {"features": {"x1": {"psi_warning": 1.0, "psi_critical": 2.0}}}
    )
    loose = loose.with_overrides(
        {
            "features": {
                "x1": {"ks_warning": 0.5, "ks_critical": 0.9, "js_warning": 0.5, "js_critical": 0.9}
            }
        }
    )
    r = by_key(evaluate(ref, cur, policy=EvaluationPolicy(thresholds=loose)))
    assert not r[("feature_drift", "x1")].breached
    assert r[("feature_drift", "x1")].threshold == 1.0
    assert by_key(evaluate(ref, cur))[("feature_drift", "x1")].breached


# ------------------------------------------------------------------- prediction drift


def test_prediction_drift_on_scores_and_labels(ref: ModelProfile) -> None:
    rng = np.random.default_rng(5)
    n = 5_000
    cur = window(
        columns(rng, n), predictions=rng.beta(5.0, 2.0, n), predicted_labels=labels(rng, n, 0.6)
    )
    res = by_key(evaluate(ref, cur))
    score, label = res[("prediction_drift", PREDICTION)], res[("prediction_drift", PREDICTED_LABEL)]
    assert (score.breached, score.severity) == (True, "critical")
    assert (label.breached, label.severity) == (True, "critical")
    assert score.summary.startswith("fraud prediction scores drifted: ")
    assert label.summary.startswith("fraud predicted labels drifted: ")
    assert not any(r.breached for (c, _), r in res.items() if c == "feature_drift")


# ----------------------------------------------------------------------- dataset drift


@pytest.mark.parametrize(("drifted", "breached"), [(3, True), (2, False)])
def test_dataset_drift_share(drifted: int, breached: bool) -> None:
    ref = reference(kinds=NUMERIC_ONLY)
    rng = np.random.default_rng(6)
    shift = {f"x{i}": 1.0 for i in range(drifted)}
    cur = window(columns(rng, 5_000, shift=shift, kinds=NUMERIC_ONLY), kinds=NUMERIC_ONLY)
    r = by_key(evaluate(ref, cur))[("dataset_drift", None)]
    assert r.value == pytest.approx(drifted / 10)
    assert r.breached is breached
    assert sorted(e["feature"] for e in items(r)) == [f"x{i}" for i in range(drifted)]
    if breached:
        assert r.severity == "warning"
        assert f"({drifted} of 10 features: " in r.summary
        assert all(f"x{i}" in r.summary for i in range(drifted))
        assert "drifted feature share 0.3 ≥ 0.3" in r.summary


# ------------------------------------------------------------------- false-alarm guard

ALL_CHECKS = {
    *((c, f) for f in KINDS for c in ("feature_drift", "completeness", "schema")),
    ("cardinality", "c0"),
    ("cardinality", "c1"),
    *(("range", f) for f, k in KINDS.items() if k is FeatureKind.NUMERIC),
    ("prediction_drift", PREDICTION),
    ("prediction_drift", PREDICTED_LABEL),
    ("dataset_drift", None),
    ("joint_drift", None),
    ("degenerate_output", None),
    ("schema", None),
    ("freshness", "data_lag"),
    ("freshness", "pipeline_lag"),
    ("freshness", "processing_lag"),
}


@pytest.mark.parametrize("seed", range(20))
def test_identical_distributions_never_breach(seed: int) -> None:
    ref = reference(seed)
    cur = clean_window(seed, joint_bounds=ref.joint_bounds())  # co-moments clipped alike
    res = evaluate(ref, cur, ops_profile(seed))
    assert set(by_key(res)) == ALL_CHECKS  # every check evaluated, once
    assert [r for r in res if r.breached] == []


# --------------------------------------------------------------------- minimum samples


def test_below_min_samples_no_statistical_result(ref: ModelProfile) -> None:
    rng = np.random.default_rng(7)
    n = 400
    cur = window(
        columns(rng, n, shift={"x0": 3.0}),
        predictions=np.full(n, 0.5),
        predicted_labels=np.array(["1"] * n, dtype=object),
    )
    res = evaluate(ref, cur, ops_profile(7, n, pipeline_scale=100.0))
    # Only freshness (its own minimum, 20 values) is evaluated on 400 records.
    assert {r.check for r in res} == {"freshness"}
    assert by_key(res)[("freshness", "pipeline_lag")].breached
    assert evaluate(ref, cur, None) == []


def test_per_feature_min_samples(ref: ModelProfile) -> None:
    t = Thresholds().with_overrides({"features": {"x0": {"min_samples": 10_000}}})
    res = by_key(evaluate(ref, clean_window(8), policy=EvaluationPolicy(thresholds=t)))
    assert ("feature_drift", "x0") not in res
    assert ("completeness", "x0") not in res
    assert ("feature_drift", "x1") in res


# ------------------------------------------------------------------------ rolling scope


def test_rolling_scope_reports_slow_drift_only(ref: ModelProfile) -> None:
    cur = clean_window(9, shift={"x2": 1.0})
    res = evaluate(ref, cur, ops_profile(9, pipeline_scale=100.0), scope="rolling")
    assert {r.check for r in res} == {"slow_drift"}
    assert {r.feature for r in res} == {*KINDS, PREDICTION, PREDICTED_LABEL}
    assert [r.feature for r in res if r.breached] == ["x2"]
    with pytest.raises(ValueError, match="scope"):
        evaluate(ref, cur, scope="hourly")


def test_model_mismatch_is_an_error(ref: ModelProfile) -> None:
    other = ModelProfile.new("eta", VERSION, KINDS)
    with pytest.raises(ValueError, match="eta"):
        evaluate(ref, other)


# ------------------------------------------------------------------------------- speed


def test_25_features_each_get_a_drift_verdict() -> None:
    """(How fast: `benchmarks/`, never a timed assertion here.)"""
    rng = np.random.default_rng(11)
    kinds = {f"n{i}": FeatureKind.NUMERIC for i in range(20)}
    kinds |= {f"k{i}": FeatureKind.CATEGORICAL for i in range(5)}

    def cols(n: int) -> dict[str, Any]:
        out: dict[str, Any] = {f"n{i}": rng.normal(0, 1, n) for i in range(20)}
        out |= {f"k{i}": rng.choice(CATS, n, p=CAT_P).astype(object) for i in range(5)}
        return out

    big = ModelProfile.build_reference(MODEL, VERSION, cols(200_000), feature_kinds=kinds)
    cur = window(cols(20_000), kinds=kinds)
    ops = ops_profile(11, 20_000)
    res = evaluate(big, cur, ops)
    assert len([r for r in res if r.check == "feature_drift"]) == 25


# ------------------------------------------------- lifecycle and alert message contract


def _broken_window(ref: ModelProfile) -> tuple[ModelProfile, ModelProfile]:
    """A window where every window check breaches."""
    rng = np.random.default_rng(12)
    n = 5_000
    cols = columns(rng, n, shift={"x0": 1.0, "x1": 1.0, "x2": 1.0, "x6": 1.0})
    cols["x3"] = np.ma.masked_array(cols["x3"], mask=rng.random(n) < 0.3)  # null spike
    x4 = cols["x4"].astype(object)
    x4[:500] = "n/a"  # 10% type-invalid
    cols["x4"] = x4
    x5 = cols["x5"].copy()
    x5[:250] = 1e6  # 5% sentinel values far out of range
    cols["x5"] = x5
    c1 = cols["c1"].copy()
    c1[:400] = "new-partner"  # 8% unseen
    cols["c1"] = c1
    cur = window(
        cols,
        predictions=np.full(n, 0.5),
        predicted_labels=np.array(["0"] * n, dtype=object),
        joint_bounds=ref.joint_bounds(),
    )
    ops = ops_profile(
        12, n, pipeline_scale=100.0, missing={"x5": 800}, unexpected={"promo_code": 900}
    )
    return cur, ops


def test_every_result_becomes_a_valid_alert_and_resolves(ref: ModelProfile) -> None:
    cur, ops = _broken_window(ref)
    policy = LifecyclePolicy()
    states: dict[str, Any] = {}
    fired: dict[str, dict[str, Any]] = {}
    for i in range(2):  # two breaching windows: fire after 2 of 3
        start = T0 + i * WINDOW_MS
        res = evaluate(ref, cur, ops, start_ms=start)
        stale = evaluate_staleness(
            MODEL,
            VERSION,
            newest_event_ms=T0,
            now_ms=start + WINDOW_MS + 3_600_000,
            threshold_s=600,
            replaying=False,
        )
        assert stale is not None
        for r in [*res, stale]:
            assert r.check in CHECK_NAMES
            states[r.fingerprint], msg = step(states.get(r.fingerprint), r, r.window_end_ms, policy)
            if msg is not None:
                validate("alert", msg)
                fired[r.fingerprint] = msg
    checks = {m["check"] for m in fired.values()}
    service = {"latency", "error_rate", "fallback_rate", "volume", "model_version"}
    labels = {"performance_drop", "calibration_drift", "label_drift", "estimated_performance_drop"}
    labels |= {"performance_gap", "label_staleness", "label_coverage"}  # test_performance_trend
    labels |= {"retrain"}  # test_retrain
    labels |= {"fairness", "rollout"}  # tests/unit/monitor/test_slice_eval.py, test_rollout_eval
    assert checks == set(CHECK_NAMES) - {"slow_drift"} - service - labels  # service: elsewhere
    assert all(m["status"] == "firing" and m["reason"] == "fired" for m in fired.values())
    card = next(m for m in fired.values() if m["check"] == "cardinality")
    assert card["severity"] == "critical"
    # 400 records carry the new category: enough (≥ 5) to show it raw in the message
    assert card["evidence"][0] == {"category": "new-partner", "count": 400, "share": 0.08}
    unexpected = next(m for m in fired.values() if m["check"] == "schema" and not m["feature"])
    assert "promo_code" in unexpected["summary"]

    resolved: set[str] = set()
    for i in range(2, 5):  # three clean windows resolve everything
        start = T0 + i * WINDOW_MS
        clean = clean_window(100 + i, joint_bounds=ref.joint_bounds())
        res = evaluate(ref, clean, ops_profile(100 + i), start_ms=start)
        stale = evaluate_staleness(
            MODEL,
            VERSION,
            newest_event_ms=start + WINDOW_MS + 3_600_000 - 1_000,
            now_ms=start + WINDOW_MS + 3_600_000,
            threshold_s=600,
            replaying=False,
        )
        assert stale is not None and not stale.breached
        for r in [*res, stale]:
            states[r.fingerprint], msg = step(states.get(r.fingerprint), r, r.window_end_ms, policy)
            if msg is not None:
                validate("alert", msg)
                assert msg["status"] == "resolved"
                resolved.add(msg["fingerprint"])
    assert resolved == set(fired)


def test_slow_drift_alert_validates(ref: ModelProfile) -> None:
    cur = clean_window(13, shift={"x2": 1.0})
    policy = LifecyclePolicy(fire_after=1)
    r = next(r for r in evaluate(ref, cur, scope="rolling") if r.breached and r.feature == "x2")
    _, msg = step(None, r, r.window_end_ms, policy)
    assert msg is not None
    validate("alert", msg)
