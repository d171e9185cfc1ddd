"""Drift of the joint distribution of numeric features, from two profiles' co-moments.

Two statistics (docs/STATISTICS.md, *Joint distribution*), over the features both sides
track (the first ``max_features`` of the reference's; constant ones left out, including
those its fences clip to a constant: ≥ 90% of the reference at one value), on values
winsorized at the reference's fences (:mod:`streamproc.core.comoments`):

* **Correlation change** per pair: Δr = r_cur − r_ref (pairwise-complete Pearson
  correlations), with the Fisher (1915) z-transform's standardized difference
  z = (atanh r_cur − atanh r_ref) / sqrt(u · (1/n_cur + 1/n_ref)); u = 1 for bivariate
  normal data (se ≈ 1/sqrt(n − 3)).
* **Reconstruction error** under the reference's principal components (the data
  reconstruction method of NannyML's multivariate drift detection): with z = (x − μ_ref)
  / σ_ref and P the projection on the leading eigenvectors of the reference's
  standardized second moment S_ref that explain ``explained_variance`` of its trace
  (sklearn's rule for a fractional ``n_components``), the mean squared reconstruction
  error of a window is E‖(I − P)z‖² = tr((I − P)Σ_z) + ‖(I − P)μ_z‖² = tr((I − P)S_cur),
  computed from the moments, not from rows. The reference's own value is the sum of its
  discarded eigenvalues. Reported as the ratio cur / ref, with the z-score of log(ratio)
  (u = 2Σλ²_discarded / E_ref² for Gaussian rows). NannyML averages the unsquared norm;
  moments give the squared one.

Sampling noise: ``u`` (the variance of the statistic times the rows) comes from the
spread of the statistic over the reference's parts (:data:`~streamproc.core.comoments.
JOINT_BUCKETS`): u = Σ_b n_b (T_b − T_ref)² / (B − 1), never below the Gaussian value.
Heavy tails widen Pearson's sampling distribution well beyond Gaussian theory; the parts
measure it on the reference's own data. ``noise_dof`` = B − 1 (a Student-t gate), or
None when the reference has one part (Gaussian theory only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from streamproc.core.comoments import CoMoments, JointMoments


@dataclass(frozen=True, slots=True)
class PairChange:
    """One pair's correlation in both profiles."""

    first: str
    second: str
    r_reference: float
    r_current: float
    z: float  # standardized Fisher-z difference (signed)
    n_reference: int
    n_current: int

    @property
    def change(self) -> float:
        return self.r_current - self.r_reference


@dataclass(frozen=True, slots=True)
class Reconstruction:
    """Mean squared reconstruction error of both sides under the reference's PCA."""

    components: int
    error_reference: float
    error_current: float
    z: float  # of log(error_current / error_reference)

    @property
    def ratio(self) -> float:
        return self.error_current / self.error_reference


@dataclass(frozen=True, slots=True)
class JointDrift:
    features: tuple[str, ...]
    pairs: tuple[PairChange, ...]  # by |change|, largest first
    reconstruction: Reconstruction | None  # None: nothing discarded, or no variance
    noise_dof: int | None
    n_reference: int  # the fewest rows of any pair compared
    n_current: int


def _components(eigenvalues: np.ndarray, explained: float) -> int:
    """Leading components whose share of the total exceeds ``explained`` (sklearn)."""
    lam = np.clip(eigenvalues, 0.0, None)
    total = lam.sum()
    if total <= 0:
        return 0
    cum = np.cumsum(lam) / total
    return int(min(np.searchsorted(cum, explained, side="right") + 1, lam.size))


Stat = Callable[[CoMoments], tuple[np.ndarray, np.ndarray]]  # (T_b, n_b) of one part


def _unit_variance(parts: list[CoMoments], stat: Stat, ref_value: np.ndarray) -> np.ndarray:
    """Σ_b n_b (T_b − T_ref)² / (B − 1) over the reference's parts."""
    acc = np.zeros_like(ref_value)
    for p in parts:
        t, n = stat(p)
        acc = acc + np.where(np.isfinite(t), n * (t - ref_value) ** 2, 0.0)
    return acc / (len(parts) - 1)


