"""Fast path of the prediction decoder: pyarrow.json with an explicit schema.

:func:`fast_decode` parses a whole consumed batch in one ``pyarrow.json.read_json`` call
with a schema built from the envelope table (:mod:`streamproc.contracts.envelope`), the
first record and the reference's feature names, so the feature columns come out as typed
Arrow arrays without any per-value Python work.

It only handles the common, clean case. When it takes a batch, its result is the one
:func:`~streamproc.contracts.prediction.decode_predictions` gives: no rejects, and batches
whose columns hold the same values (feature columns as Arrow arrays instead of lists;
``typed_columns`` passes them through). Otherwise it returns :class:`FastPathDeclined`
and the caller runs ``decode_predictions`` on the whole batch. The reasons (a closed set,
:data:`DECLINE_REASONS`, used as a Prometheus label):

``empty_batch``
    no values at all.
``needs_validation``
    a record the orjson decoder rejects or must check one by one: a tombstone, empty or
    oversized value; a missing, null or wrongly typed required field; a null or missing
    ``prediction.label``; a negative ``latency_ms``; more than ``limits.max_features``
    features.
``parse_error``
    a value the explicit-schema parse cannot take: malformed JSON, not starting with
    ``{``, not an object, more than one JSON value, non-UTF-8 bytes, a value of another
    JSON type than the first record's for that field, an unexpected or duplicate key
    (pyarrow raises "specified twice" for a key repeated in any object of the schema,
    so a batch the orjson decoder would reject as ``duplicate_key`` is never taken).
``unknown_model``
    ``kinds_for`` has no feature kinds for the first record's (model, version).
``unsupported_shape``
    the first record has a field the fast path leaves to the orjson decoder: ``segment``
    or another non-envelope key, a null optional field, a string ``features_as_of``, a
    numeric label, extra keys in ``prediction``, a feature that is not in the reference,
    is an envelope or ``prediction`` key, needs escapes, or holds an object, array or a
    null of an unknown kind.
``mixed_models``
    records of more than one (model, version).
``bad_timestamp``
    a ``timestamp`` or ``features_as_of`` out of the range (1970–2099) or later than
    ``max_event_ms``, or a timestamp string that is not strict RFC 3339
    (:data:`~streamproc.contracts.envelope.RFC3339`; the orjson decoder may still accept
    it).
``long_value``
    a string feature value or predicted label longer than ``limits.max_category_bytes``
    UTF-8 bytes (the orjson decoder caps it).
``unsupported_literal``
    a literal the two parsers read differently: ``NaN``/``Infinity`` (orjson rejects
    them, pyarrow does not), an integer ``-0`` (orjson: int 0, pyarrow: float -0.0), a
    string value containing a quote (it would break the key count below).
``missing_feature``
    a feature key absent in some record. A null in a feature column is either a JSON
    ``null`` or an absent key. With no quote inside string values, every ``"`` in the
    batch delimits a key or a string value, so (quotes / 2 − non-null string values) is
    the number of keys; when it is below the number a batch with every schema key in
    every record has, each feature column with nulls must have ``"name":`` exactly once
    per record.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any, Final, Literal, get_args

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from streamproc.contracts.batch import BatchKey, DecodeResult, PredictionBatch
from streamproc.contracts.envelope import (
    ENVELOPE,
    FIELDS,
    LABEL_ARROW,
    NAMES,
    PREDICTION_KEYS,
    REQUIRED,
    SCALAR_ARROW,
    SCORE_ARROW,
    epoch_seconds,
    rfc3339_seconds,
    window_start_ms,
)
from streamproc.contracts.limits import DecodeLimits, resolve_limits

KindsFor = Callable[[str, str], Mapping[str, Any] | None]
"""(model, version) → feature name → kind (``FeatureKind`` or its string), or None when
the model is unknown (the fast path then declines)."""

DeclineReason = Literal[
    "empty_batch",
    "needs_validation",
    "parse_error",
    "unknown_model",
    "unsupported_shape",
    "mixed_models",
    "bad_timestamp",
    "unsupported_literal",
    "missing_feature",
    "long_value",
]
DECLINE_REASONS: Final[tuple[DeclineReason, ...]] = get_args(DeclineReason)
"""Every reason :func:`fast_decode` can give (see the module docstring)."""


@dataclass(frozen=True, slots=True)
class FastPathDeclined:
    """:func:`fast_decode` left the batch to ``decode_predictions``, and why."""

    reason: DeclineReason


class _Decline(Exception):
    """Raised by a step of :func:`fast_decode`; becomes :class:`FastPathDeclined`."""

    def __init__(self, reason: DeclineReason) -> None:
        super().__init__(reason)
        self.reason: DeclineReason = reason


_FAST_FIELDS: Final = frozenset(f.name for f in ENVELOPE if f.arrow)
_RESERVED_KEYS: Final = NAMES | frozenset(PREDICTION_KEYS)
_QUOTE: Final = ord('"')
_NEG_ZERO_INT: Final = re.compile(rb"-0(?![0-9.eE])")
_KIND_DEFAULT: Final[Mapping[str, type]] = {"numeric": float, "categorical": str, "boolean": bool}
"""Feature kind → Python type assumed for a null in the first record."""
_MAX_SCHEMAS: Final = 256

Shape = tuple[tuple[tuple[str, type], ...], type | None, tuple[tuple[str, type], ...]]
"""(envelope field → value type, label type of a prediction object, feature → type)."""
_SCHEMAS: dict[Shape, tuple[pa.Schema, tuple[bytes, ...]]] = {}


def fast_decode(
    values: Sequence[bytes | bytearray | memoryview | None],
    *,
    kinds_for: KindsFor,
    max_message_bytes: int | None = None,
    keep_request_ids: bool = False,
    window_ms: int | None = None,
    limits: DecodeLimits | None = None,
    max_event_ms: int | None = None,
) -> DecodeResult | FastPathDeclined:
    """``decode_predictions``' result for a clean batch of one (model, version), or why not.

    ``kinds_for`` must accept exactly the models ``decode_predictions``' ``known_models``
    accepts (returning None for the others); ``max_message_bytes``, ``limits`` and
    ``max_event_ms`` are ``decode_predictions``' and must be the same values.
    """
    try:
        lim = resolve_limits(limits, max_message_bytes)
        n = _check_values(values, lim.max_message_bytes)
        model, version, first = _first_record(values)
        kinds = kinds_for(model, version)
        if not kinds:
            raise _Decline("unknown_model")
        schema, keys = _schema_for(first, kinds)
        if len(first["features"]) > lim.max_features:  # the schema's: no record has more
            raise _Decline("needs_validation")
        joined, cols = _read(values, schema)
        _check_envelope(cols)
        ts = _timestamps(cols["timestamp"], max_event_ms)
        feats: pa.StructArray = cols["features"]
        features = {f.name: feats.field(j) for j, f in enumerate(feats.type)}
        strings = _check_literals(cols, features, joined)
        _check_feature_keys(features, keys, strings, joined, per_record=_n_keys(schema), n=n)
        scores, labels = _predictions(cols["prediction"], n)
        _check_lengths(features, cols["prediction"], lim.max_category_bytes)
        whole = PredictionBatch(
            model=model,
            model_version=version,
            indices=np.arange(n, dtype=np.int64),
            timestamps=ts,
            features=dict(features),
            missing=dict.fromkeys(features, 0),
            prediction_score=scores,
            prediction_label=labels,
            latency_ms=_latency(cols.get("latency_ms"), n),
            fallback=_flag(cols.get("fallback"), n),
            error=_flag(cols.get("error"), n),
            features_as_of=_features_as_of(cols.get("features_as_of"), n, max_event_ms),
            segments=[None] * n,
            request_ids=cols["request_id"].to_pylist() if keep_request_ids else None,
        )
    except _Decline as declined:
        return FastPathDeclined(declined.reason)
    return DecodeResult(_by_window(whole, window_ms))


# ------------------------------------------------------------------------- steps


def _check_values(values: Sequence[object], max_message_bytes: int) -> int:
    """Number of values; declines on none, a tombstone, an empty or oversized value."""
    if not values:
        raise _Decline("empty_batch")
    if any(v is None for v in values):
        raise _Decline("needs_validation")
    lengths = list(map(len, values))  # type: ignore[arg-type]
    if min(lengths) == 0 or max(lengths) > max_message_bytes:
        raise _Decline("needs_validation")
    return len(values)


def _first_record(values: Sequence[Any]) -> tuple[str, str, dict[str, Any]]:
    """(model, version, object) of the first value."""
    try:
        first = orjson.loads(values[0])
    except orjson.JSONDecodeError:
        raise _Decline("parse_error") from None
    if type(first) is not dict:
        raise _Decline("parse_error")
    model, version = first.get("model"), first.get("model_version")
    if type(model) is not str or type(version) is not str or not model:
        raise _Decline("needs_validation")
    return model, version, first


def _shape(first: dict[str, Any], kinds: Mapping[str, Any]) -> Shape:
    """Hashable description of the first record's shape, the key of the schema cache."""
    if not first.keys() <= _FAST_FIELDS:
        raise _Decline("unsupported_shape")
    envelope = []
    for f in ENVELOPE:
        if f.required or f.name in first:
            vt = type(first.get(f.name))
            if vt not in f.arrow:  # accepted but not by the fast path, or a reject
                raise _Decline("unsupported_shape" if vt in f.py_types else "needs_validation")
            envelope.append((f.name, vt))
    pred = first["prediction"]
    label: type | None = None
    if type(pred) is dict:
        if not pred.keys() <= set(PREDICTION_KEYS):
            raise _Decline("unsupported_shape")
        label = type(pred.get("label"))
        if label not in LABEL_ARROW:
            raise _Decline("unsupported_shape" if "label" in pred else "needs_validation")
    fshape = []
    for name, value in first["features"].items():
        kind = kinds.get(name)
        if kind is None or name in _RESERVED_KEYS or orjson.dumps(name) != f'"{name}"'.encode():
            raise _Decline("unsupported_shape")  # unknown, an envelope key, or needs escapes
        vt = _KIND_DEFAULT.get(str(kind), type(None)) if value is None else type(value)
        if vt not in SCALAR_ARROW:
            raise _Decline("unsupported_shape")
        fshape.append((name, vt))
    return tuple(envelope), label, tuple(fshape)


