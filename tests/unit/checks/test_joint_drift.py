"""``joint_drift``: fires on a correlation-only shift, stays quiet on a stable stream, and
its statistics equal numpy's on the raw rows (SVD for the principal components)."""

from __future__ import annotations

import numpy as np
import pytest

from streamproc.checks.context import Window
from streamproc.checks.evaluate import evaluate_window
from streamproc.checks.joint_checks import joint_drift_result
from streamproc.checks.policy import EvaluationPolicy
from streamproc.config import ConfigError, config_from_mapping
from streamproc.core.joint_drift import compare_joint
from streamproc.core.kinds import FeatureKind
from streamproc.core.model_profile import ModelProfile
from streamproc.core.thresholds import DEFAULT_THRESHOLDS

WINDOW = Window("m", "1", 0, 300_000)
NAMES = ["x", "y", "z0", "z1", "z2"]


def _rows(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    """x, y standard normal with correlation rho; z0..z2 independent N(0, 1)."""
    x = rng.normal(size=n)
    y = rho * x + np.sqrt(1 - rho**2) * rng.normal(size=n)
    return np.column_stack([x, y, rng.normal(size=(n, 3))])


def _cols(x: np.ndarray) -> dict[str, np.ndarray]:
    return {name: x[:, i] for i, name in enumerate(NAMES)}


def _reference(x: np.ndarray) -> ModelProfile:
    return ModelProfile.build_reference("m", "1", _cols(x))


def _window(ref: ModelProfile, x: np.ndarray) -> ModelProfile:
    kinds = {name: f.kind for name, f in ref.features.items()}
    w = ModelProfile.new(
        "m", "1", kinds, bin_edges=ref.psi_edges(), joint_bounds=ref.joint_bounds()
    )
    w.update_columns(_cols(x))
    return w


def _moments_only(x: np.ndarray, names: list[str], role: str) -> ModelProfile:
    """A profile with co-moments only (fast: the false-alarm loops skip the sketches)."""
    p = ModelProfile.new(
        "m", "1", dict.fromkeys(names, FeatureKind.NUMERIC), metadata={"role": role}
    )
    assert p.joint is not None
    p.joint.update({n: x[:, i] for i, n in enumerate(names)}, x.shape[0])
    return p


# ---------------------------------------------------------- agreement with numpy on rows


def _numpy_reconstruction(
    ref: np.ndarray, cur: np.ndarray, explained: float
) -> tuple[float, float, int]:
    """NannyML's method on raw rows: standardize with the reference, PCA by SVD, keep
    components as sklearn's PCA(n_components=explained) does, mean squared error."""
    mu, sd = ref.mean(axis=0), ref.std(axis=0)
    zr, zc = (ref - mu) / sd, (cur - mu) / sd
    _, s, vt = np.linalg.svd(zr - zr.mean(axis=0), full_matrices=False)
    ratio = np.cumsum(s**2) / np.sum(s**2)
    k = int(np.searchsorted(ratio, explained, side="right") + 1)
    v = vt[:k].T

    def err(z: np.ndarray) -> float:
        return float(np.mean(np.sum((z - z @ v @ v.T) ** 2, axis=1)))

    return err(zr), err(zc), k


@pytest.mark.parametrize("shift", [0.0, 0.7])
def test_reconstruction_error_from_moments_equals_numpy_on_rows(shift: float) -> None:
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(6, 6))
    ref_rows = rng.normal(size=(4_000, 6)) @ mix + np.arange(6.0) * 10
    cur_rows = rng.normal(size=(1_500, 6)) @ (mix + shift * np.eye(6)) + np.arange(6.0) * 10
    names = [f"v{i}" for i in range(6)]
    ref = _moments_only(ref_rows, names, "reference")
    cur = _moments_only(cur_rows, names, "window")
    assert ref.joint is not None and cur.joint is not None
    jd = compare_joint(ref.joint, cur.joint, max_features=20, explained_variance=0.65, min_rows=10)
    assert jd is not None and jd.reconstruction is not None
    e_ref, e_cur, k = _numpy_reconstruction(ref_rows, cur_rows, 0.65)
    assert jd.reconstruction.components == k
    assert jd.reconstruction.error_reference == pytest.approx(e_ref, rel=1e-9)
    assert jd.reconstruction.error_current == pytest.approx(e_cur, rel=1e-9)
    r_ref, r_cur = np.corrcoef(ref_rows.T), np.corrcoef(cur_rows.T)
    for p in jd.pairs:
        i, j = names.index(p.first), names.index(p.second)
        assert p.r_reference == pytest.approx(r_ref[i, j], abs=1e-12)
        assert p.r_current == pytest.approx(r_cur[i, j], abs=1e-12)
    changes = [abs(p.change) for p in jd.pairs]
    assert changes == sorted(changes, reverse=True)
    iu = np.triu_indices(6, 1)
    assert changes[0] == pytest.approx(np.abs(r_cur - r_ref)[iu].max(), abs=1e-12)


