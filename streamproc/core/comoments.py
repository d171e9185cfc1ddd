"""Mergeable co-moments of a model's numeric features: the state of the joint-drift check.

Per pair (i, j) of tracked features, over the rows where **both** are valid
(pairwise-complete; a row's value is valid when it is a finite number within
±:data:`~streamproc.core.columns.MAX_MAGNITUDE`, as for the feature profiles):

* ``n[i, j]`` — the rows (symmetric; ``n[i, i]`` is feature i's valid count),
* ``mean[i, j]`` — the mean of feature i over them,
* ``m2[i, j]`` — the sum of squared deviations of feature i about ``mean[i, j]``,
* ``cross[i, j]`` — the co-moment Σ (xᵢ − mean[i, j]) (xⱼ − mean[j, i]) (symmetric).

Why pairwise-complete rather than dropping every row with any missing tracked value: one
feature that goes null (its own ``completeness`` alert) would otherwise blind the joint
check for all the others, and every subset of the features keeps exact moments, so a
check may use fewer features than were tracked. Cost: four d×d arrays instead of
d + d(d+1)/2 numbers; serialized, a part whose rows were all complete is written in the
compact form (n, means, m2, upper triangle of ``cross``).

Merging is exact: the pairwise form of the parallel update of Chan, Golub & LeVeque
(1979, *Updating formulae and a pairwise algorithm for computing sample variances*),
δ = mean_b − mean_a, n = n_a + n_b, mean = mean_a + δ·n_b/n,
m2 = m2_a + m2_b + δ²·n_a·n_b/n, cross = cross_a + cross_b + δᵢδⱼ·n_a·n_b/n, elementwise.

Memory: 32·d² bytes per part in memory (d = 20: 12.8 KB); serialized 8·(1 + 2d +
d(d+1)/2) bytes when compact (1.8 KB) and 8·(d(d+1) + 2d²) bytes otherwise (9.8 KB),
base64 in the model profile's metadata (so readers that predate it ignore it). Tracked
features: at most :data:`JOINT_MAX_FEATURES` numeric ones, the first by name.

**Winsorized at the reference's fences.** Values are clipped to per-feature ``bounds``
before they enter the moments (:meth:`JointMoments.update`): the reference's *fences*
[q₁₀ − c·(q₉₀ − q₁₀), q₉₀ + c·(q₉₀ − q₁₀)], c = :data:`JOINT_FENCE`, from its PSI edges
(deciles; :func:`joint_fences`). A reference is built in two passes (the fences are known
after the first) and a window built against it copies its bounds
(``ModelProfile.new(joint_bounds=reference.joint_bounds())``), so both sides hold moments
of the same bounded transform; profiles with different bounds are not compared. Why:
Pearson correlations and second moments of heavy-tailed data (Student-t with 3 dof,
lognormal) have infinite or huge fourth moments, so a few extreme rows swing a window's
statistics far beyond any noise model (``benchmarks/joint_drift_false_alarms.py``: 1.5–6%
false alarms on correlated t₃ windows unclipped, 0 clipped). For a normal feature the
fences are ±3.8σ (0.01% of values clipped). A feature with ≥ 90% of its reference at one
value has q₁₀ = q₉₀: it is clipped to a constant and leaves the joint check (its
correlations would rest on a handful of rows of a window).

A *reference* keeps :data:`JOINT_BUCKETS` parts, its rows spread over them by a hash of
the row index; the spread of the statistics across parts measures their sampling noise
for this data (heavy tails included), which Gaussian theory understates
(:mod:`streamproc.core.joint_drift`). Windows keep one part.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from streamproc.core.columns import MAX_MAGNITUDE
from streamproc.core.kinds import FeatureKind

JOINT_MAX_FEATURES: Final = 20
"""Numeric features tracked by default (the first by name)."""
JOINT_BUCKETS: Final = 20
"""Parts of a reference's co-moments (the noise model of the joint check)."""
_HASH: Final = 2654435761  # Knuth's multiplicative hash: row index → part
JOINT_FENCE: Final = 1.0
"""Fence width c: a reference's bounds are its deciles widened by c × their distance."""

