"""Feature kinds and their inference from data."""

from __future__ import annotations

import enum
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.types as pat


class FeatureKind(enum.StrEnum):
    """How a feature's values are profiled and compared.

    numeric: ints and floats; moments, KLL quantiles, HLL distinct count.
    categorical: strings, or ints declared categorical; category counts, HLL.
    boolean: true/false; category counts over {"false", "true"}.
    """

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    BOOLEAN = "boolean"


def _kind_of_arrow_type(t: pa.DataType) -> FeatureKind | None:
    if pat.is_dictionary(t):
        return _kind_of_arrow_type(t.value_type)
    if pat.is_boolean(t):
        return FeatureKind.BOOLEAN
    if pat.is_integer(t) or pat.is_floating(t) or pat.is_decimal(t):
        return FeatureKind.NUMERIC
    if pat.is_string(t) or pat.is_large_string(t):
        return FeatureKind.CATEGORICAL
    return None


def _kind_of_python_values(values: Any) -> FeatureKind:
    seen_bool = seen_num = seen_str = 0
    for v in values:
        if v is None:
            continue
        if isinstance(v, bool | np.bool_):
            seen_bool += 1
        elif isinstance(v, int | float | np.integer | np.floating):
            seen_num += 1
        else:
            seen_str += 1
    if seen_str:
        return FeatureKind.CATEGORICAL
    if seen_num:
        return FeatureKind.NUMERIC
    if seen_bool:
        return FeatureKind.BOOLEAN
    return FeatureKind.NUMERIC


def infer_kind(values: Any) -> FeatureKind:
    """Infer a feature's kind from a column (numpy, pyarrow or a Python sequence).

    Typed columns decide by type: bool -> boolean, int/float/decimal -> numeric,
    string/dictionary -> categorical. Object columns are inspected: any non-null value
    that is neither a number nor a bool makes the column categorical; otherwise any
    number makes it numeric; only bools make it boolean. An empty or all-null column
    defaults to numeric. Ints that are really codes must be declared categorical by
    the caller (an override): data alone cannot tell codes from counts.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        kind = _kind_of_arrow_type(values.type)
        if kind is not None:
            return kind
        return _kind_of_python_values(values.to_pylist())
    arr = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
    if arr.dtype.kind == "b":
        return FeatureKind.BOOLEAN
    if arr.dtype.kind in "iuf":
        return FeatureKind.NUMERIC
    if arr.dtype.kind in "US":
        return FeatureKind.CATEGORICAL
    return _kind_of_python_values(arr.ravel().tolist())