# --------------------------------------------------------- a correlation-only shift fires


@pytest.mark.parametrize("n", [500, 5_000])
def test_broken_correlation_with_unchanged_marginals_alerts(n: int) -> None:
    rng = np.random.default_rng(1)
    ref = _reference(_rows(rng, 20_000, 0.8))
    cur_rows = _rows(rng, n, 0.0)
    res = evaluate_window(ref, _window(ref, cur_rows), None, window_start_ms=0, window_end_ms=1)
    joint = next(r for r in res if r.check == "joint_drift")
    assert joint.breached and joint.severity == "critical"
    expected = abs(np.corrcoef(cur_rows[:, 0], cur_rows[:, 1])[0, 1] - 0.8)
    assert joint.statistic in ("correlation_change", "reconstruction_error_ratio")
    top = joint.evidence[0]
    assert isinstance(top, dict) and top["pair"] == ["x", "y"] and top["significant"]
    assert abs(top["change"]) == pytest.approx(expected, abs=0.02)  # ref r is ≈ 0.8, not exactly
    assert "x–y" in joint.summary
    quiet = [r for r in res if r.check in ("feature_drift", "dataset_drift") and r.breached]
    assert quiet == []  # every marginal unchanged: only the joint check sees it


def test_correlation_change_is_the_statistic_when_the_reconstruction_is_diluted() -> None:
    """With many independent features, one broken pair barely moves the reconstruction
    error; the correlation change names it."""
    rng = np.random.default_rng(2)
    names = ["x", "y", *(f"z{i:02d}" for i in range(14))]

    def rows(n: int, rho: float) -> np.ndarray:
        base = _rows(rng, n, rho)[:, :2]
        return np.column_stack([base, rng.normal(size=(n, 14))])

    ref = _moments_only(rows(50_000, 0.6), names, "reference")
    cur = _moments_only(rows(20_000, 0.15), names, "window")
    r = joint_drift_result(WINDOW, ref, cur, EvaluationPolicy())
    assert r is not None and r.breached and r.severity == "critical"
    assert r.statistic == "correlation_change" and r.value == pytest.approx(0.45, abs=0.03)


# ------------------------------------------------------------ a stable stream stays quiet


@pytest.mark.parametrize(("n", "windows"), [(200, 80), (1_000, 60), (10_000, 40), (100_000, 20)])
def test_windows_drawn_from_the_reference_do_not_alert(n: int, windows: int) -> None:
    rng = np.random.default_rng(n)
    d = 8
    a = rng.normal(size=(d, d))
    mix = np.linalg.cholesky(a @ a.T / d + 0.3 * np.eye(d)).T
    names = [f"f{i}" for i in range(d)]
    ref = _moments_only(rng.normal(size=(50_000, d)) @ mix, names, "reference")
    policy = EvaluationPolicy(thresholds=DEFAULT_THRESHOLDS.with_overrides({"min_samples": 200}))
    results = [
        joint_drift_result(
            WINDOW, ref, _moments_only(rng.normal(size=(n, d)) @ mix, names, "w"), policy
        )
        for _ in range(windows)
    ]
    assert all(r is not None for r in results)  # evaluated, not skipped
    assert [r for r in results if r is not None and r.breached] == []


def test_heavy_tails_are_judged_by_the_reference_parts_noise() -> None:
    """Student-t (5 dof) rows: Gaussian theory understates the noise of r; the spread
    over the reference's parts widens it, and stable windows stay quiet."""
    rng = np.random.default_rng(3)
    d = 6
    a = rng.normal(size=(d, d))
    cov = a @ a.T + np.eye(d)
    chol = np.linalg.cholesky(cov / np.sqrt(np.outer(np.diag(cov), np.diag(cov))))
    names = [f"f{i}" for i in range(d)]

    def rows(n: int) -> np.ndarray:
        z = rng.normal(size=(n, d)) @ chol.T
        return np.asarray(z / np.sqrt(rng.chisquare(5, (n, 1)) / 5))

    ref_rows = rows(50_000)
    ref = _moments_only(ref_rows, names, "reference")
    results = [
        joint_drift_result(WINDOW, ref, _moments_only(rows(1_000), names, "w"), EvaluationPolicy())
        for _ in range(60)
    ]
    assert all(r is not None for r in results)
    assert [r for r in results if r is not None and r.breached] == []
    gauss = _moments_only(ref_rows, names, "window")  # the same rows in one part
    cur = _moments_only(rows(1_000), names, "w")
    assert ref.joint is not None and gauss.joint is not None and cur.joint is not None
    opts = {"max_features": 20, "explained_variance": 0.65}
    by_parts = compare_joint(ref.joint, cur.joint, min_rows=500, **opts)  # type: ignore[arg-type]
    by_theory = compare_joint(gauss.joint, cur.joint, min_rows=500, **opts)  # type: ignore[arg-type]
    assert by_parts is not None and by_theory is not None
    assert by_parts.noise_dof == 19 and by_theory.noise_dof is None
    z_parts = {(p.first, p.second): abs(p.z) for p in by_parts.pairs}
    z_theory = {(p.first, p.second): abs(p.z) for p in by_theory.pairs}
    assert all(z_parts[k] <= z_theory[k] * (1 + 1e-9) for k in z_parts)  # never narrower
    assert sum(z_theory[k] > 1.2 * z_parts[k] for k in z_parts) >= len(z_parts) // 2


