"""Per-feature profile: counts, moments and sketches that merge.

Sketch sizes: ``REFERENCE_K = 1024`` for reference profiles (built once per model),
``WINDOW_K = 512`` for window profiles, and an HLL with ``lg_k = 12`` (relative standard
error 1.04/√4096 ≈ 1.6%; Flajolet et al. 2007) and 4-bit registers. KLL's single-rank
error is ε ≈ 0.0053 at k = 512 and ε ≈ 0.0027 at k = 1024 (99% bounds), so the KS error
bound reported with each result is ≈ 0.008.

Exact PSI bins (``bin_edges`` / ``bin_counts``): a numeric profile created with the
reference's PSI edges (``reference_edges``: the distinct reference quantiles at ranks
1/B … (B−1)/B) also counts its finite values per bin (−∞, e₁), [e₁, e₂), …, [e_m, ∞)
— an int64 per bin, so the counts are exact and merge exactly. Drift then takes the
current side's PSI/JS shares from them instead of the window KLL, whose rank error
swamps the smallest bins of a far-shifted current. The counts come from the sorted batch
the update already makes for the HLL's distinct values (``searchsorted`` of the edges).
Merging keeps them only when both sides' edges are identical (a side with no finite
values fits any edges); otherwise the merged profile has none and drift falls back to
the sketch — counts on different edges are never mixed.

Finite moments, always: a numeric value counts as valid only within ±1e100
(:data:`~streamproc.core.columns.MAX_MAGNITUDE`; beyond it, like NaN and ±inf, it counts
as non-finite), which keeps ``sum`` and ``m2`` finite for any number of rows, so they
serialize as JSON numbers. The serialized metadata never holds a non-finite number
(orjson would write ``null``, which no reader takes): should a moment still be non-finite
— only possible after merging bytes written before the bound — it is written saturated
(±inf → ±float64 max, NaN → 0) rather than making the whole profile unreadable.

HLL: numeric features hash their float values; each batch is deduplicated with
``np.unique`` first, then the distinct values are fed in one ``map`` over a list — the
datasketches HLL has no array update. **Window profiles of numeric features keep no HLL**
(``lg_hll = NO_DISTINCT``, what ``ModelProfile.new(numeric_distinct=False)`` asks for):
no check reads a window's numeric distinct count (the cardinality checks are the
categoricals', whose HLL stays), and the per-value update was ~1.1 µs of the worker's
~16 µs CPU per event at 20 numeric features (``bench_worker.py --profile``). Reference
profiles keep it, for ``profile show``; a profile merged with one that has none has none.

Measurements behind these choices (accuracy per k, sizes, update costs): docs/MEASUREMENTS.md.
"""

from __future__ import annotations

import math
import struct
import sys
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import datasketches as ds
import numpy as np

from streamproc.core import codec
from streamproc.core.categories import (
    DEFAULT_LG_MAX_MAP_SIZE,
    DEFAULT_MAX_CATEGORIES,
    CategoryCounts,
)
from streamproc.core.columns import boolean_batch, categorical_batch, numeric_batch
from streamproc.core.errors import ProfileFormatError
from streamproc.core.kinds import FeatureKind

REFERENCE_K = 1024
WINDOW_K = 512
DEFAULT_LG_HLL = 12
NO_DISTINCT = 0
"""``lg_hll`` of a numeric profile that keeps no HLL (window profiles)."""
_HLL_TYPE = ds.tgt_hll_type.HLL_4
T = TypeVar("T")


def _copy_kll(sk: ds.kll_doubles_sketch) -> ds.kll_doubles_sketch:
    return ds.kll_doubles_sketch.deserialize(sk.serialize())


def _hll_union(a: ds.hll_sketch, b: ds.hll_sketch, lg_k: int) -> ds.hll_sketch:
    u = ds.hll_union(lg_k)
    u.update(a)
    u.update(b)
    return u.get_result(_HLL_TYPE)


def _hll_estimate(h: ds.hll_sketch | None) -> float | None:
    return None if h is None else float(h.get_estimate())