def compare_joint(
    reference: JointMoments,
    current: JointMoments,
    *,
    max_features: int,
    explained_variance: float,
    min_rows: int,
) -> JointDrift | None:
    """Correlation changes and reconstruction error; None with fewer than two features
    of positive reference variance (after clipping) that both sides track, no pair with
    ``min_rows`` rows on both sides, or sides clipped at different bounds (moments of
    different transforms; a window copies its reference's, see
    :mod:`streamproc.core.comoments`)."""
    names = [n for n in reference.names if n in current.names][:max_features]
    if len(names) < 2 or reference.bounds_of(names) != current.bounds_of(names):
        return None
    ref_all = reference.select(names)
    ref = ref_all.total()
    diag = np.arange(len(names))
    var = ref.m2[diag, diag]
    keep = [i for i in diag if var[i] > 0 and ref.n[i, i] > 1]
    if len(keep) < 2:
        return None
    names = [names[i] for i in keep]
    ref_all = ref_all.select(names)
    ref = ref_all.total()
    cur = current.select(names).total()
    parts = ref_all.parts if len(ref_all.parts) > 1 else []
    d = len(names)
    diag = np.arange(d)
    iu = np.triu_indices(d, 1)

    # ---- correlations
    r_ref, r_cur = ref.correlation(), cur.correlation()
    z_ref = np.arctanh(np.clip(r_ref, -0.999999, 0.999999))
    z_cur = np.arctanh(np.clip(r_cur, -0.999999, 0.999999))
    u_r = np.ones((d, d))
    if parts:

        def fisher(p: CoMoments) -> tuple[np.ndarray, np.ndarray]:
            return np.arctanh(np.clip(p.correlation(), -0.999999, 0.999999)), p.n

        u_r = np.maximum(_unit_variance(parts, fisher, z_ref), 1.0)
    n_ref, n_cur = ref.n.astype(np.float64), cur.n.astype(np.float64)
    ok = (n_ref >= min_rows) & (n_cur >= min_rows) & np.isfinite(r_ref) & np.isfinite(r_cur)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (z_cur - z_ref) / np.sqrt(u_r * (1.0 / n_cur + 1.0 / n_ref))
    pairs = [
        PairChange(
            names[i],
            names[j],
            float(r_ref[i, j]),
            float(r_cur[i, j]),
            float(z[i, j]),
            int(ref.n[i, j]),
            int(cur.n[i, j]),
        )
        for i, j in zip(*iu, strict=True)
        if ok[i, j]
    ]
    if not pairs:
        return None
    pairs.sort(key=lambda p: -abs(p.change))

    # ---- reconstruction error
    center = ref.mean[diag, diag]
    scale = np.sqrt(ref.m2[diag, diag] / ref.n[diag, diag])
    s_ref = ref.standardized_second_moment(center, scale)
    s_ref = (s_ref + s_ref.T) / 2
    lam, vec = np.linalg.eigh(s_ref)
    lam, vec = lam[::-1], vec[:, ::-1]
    k = _components(lam, explained_variance)
    recon: Reconstruction | None = None
    e_ref = float(np.clip(lam[k:], 0.0, None).sum())
    min_cur = int(cur.n[diag, diag].min())
    if 0 < k < d and e_ref > 1e-12 * d and min_cur >= min_rows:
        q = vec[:, k:] @ vec[:, k:].T

        def error(p: CoMoments) -> float:
            s = p.standardized_second_moment(center, scale)
            return max(float(np.sum(q * s)), 0.0)  # tr(Q S), Q symmetric

        e_cur = error(cur)
        u_e = 2.0 * float((lam[k:] ** 2).sum()) / e_ref**2
        if parts:

            def log_error(p: CoMoments) -> tuple[np.ndarray, np.ndarray]:
                e = error(p)
                t = np.log(e) if e > 0 else np.nan
                return np.array(t), np.array(p.n[diag, diag].min())

            u_e = max(float(_unit_variance(parts, log_error, np.array(np.log(e_ref)))), u_e)
        n_r = int(ref.n[diag, diag].min())
        se = np.sqrt(u_e * (1.0 / min_cur + 1.0 / n_r))
        zr = (np.log(max(e_cur, 1e-300)) - np.log(e_ref)) / se
        recon = Reconstruction(k, e_ref, e_cur, float(zr))
    return JointDrift(
        features=tuple(names),
        pairs=tuple(pairs),
        reconstruction=recon,
        noise_dof=len(parts) - 1 if parts else None,
        n_reference=min(p.n_reference for p in pairs),
        n_current=min(p.n_current for p in pairs),
    )