def _schema_for(
    first: dict[str, Any], kinds: Mapping[str, Any]
) -> tuple[pa.Schema, tuple[bytes, ...]]:
    """Explicit schema for the batch, and each feature's ``"name":`` key bytes (cached)."""
    shape = _shape(first, kinds)
    cached = _SCHEMAS.get(shape)
    if cached is None:
        if len(_SCHEMAS) >= _MAX_SCHEMAS:  # bounded: shapes come from the data
            _SCHEMAS.clear()
        cached = _SCHEMAS[shape] = _schema(shape)
    return cached


def _schema(shape: Shape) -> tuple[pa.Schema, tuple[bytes, ...]]:
    envelope, label, fshape = shape
    fields = []
    for name, vt in envelope:
        t = FIELDS[name].arrow[vt]
        if t is None and name == "features":
            t = pa.struct([pa.field(f, SCALAR_ARROW[ft]) for f, ft in fshape])
        elif t is None and label is not None:  # a prediction object
            t = pa.struct([("label", LABEL_ARROW[label]), ("score", SCORE_ARROW)])
        fields.append(pa.field(name, t))
    return pa.schema(fields), tuple(orjson.dumps(name) + b":" for name, _ in fshape)


def _read(values: Sequence[Any], schema: pa.Schema) -> tuple[bytes, dict[str, pa.Array]]:
    """The joined batch (one value per line) and its columns under ``schema``."""
    if not all(map(bytes.startswith, values, repeat(b"{"))):
        raise _Decline("parse_error")  # so every value yields at least one row
    joined = b"\n".join(values)
    if not joined.isascii():
        try:
            joined.decode("utf-8")  # pyarrow does not validate UTF-8
        except UnicodeDecodeError:
            raise _Decline("parse_error") from None
    try:
        table = pj.read_json(
            pa.py_buffer(joined),
            read_options=pj.ReadOptions(use_threads=False, block_size=len(joined) + 1),
            parse_options=pj.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="error"
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        raise _Decline("parse_error") from None
    if table.num_rows != len(values):  # some value held more than one JSON object
        raise _Decline("parse_error")
    return joined, {name: table.column(name).combine_chunks() for name in table.column_names}


def _check_envelope(cols: dict[str, pa.Array]) -> None:
    """No null required field; one (model, version)."""
    if any(cols[name].null_count for name in REQUIRED):
        raise _Decline("needs_validation")
    if (
        pc.count_distinct(cols["model"]).as_py() != 1
        or pc.count_distinct(cols["model_version"]).as_py() != 1
    ):
        raise _Decline("mixed_models")


def _timestamps(col: pa.Array, max_event_ms: int | None) -> np.ndarray:
    """float64 event times, epoch seconds."""
    ts = rfc3339_seconds(col) if pa.types.is_string(col.type) else epoch_seconds(_np(col))
    if ts is None or _future(ts, max_event_ms):
        raise _Decline("bad_timestamp")
    return ts


def _future(seconds: np.ndarray, max_event_ms: int | None) -> bool:
    """Any time later than ``max_event_ms`` (the orjson decoder's test, element-wise)."""
    return max_event_ms is not None and bool((seconds * 1000 > max_event_ms).any())


def _check_literals(
    cols: dict[str, pa.Array], features: dict[str, pa.Array], joined: bytes
) -> list[pa.Array]:
    """No literal the parsers read differently; returns the string columns."""
    floats = [c for c in (*features.values(), *cols.values()) if pa.types.is_floating(c.type)]
    pred = cols["prediction"]
    if pa.types.is_struct(pred.type):
        floats.append(pred.field("score"))
    if not _floats_ok(floats, joined):
        raise _Decline("unsupported_literal")
    strings = [c for c in (*cols.values(), *features.values()) if pa.types.is_string(c.type)]
    if pa.types.is_struct(pred.type) and pa.types.is_string(pred.type.field("label").type):
        strings.append(pred.field("label"))
    if any(pc.sum(pc.count_substring(col, '"')).as_py() for col in strings):
        raise _Decline("unsupported_literal")  # the quote count below would not add up
    return strings


def _floats_ok(columns: list[pa.Array], joined: bytes) -> bool:
    """No NaN/Infinity literal and no integer ``-0`` among the float columns' values."""
    for col in columns:
        x = _np(pc.drop_null(col) if col.null_count else col)
        if not np.isfinite(x).all():
            return False
        if (np.signbit(x) & (x == 0)).any() and _NEG_ZERO_INT.search(joined) is not None:
            return False
    return True


def _check_feature_keys(
    features: dict[str, pa.Array],
    keys: tuple[bytes, ...],
    strings: list[pa.Array],
    joined: bytes,
    *,
    per_record: int,
    n: int,
) -> None:
    """Every feature key in every record (a null must be a JSON ``null``, not absent)."""
    # With no escaped quotes, every '"' in the batch delimits a key or a string value,
    # and the string values are exactly the non-null entries of the string columns.
    quotes = int(np.count_nonzero(np.frombuffer(joined, dtype=np.uint8) == _QUOTE))
    n_keys = quotes // 2 - sum(len(col) - col.null_count for col in strings)
    if n_keys == n * per_record:
        return
    # Some key is absent: absent optional envelope fields are fine (null means absent),
    # absent features are not.
    for j, col in enumerate(features.values()):
        if col.null_count and joined.count(keys[j]) != n:
            raise _Decline("missing_feature")


def _n_keys(schema: pa.Schema) -> int:
    """Keys of a record with every field of ``schema``: top-level and one level nested."""
    return sum(1 + (f.type.num_fields if pa.types.is_struct(f.type) else 0) for f in schema)


def _predictions(pred: pa.Array, n: int) -> tuple[np.ndarray, list[Any]]:
    """(float64 scores, NaN for none; labels, None for none)."""
    if pa.types.is_struct(pred.type):
        label = pred.field("label")
        if label.null_count:
            raise _Decline("needs_validation")
        return _np(pred.field("score")).astype(np.float64, copy=False), label.to_pylist()
    if pa.types.is_floating(pred.type):
        return _np(pred).astype(np.float64, copy=False), [None] * n
    return np.full(n, np.nan), pred.to_pylist()


def _check_lengths(features: dict[str, pa.Array], pred: pa.Array, max_bytes: int) -> None:
    """No string feature value or label longer than ``max_bytes`` UTF-8 bytes."""
    columns = [c for c in features.values() if pa.types.is_string(c.type)]
    if pa.types.is_struct(pred.type):
        pred = pred.field("label")
    if pa.types.is_string(pred.type):
        columns.append(pred)
    for col in columns:
        longest = pc.max(pc.binary_length(col)).as_py()
        if longest is not None and longest > max_bytes:
            raise _Decline("long_value")


def _latency(col: pa.Array | None, n: int) -> np.ndarray:
    """float64 milliseconds, NaN when absent."""
    if col is None:
        return np.full(n, np.nan)
    latency = _np(col).astype(np.float64, copy=False)
    if (latency < 0).any():
        raise _Decline("needs_validation")
    return latency


def _flag(col: pa.Array | None, n: int) -> np.ndarray:
    """bool: ``true`` (or a non-empty string); False when absent."""
    if col is None:
        return np.zeros(n, dtype=np.bool_)
    if pa.types.is_string(col.type):
        col = pc.greater(pc.utf8_length(col), 0)
    return _np(pc.fill_null(col, False)).astype(np.bool_, copy=False)


def _features_as_of(col: pa.Array | None, n: int, max_event_ms: int | None) -> np.ndarray:
    """float64 epoch seconds, NaN when absent."""
    out = np.full(n, np.nan)
    if col is None:
        return out
    raw = _np(col)
    present = ~np.isnan(raw)
    checked = epoch_seconds(raw[present])
    if checked is None or _future(checked, max_event_ms):
        raise _Decline("bad_timestamp")
    out[present] = checked
    return out


def _by_window(whole: PredictionBatch, window_ms: int | None) -> dict[BatchKey, PredictionBatch]:
    """The batch as the result's batches: whole, or split by event-time window."""
    key = (whole.model, whole.model_version)
    if window_ms is None:
        return {key: whole}
    win = window_start_ms(whole.timestamps * 1000, window_ms)
    starts, first_at = np.unique(win, return_index=True)
    batches: dict[BatchKey, PredictionBatch] = {}
    for start in starts[np.argsort(first_at)].tolist():
        batch = whole if len(starts) == 1 else whole.take(np.flatnonzero(win == start))
        batch.window_start_ms = int(start)
        batches[(*key, int(start))] = batch
    return batches


def _np(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(arr.to_numpy(zero_copy_only=False))