def frozen_edges(edges: Any) -> np.ndarray:
    """``edges`` as a read-only 1-D float64 array of finite, strictly increasing values.

    An array that already is one (e.g. the reference's memoized edges) is returned
    as is, so every window profile built against one reference shares it."""
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1:
        raise ValueError(f"bin edges must be 1-D, got shape {e.shape}")
    if not np.isfinite(e).all() or (e.size > 1 and not (np.diff(e) > 0).all()):
        raise ValueError("bin edges must be finite and strictly increasing")
    if e.flags.writeable or e.base is not None:
        e = e.copy()
        e.setflags(write=False)
    return e


def same_edges(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    """Both present and equal element by element (identity is the fast path)."""
    if a is None or b is None:
        return False
    return a is b or (a.shape == b.shape and bool(np.array_equal(a, b)))


def _merge_bins(
    a: FeatureProfile, b: FeatureProfile
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Edges and bin counts of ``merge(a, b)``: summed when the edges are equal.

    A side without finite values counts 0 in every bin of any edges, so it does not
    constrain the other side. Otherwise differing edges, or a side without bins,
    drop them (the merge falls back to the KLL sketch; counts are never mixed)."""
    filled = [p for p in (a, b) if p.valid_count > 0]
    if not filled:
        src = a if a.bin_edges is not None else b
        if src.bin_edges is None:
            return None, None
        return src.bin_edges, np.zeros(src.bin_edges.size + 1, dtype=np.int64)
    edges = filled[0].bin_edges
    if edges is None or not all(same_edges(p.bin_edges, edges) for p in filled[1:]):
        return None, None
    counts = np.zeros(edges.size + 1, dtype=np.int64)
    for p in filled:
        assert p.bin_counts is not None
        counts += p.bin_counts
    return edges, counts


_U32 = struct.Struct("<I")
_FLOAT_MAX = sys.float_info.max


def _json_float(x: float) -> float:
    """``x`` if finite, else saturated (±inf → ±float64 max, NaN → 0.0): JSON has no
    non-finite numbers and orjson would write ``null``, which no reader accepts."""
    if math.isfinite(x):
        return x
    return 0.0 if math.isnan(x) else math.copysign(_FLOAT_MAX, x)


def _bins_blob(edges: np.ndarray | None, counts: np.ndarray | None) -> bytes:
    """u32 m, m float64 edges, m + 1 int64 counts (little-endian); b"" for no bins."""
    if edges is None or counts is None:
        return b""
    return (
        _U32.pack(edges.size)
        + edges.astype("<f8", copy=False).tobytes()
        + counts.astype("<i8", copy=False).tobytes()
    )


def _bins_from_blob(blob: bytes, valid_count: int) -> tuple[np.ndarray, np.ndarray]:
    (m,) = _U32.unpack_from(blob)
    if len(blob) != 4 + 8 * m + 8 * (m + 1):
        raise ValueError(f"bin blob of {len(blob)} bytes does not hold {m} edges")
    edges = frozen_edges(np.frombuffer(blob, dtype="<f8", count=m, offset=4))
    counts = np.frombuffer(blob, dtype="<i8", count=m + 1, offset=4 + 8 * m).astype(np.int64)
    if (counts < 0).any() or int(counts.sum()) != valid_count:
        raise ValueError(f"bin counts {counts.tolist()} do not add up to {valid_count} values")
    return edges, counts


class FeatureProfile:
    """Everything streamproc keeps about one feature over a set of rows.

    Counts: ``count`` rows seen; of those ``null_count`` nulls, ``invalid_count``
    values of the wrong type, ``nonfinite_count`` NaN/±inf and values beyond ±1e100
    (numeric only; see :mod:`streamproc.core.columns`);
    ``valid_count`` is the rest, the sample the sketches and moments describe.
    Numeric: min, max, sum and sum of squared deviations (merged with Chan et al.'s
    parallel formula, numerically stable; ``sum_of_squares`` is derived), a KLL
    quantile sketch (Karnin, Lang & Liberty 2016) and an HLL distinct-count sketch.
    Categorical: exact category counts up to ``max_categories`` then a frequent-items
    sketch (see :mod:`streamproc.core.categories`), and an HLL. Boolean: counts of
    "false" and "true".

    Numeric profiles created with ``bin_edges`` (the reference's PSI edges, shared
    read-only float64) also keep ``bin_counts``: int64, ``len(bin_edges) + 1`` exact
    counts of finite values in (−∞, e₁), [e₁, e₂), …, [e_m, ∞) — the convention of
    PSI's shares. ``merge`` sums them when both sides have the same edges (a side
    without finite values fits any edges) and drops them otherwise; they are part of
    the serialized bytes (format version 2) and of equality. ``None`` when absent.

    ``update`` mutates in place and is vectorized; ``merge`` returns a new profile
    and leaves both inputs untouched.

    >>> import numpy as np
    >>> from streamproc.core.kinds import FeatureKind
    >>> a = FeatureProfile.new(FeatureKind.NUMERIC)
    >>> a.update(np.array([1.0, 2.0, np.nan, 4.0]))
    >>> a.count, a.valid_count, a.nonfinite_count
    (4, 3, 1)
    >>> b = FeatureProfile.new(FeatureKind.NUMERIC)
    >>> b.update([None, 3.0, "three"])  # a null, a value, a value of the wrong type
    >>> merged = a.merge(b)
    >>> merged
    FeatureProfile(kind=numeric, count=7, nulls=1, invalid=1, nonfinite=1)
    >>> merged.valid_count, merged.min, merged.max, merged.mean
    (4, 1.0, 4.0, 2.5)
    >>> a.count  # merge leaves its inputs alone
    4
    >>> FeatureProfile.from_bytes(merged.to_bytes()) == merged
    True
    >>> c = FeatureProfile.new(FeatureKind.CATEGORICAL)
    >>> c.update(["gold", "silver", "gold", None])
    >>> c.top_categories(2), c.null_rate
    ([('gold', 2), ('silver', 1)], 0.25)
    """

    __slots__ = (
        "_derived",
        "_max",
        "_min",
        "bin_counts",
        "bin_edges",
        "categories",
        "count",
        "hll",
        "invalid_count",
        "k",
        "kind",
        "kll",
        "lg_hll",
        "m2",
        "max_categories",
        "nonfinite_count",
        "null_count",
        "sum",
    )

    def __init__(
        self,
        kind: FeatureKind,
        *,
        k: int = WINDOW_K,
        max_categories: int = DEFAULT_MAX_CATEGORIES,
        lg_hll: int = DEFAULT_LG_HLL,
        bin_edges: np.ndarray | None = None,
    ) -> None:
        self.kind = FeatureKind(kind)
        self.k = k
        self.max_categories = max_categories
        self.lg_hll = lg_hll
        self.count = 0
        self.null_count = 0
        self.invalid_count = 0
        self.nonfinite_count = 0
        self._min = math.inf
        self._max = -math.inf
        self.sum = 0.0
        self.m2 = 0.0
        self._derived: dict[Hashable, Any] = {}
        numeric = self.kind is FeatureKind.NUMERIC
        self.kll: ds.kll_doubles_sketch | None = ds.kll_doubles_sketch(k) if numeric else None
        if lg_hll == NO_DISTINCT and self.kind is FeatureKind.CATEGORICAL:
            raise ValueError("a categorical profile keeps its HLL (cardinality checks)")
        self.hll: ds.hll_sketch | None = (
            None
            if self.kind is FeatureKind.BOOLEAN or lg_hll == NO_DISTINCT
            else ds.hll_sketch(lg_hll, _HLL_TYPE)
        )
        self.categories: CategoryCounts | None = (
            None if numeric else CategoryCounts(max_categories, DEFAULT_LG_MAX_MAP_SIZE)
        )
        self.bin_edges: np.ndarray | None = None
        self.bin_counts: np.ndarray | None = None
        if bin_edges is not None:
            if not numeric:
                raise ValueError(f"bin edges are for numeric features, not {self.kind.value}")
            self.bin_edges = frozen_edges(bin_edges)
            self.bin_counts = np.zeros(self.bin_edges.size + 1, dtype=np.int64)

    @classmethod
    def new(
        cls,
        kind: FeatureKind,
        *,
        k: int = WINDOW_K,
        max_categories: int = DEFAULT_MAX_CATEGORIES,
        lg_hll: int = DEFAULT_LG_HLL,
        bin_edges: np.ndarray | None = None,
    ) -> FeatureProfile:
        """An empty profile. Use ``k=REFERENCE_K`` for reference profiles.

        ``bin_edges`` (numeric only): the reference's PSI edges; the profile then also
        counts its finite values exactly per bin (see :attr:`bin_counts`).
        """
        return cls(kind, k=k, max_categories=max_categories, lg_hll=lg_hll, bin_edges=bin_edges)

    # ------------------------------------------------------------------ derived values

    @property
    def valid_count(self) -> int:
        return self.count - self.null_count - self.invalid_count - self.nonfinite_count

    @property
    def null_rate(self) -> float:
        return self.null_count / self.count if self.count else 0.0

    @property
    def invalid_rate(self) -> float:
        return self.invalid_count / self.count if self.count else 0.0

    @property
    def nonfinite_rate(self) -> float:
        return self.nonfinite_count / self.count if self.count else 0.0

    @property
    def min(self) -> float | None:
        return self._min if self._min <= self._max else None

    @property
    def max(self) -> float | None:
        return self._max if self._min <= self._max else None

    @property
    def mean(self) -> float | None:
        n = self.valid_count
        return self.sum / n if n and self.kind is FeatureKind.NUMERIC else None

    @property
    def variance(self) -> float | None:
        """Population variance of the finite values."""
        n = self.valid_count
        return max(self.m2, 0.0) / n if n and self.kind is FeatureKind.NUMERIC else None

    @property
    def std(self) -> float | None:
        v = self.variance
        return math.sqrt(v) if v is not None else None

    @property
    def sum_of_squares(self) -> float:
        n = self.valid_count
        return self.m2 + (self.sum * self.sum / n if n else 0.0)

    def quantiles(self, qs: Any) -> np.ndarray:
        """Quantiles at ranks ``qs`` in [0, 1] from the KLL sketch (NaN if empty)."""
        q = np.atleast_1d(np.asarray(qs, dtype=np.float64))
        if self.kll is None or self.kll.is_empty():
            return np.full(q.shape, np.nan)
        return np.asarray(self.kll.get_quantiles(q), dtype=np.float64)

    def top_categories(self, n: int = 10) -> list[tuple[str, int]]:
        """Most frequent categories with counts (estimates beyond the exact cap)."""
        return self.categories.top(n) if self.categories is not None else []

    def distinct_estimate(self) -> float | None:
        """Distinct valid values: exact for booleans and categoricals under the cap; None
        for a numeric profile without an HLL (a window's)."""
        if self.categories is not None and (self.hll is None or self.categories.is_exact):
            return float(self.categories.distinct())
        if self.hll is None:
            return None
        return float(self.hll.get_estimate())

    def derived(self, key: Hashable, compute: Callable[[FeatureProfile], T]) -> T:
        """``compute(self)``, memoized under ``key`` until the next update.

        For values that depend only on this profile (e.g. a reference's retained KLL
        items and bin edges, recomputed on every drift comparison otherwise). ``merge``
        and ``from_bytes`` build new profiles, so only ``update``/``add_nulls`` clear it.
        """
        if key not in self._derived:
            self._derived[key] = compute(self)
        value: T = self._derived[key]
        return value

    # ------------------------------------------------------------------------ updates

    def add_nulls(self, n: int) -> None:
        """Record ``n`` rows where the feature was absent."""
        self._derived.clear()
        self.count += n
        self.null_count += n

    def update(self, values: Any) -> None:
        """Add one column of values (numpy, pyarrow or a sequence); vectorized."""
        self._derived.clear()
        if self.kind is FeatureKind.NUMERIC:
            nb = numeric_batch(values)
            self.count += nb.n
            self.null_count += nb.nulls
            self.invalid_count += nb.invalid
            self.nonfinite_count += nb.nonfinite
            self._update_numeric(nb.finite)
            return
        cb = (categorical_batch if self.kind is FeatureKind.CATEGORICAL else boolean_batch)(values)
        self.count += cb.n
        self.null_count += cb.nulls
        self.invalid_count += cb.invalid
        assert self.categories is not None
        self.categories.update(cb.categories, cb.counts)
        if self.hll is not None:
            deque(map(self.hll.update, cb.categories), maxlen=0)

    def _update_numeric(self, x: np.ndarray) -> None:
        nb = int(x.size)
        if nb == 0:
            return
        assert self.kll is not None
        if not (x.flags.writeable and x.flags.c_contiguous):
            x = np.array(x, dtype=np.float64)  # the KLL binding rejects read-only views
        na = self.valid_count - nb  # counts were already bumped by the caller
        xs = np.sort(x)  # np.unique's own sort, kept for the bin counts
        if self.bin_edges is not None and self.bin_counts is not None:
            # bins (-inf, e1), [e1, e2), ..., [em, inf): the bin of x is #edges <= x
            cuts = np.searchsorted(xs, self.bin_edges, side="left")
            self.bin_counts += np.diff(cuts, prepend=0, append=nb)
        sb = float(x.sum())
        mb = sb / nb
        d = x - mb
        m2b = float(np.einsum("i,i->", d, d))  # not d @ d: BLAS threads spin
        if na:
            delta = mb - self.sum / na
            self.m2 = self.m2 + m2b + delta * delta * na * nb / (na + nb)
        else:
            self.m2 = m2b
        self.sum += sb
        self._min = min(self._min, float(xs[0]))
        self._max = max(self._max, float(xs[-1]))
        self.kll.update(x)
        if self.hll is not None:
            first = np.empty(nb, dtype=bool)
            first[0] = True
            np.not_equal(xs[1:], xs[:-1], out=first[1:])
            # one call per distinct value: the datasketches binding has no array update
            deque(map(self.hll.update, xs[first].tolist()), maxlen=0)

    # -------------------------------------------------------------------------- merge

    def merge(self, other: FeatureProfile) -> FeatureProfile:
        """Profile of both inputs' rows; neither input is modified."""
        if other.kind is not self.kind:
            raise ValueError(f"cannot merge {self.kind.value} with {other.kind.value} profile")
        out = FeatureProfile(
            self.kind,
            k=min(self.k, other.k),
            max_categories=min(self.max_categories, other.max_categories),
            lg_hll=NO_DISTINCT
            if self.kind is FeatureKind.NUMERIC and (self.hll is None or other.hll is None)
            else max(self.lg_hll, other.lg_hll),
        )
        out.count = self.count + other.count
        out.null_count = self.null_count + other.null_count
        out.invalid_count = self.invalid_count + other.invalid_count
        out.nonfinite_count = self.nonfinite_count + other.nonfinite_count
        out._min = min(self._min, other._min)
        out._max = max(self._max, other._max)
        out.sum = self.sum + other.sum
        na, nb = self.valid_count, other.valid_count
        if na and nb:
            delta = other.sum / nb - self.sum / na
            out.m2 = self.m2 + other.m2 + delta * delta * na * nb / (na + nb)
        else:
            out.m2 = self.m2 + other.m2
        if self.kll is not None and other.kll is not None:
            kll = _copy_kll(self.kll if self.k <= other.k else other.kll)
            kll.merge(other.kll if self.k <= other.k else self.kll)
            out.kll = kll
        if self.hll is not None and other.hll is not None:
            out.hll = _hll_union(self.hll, other.hll, out.lg_hll)
        if self.categories is not None and other.categories is not None:
            out.categories = self.categories.merge(other.categories)
        out.bin_edges, out.bin_counts = _merge_bins(self, other)
        return out

    # -------------------------------------------------------------------- serialization

    def _meta(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "k": self.k,
            "max_categories": self.max_categories,
            "lg_hll": self.lg_hll,
            "count": self.count,
            "null_count": self.null_count,
            "invalid_count": self.invalid_count,
            "nonfinite_count": self.nonfinite_count,
            "min": self.min,
            "max": self.max,
            "sum": _json_float(self.sum),
            "m2": _json_float(self.m2),
        }

    def _state(self) -> tuple[dict[str, Any], list[bytes]]:
        meta = self._meta()
        blobs = [
            self.kll.serialize() if self.kll is not None else b"",
            self.hll.serialize_compact() if self.hll is not None else b"",
        ]
        if self.categories is not None:
            cat_meta, cat_blob = self.categories.to_state()
            meta["categories"] = cat_meta
            blobs.append(cat_blob)
        else:
            blobs.append(b"")
        blobs.append(_bins_blob(self.bin_edges, self.bin_counts))
        return meta, blobs

    def to_bytes(self) -> bytes:
        """Versioned binary form (see :mod:`streamproc.core.codec`)."""
        meta, blobs = self._state()
        return codec.pack(codec.MAGIC_FEATURE, meta, blobs)

    def serialized_size(self) -> int:
        return len(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> FeatureProfile:
        meta, blobs, version = codec.unpack_versioned(data, codec.MAGIC_FEATURE, "feature profile")
        return cls._from_state(meta, blobs, version)

    @classmethod
    def _from_state(
        cls, meta: dict[str, Any], blobs: list[bytes], version: int = codec.FORMAT_VERSION
    ) -> FeatureProfile:
        try:
            expected = 3 if version == 1 else 4  # version 2 added the bin counts
            if len(blobs) != expected:
                raise ValueError(f"expected {expected} blobs, found {len(blobs)}")
            out = cls(
                FeatureKind(meta["kind"]),
                k=int(meta["k"]),
                max_categories=int(meta["max_categories"]),
                lg_hll=int(meta["lg_hll"]),
            )
            out.count = int(meta["count"])
            out.null_count = int(meta["null_count"])
            out.invalid_count = int(meta["invalid_count"])
            out.nonfinite_count = int(meta["nonfinite_count"])
            if meta["min"] is not None:
                out._min, out._max = float(meta["min"]), float(meta["max"])
            out.sum = float(meta["sum"])
            out.m2 = float(meta["m2"])
            if out.kll is not None:
                out.kll = ds.kll_doubles_sketch.deserialize(blobs[0])
            if out.hll is not None:
                out.hll = ds.hll_sketch.deserialize(blobs[1])
            if out.categories is not None:
                out.categories = CategoryCounts.from_state(meta["categories"], blobs[2])
            if len(blobs) > 3 and blobs[3]:
                if out.kind is not FeatureKind.NUMERIC:
                    raise ValueError(f"bin counts in a {out.kind.value} profile")
                out.bin_edges, out.bin_counts = _bins_from_blob(blobs[3], out.valid_count)
        except ProfileFormatError:
            raise
        except Exception as exc:  # datasketches raises RuntimeError/ValueError on bad bytes
            raise ProfileFormatError(f"feature profile: corrupt content ({exc})") from exc
        return out

    def to_dict(self) -> dict[str, Any]:
        """Human-readable summary (not a serialization; use to_bytes for that)."""
        d = self._meta()
        d.update(
            valid_count=self.valid_count,
            null_rate=self.null_rate,
            mean=self.mean,
            std=self.std,
            distinct_estimate=self.distinct_estimate(),
        )
        if self.kll is not None and not self.kll.is_empty():
            qs = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]
            d["quantiles"] = dict(zip(map(str, qs), self.quantiles(qs).tolist(), strict=True))
        if self.categories is not None:
            d["top_categories"] = self.top_categories(20)
            d.pop("categories", None)
        if self.bin_edges is not None and self.bin_counts is not None:
            d["bin_edges"] = self.bin_edges.tolist()
            d["bin_counts"] = self.bin_counts.tolist()
        return d

    def __eq__(self, other: object) -> bool:
        """Same counts, moments, KLL, bins and categories, and the same HLL estimate.

        HLL and frequent-items bytes are not canonical (a deserialized list-mode HLL
        or frequent-items map reorders its entries), so those compare by content."""
        if not isinstance(other, FeatureProfile):
            return NotImplemented
        (ma, ba), (mb, bb) = self._state(), other._state()
        ma.pop("categories", None)
        mb.pop("categories", None)
        return (
            ma == mb
            and ba[0] == bb[0]
            and ba[3] == bb[3]
            and self.categories == other.categories
            and _hll_estimate(self.hll) == _hll_estimate(other.hll)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"FeatureProfile(kind={self.kind.value}, count={self.count}, "
            f"nulls={self.null_count}, invalid={self.invalid_count}, "
            f"nonfinite={self.nonfinite_count})"
        )
