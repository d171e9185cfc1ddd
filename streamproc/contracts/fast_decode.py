"""Fast path of the prediction decoder: pyarrow.json with an explicit schema.

:func:`fast_decode` parses a whole consumed batch in one ``pyarrow.json.read_json`` call
with a schema derived from the first record and the reference's feature names, so the
feature columns come out as typed Arrow arrays without any per-value Python work.

It only handles the common, clean case and *declines* (returns ``None``) for anything
else; the caller then runs :func:`~streamproc.contracts.prediction.decode_predictions`
on the whole batch. When it does not decline, its result is the one the orjson decoder
gives: no rejects, and batches whose columns hold the same values (feature columns as
Arrow arrays instead of lists; ``typed_columns`` passes them through). It declines on:

* any tombstone, empty or oversized value, a value not starting with ``{``, a value that
  parses to more than one row, non-ASCII bytes that are not UTF-8, ``NaN``/``Infinity``
  literals (orjson rejects them, pyarrow does not), an integer ``-0`` (orjson: int 0,
  pyarrow: float -0.0), a string value containing a quote;
* any parse error under the explicit schema: malformed JSON, a value of another JSON type
  than the first record's for that field, an unexpected key (also in ``features`` and in
  ``prediction``), a duplicate key, ``segment`` (not in the schema);
* a record of another (model, version) than the first, a model without a reference, a
  null or missing required field, a bad timestamp or latency, a timestamp string that is
  not strict RFC 3339 (``YYYY-MM-DDTHH:MM:SS[.ffffff](Z|+HH:MM)``), a string
  ``features_as_of``, a numeric label;
* a feature key missing in some record. A null in a feature column is either a JSON
  ``null`` or an absent key. With no quote inside string values, every ``"`` in the
  batch delimits a key or a string value, so (quotes / 2 − non-null string values) is
  the number of keys; when it is below the number a batch with every schema key in every
  record has, each feature column with nulls must have ``"name":`` exactly once per
  record (feature names that are envelope or ``prediction`` keys, or need escapes,
  decline).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from itertools import repeat
from typing import Any, Final

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from streamproc.contracts.prediction import (
    DEFAULT_MAX_MESSAGE_BYTES,
    MAX_EPOCH_MS,
    MS_THRESHOLD,
    BatchKey,
    DecodeResult,
    PredictionBatch,
)

KindsFor = Callable[[str, str], Mapping[str, Any] | None]
"""(model, version) → feature name → kind (``FeatureKind`` or its string), or None when
the model is unknown (the fast path then declines)."""

_ENVELOPE: Final = frozenset(
    {
        "model",
        "model_version",
        "request_id",
        "timestamp",
        "features",
        "prediction",
        "latency_ms",
        "fallback",
        "error",
        "features_as_of",
    }
)
_RESERVED_KEYS: Final = _ENVELOPE | {"label", "score", "segment"}
_QUOTE: Final = ord('"')
_NEG_ZERO_INT: Final = re.compile(rb"-0(?![0-9.eE])")
_KIND_DEFAULT: Final = {"numeric": "float", "categorical": "str", "boolean": "bool"}
_MAX_SCHEMAS: Final = 256
_SCHEMAS: dict[tuple[Any, ...], tuple[pa.Schema, tuple[bytes, ...]] | None] = {}


def _json_type(value: object) -> pa.DataType | None:
    """Arrow type for a JSON scalar of this Python type (None: not a scalar)."""
    t = type(value)
    if t is float or t is int:
        return pa.float64()
    if t is str:
        return pa.string()
    if t is bool:
        return pa.bool_()
    return None


def _shape(first: dict[str, Any], kinds: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """Hashable description of the first record's shape (None: not handled)."""
    if not first.keys() <= _ENVELOPE:
        return None
    feats = first.get("features")
    pred: Any = first.get("prediction")
    ts_type = type(first.get("timestamp"))
    if type(feats) is not dict or ts_type not in (int, float, str):
        return None
    tp = type(pred)
    if tp is dict:
        if not pred.keys() <= {"label", "score"} or type(pred.get("label")) not in (str, bool):
            return None
        pshape: tuple[Any, ...] = ("struct", type(pred["label"]).__name__)
    elif tp in (int, float, str, bool):
        pshape = ("plain", "float" if tp is int else tp.__name__)
    else:
        return None
    fshape = []
    for name, value in feats.items():
        kind = kinds.get(name)
        if kind is None or name in _RESERVED_KEYS or orjson.dumps(name) != f'"{name}"'.encode():
            return None  # unknown, an envelope key, or needs escapes as a JSON key
        vt = type(value)
        if vt is type(None):  # null in the first record: the type the kind expects
            tname = _KIND_DEFAULT.get(str(kind), "NoneType")
        else:
            tname = "float" if vt is int else vt.__name__
        fshape.append((name, tname))
    opt = []
    for name in ("latency_ms", "fallback", "error", "features_as_of"):
        if name in first:
            vt = type(first[name])
            opt.append((name, "float" if vt is int else vt.__name__))
    return (pshape, tuple(fshape), tuple(opt), ts_type is str)


