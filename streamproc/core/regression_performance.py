"""Realized regression performance of a window: a mergeable, serializable accumulator.

Over labeled rows with a finite prediction ŷ and a finite true value y (both within
±:data:`~streamproc.core.columns.MAX_MAGNITUDE`), with the residual e = ŷ − y
(positive: over-prediction):

* power sums Σ|e|, Σe², Σe⁴, Σe and Σ |e| / max(|y|, ε) (ε = float64 machine epsilon,
  as ``sklearn.metrics.mean_absolute_percentage_error``);
* the count, mean and sum of squared deviations of y, merged with the parallel update of
  Chan, Golub & LeVeque (1979) — the total sum of squares of R²;
* KLL sketches (Karnin, Lang & Liberty 2016; k = 200, rank error ≈ 1.3%) of the residuals
  (residual quantiles) and of y (the target distribution, for target drift), and of the
  label lag (label time − prediction time, seconds).

Metrics: MAE = Σ|e|/n, RMSE = √(Σe²/n), MAPE = Σ|e|/max(|y|, ε) / n (a fraction, not
percent), bias = Σe/n, R² = 1 − Σe² / Σ(y − ȳ)² (None when y is constant). Standard
errors: s/√n for MAE, the delta method for RMSE (:mod:`streamproc.core.intervals`);
Σe⁴ is a power sum, so SE(RMSE) loses precision when the e² are nearly constant.
Merge adds sums (exact up to floating rounding) and merges the sketches (within their
rank error).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Final

import datasketches as ds
import numpy as np

from streamproc.core import codec
from streamproc.core.columns import MAX_MAGNITUDE
from streamproc.core.errors import ProfileFormatError
from streamproc.core.intervals import Interval, mean_se, normal_interval, rmse_se

SKETCH_K: Final = 200
MAGIC: Final = b"SPPR"
_EPS: Final = float(np.finfo(np.float64).eps)
_SUMS: Final = ("sum_abs", "sum_sq", "sum_4th", "sum_res", "sum_ape")


def _kll() -> ds.kll_doubles_sketch:
    return ds.kll_doubles_sketch(SKETCH_K)


@dataclass(eq=False)
class RegressionPerformance:
    """Mergeable regression performance state (see the module docstring)."""

    n: int = 0
    sum_abs: float = 0.0
    sum_sq: float = 0.0
    sum_4th: float = 0.0
    sum_res: float = 0.0
    sum_ape: float = 0.0
    mean_y: float = 0.0
    m2_y: float = 0.0
    unusable: int = 0
    """Labeled rows without a usable prediction or true value."""
    residuals: ds.kll_doubles_sketch = field(default_factory=_kll)
    targets: ds.kll_doubles_sketch = field(default_factory=_kll)
    lag: ds.kll_doubles_sketch = field(default_factory=_kll)

    def update(self, y_true: Any, y_pred: Any, lag_s: np.ndarray | None = None) -> None:
        """Add labeled rows (array-likes of numbers; None/NaN: unusable)."""
        y = _floats(y_true)
        p = _floats(y_pred)
        if y.shape != p.shape:
            raise ValueError("y_true and y_pred must have the same length")
        ok = (np.abs(y) <= MAX_MAGNITUDE) & (np.abs(p) <= MAX_MAGNITUDE)
        self.unusable += int((~ok).sum())
        y, p = y[ok], p[ok]
        m = int(y.size)
        if not m:
            return
        e = p - y
        ae = np.abs(e)
        e2 = e * e
        self.sum_abs += float(ae.sum())
        self.sum_sq += float(e2.sum())
        self.sum_4th += float((e2 * e2).sum())
        self.sum_res += float(e.sum())
        self.sum_ape += float((ae / np.maximum(np.abs(y), _EPS)).sum())
        mean_b = float(y.mean())
        m2_b = float(((y - mean_b) ** 2).sum())
        self.n, self.mean_y, self.m2_y = _chan(self.n, self.mean_y, self.m2_y, m, mean_b, m2_b)
        self.residuals.update(np.ascontiguousarray(e))
        self.targets.update(np.ascontiguousarray(y))
        if lag_s is not None:
            lag = np.asarray(lag_s, dtype=np.float64)[ok]
            lag = lag[np.isfinite(lag)]
            if lag.size:
                self.lag.update(np.ascontiguousarray(lag))

    def merge(self, other: RegressionPerformance) -> RegressionPerformance:
        """Both windows' rows; neither input is modified."""
        out = self.copy()
        for name in _SUMS:
            setattr(out, name, getattr(self, name) + getattr(other, name))
        out.n, out.mean_y, out.m2_y = _chan(
            self.n, self.mean_y, self.m2_y, other.n, other.mean_y, other.m2_y
        )
        out.unusable += other.unusable
        for name in ("residuals", "targets", "lag"):
            getattr(out, name).merge(getattr(other, name))
        return out

    def copy(self) -> RegressionPerformance:
        return RegressionPerformance.from_bytes(self.to_bytes())

    def metrics(self) -> dict[str, float | None]:
        """MAE, RMSE, MAPE, bias, R² and residual quantiles (None when undefined)."""
        n = self.n
        out: dict[str, float | None] = {"n": float(n)}
        if not n:
            for name in ("mae", "rmse", "mape", "bias", "r2", "residual_p50"):
                out[name] = None
            return out
        out["mae"] = self.sum_abs / n
        out["rmse"] = math.sqrt(self.sum_sq / n)
        out["mape"] = self.sum_ape / n
        out["bias"] = self.sum_res / n
        out["r2"] = 1.0 - self.sum_sq / self.m2_y if self.m2_y > 0 else None
        out["target_mean"] = self.mean_y
        for q in (0.05, 0.5, 0.95):
            out[f"residual_p{round(q * 100):02d}"] = float(self.residuals.get_quantile(q))
        return out

    def intervals(self) -> dict[str, Interval]:
        """95% normal intervals for MAE (s/√n) and RMSE (delta method)."""
        n = self.n
        out: dict[str, Interval] = {}
        if n < 2:
            return out
        mae, mse = self.sum_abs / n, self.sum_sq / n
        for name, value, se in (
            ("mae", mae, mean_se(mae, mse, n)),
            ("rmse", math.sqrt(mse), rmse_se(mse, self.sum_4th / n, n)),
        ):
            iv = normal_interval(value, se, n)
            if iv is not None:
                out[name] = iv
        return out

    def to_bytes(self) -> bytes:
        meta = {name: getattr(self, name) for name in (*_SUMS, "n", "mean_y", "m2_y", "unusable")}
        blobs = [self.residuals.serialize(), self.targets.serialize(), self.lag.serialize()]
        return codec.pack(MAGIC, meta, blobs)

    @classmethod
    def from_bytes(cls, data: bytes) -> RegressionPerformance:
        """Inverse of :meth:`to_bytes`; ProfileFormatError on bytes that are not one."""
        meta, blobs = codec.unpack(data, MAGIC, "regression performance")
        try:
            out = cls(
                n=int(meta["n"]),
                mean_y=float(meta["mean_y"]),
                m2_y=float(meta["m2_y"]),
                unusable=int(meta["unusable"]),
                residuals=ds.kll_doubles_sketch.deserialize(blobs[0]),
                targets=ds.kll_doubles_sketch.deserialize(blobs[1]),
                lag=ds.kll_doubles_sketch.deserialize(blobs[2]),
                **{name: float(meta[name]) for name in _SUMS},
            )
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
            raise ProfileFormatError(f"regression performance: corrupt ({exc})") from exc
        if out.n < 0 or out.unusable < 0:
            raise ProfileFormatError("regression performance: negative count")
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RegressionPerformance):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]


def _floats(values: Any) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        return values.astype(np.float64).ravel()
    return np.fromiter(map(_number, values), dtype=np.float64)


def _number(v: Any) -> float:
    if isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool):
        try:
            return float(v)
        except OverflowError:  # a Python int beyond float64
            return math.nan
    return math.nan


def _chan(
    na: int, mean_a: float, m2_a: float, nb: int, mean_b: float, m2_b: float
) -> tuple[int, float, float]:
    """(n, mean, M2) of two parts (Chan, Golub & LeVeque 1979)."""
    n = na + nb
    if n == 0:
        return 0, 0.0, 0.0
    delta = mean_b - mean_a
    return n, mean_a + delta * nb / n, m2_a + m2_b + delta * delta * na * nb / n
