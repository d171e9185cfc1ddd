"""Slice checks of a closed window: a drift confined to one slice, fairness values."""

from __future__ import annotations

import numpy as np
import pytest

from streamproc.checks.fairness_checks import FairnessPolicy
from streamproc.checks.policy import EvaluationPolicy
from streamproc.core.model_profile import ModelProfile
from streamproc.core.segments import SlicingPolicy
from streamproc.core.slice_profiles import SliceProfiles, SliceSpec
from streamproc.monitor.slice_eval import fairness_results, segment_results
from streamproc.monitor.state import WindowState

N = 6000


def _reference() -> ModelProfile:
    rng = np.random.default_rng(0)
    return ModelProfile.build_reference(
        "m", "1", {"x": rng.normal(0, 1, 50_000), "y": rng.normal(5, 2, 50_000)}
    )


def _window(shift_de: float) -> tuple[WindowState, dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    country = rng.choice(["DE", "FR", "US"], N)
    gender = rng.choice(["f", "m"], N)
    x = rng.normal(0, 1, N) + np.where(country == "DE", shift_de, 0.0)
    y = rng.normal(5, 2, N)
    sel = rng.random(N) < np.where(gender == "f", 0.3, 0.6)
    ref = _reference()
    segments = [{"country": str(c), "gender": str(g)} for c, g in zip(country, gender, strict=True)]
    spec = SliceSpec(SlicingPolicy(("country",)), protected=("gender",), positive="yes")
    labels = ["yes" if s else "no" for s in sel]
    cols = {"x": x, "y": y}
    slices = SliceProfiles.build(spec, ref, "m", "1", segments, cols, labels=labels)
    profile = ModelProfile.new("m", "1", {"x": ref.features["x"].kind, "y": ref.features["y"].kind})
    profile.update_columns(cols)
    ops = ModelProfile("m", "1", {})
    w = WindowState("m", "1", 0, 60_000, profile, ops, slices=slices)
    return w, {"gender": gender, "sel": sel}


def test_a_drift_in_one_slice_breaches_that_slice_only() -> None:
    w, _ = _window(shift_de=1.5)
    out = segment_results(w, _reference(), ["x", "y"], EvaluationPolicy(), [], fdr=0.05)
    breached = {(r.segment, r.feature) for r in out if r.breached}
    assert ("country=DE", "x") in breached
    assert all(seg == "country=DE" for seg, _ in breached), breached
    de = next(r for r in out if r.segment == "country=DE" and r.feature == "x" and r.breached)
    assert "confined to this segment" in de.summary
    assert {r.segment for r in out} >= {"country=DE", "country=FR", "country=US"}


def test_a_stable_window_breaches_no_slice() -> None:
    w, _ = _window(shift_de=0.0)
    out = segment_results(w, _reference(), ["x", "y"], EvaluationPolicy(), [], fdr=0.05)
    assert not [r for r in out if r.breached]


def test_fairness_results_equal_numpy() -> None:
    w, raw = _window(shift_de=0.0)
    out = {r.feature: r for r in fairness_results(w, FairnessPolicy())}
    rate = {g: raw["sel"][raw["gender"] == g].mean() for g in ("f", "m")}
    di = out["gender/disparate_impact_ratio"]
    assert di.value == pytest.approx(rate["f"] / rate["m"], rel=1e-12)
    assert di.breached and di.severity == "critical"  # ~0.5 < 0.6
    dpd = out["gender/demographic_parity_difference"]
    assert dpd.value == pytest.approx(rate["m"] - rate["f"], rel=1e-12)
    assert dpd.n_current == N


def test_a_slice_whose_traffic_halves_breaches_volume_alone() -> None:
    from streamproc.checks.service_checks import ServicePolicy
    from streamproc.monitor.slice_eval import segment_volume_results

    ref = _reference()
    spec = SliceSpec(SlicingPolicy(("country",)))
    rng = np.random.default_rng(9)

    def window(k: int, de: int) -> WindowState:
        country = np.array(["DE"] * de + ["FR"] * 1000 + ["US"] * 1000)
        n = country.size
        cols = {"x": rng.normal(0, 1, n), "y": rng.normal(5, 2, n)}
        slices = SliceProfiles.build(
            spec, ref, "m", "1", [{"country": str(c)} for c in country], cols
        )
        empty = ModelProfile("m", "1", {})
        w = WindowState("m", "1", k * 60_000, (k + 1) * 60_000, empty, empty, slices=slices)
        w.final = True
        return w

    earlier = [window(k, 1000) for k in range(4)]
    now = window(4, 300)  # DE: 1000 → 300 rows (−70%: warning above 50%)
    out = segment_volume_results(now, earlier, ServicePolicy(), 500, [])
    got = {r.segment: r.severity for r in out}
    assert got == {"country=DE": "warning", "country=FR": None, "country=US": None}
    de = next(r for r in out if r.segment == "country=DE")
    assert de.n_current == 300 and de.n_reference == 1000