def _schema(shape: tuple[Any, ...]) -> tuple[pa.Schema, tuple[bytes, ...]] | None:
    pshape, fshape, opt, ts_string = shape
    fields: list[pa.Field] = []
    keys: list[bytes] = []
    for name, vt in fshape:
        t = {"float": pa.float64(), "str": pa.string(), "bool": pa.bool_()}.get(vt)
        if t is None:
            return None
        fields.append(pa.field(name, t))
        keys.append(orjson.dumps(name) + b":")
    types = {"float": pa.float64(), "str": pa.string(), "bool": pa.bool_()}
    if pshape[0] == "struct":
        ptype: pa.DataType = pa.struct(
            [pa.field("label", types[pshape[1]]), pa.field("score", pa.float64())]
        )
    else:
        ptype = types[pshape[1]]
    schema = [
        pa.field("model", pa.string()),
        pa.field("model_version", pa.string()),
        pa.field("request_id", pa.string()),
        pa.field("timestamp", pa.string() if ts_string else pa.float64()),
        pa.field("features", pa.struct(fields)),
        pa.field("prediction", ptype),
    ]
    for name, vt in opt:
        want = {
            "latency_ms": ("float",),
            "fallback": ("bool",),
            "error": ("bool", "str"),
            "features_as_of": ("float",),
        }[name]
        if vt not in want:  # null, or a type the fast path leaves to the slow one
            return None
        schema.append(pa.field(name, types[vt]))
    return pa.schema(schema), tuple(keys)