Bounds = tuple[tuple[float, float], ...]
"""(low, high) per feature; ±inf where a feature is not clipped."""


def joint_fences(edges: np.ndarray | None) -> tuple[float, float]:
    """(low, high) fences from a feature's PSI edges (its reference deciles at the default
    10 bins: the first and last edge are q₁₀ and q₉₀); unbounded without edges."""
    if edges is None or len(edges) == 0:
        return -np.inf, np.inf
    lo, hi = float(edges[0]), float(edges[-1])
    width = JOINT_FENCE * (hi - lo)
    return lo - width, hi + width


def default_joint_features(
    kinds: Mapping[str, FeatureKind], cap: int = JOINT_MAX_FEATURES
) -> tuple[str, ...]:
    """The first ``cap`` numeric features by name."""
    return tuple(sorted(n for n, k in kinds.items() if FeatureKind(k) is FeatureKind.NUMERIC))[:cap]


def row_values(values: Any, n: int) -> np.ndarray:
    """A column as ``n`` float64 values, NaN where the value is not valid (null, not a
    number, non-finite or beyond ±MAX_MAGNITUDE); booleans count as 0/1."""
    x: np.ndarray
    if values is None:
        return np.full(n, np.nan)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        t = values.type
        if pat.is_dictionary(t):
            return row_values(values.dictionary_decode(), n)
        if pat.is_integer(t) or pat.is_floating(t) or pat.is_decimal(t) or pat.is_boolean(t):
            x = pc.cast(values, pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
        else:
            x = np.full(len(values), np.nan)
    elif isinstance(values, np.ma.MaskedArray):
        data = np.asarray(values.data)
        if data.dtype.kind in "iufb":
            x = np.where(np.ma.getmaskarray(values), np.nan, data.astype(np.float64))
        else:
            x = row_values(np.ma.filled(values.astype(object), None), n)
    elif isinstance(values, np.ndarray) and values.dtype.kind in "iufb":
        x = values.astype(np.float64)
    else:
        x = np.fromiter(map(_number, values), dtype=np.float64, count=len(values))
    x = np.asarray(x, dtype=np.float64).ravel()
    if x.size != n:
        raise ValueError(f"column has {x.size} values, expected {n}")
    return np.where(np.abs(x) <= MAX_MAGNITUDE, x, np.nan)


def _number(v: Any) -> float:
    if isinstance(v, int | float | np.integer | np.floating):
        try:
            return float(v)
        except OverflowError:  # a Python int beyond float64: non-finite
            return np.nan
    return np.nan


def _gram(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """aᵀb without BLAS: its threads spin against the ingest threads (einsum's own
    loop: 1e4 × 20 in ~2 ms on one core, where a contended BLAS matmul took 12 ms)."""
    return np.einsum("ni,nj->ij", a, b)


@dataclass(eq=False)
class CoMoments:
    """Pairwise-complete co-moments of d features (see the module docstring)."""

    n: np.ndarray  # (d, d) int64
    mean: np.ndarray  # (d, d) float64
    m2: np.ndarray
    cross: np.ndarray

    @classmethod
    def empty(cls, d: int) -> CoMoments:
        z = np.zeros((d, d))
        return cls(np.zeros((d, d), dtype=np.int64), z, z.copy(), z.copy())

    @property
    def d(self) -> int:
        return int(self.n.shape[0])

    @classmethod
    def of_rows(cls, x: np.ndarray) -> CoMoments:
        """Co-moments of the rows of ``x`` (rows × d, NaN = missing)."""
        rows, d = x.shape
        valid = ~np.isnan(x)
        if rows == 0:
            return cls.empty(d)
        if valid.all():  # identical per row: the compact form stays exact
            mu = x.mean(axis=0)
            xc = x - mu
            m2 = np.einsum("ij,ij->j", xc, xc)
            return cls(
                np.full((d, d), rows, dtype=np.int64),
                np.repeat(mu[:, None], d, axis=1),
                np.repeat(m2[:, None], d, axis=1),
                _gram(xc, xc),
            )
        w = valid.astype(np.float64)
        cnt = w.sum(axis=0)
        shift = np.divide(np.where(valid, x, 0.0).sum(axis=0), cnt, where=cnt > 0, out=cnt * 0)
        x0 = np.where(valid, x - shift, 0.0)  # centred for accuracy; moments are shift-free
        nn = _gram(w, w)
        s = _gram(x0, w)  # s[i, j]: Σ xᵢ over the rows where i and j are valid
        q = _gram(x0 * x0, w)
        p = _gram(x0, x0)
        has = nn > 0
        inv = np.divide(1.0, nn, where=has, out=np.zeros_like(nn))
        mean = np.where(has, s * inv + shift[:, None], 0.0)
        m2 = np.maximum(q - s * s * inv, 0.0)
        cross = p - s * s.T * inv
        return cls(np.rint(nn).astype(np.int64), mean, m2, cross)

    def merge(self, other: CoMoments) -> CoMoments:
        """Moments of both inputs' rows (Chan et al. 1979); neither is modified."""
        na, nb = self.n.astype(np.float64), other.n.astype(np.float64)
        n = na + nb
        has = n > 0
        f = np.divide(nb, n, where=has, out=np.zeros_like(n))
        g = na * f
        delta = other.mean - self.mean
        return CoMoments(
            self.n + other.n,
            np.where(has, self.mean + delta * f, 0.0),
            self.m2 + other.m2 + delta * delta * g,
            self.cross + other.cross + delta * delta.T * g,
        )

    def select(self, idx: Sequence[int]) -> CoMoments:
        """The moments of the features at ``idx`` (exact: pairwise-complete)."""
        ix = np.ix_(idx, idx)
        return CoMoments(self.n[ix], self.mean[ix], self.m2[ix], self.cross[ix])

    def covariance(self, ddof: int = 1) -> np.ndarray:
        """Pairwise covariance matrix (NaN where a pair has ≤ ddof rows)."""
        den = self.n.astype(np.float64) - ddof
        return np.divide(self.cross, den, where=den > 0, out=np.full(den.shape, np.nan))

    def correlation(self) -> np.ndarray:
        """Pairwise Pearson correlation (NaN where undefined: no variance, no rows)."""
        den = np.sqrt(self.m2 * self.m2.T)
        r = np.divide(self.cross, den, where=den > 0, out=np.full(den.shape, np.nan))
        return np.clip(r, -1.0, 1.0)

    def standardized_second_moment(self, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """E[zᵢ zⱼ] over the pair's rows for z = (x − center) / scale: the biased
        covariance plus the product of the shifted means."""
        nn = self.n.astype(np.float64)
        cov = np.divide(self.cross, nn, where=nn > 0, out=np.zeros_like(nn))
        shifted = self.mean - center[:, None]
        return (cov + shifted * shifted.T) / np.outer(scale, scale)

    def equals(self, other: CoMoments) -> bool:
        return all(
            np.array_equal(a, b)
            for a, b in zip(
                (self.n, self.mean, self.m2, self.cross),
                (other.n, other.mean, other.m2, other.cross),
                strict=True,
            )
        )

    # -------------------------------------------------------------------- serialization

    def _compact(self) -> bool:
        return bool(
            (self.n == self.n.flat[0]).all()
            and (self.mean == self.mean[:, :1]).all()
            and (self.m2 == self.m2[:, :1]).all()
        )

    def to_bytes(self) -> bytes:
        """Form byte (0 compact, 1 pairwise), then little-endian arrays."""
        iu = np.triu_indices(self.d)
        if self._compact():
            parts = [self.n.flat[:1], self.mean[:, 0], self.m2[:, 0], self.cross[iu]]
            form = b"\x00"
        else:
            parts = [self.n[iu], self.mean.ravel(), self.m2.ravel(), self.cross[iu]]
            form = b"\x01"
        ints, *floats = parts
        return form + ints.astype("<i8").tobytes() + np.concatenate(floats).astype("<f8").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, d: int) -> CoMoments:
        """Inverse of :meth:`to_bytes`; ValueError when the bytes do not fit ``d``."""
        iu = np.triu_indices(d)
        tri = d * (d + 1) // 2
        compact = data[:1] == b"\x00"
        if data[:1] not in (b"\x00", b"\x01"):
            raise ValueError("unknown co-moments form")
        n_ints, n_floats = (1, 2 * d + tri) if compact else (tri, 2 * d * d + tri)
        if len(data) != 1 + 8 * (n_ints + n_floats):
            raise ValueError(f"co-moments of {d} features do not fit {len(data)} bytes")
        ints = np.frombuffer(data, "<i8", n_ints, 1).astype(np.int64)
        fl = np.frombuffer(data, "<f8", n_floats, 1 + 8 * n_ints).astype(np.float64)
        if (ints < 0).any() or not np.isfinite(fl).all():
            raise ValueError("co-moments hold a negative count or a non-finite moment")
        cross = np.zeros((d, d))
        cross[iu] = fl[-tri:]
        cross = cross + np.triu(cross, 1).T
        if compact:
            n = np.full((d, d), ints[0], dtype=np.int64)
            mean = np.repeat(fl[:d, None], d, axis=1)
            m2 = np.repeat(fl[d : 2 * d, None], d, axis=1)
        else:
            n = np.zeros((d, d), dtype=np.int64)
            n[iu] = ints
            n = n + np.triu(n, 1).T
            mean = fl[: d * d].reshape(d, d).copy()
            m2 = fl[d * d : 2 * d * d].reshape(d, d).copy()
        return cls(n, mean, m2, cross)


@dataclass(eq=False)
class JointMoments:
    """Co-moments of named features in one or more parts (a reference: several)."""

    names: tuple[str, ...]
    parts: list[CoMoments]
    rows: int = 0  # rows offered to update (each row's index picks its part)
    bounds: Bounds | None = None  # values are clipped to these before the moments

    @classmethod
    def new(
        cls, names: Sequence[str], parts: int = 1, bounds: Bounds | None = None
    ) -> JointMoments:
        if bounds is not None and len(bounds) != len(names):
            raise ValueError(f"{len(bounds)} bounds for {len(names)} features")
        empty = [CoMoments.empty(len(names)) for _ in range(max(1, parts))]
        return cls(tuple(names), empty, 0, bounds)

    def bounds_of(self, names: Sequence[str]) -> Bounds | None:
        """The bounds of ``names`` (None: not clipped)."""
        if self.bounds is None:
            return None
        return tuple(self.bounds[self.names.index(n)] for n in names)

    def total(self) -> CoMoments:
        """All parts merged."""
        out = self.parts[0]
        for p in self.parts[1:]:
            out = out.merge(p)
        return out

    def update(self, columns: Mapping[str, Any], n: int) -> None:
        """Add ``n`` rows; a tracked feature absent from ``columns`` is missing in all."""
        if n == 0 or not self.names:
            self.rows += n
            return
        x = np.column_stack([row_values(columns.get(name), n) for name in self.names])
        if self.bounds is not None:  # NaN (missing) stays NaN
            lo, hi = np.array(self.bounds, dtype=np.float64).T
            x = np.clip(x, lo, hi)
        k = len(self.parts)
        if k == 1:
            self.parts[0] = self.parts[0].merge(CoMoments.of_rows(x))
        else:
            idx = np.arange(self.rows, self.rows + n, dtype=np.uint64)
            part = ((idx * np.uint64(_HASH)) % np.uint64(2**32)) % np.uint64(k)
            for b in range(k):
                rows = x[part == b]
                if rows.shape[0]:
                    self.parts[b] = self.parts[b].merge(CoMoments.of_rows(rows))
        self.rows += n

    def select(self, names: Sequence[str]) -> JointMoments:
        idx = [self.names.index(name) for name in names]
        parts = [p.select(idx) for p in self.parts]
        return JointMoments(tuple(names), parts, self.rows, self.bounds_of(names))

    def merge(self, other: JointMoments) -> JointMoments:
        """Both inputs' rows over the features both track (exact), partwise when both
        have as many parts, else as one part. ValueError when they were clipped at
        different bounds (their moments are of different transforms)."""
        if self.names != other.names:
            common = [name for name in self.names if name in other.names]
            return self.select(common).merge(other.select(common))
        if self.bounds != other.bounds:
            raise ValueError("co-moments clipped at different bounds do not merge")
        if len(self.parts) == len(other.parts):
            parts = [a.merge(b) for a, b in zip(self.parts, other.parts, strict=True)]
        else:
            parts = [self.total().merge(other.total())]
        return JointMoments(self.names, parts, self.rows + other.rows, self.bounds)

    def copy(self) -> JointMoments:
        return self.merge(JointMoments.new(self.names, len(self.parts), self.bounds))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, JointMoments):
            return NotImplemented
        return (
            self.names == other.names
            and self.rows == other.rows
            and self.bounds == other.bounds
            and len(self.parts) == len(other.parts)
            and all(a.equals(b) for a, b in zip(self.parts, other.parts, strict=True))
        )

    __hash__ = None  # type: ignore[assignment]

    def to_meta(self) -> dict[str, Any]:
        """JSON-able form for the model profile's metadata (an infinite bound: null)."""
        out: dict[str, Any] = {
            "features": list(self.names),
            "rows": self.rows,
            "parts": [base64.b64encode(p.to_bytes()).decode("ascii") for p in self.parts],
        }
        if self.bounds is not None:
            out["bounds"] = [[_finite(lo), _finite(hi)] for lo, hi in self.bounds]
        return out

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> JointMoments:
        names = tuple(str(n) for n in meta["features"])
        parts = [CoMoments.from_bytes(base64.b64decode(p), len(names)) for p in meta["parts"]]
        if not parts:
            raise ValueError("co-moments without parts")
        bounds: Bounds | None = None
        if meta.get("bounds") is not None:
            bounds = tuple(
                (-np.inf if lo is None else float(lo), np.inf if hi is None else float(hi))
                for lo, hi in meta["bounds"]
            )
            if len(bounds) != len(names):
                raise ValueError(f"{len(bounds)} bounds for {len(names)} features")
        return cls(names, parts, int(meta["rows"]), bounds)


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def merge_joint(
    a: JointMoments | None, a_rows: int, b: JointMoments | None, b_rows: int
) -> JointMoments | None:
    """Co-moments of two profiles' merge: a side without them contributes nothing only
    when it has no rows; otherwise the merge has none (its rows would be missing)."""
    if a is None or b is None:
        if (a is None and a_rows > 0) or (b is None and b_rows > 0):
            return None
        kept = a if a is not None else b
        return kept.copy() if kept is not None else None
    if a.names != b.names and (a_rows == 0 or b_rows == 0):
        return (b if a_rows == 0 else a).copy()
    common = [n for n in a.names if n in b.names]
    if a.bounds_of(common) != b.bounds_of(common):
        if a_rows == 0 or b_rows == 0:
            return (b if a_rows == 0 else a).copy()
        return None  # moments of different transforms: no joint check on the merge
    return a.merge(b)
