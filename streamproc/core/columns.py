"""Split one input column into what a feature profile needs, vectorized.

Accepted columns: numpy arrays (typed, object, or masked), pyarrow arrays or chunked
arrays, and Python sequences. Missing-value conventions:

* null: a pyarrow null, ``None`` in an object array, a masked entry of a numpy
  masked array; for categorical and boolean features also a float NaN (pandas'
  missing marker in object columns).
* non-finite (numeric only): NaN and ±inf in a numeric column, and every value
  beyond ±:data:`MAX_MAGNITUDE` (1e100) — out of range counts as non-finite. NaN in a
  float column is *not* null: it usually means a computation failed, which is worth
  its own count. Producers that mean "missing" should send null (pyarrow, None, mask).

  Why the bound: a profile's moments (sum, sum of squared deviations) must stay finite
  for any number of rows, or they cannot be serialized (JSON has no ±inf/NaN; orjson
  would write ``null``). With every valid value in [−1e100, 1e100] and at most 2⁶³
  rows, the sum is below 1e120 and the squared deviations below 4e200 · 2⁶³ ≈ 4e219,
  also inside the parallel-merge formula (δ² · nₐ · n_b < 4e200 · 2¹²⁶), far from
  float64's 1.8e308; values such as 1e308 (whose sum or square overflows) never reach
  them. Valid values, the sketches and the exact bin counts all describe the same
  sample, so the bound applies before any of them.
* type-invalid: a present value of the wrong type for the declared kind, e.g. a
  string in a numeric column (even "3.5"), a non-integral float or a list in a
  categorical one, a 7 in a boolean one. Bools in numeric columns count as 0/1.

Typed numpy/pyarrow columns never loop in Python; object columns need one pass over
their values to classify them (use typed columns on the hot path).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

_EMPTY_F64 = np.empty(0, dtype=np.float64)

MAX_MAGNITUDE: Final = 1e100
"""Largest magnitude of a valid numeric value; beyond it a value counts as non-finite."""


@dataclass(frozen=True, slots=True)
class NumericBatch:
    """A numeric column split into finite values and counts of everything else."""

    finite: np.ndarray  # float64, finite values within ±MAX_MAGNITUDE only
    n: int
    nulls: int
    invalid: int
    nonfinite: int


@dataclass(frozen=True, slots=True)
class CategoryBatch:
    """A categorical/boolean column reduced to (category, count) pairs."""

    categories: list[str]
    counts: np.ndarray  # int64, same length as categories
    n: int
    nulls: int
    invalid: int


def _as_array(values: Any) -> np.ndarray | pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    if isinstance(values, pa.Array | np.ndarray):
        return values
    arr = np.empty(len(values), dtype=object)
    arr[:] = list(values)
    return arr


def _split_masked(arr: np.ndarray) -> tuple[np.ndarray, int]:
    if isinstance(arr, np.ma.MaskedArray):
        mask = np.ma.getmaskarray(arr)
        return np.asarray(arr.data)[~mask], int(mask.sum())
    return arr, 0


# ----------------------------------------------------------------------------- numeric


def _numeric_from_floats(x: np.ndarray, n: int, nulls: int, invalid: int) -> NumericBatch:
    x = np.asarray(x, dtype=np.float64).ravel()
    fin = np.abs(x) <= MAX_MAGNITUDE  # False for NaN and ±inf too
    nonfinite = int(x.size - np.count_nonzero(fin))
    finite = x if nonfinite == 0 else x[fin]
    return NumericBatch(finite, n, nulls, invalid, nonfinite)


def numeric_batch(values: Any) -> NumericBatch:
    """Split a column declared numeric."""
    arr = _as_array(values)
    if isinstance(arr, pa.Array):
        n, nulls = len(arr), arr.null_count
        t = arr.type
        if pat.is_dictionary(t):
            return numeric_batch(arr.dictionary_decode())
        if pat.is_integer(t) or pat.is_floating(t) or pat.is_decimal(t) or pat.is_boolean(t):
            present = pc.drop_null(arr) if nulls else arr
            if pat.is_boolean(t) or pat.is_decimal(t):
                present = present.cast(pa.float64())
            x = present.to_numpy(zero_copy_only=False)
            return _numeric_from_floats(x, n, nulls, 0)
        if pat.is_null(t):
            return NumericBatch(_EMPTY_F64, n, n, 0, 0)
        if not (pat.is_string(t) or pat.is_large_string(t)):
            return numeric_batch(np.asarray(arr.to_pylist(), dtype=object))
        return NumericBatch(_EMPTY_F64, n, nulls, n - nulls, 0)
    n = int(arr.size)
    data, nulls = _split_masked(arr)
    if data.dtype.kind in "iufb":
        return _numeric_from_floats(data, n, nulls, 0)
    if data.dtype.kind != "O":
        return NumericBatch(_EMPTY_F64, n, nulls, n - nulls, 0)
    flat = data.ravel()
    is_null = np.fromiter((v is None for v in flat), dtype=bool, count=flat.size)
    is_num = np.fromiter(
        (isinstance(v, int | float | np.integer | np.floating) for v in flat),
        dtype=bool,
        count=flat.size,
    )
    nulls += int(is_null.sum())
    invalid = int(flat.size - is_null.sum() - is_num.sum())
    nums = _EMPTY_F64
    if is_num.any():
        try:
            nums = flat[is_num].astype(np.float64)
        except OverflowError:  # a Python int beyond float64's range: ±inf, non-finite
            nums = np.array([_float_or_inf(v) for v in flat[is_num]], dtype=np.float64)
    return _numeric_from_floats(nums, n, nulls, invalid)


def _float_or_inf(v: Any) -> float:
    try:
        return float(v)
    except OverflowError:
        return math.inf if v > 0 else -math.inf


# ------------------------------------------------------------------------- categorical


def _from_value_counts(vc: pa.StructArray) -> tuple[list[str], np.ndarray]:
    cats = vc.field("values").to_pylist()
    counts = vc.field("counts").to_numpy(zero_copy_only=False).astype(np.int64)
    return [str(c) for c in cats], counts


def _count_strings(strings: pa.Array) -> tuple[list[str], np.ndarray]:
    if len(strings) == 0:
        return [], np.empty(0, dtype=np.int64)
    return _from_value_counts(pc.value_counts(strings))


def _category_of_object(v: Any) -> str | None:
    """Category string for one Python value, None for null, raise TypeError if invalid."""
    if v is None:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, bool | np.bool_):
        return "true" if v else "false"
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        if v != v:
            return None
        if float(v).is_integer():
            return str(int(v))
    raise TypeError


_TWO_63: Final = 2.0**63


def _categorical_from_floats(x: np.ndarray, n: int, nulls: int) -> CategoryBatch:
    x = np.asarray(x, dtype=np.float64)
    nan = np.isnan(x)
    present = x[~nan]
    integral = np.isfinite(present) & (np.floor(present) == present)
    whole = present[integral]
    small = np.abs(whole) < _TWO_63  # exact in int64; larger ones via Python ints
    cats, counts = np.unique(whole[small].astype(np.int64), return_counts=True)
    labels = [str(c) for c in cats.tolist()]
    if not small.all():  # str(int(v)), as for a float in an object column
        big, big_counts = np.unique(whole[~small], return_counts=True)
        labels += [str(int(v)) for v in big.tolist()]
        counts = np.concatenate([counts, big_counts])
    invalid = int(present.size - whole.size)
    return CategoryBatch(labels, counts, n, nulls + int(nan.sum()), invalid)


def categorical_batch(values: Any) -> CategoryBatch:
    """Split a column declared categorical (strings, ints, integral floats, bools)."""
    arr = _as_array(values)
    if isinstance(arr, pa.Array):
        n, nulls = len(arr), arr.null_count
        t = arr.type
        if pat.is_dictionary(t):
            return categorical_batch(arr.dictionary_decode())
        if pat.is_null(t):
            return CategoryBatch([], np.empty(0, dtype=np.int64), n, n, 0)
        present = pc.drop_null(arr) if nulls else arr
        if pat.is_string(t) or pat.is_large_string(t):
            cats, counts = _count_strings(present)
            return CategoryBatch(cats, counts, n, nulls, 0)
        if pat.is_integer(t) or pat.is_boolean(t):
            cats, counts = _count_strings(present.cast(pa.string()))
            return CategoryBatch(cats, counts, n, nulls, 0)
        if pat.is_floating(t):
            x = present.to_numpy(zero_copy_only=False)
            return _categorical_from_floats(x, n, nulls)
        return categorical_batch(np.asarray(arr.to_pylist(), dtype=object))
    n = int(arr.size)
    data, nulls = _split_masked(arr)
    data = data.ravel()
    kind = data.dtype.kind
    if kind in "US":
        cats, counts = _count_strings(pa.array(data.astype(str)))
        return CategoryBatch(cats, counts, n, nulls, 0)
    if kind in "iub":
        cats, counts = _count_strings(pa.array(data).cast(pa.string()))
        return CategoryBatch(cats, counts, n, nulls, 0)
    if kind == "f":
        return _categorical_from_floats(data, n, nulls)
    if kind != "O":
        return CategoryBatch([], np.empty(0, dtype=np.int64), n, nulls, n - nulls)
    try:  # fast path: strings and None (and NaN) only
        strings = pa.array(data, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        strings = None
    if strings is not None:
        nulls += strings.null_count
        cats, counts = _count_strings(pc.drop_null(strings))
        return CategoryBatch(cats, counts, n, nulls, 0)
    out: list[str | None] = []
    invalid = 0
    for v in data.tolist():
        try:
            out.append(_category_of_object(v))
        except TypeError:
            invalid += 1
    converted = pa.array(out, type=pa.string())
    nulls += converted.null_count
    cats, counts = _count_strings(pc.drop_null(converted))
    return CategoryBatch(cats, counts, n, nulls, invalid)


# ----------------------------------------------------------------------------- boolean

_TRUE_FALSE = ["false", "true"]


def _bool_counts(x: np.ndarray) -> np.ndarray:
    t = int(np.count_nonzero(x))
    return np.array([x.size - t, t], dtype=np.int64)


def boolean_batch(values: Any) -> CategoryBatch:
    """Split a column declared boolean (bools, or numbers 0/1; NaN is null)."""
    arr = _as_array(values)
    if isinstance(arr, pa.Array):
        if pat.is_dictionary(arr.type):
            return boolean_batch(arr.dictionary_decode())
        n, nulls = len(arr), arr.null_count
        if pat.is_boolean(arr.type):
            present = pc.drop_null(arr) if nulls else arr
            x = present.to_numpy(zero_copy_only=False)
            return CategoryBatch(list(_TRUE_FALSE), _bool_counts(x), n, nulls, 0)
        if pat.is_integer(arr.type) or pat.is_floating(arr.type):
            present = pc.drop_null(arr) if nulls else arr
            b = _boolean_from_numbers(present.to_numpy(zero_copy_only=False), n, nulls)
            return b
        if pat.is_null(arr.type):
            return CategoryBatch(list(_TRUE_FALSE), np.zeros(2, np.int64), n, n, 0)
        return boolean_batch(np.asarray(arr.to_pylist(), dtype=object))
    n = int(arr.size)
    data, nulls = _split_masked(arr)
    data = data.ravel()
    if data.dtype.kind == "b":
        return CategoryBatch(list(_TRUE_FALSE), _bool_counts(data), n, nulls, 0)
    if data.dtype.kind in "iuf":
        return _boolean_from_numbers(data, n, nulls)
    if data.dtype.kind != "O":
        return CategoryBatch(list(_TRUE_FALSE), np.zeros(2, np.int64), n, nulls, n - nulls)
    trues = falses = invalid = 0
    for v in data.tolist():
        if v is None or (isinstance(v, float) and v != v):
            nulls += 1
        elif v is True or v is False or isinstance(v, np.bool_ | int | float | np.number):
            if v == 1:
                trues += 1
            elif v == 0:
                falses += 1
            else:
                invalid += 1
        else:
            invalid += 1
    return CategoryBatch(list(_TRUE_FALSE), np.array([falses, trues], np.int64), n, nulls, invalid)


def _boolean_from_numbers(x: np.ndarray, n: int, nulls: int) -> CategoryBatch:
    x = np.asarray(x, dtype=np.float64)
    nan = np.isnan(x)
    ones = int(np.count_nonzero(x == 1.0))
    zeros = int(np.count_nonzero(x == 0.0))
    invalid = int(x.size - nan.sum() - ones - zeros)
    counts = np.array([zeros, ones], dtype=np.int64)
    return CategoryBatch(list(_TRUE_FALSE), counts, n, nulls + int(nan.sum()), invalid)