def _np(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(arr.to_numpy(zero_copy_only=False))


def _floats_ok(columns: list[pa.Array], joined: bytes) -> bool:
    """No NaN/Infinity literal (pyarrow parses them, orjson rejects them) and no integer
    ``-0`` (orjson: int 0, pyarrow: float -0.0) among the float columns' values."""
    for col in columns:
        x = _np(pc.drop_null(col) if col.null_count else col)
        if not np.isfinite(x).all():
            return False
        if (np.signbit(x) & (x == 0)).any() and _NEG_ZERO_INT.search(joined) is not None:
            return False
    return True


def _string_columns(cols: dict[str, pa.Array], features: dict[str, Any]) -> list[pa.Array]:
    out = [c for c in (*cols.values(), *features.values()) if pa.types.is_string(c.type)]
    pred = cols["prediction"]
    if pa.types.is_struct(pred.type) and pa.types.is_string(pred.type.field("label").type):
        out.append(pred.field("label"))
    return out


_RFC3339: Final = (
    r"^(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})T(?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2})"
    r"(?:\.(?P<f>\d{1,6}))?(?:Z|(?P<sign>[+-])(?P<oh>\d{2}):(?P<om>\d{2}))$"
)
_DAYS_BEFORE_MONTH: Final = np.array([0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334])
_DAYS_IN_MONTH: Final = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def _rfc3339_seconds(col: pa.Array) -> np.ndarray | None:
    """``datetime.fromisoformat(s).timestamp()`` for strict RFC 3339 strings, vectorized
    (``YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|±HH:MM)``); None if any string is not of that exact
    form, names an invalid date or time, or lies where float microseconds are inexact."""
    if not pc.all(pc.match_substring_regex(col, _RFC3339)).as_py():
        return None
    parts = pc.extract_regex(col, _RFC3339)

    def num(name: str, width: int = 2) -> np.ndarray:
        text = parts.field(name)
        if width:  # optional groups are "" when absent: pad to zeros
            text = pc.utf8_rpad(text, width, "0")
        return _np(pc.cast(text, pa.int64()))

    y, mo, d = num("y", 0), num("mo", 0), num("d", 0)
    h, mi, sec = num("h", 0), num("mi", 0), num("s", 0)
    frac, oh, om = num("f", 6), num("oh"), num("om")
    leap = (y % 4 == 0) & ((y % 100 != 0) | (y % 400 == 0))
    if not (
        (y >= 1).all()
        and ((mo >= 1) & (mo <= 12)).all()
        and (d >= 1).all()
        and (d <= _DAYS_IN_MONTH[mo] + ((mo == 2) & leap)).all()
        and (h <= 23).all()
        and (mi <= 59).all()
        and (sec <= 59).all()
        and (oh <= 23).all()
        and (om <= 59).all()
    ):
        return None
    # days since 1970-01-01 of the proleptic Gregorian calendar
    yp = y - 1
    days = (
        yp * 365
        + yp // 4
        - yp // 100
        + yp // 400
        - 719162  # 719162: days before 1970
        + _DAYS_BEFORE_MONTH[mo]
        + ((mo > 2) & leap)
        + d
        - 1
    )
    sign = np.where(_np(pc.equal(parts.field("sign"), "-")), -1, 1)
    seconds = days * 86400 + h * 3600 + mi * 60 + sec - sign * (oh * 3600 + om * 60)
    if not (np.abs(seconds) < 2**53 // 1_000_000 - 1).all():
        return None
    micros = seconds * 1_000_000 + frac  # exact int64; exact as float64 below 2**53
    return micros / 1e6  # timedelta.total_seconds(): micros / 10**6, correctly rounded


def _epoch_seconds(x: np.ndarray) -> np.ndarray | None:
    """The slow path's epoch rule, vectorized; None if any value would be rejected."""
    if not ((x >= 0.0) & (x <= MAX_EPOCH_MS)).all():  # NaN fails too
        return None
    return np.where(x > MS_THRESHOLD, x / 1000.0, x)


def fast_decode(
    values: Sequence[bytes | bytearray | memoryview | None],
    *,
    kinds_for: KindsFor,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    keep_request_ids: bool = False,
    window_ms: int | None = None,
) -> DecodeResult | None:
    """``decode_predictions``' result for a clean batch of one (model, version), or None.

    ``kinds_for`` must accept exactly the models ``decode_predictions``' ``known_models``
    accepts (returning None for the others).
    """
    n = len(values)
    if n == 0 or any(v is None for v in values):
        return None
    lengths = list(map(len, values))  # type: ignore[arg-type]
    if min(lengths) == 0 or max(lengths) > max_message_bytes:
        return None
    try:
        first = orjson.loads(values[0])  # type: ignore[arg-type]
    except orjson.JSONDecodeError:
        return None
    if type(first) is not dict:
        return None
    model, version = first.get("model"), first.get("model_version")
    if type(model) is not str or type(version) is not str or not model:
        return None
    kinds = kinds_for(model, version)
    if not kinds:
        return None
    shape = _shape(first, kinds)
    if shape is None:
        return None
    if shape in _SCHEMAS:
        cached = _SCHEMAS[shape]
    else:
        if len(_SCHEMAS) >= _MAX_SCHEMAS:  # bounded: shapes come from the data
            _SCHEMAS.clear()
        cached = _SCHEMAS[shape] = _schema(shape)
    if cached is None:
        return None
    schema, keys = cached

    if not all(map(bytes.startswith, values, repeat(b"{"))):  # type: ignore[arg-type]
        return None  # so every value yields at least one row: see the row count check
    joined = b"\n".join(values)  # type: ignore[arg-type]
    if not joined.isascii():
        try:
            joined.decode("utf-8")  # pyarrow does not validate UTF-8
        except UnicodeDecodeError:
            return None
    try:
        table = pj.read_json(
            pa.py_buffer(joined),
            read_options=pj.ReadOptions(use_threads=False, block_size=len(joined) + 1),
            parse_options=pj.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="error"
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    if table.num_rows != n:
        return None
    cols = {name: table.column(name).combine_chunks() for name in table.column_names}

    for name in ("model", "model_version", "request_id", "timestamp", "features"):
        if cols[name].null_count:
            return None
    if (
        pc.count_distinct(cols["model"]).as_py() != 1
        or pc.count_distinct(cols["model_version"]).as_py() != 1
    ):
        return None
    ts_col = cols["timestamp"]
    ts = (
        _rfc3339_seconds(ts_col) if pa.types.is_string(ts_col.type) else _epoch_seconds(_np(ts_col))
    )
    if ts is None:
        return None

    feats: pa.StructArray = cols["features"]
    features: dict[str, pa.Array] = {
        f.name: feats.field(j) for j, f in enumerate(schema.field("features").type)
    }
    floats = [col for col in (*features.values(), *cols.values()) if pa.types.is_floating(col.type)]
    if is_struct := pa.types.is_struct(cols["prediction"].type):
        floats.append(cols["prediction"].field("score"))
    if not _floats_ok(floats, joined):
        return None
    strings = _string_columns(cols, features)
    if any(pc.sum(pc.count_substring(col, '"')).as_py() for col in strings):
        return None  # an escaped quote: the quote count below would not add up
    # With no escaped quotes, every '"' in the batch delimits a key or a string value,
    # and the string values are exactly the non-null entries of the string columns.
    quotes = int(np.count_nonzero(np.frombuffer(joined, dtype=np.uint8) == _QUOTE))
    n_keys = quotes // 2 - sum(len(col) - col.null_count for col in strings)
    if n_keys != n * (len(schema) + len(features) + (2 if is_struct else 0)):
        # Some key is absent: absent optional envelope fields are fine (null means
        # absent), absent features are not.
        for j, col in enumerate(features.values()):
            if col.null_count and joined.count(keys[j]) != n:
                return None

    pred = cols["prediction"]
    if pred.null_count:
        return None
    labels: list[Any]
    if pa.types.is_struct(pred.type):
        label = pred.field("label")
        if label.null_count:
            return None
        labels = label.to_pylist()
        scores = _np(pred.field("score"))
    elif pa.types.is_floating(pred.type):
        labels = [None] * n
        scores = _np(pred)
    else:
        labels = pred.to_pylist()
        scores = np.full(n, np.nan)

    latency = cols.get("latency_ms")
    latency_arr = np.full(n, np.nan) if latency is None else _np(latency)
    if latency is not None and (latency_arr < 0).any():
        return None
    fallback = cols.get("fallback")
    fallback_arr = (
        np.zeros(n, dtype=np.bool_) if fallback is None else _np(pc.fill_null(fallback, False))
    )
    error = cols.get("error")
    if error is None:
        error_arr = np.zeros(n, dtype=np.bool_)
    elif pa.types.is_boolean(error.type):
        error_arr = _np(pc.fill_null(error, False))
    else:
        error_arr = _np(pc.fill_null(pc.greater(pc.utf8_length(error), 0), False))
    asof = cols.get("features_as_of")
    if asof is None:
        asof_arr = np.full(n, np.nan)
    else:
        raw = _np(asof)
        present = ~np.isnan(raw)
        checked = _epoch_seconds(raw[present])
        if checked is None:
            return None
        asof_arr = np.full(n, np.nan)
        asof_arr[present] = checked

    request_ids = cols["request_id"].to_pylist() if keep_request_ids else None
    whole = PredictionBatch(
        model=model,
        model_version=version,
        indices=np.arange(n, dtype=np.int64),
        timestamps=ts,
        features=dict(features),
        missing=dict.fromkeys(features, 0),
        prediction_score=scores.astype(np.float64, copy=False),
        prediction_label=labels,
        latency_ms=latency_arr.astype(np.float64, copy=False),
        fallback=fallback_arr.astype(np.bool_, copy=False),
        error=error_arr.astype(np.bool_, copy=False),
        features_as_of=asof_arr,
        segments=[None] * n,
        request_ids=request_ids,
    )
    batches: dict[BatchKey, PredictionBatch] = {}
    if window_ms is None:
        batches[(model, version)] = whole
        return DecodeResult(batches)
    win = (ts * 1000).astype(np.int64) // window_ms * window_ms
    starts, first_at = np.unique(win, return_index=True)
    for start in starts[np.argsort(first_at)].tolist():
        batch = whole if len(starts) == 1 else whole.take(np.flatnonzero(win == start))
        batch.window_start_ms = int(start)
        batches[(model, version, int(start))] = batch
    return DecodeResult(batches)
