"""False alarms and power of the ``joint_drift`` check on correlated features.

Every stable window is a fresh sample of the reference's own joint distribution, so each
breach is a false alarm; the "broken" windows keep every marginal and replace the
correlation structure by independence (the check must fire). Shapes (8 features with a
fixed random correlation matrix Σ, |ρ| up to ~0.8, through a Gaussian copula):

normal N(0, Σ) · t5 multivariate Student-t, 5 dof · t3 likewise, 3 dof (infinite
kurtosis) · lognormal exp(N(0, Σ)) · discrete Poisson(5·exp(z/2)).

Run: ``.venv/bin/python benchmarks/joint_drift_false_alarms.py [--scale 1.0]
[--ref-rows 50000]``. Prints, per shape and window size, the share of stable windows
with a warning / critical ``joint_drift`` and the share of broken windows detected. The
200-row windows use ``min_samples = 200`` (the default, 500, would skip them).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from streamproc.checks.context import Window  # noqa: E402
from streamproc.checks.joint_checks import joint_drift_result  # noqa: E402
from streamproc.checks.policy import EvaluationPolicy  # noqa: E402
from streamproc.core.kinds import FeatureKind  # noqa: E402
from streamproc.core.model_profile import ModelProfile  # noqa: E402
from streamproc.core.thresholds import DEFAULT_THRESHOLDS  # noqa: E402

D = 8
NAMES = [f"f{i}" for i in range(D)]
SHAPES = ("normal", "t5", "t3", "lognormal", "discrete")
SIZES = ((200, 200), (1_000, 200), (10_000, 100), (100_000, 30))  # (rows, repetitions)


def correlation(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(D, D))
    cov = a @ a.T / D + 0.3 * np.eye(D)
    s = np.sqrt(np.diag(cov))
    return np.asarray(cov / np.outer(s, s))


def draw(rng: np.random.Generator, shape: str, n: int, chol: np.ndarray) -> np.ndarray:
    z = rng.normal(size=(n, D)) @ chol.T
    if shape == "normal":
        return z
    if shape in ("t5", "t3"):
        dof = int(shape[1])
        return np.asarray(z / np.sqrt(rng.chisquare(dof, size=(n, 1)) / dof))
    if shape == "lognormal":
        return np.exp(z)
    if shape == "discrete":
        return rng.poisson(5 * np.exp(z / 2)).astype(np.float64)
    raise ValueError(shape)


def reference(x: np.ndarray) -> ModelProfile:
    """A reference as ``build_reference`` makes it: co-moments clipped at its fences."""
    return ModelProfile.build_reference("m", "1", {n: x[:, i] for i, n in enumerate(NAMES)})


def profile(x: np.ndarray, ref: ModelProfile) -> ModelProfile:
    """A window's co-moments only (fast), clipped at the reference's bounds."""
    kinds = {n: FeatureKind.NUMERIC for n in NAMES}
    p = ModelProfile.new("m", "1", kinds, metadata={"role": "w"}, joint_bounds=ref.joint_bounds())
    assert p.joint is not None
    p.joint.update({n: x[:, i] for i, n in enumerate(NAMES)}, x.shape[0])
    p.row_count = x.shape[0]
    return p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--ref-rows", type=int, default=50_000)
    args = ap.parse_args()
    chol = np.linalg.cholesky(correlation())
    window = Window("m", "1", 0, 1)
    policies = {
        n: EvaluationPolicy(thresholds=DEFAULT_THRESHOLDS.with_overrides({"min_samples": 200}))
        if n < 500
        else EvaluationPolicy()
        for n, _ in SIZES
    }
    print(f"reference rows {args.ref_rows:,}; {D} features; default joint thresholds")
    print(
        f"{'shape':10s} {'rows':>8s} {'windows':>7s} {'warn %':>7s} {'crit %':>7s} {'power %':>8s}"
    )
    t0 = time.perf_counter()
    for s_i, shape in enumerate(SHAPES):
        rng = np.random.default_rng(100 + s_i)
        ref = reference(draw(rng, shape, args.ref_rows, chol))
        for n, reps in SIZES:
            reps = max(1, round(reps * args.scale))
            sev = {"warning": 0, "critical": 0}
            detected = 0
            for _ in range(reps):
                r = joint_drift_result(
                    window, ref, profile(draw(rng, shape, n, chol), ref), policies[n]
                )
                if r is not None and r.breached:
                    sev[r.effective_severity] += 1
                broken = draw(rng, shape, n, chol)
                for j in range(D):  # independent columns, same marginals
                    broken[:, j] = rng.permutation(broken[:, j])
                b = joint_drift_result(window, ref, profile(broken, ref), policies[n])
                detected += int(b is not None and b.breached)
            print(
                f"{shape:10s} {n:8,d} {reps:7d} {100 * sev['warning'] / reps:7.1f} "
                f"{100 * sev['critical'] / reps:7.1f} {100 * detected / reps:8.1f}"
            )
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
