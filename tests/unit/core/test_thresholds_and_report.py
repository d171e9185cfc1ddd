"""Thresholds, per-feature overrides, verdicts and the report shape."""

from __future__ import annotations

import time

import numpy as np
import orjson
import pytest

from streamproc.core.drift import compare_features, compare_profiles
from streamproc.core.feature_profile import REFERENCE_K, FeatureProfile
from streamproc.core.kinds import FeatureKind
from streamproc.core.model_profile import ModelProfile
from streamproc.core.thresholds import DEFAULT_THRESHOLDS, Thresholds


def test_defaults_table() -> None:
    t = DEFAULT_THRESHOLDS
    assert (t.psi_warning, t.psi_critical, t.ks_warning, t.ks_critical) == (0.1, 0.25, 0.1, 0.2)
    assert (t.js_warning, t.js_critical, t.ks_alpha, t.min_samples) == (0.1, 0.2, 0.01, 500)
    assert (t.new_category_share_warning, t.new_category_share_critical) == (0.0, 0.05)
    assert (t.null_rate_ratio_warning, t.null_rate_ratio_critical) == (2.0, 5.0)


def test_overrides_global_and_per_feature() -> None:
    t = DEFAULT_THRESHOLDS.with_overrides(
        {"psi_warning": 0.2, "features": {"age": {"psi_critical": 0.9}}}
    )
    assert t.psi_warning == 0.2 and t.for_feature("other").psi_critical == 0.25
    assert t.for_feature("age").psi_critical == 0.9 and t.for_feature("age").psi_warning == 0.2
    t2 = t.with_overrides({"features": {"age": {"js_warning": 0.15}}})
    assert t2.for_feature("age").psi_critical == 0.9 and t2.for_feature("age").js_warning == 0.15
    assert DEFAULT_THRESHOLDS.psi_warning == 0.1  # frozen, copies only
    with pytest.raises(ValueError, match="unknown threshold"):
        t.with_overrides({"psi_warnin": 1})
    with pytest.raises(ValueError, match="exceeds critical"):
        Thresholds(psi_warning=0.5, psi_critical=0.2)


def _null_profile(n: int, nulls: int) -> FeatureProfile:
    p = FeatureProfile.new(FeatureKind.NUMERIC)
    x = np.random.default_rng(n + nulls).normal(size=n).astype(object)
    x[:nulls] = None
    p.update(x)
    return p


def test_null_rate_floor_and_ratios() -> None:
    ref = _null_profile(100_000, 10)  # 0.01%
    small = compare_features(ref, _null_profile(100_000, 30), name="x")  # 0.03%: below floor
    assert small.status == "ok"
    warn = compare_features(ref, _null_profile(100_000, 2_000), name="x")  # 2%
    assert warn.status == "critical"  # ×200 and > ref + 0.01
    ref5 = _null_profile(100_000, 5_000)  # 5%
    assert compare_features(ref5, _null_profile(100_000, 12_000), name="x").status == "warning"
    assert compare_features(ref5, _null_profile(100_000, 30_000), name="x").status == "critical"


def test_insufficient_samples_and_ks_significance() -> None:
    rng = np.random.default_rng(0)
    ref = FeatureProfile.new(FeatureKind.NUMERIC)
    ref.update(rng.normal(size=10_000))
    cur = FeatureProfile.new(FeatureKind.NUMERIC)
    cur.update(rng.normal(3, 1, 100))
    res = compare_features(ref, cur, name="x")
    assert res.status == "insufficient_data"
    assert res.statistics["ks"] is not None and res.statistics["ks"] > 0.5
    small_t = DEFAULT_THRESHOLDS.with_overrides({"min_samples": 10, "ks_alpha": 1e-300})
    res = compare_features(ref, cur, small_t.with_overrides({"psi_critical": 1e9,
                           "psi_warning": 1e9, "js_warning": 1e9, "js_critical": 1e9}),
                           name="x")  # fmt: skip
    assert res.statistics["ks_critical_value"] is not None
    assert res.statistics["ks_critical_value"] > res.statistics["ks"]  # not significant
    assert res.status == "ok"


def _model(shift: float, n: int, k: int, seed: int) -> ModelProfile:
    rng = np.random.default_rng(seed)
    kinds = {f"n{i}": FeatureKind.NUMERIC for i in range(20)}
    kinds |= {f"c{i}": FeatureKind.CATEGORICAL for i in range(4)}
    kinds["flag"] = FeatureKind.BOOLEAN
    p = ModelProfile.new("fraud", "7", kinds, k=k)
    cols: dict[str, object] = {f"n{i}": rng.normal(shift * (i == 0), 1, n) for i in range(20)}
    cats = np.array(["a", "b", "c", "new"], dtype=object)
    for i in range(4):
        cols[f"c{i}"] = cats[rng.integers(0, 4 if shift and i == 0 else 3, n)]
    cols["flag"] = rng.random(n) < 0.3
    p.update_columns(cols, predictions=rng.random(n), predicted_labels=cats[rng.integers(0, 2, n)])
    return p


def test_report_shape_and_speed() -> None:
    ref = _model(0.0, 50_000, REFERENCE_K, 1)
    cur = _model(1.0, 50_000, 512, 2)
    compare_profiles(ref, cur)
    t0 = time.perf_counter()
    report = compare_profiles(ref, cur)
    elapsed = time.perf_counter() - t0
    assert elapsed < 0.05 * 2  # target < 50 ms for 25 features; generous for CI noise
    d = report.to_dict()
    assert list(d) == ["model", "n_reference", "n_current", "status", "drifted_features",
                       "features"]  # fmt: skip
    assert d["model"] == "fraud" and d["n_reference"] == d["n_current"] == 50_000
    assert d["status"] == "critical" and report.status == "critical"
    assert set(d["drifted_features"]) == {"n0", "c0"}
    f = d["features"]["n0"]
    for key in ("kind", "n_reference", "n_current", "null_rate_reference",
                "null_rate_current", "statistics", "status"):  # fmt: skip
        assert key in f
    for key in ("psi", "ks", "js", "wasserstein", "chi2", "chi2_pvalue", "new_category_share"):
        assert key in f["statistics"]
    assert f["statistics"]["chi2"] is None and f["evidence"]
    assert d["features"]["c0"]["top_new_categories"][0][0] == "new"
    assert "__prediction__" in d["features"] and "__predicted_label__" in d["features"]
    orjson.dumps(d)
