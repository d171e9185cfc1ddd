"""Decide which columns of a data file are features, and of which kind.

Kinds come from the Arrow types of the file's first block: strings (and
dictionary-encoded strings) are categorical, booleans boolean, integers and floats
numeric; ``--categorical`` forces a column to categorical (useful for integer
codes such as zip codes). The id, timestamp, label and prediction columns are
never features. Columns of other types (dates, binary, nested) are left out of
the automatic feature list and named in ``skipped``.

The plan also fixes the types the CSV and JSON readers use for every block, so a
float that first appears after a block of integers does not fail the read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import pyarrow as pa
import pyarrow.types as pat

from streamproc.core.kinds import FeatureKind
from streamproc.offline.errors import InputError


class PredictionKind(StrEnum):
    """How the prediction column enters the profile."""

    SCORE = "score"
    LABEL = "label"


@dataclass(frozen=True)
class ColumnPlan:
    """Roles and kinds of the columns to read from one data set."""

    features: dict[str, FeatureKind]
    prediction: str | None = None
    prediction_kind: PredictionKind | None = None
    label: str | None = None
    timestamp: str | None = None
    id: str | None = None
    skipped: tuple[str, ...] = ()
    read_types: dict[str, pa.DataType] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        """Columns to read, features first (the id column is never read)."""
        cols = list(self.features)
        for extra in (self.prediction, self.timestamp):
            if extra is not None:
                cols.append(extra)
        return cols


def kind_of(arrow_type: pa.DataType) -> FeatureKind | None:
    """The feature kind an Arrow type maps to, or None if it is not profiled."""
    if pat.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pat.is_string(arrow_type) or pat.is_large_string(arrow_type):
        return FeatureKind.CATEGORICAL
    if pat.is_boolean(arrow_type):
        return FeatureKind.BOOLEAN
    if pat.is_integer(arrow_type) or pat.is_floating(arrow_type) or pat.is_decimal(arrow_type):
        return FeatureKind.NUMERIC
    if pat.is_null(arrow_type):
        # Every value of the first block was null: nothing to infer from.
        return FeatureKind.NUMERIC
    return None


_READ_TYPE = {
    FeatureKind.NUMERIC: pa.float64(),
    FeatureKind.CATEGORICAL: pa.string(),
    FeatureKind.BOOLEAN: pa.bool_(),
}


def _split(values: Iterable[str] | None) -> list[str]:
    out: list[str] = []
    for value in values or ():
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


def _require(schema: pa.Schema, names: Sequence[str], option: str, source: str) -> None:
    missing = [n for n in names if n not in schema.names]
    if missing:
        shown = ", ".join(schema.names[:30]) + (" ..." if len(schema.names) > 30 else "")
        raise InputError(
            f"column {missing[0]!r} named by {option} is not in {source}; its columns are: {shown}"
        )


def plan_columns(
    schema: pa.Schema,
    *,
    source: str = "the data",
    features: Iterable[str] | None = None,
    categorical: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    prediction: str | None = None,
    label: str | None = None,
    timestamp: str | None = None,
    id_col: str | None = None,
) -> ColumnPlan:
    """Plan a reference build from a file's schema and the user's column options.

    ``features``, ``categorical`` and ``exclude`` accept comma-separated strings
    (each item may itself be ``"a,b"``). Raises ``InputError`` naming the option
    when a column does not exist, a role is given twice, or no feature is left.
    """
    wanted = _split(features)
    forced = _split(categorical)
    excluded = set(_split(exclude))
    roles = {
        "--prediction-col": prediction,
        "--label-col": label,
        "--timestamp-col": timestamp,
        "--id-col": id_col,
    }
    for option, name in roles.items():
        if name is not None:
            _require(schema, [name], option, source)
    _require(schema, wanted, "--features", source)
    _require(schema, forced, "--categorical", source)
    _require(schema, sorted(excluded), "--exclude", source)
    role_cols = {name: option for option, name in roles.items() if name is not None}
    for name in wanted:
        if name in role_cols:
            raise InputError(
                f"column {name!r} is both a feature and the {role_cols[name]} column; "
                "name it in only one of them"
            )

    candidates = wanted or [n for n in schema.names if n not in role_cols]
    kinds: dict[str, FeatureKind] = {}
    skipped: list[str] = []
    for name in candidates:
        if name in excluded:
            continue
        arrow_type = schema.field(name).type
        kind = FeatureKind.CATEGORICAL if name in forced else kind_of(arrow_type)
        if kind is None:
            if wanted:
                raise InputError(
                    f"column {name!r} has type {arrow_type}, which cannot be profiled; "
                    "drop it from --features or name it in --categorical"
                )
            skipped.append(name)
            continue
        kinds[name] = kind
    if not kinds:
        raise InputError(
            f"no feature columns left in {source}; check --features/--exclude "
            "and the role columns (--prediction-col, --id-col, ...)"
        )

    read_types = {name: _READ_TYPE[kind] for name, kind in kinds.items()}
    pred_kind: PredictionKind | None = None
    if prediction is not None:
        pred_kind, read_types[prediction] = _prediction_kind(
            schema.field(prediction).type, prediction
        )
    return ColumnPlan(
        features=kinds,
        prediction=prediction,
        prediction_kind=pred_kind,
        label=label,
        timestamp=timestamp,
        id=id_col,
        skipped=tuple(skipped),
        read_types=read_types,
    )


def _prediction_kind(arrow_type: pa.DataType, name: str) -> tuple[PredictionKind, pa.DataType]:
    kind = kind_of(arrow_type)
    if kind is FeatureKind.NUMERIC:
        return PredictionKind.SCORE, pa.float64()
    if kind is FeatureKind.CATEGORICAL:
        return PredictionKind.LABEL, pa.string()
    if kind is FeatureKind.BOOLEAN:
        return PredictionKind.LABEL, pa.bool_()
    raise InputError(
        f"prediction column {name!r} has type {arrow_type}; it must hold numbers (scores) "
        "or strings/booleans (predicted labels)"
    )


def plan_for_kinds(
    schema: pa.Schema,
    kinds: Mapping[str, FeatureKind],
    *,
    source: str = "the data",
    prediction: str | None = None,
    timestamp: str | None = None,
) -> ColumnPlan:
    """Plan reading a current data set with the feature kinds fixed by a reference.

    Every reference feature must be present in ``schema``.
    """
    _require(schema, list(kinds), "the reference profile's schema", source)
    if prediction is not None and prediction not in schema.names:
        prediction = None
    if timestamp is not None and timestamp not in schema.names:
        timestamp = None
    read_types = {name: _READ_TYPE[FeatureKind(kind)] for name, kind in kinds.items()}
    pred_kind: PredictionKind | None = None
    if prediction is not None:
        pred_kind, read_types[prediction] = _prediction_kind(
            schema.field(prediction).type, prediction
        )
    return ColumnPlan(
        features={name: FeatureKind(kind) for name, kind in kinds.items()},
        prediction=prediction,
        prediction_kind=pred_kind,
        timestamp=timestamp,
        read_types=read_types,
    )