def test_winsorized_at_the_fences_heavy_tails_stay_quiet_and_near_constants_leave() -> None:
    """Correlated Student-t (3 dof) rows, plus a feature 95% zero: the reference's
    co-moments are numpy's on the rows clipped at its fences, the near-constant feature
    (q10 = q90) is left out, and windows from the reference stay quiet."""
    rng = np.random.default_rng(21)
    chol = np.linalg.cholesky(np.array([[1.0, 0.8, 0.3], [0.8, 1.0, 0.5], [0.3, 0.5, 1.0]]))
    names = ["a", "b", "c", "rare"]

    def rows(n: int) -> np.ndarray:
        z = rng.normal(size=(n, 3)) @ chol.T / np.sqrt(rng.chisquare(3, (n, 1)) / 3)
        rare = np.where(rng.random(n) < 0.95, 0.0, rng.random(n))
        return np.column_stack([z, rare])

    x = rows(30_000)
    ref = ModelProfile.build_reference("m", "1", {n: x[:, i] for i, n in enumerate(names)})
    bounds = ref.joint_bounds()
    assert bounds is not None and bounds["rare"] == (0.0, 0.0)
    lo, hi = np.array([bounds[n] for n in names]).T
    assert ref.joint is not None
    r = ref.joint.total().correlation()[:3, :3]
    assert r == pytest.approx(np.corrcoef(np.clip(x, lo, hi)[:, :3].T), abs=1e-9)
    quiet = []
    for _ in range(30):
        w = rows(1_000)
        cur = ModelProfile.new("m", "1", dict.fromkeys(names, FeatureKind.NUMERIC),
                               joint_bounds=bounds)  # fmt: skip
        cur.update_columns({n: w[:, i] for i, n in enumerate(names)})
        assert ref.joint is not None and cur.joint is not None
        jd = compare_joint(ref.joint, cur.joint, max_features=20, explained_variance=0.65,
                           min_rows=500)  # fmt: skip
        assert jd is not None and jd.features == ("a", "b", "c")
        res = joint_drift_result(WINDOW, ref, cur, EvaluationPolicy())
        assert res is not None
        quiet.append(not res.breached)
    assert all(quiet)
    unclipped = ModelProfile.new("m", "1", dict.fromkeys(names, FeatureKind.NUMERIC))
    unclipped.update_columns({n: x[:1_000, i] for i, n in enumerate(names)})
    assert joint_drift_result(WINDOW, ref, unclipped, EvaluationPolicy()) is None


# ------------------------------------------------------------------- no result, and config


def test_no_result_without_co_moments_or_samples() -> None:
    rng = np.random.default_rng(4)
    ref = _reference(_rows(rng, 5_000, 0.5))
    small = _window(ref, _rows(rng, 300, 0.0))  # below min_samples (500)
    assert joint_drift_result(WINDOW, ref, small, EvaluationPolicy()) is None
    old = _window(ref, _rows(rng, 5_000, 0.0))
    old.joint = None  # as read from bytes written before co-moments
    assert joint_drift_result(WINDOW, ref, old, EvaluationPolicy()) is None


def test_max_features_caps_the_features_compared() -> None:
    rng = np.random.default_rng(5)
    ref = _reference(_rows(rng, 5_000, 0.8))
    cur = _window(ref, _rows(rng, 5_000, 0.0))
    assert ref.joint is not None and cur.joint is not None
    jd = compare_joint(ref.joint, cur.joint, max_features=3, explained_variance=0.65, min_rows=500)
    assert jd is not None and jd.features == ("x", "y", "z0") and len(jd.pairs) == 3


def test_config_section_reaches_the_policy() -> None:
    config = config_from_mapping({"joint_drift": {"correlation_warning": 0.3, "max_features": 5}})
    policy = config.evaluation_policy("m")
    assert policy.joint_correlation_warning == 0.3 and policy.joint_max_features == 5
    assert policy.joint_correlation_critical == EvaluationPolicy().joint_correlation_critical
    with pytest.raises(ConfigError, match="joint_drift"):
        config_from_mapping({"joint_drift": {"correlation_warning": 0.9}})  # above critical
    with pytest.raises(ConfigError, match="joint_drift"):
        config_from_mapping({"joint_drift": {"alpha": 1.5}})
