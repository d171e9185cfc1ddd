"""Hot-path decoding of prediction-log records into columnar batches.

Contract: ``schemas/prediction_log.schema.json``. Running jsonschema per record costs tens
of microseconds; this module parses with orjson and checks the envelope with a few
``type(x) is T`` tests per record, then builds one column per field with list
comprehensions over the batch, so per-field Python work is paid once per batch and not
once per record.

Rules (documented in the schema too):

* Required envelope: ``model`` (non-empty str), ``model_version`` (str), ``request_id``
  (str), ``timestamp``, ``features`` (object), ``prediction`` (number, string, boolean or
  ``{"label": ..., "score": number}``). Optional: ``latency_ms`` (number), ``fallback``
  (bool), ``error`` (bool or str; a non-empty string counts as an error), ``segment``
  (object of strings), ``features_as_of`` (timestamp). ``null`` in an optional field
  means absent. A broken envelope rejects the record with a stable reason code.
* Feature values are *not* type-checked here: a feature whose value is an object or
  array is passed through in its column, and the profile counts it as invalid for that
  feature. One bad feature never rejects a whole record.
* Timestamps: an RFC 3339 string with a UTC offset (``Z`` allowed), or an epoch number.
  Heuristic: a number above 1e11 is epoch *milliseconds* (1e11 s is the year 5138, 1e11 ms
  is 1973), otherwise epoch seconds. Negative, non-finite or larger than 1e14 ms
  (microsecond epochs) values are ``bad_timestamp``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, NamedTuple

import numpy as np
import orjson
import pyarrow as pa

# Stable reason codes (also the enum of ``streamproc.reason`` in the dead-letter schema).
MALFORMED_JSON: Final = "malformed_json"
NOT_AN_OBJECT: Final = "not_an_object"
MISSING_FIELD: Final = "missing_field"
BAD_TIMESTAMP: Final = "bad_timestamp"
WRONG_TYPE: Final = "wrong_type"
OVERSIZED: Final = "oversized"
UNKNOWN_MODEL: Final = "unknown_model"
REASON_CODES: Final = (
    MALFORMED_JSON,
    NOT_AN_OBJECT,
    MISSING_FIELD,
    BAD_TIMESTAMP,
    WRONG_TYPE,
    OVERSIZED,
    UNKNOWN_MODEL,
)

DEFAULT_MAX_MESSAGE_BYTES: Final = 1 << 20
MS_THRESHOLD: Final = 1e11
"""Epoch numbers above this are milliseconds, at or below it seconds."""
MAX_EPOCH_MS: Final = 1e14

_NUMBER: Final = (int, float)
_SCALAR: Final = (int, float, str, bool)
_REQUIRED: Final = ("model", "model_version", "request_id", "timestamp", "features", "prediction")


BatchKey = tuple[str, str] | tuple[str, str, int]
"""(model, version) or (model, version, window start ms)."""


class Reject(NamedTuple):
    """A record that cannot be used: position in the input, reason code, human detail."""

    position: int
    """Index of the record in the decoded input list."""
    reason: str
    detail: str


@dataclass(slots=True)
class PredictionBatch:
    """Columns for the accepted records of one (model, model_version), in input order.

    All columns have length ``n``. ``indices`` maps each row back to its position in the
    input list (for offsets and dead-lettering downstream).
    """

    model: str
    model_version: str
    indices: np.ndarray
    """int64 positions of the rows in the decoded input list."""
    timestamps: np.ndarray
    """float64 event time, epoch seconds."""
    features: dict[str, list[Any] | pa.Array]
    """Feature name → values; ``None`` for null *or* absent (see ``missing``). A typed
    pyarrow array instead of a list when the fast path (``fast_decode``) built it."""
    missing: dict[str, int]
    """Feature name → number of rows whose record lacked the key (a subset of the Nones)."""
    prediction_score: np.ndarray
    """float64 numeric prediction or ``score``; NaN when the prediction has none."""
    prediction_label: list[Any]
    """Label (str, bool or number from ``{"label": ...}``, or a str/bool prediction); None
    for a plain numeric prediction."""
    latency_ms: np.ndarray
    """float64, NaN when absent."""
    fallback: np.ndarray
    """bool."""
    error: np.ndarray
    """bool: ``error`` is true or a non-empty string."""
    features_as_of: np.ndarray
    """float64 epoch seconds, NaN when absent."""
    segments: list[dict[str, str] | None]
    request_ids: list[str] | None = None
    """Only when decoding with ``keep_request_ids=True``."""
    window_start_ms: int = 0
    """Start of the event-time window all rows fall in (decoding with ``window_ms``)."""
    missing_rows: dict[str, np.ndarray] = field(default_factory=dict)
    """Feature name → int64 row numbers whose record lacked the key (only names with any)."""

    @property
    def n(self) -> int:
        """Number of rows."""
        return len(self.indices)

    def take(self, rows: np.ndarray) -> PredictionBatch:
        """The batch restricted to ``rows`` (int64 row numbers, ascending)."""
        rows = np.asarray(rows, dtype=np.int64)
        pick = rows.tolist()
        position = np.full(self.n, -1, dtype=np.int64)
        position[rows] = np.arange(len(rows))
        missing_rows = {}
        for name, where in self.missing_rows.items():
            kept = position[where]
            kept = kept[kept >= 0]
            if len(kept):
                missing_rows[name] = kept
        return PredictionBatch(
            model=self.model,
            model_version=self.model_version,
            indices=self.indices[rows],
            timestamps=self.timestamps[rows],
            features={name: _take(col, rows, pick) for name, col in self.features.items()},
            missing={name: len(missing_rows.get(name, ())) for name in self.missing},
            prediction_score=self.prediction_score[rows],
            prediction_label=[self.prediction_label[i] for i in pick],
            latency_ms=self.latency_ms[rows],
            fallback=self.fallback[rows],
            error=self.error[rows],
            features_as_of=self.features_as_of[rows],
            segments=[self.segments[i] for i in pick],
            request_ids=None if self.request_ids is None else [self.request_ids[i] for i in pick],
            window_start_ms=self.window_start_ms,
            missing_rows=missing_rows,
        )

    def profile_columns(self) -> dict[str, Any]:
        """Keyword arguments for ``ModelProfile.update_columns`` (streamproc.core).

        JSON cannot carry NaN, so a NaN in the float columns always means "absent"; it
        is passed as a masked entry, which the core counts as null (a bare NaN would
        count as non-finite). Predictions without any score or label are left out.
        """
        kwargs: dict[str, Any] = {
            "columns": typed_columns(self.features),
            "latency_ms": np.ma.masked_invalid(self.latency_ms),
            "event_times": self.timestamps,
        }
        if not np.isnan(self.prediction_score).all():
            kwargs["predictions"] = np.ma.masked_invalid(self.prediction_score)
        if any(label is not None for label in self.prediction_label):
            kwargs["predicted_labels"] = self.prediction_label
        return kwargs


@dataclass(slots=True)
class DecodeResult:
    """Output of :func:`decode_predictions`."""

    batches: dict[BatchKey, PredictionBatch]
    """Keyed by (model, version), or (model, version, window start ms) with ``window_ms``."""
    rejects: list[Reject] = field(default_factory=list)

    @property
    def n_accepted(self) -> int:
        return sum(b.n for b in self.batches.values())


def parse_timestamp(value: object) -> float:
    """Event time as float epoch seconds; raises ``ValueError`` when unusable.

    Accepts an RFC 3339 string with UTC offset, or epoch seconds / milliseconds (numbers
    above 1e11 are milliseconds).
    """
    tv = type(value)
    if tv is float or tv is int:
        ts = float(value)  # type: ignore[arg-type]
        if not (0.0 <= ts <= MAX_EPOCH_MS):  # also rejects NaN
            raise ValueError(f"epoch timestamp out of range: {value!r}")
        return ts / 1000.0 if ts > MS_THRESHOLD else ts
    if tv is str:
        try:
            parsed = datetime.fromisoformat(value)  # type: ignore[arg-type]
        except ValueError:
            raise ValueError(f"not an RFC 3339 timestamp: {value!r:.64}") from None
        if parsed.tzinfo is None:
            raise ValueError(f"timestamp has no UTC offset: {value!r:.64}")
        return parsed.timestamp()
    raise ValueError(f"timestamp must be a string or number, got {tv.__name__}")


def _record_error(obj: dict[str, Any]) -> tuple[str, str] | None:
    """Slow path: why a decoded object breaks the envelope, or None if it is fine.

    Used to explain a record that failed a fast check; the fast checks (per record in
    the decode loop, per column in ``_finalize``) accept exactly what this accepts.
    """
    for name in _REQUIRED:
        if name not in obj:
            return MISSING_FIELD, f"missing required field {name!r}"
    for name in ("model", "model_version", "request_id"):
        if type(obj[name]) is not str:
            return WRONG_TYPE, f"{name} must be a string, got {type(obj[name]).__name__}"
    if not obj["model"]:
        return WRONG_TYPE, "model must be a non-empty string"
    if type(obj["features"]) is not dict:
        return WRONG_TYPE, f"features must be an object, got {type(obj['features']).__name__}"
    pred = obj["prediction"]
    if type(pred) is dict:
        if type(pred.get("label")) not in _SCALAR:
            return WRONG_TYPE, "prediction object needs a string, number or boolean 'label'"
        if type(pred.get("score")) not in _OPT_NUMBER:
            return WRONG_TYPE, "prediction.score must be a number"
    elif type(pred) not in _SCALAR:
        kind = type(pred).__name__
        return WRONG_TYPE, f"prediction must be a number, string, boolean or object, got {kind}"
    latency = obj.get("latency_ms")
    if type(latency) not in _OPT_NUMBER or (latency is not None and latency < 0):
        return WRONG_TYPE, "latency_ms must be a non-negative number"
    if type(obj.get("fallback")) not in _OPT_BOOL:
        return WRONG_TYPE, "fallback must be a boolean"
    if type(obj.get("error")) not in _OPT_ERROR:
        return WRONG_TYPE, "error must be a boolean or a string"
    segment = obj.get("segment")
    if segment is not None and (
        type(segment) is not dict or any(type(v) is not str for v in segment.values())
    ):
        return WRONG_TYPE, "segment must be an object of strings"
    asof = obj.get("features_as_of")
    if asof is not None:
        try:
            parse_timestamp(asof)
        except ValueError as exc:
            return BAD_TIMESTAMP, f"features_as_of: {exc}"
    return None


_NONE = type(None)
_OPT_NUMBER: Final = frozenset({int, float, _NONE})
_OPT_BOOL: Final = frozenset({bool, _NONE})
_OPT_ERROR: Final = frozenset({bool, str, _NONE})
_SCALAR_SET: Final = frozenset(_SCALAR)


def decode_predictions(
    values: Sequence[bytes | bytearray | memoryview | None],
    *,
    known_models: Callable[[str], bool] | frozenset[str] | set[str] | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    keep_request_ids: bool = False,
    window_ms: int | None = None,
) -> DecodeResult:
    """Decode raw Kafka values into per-(model, version) columnar batches plus rejects.

    With ``window_ms``, batches are per (model, version, window start in epoch ms) of
    event-time tumbling windows of that size, and each batch's ``window_start_ms`` says
    which.

    ``known_models``: a set of model names, or a predicate on the model name (the hook
    for "unknown model" policy); records of other models are rejected as
    ``unknown_model``. ``None`` accepts every model. Never raises on bad input: every
    record ends up either in exactly one batch row or in ``rejects`` (sorted by position).
    """
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    fromiso = datetime.fromisoformat
    if known_models is None or callable(known_models):
        is_known = known_models
    else:
        is_known = known_models.__contains__
    # per key: (positions, timestamps, objects), appended in input order
    groups: dict[BatchKey, tuple[list[int], list[float], list[dict[str, Any]]]] = {}
    unknown_keys: set[BatchKey] = set()
    rejects: list[Reject] = []
    reject = rejects.append
    str_t, dict_t, float_t, int_t = str, dict, float, int

    for i, raw in enumerate(values):
        if raw is None:
            reject(Reject(i, MALFORMED_JSON, "empty value (tombstone)"))
            continue
        if len(raw) > max_message_bytes:
            reject(Reject(i, OVERSIZED, f"{len(raw)} bytes > limit {max_message_bytes}"))
            continue
        try:
            obj = loads(raw)
        except decode_error as exc:
            reject(Reject(i, MALFORMED_JSON, str(exc)[:200]))
            continue
        if type(obj) is not dict_t:
            reject(Reject(i, NOT_AN_OBJECT, f"JSON {type(obj).__name__}, expected an object"))
            continue
        try:
            model = obj["model"]
            version = obj["model_version"]
            ts = obj["timestamp"]
            if (
                type(model) is not str_t
                or type(version) is not str_t
                or type(obj["request_id"]) is not str_t
                or type(obj["features"]) is not dict_t
                or "prediction" not in obj
                or not model
            ):
                raise KeyError
        except KeyError:
            reject(Reject(i, *(_record_error(obj) or (WRONG_TYPE, "invalid envelope"))))
            continue
        tt = type(ts)  # parse_timestamp, inlined for the common cases
        if tt is float_t or tt is int_t:
            if not (0.0 <= ts <= MAX_EPOCH_MS):
                reject(Reject(i, BAD_TIMESTAMP, f"epoch timestamp out of range: {ts!r}"))
                continue
            t = ts / 1000.0 if ts > MS_THRESHOLD else float(ts)
        elif tt is str_t:
            try:
                parsed = fromiso(ts)
            except ValueError:
                reject(Reject(i, BAD_TIMESTAMP, f"not an RFC 3339 timestamp: {ts!r:.64}"))
                continue
            if parsed.tzinfo is None:
                reject(Reject(i, BAD_TIMESTAMP, f"timestamp has no UTC offset: {ts!r:.64}"))
                continue
            t = parsed.timestamp()
        else:
            reject(Reject(i, BAD_TIMESTAMP, f"timestamp must be a string or number: {ts!r:.64}"))
            continue
        key: BatchKey = (
            (model, version)
            if window_ms is None
            else (model, version, int(t * 1000) // window_ms * window_ms)
        )
        group = groups.get(key)
        if group is None:
            if key in unknown_keys or (is_known is not None and not is_known(model)):
                unknown_keys.add(key)
                reject(Reject(i, UNKNOWN_MODEL, f"unknown model {model!r}"))
                continue
            group = groups[key] = ([], [], [])
        group[0].append(i)
        group[1].append(t)
        group[2].append(obj)

    batches: dict[BatchKey, PredictionBatch] = {}
    n_rejects = len(rejects)
    for key, (idx, ts_list, objs) in groups.items():
        batch = _finalize(key, idx, ts_list, objs, keep_request_ids, rejects)
        if batch is not None:
            batches[key] = batch
    if len(rejects) > n_rejects:
        rejects.sort(key=_position)
    return DecodeResult(batches, rejects)


def _position(r: Reject) -> int:
    return r.position


def _finalize(
    key: BatchKey,
    idx: list[int],
    ts: list[float],
    objs: list[dict[str, Any]],
    keep_request_ids: bool,
    rejects: list[Reject],
) -> PredictionBatch | None:
    """Check the remaining envelope fields column-wise, then build the columns.

    Type checks run as ``set(map(type, column))`` (C speed). Only if a column holds a bad
    value are the records checked one by one; bad ones become rejects and the rest are
    finalized again.
    """
    n = len(objs)
    preds = [o["prediction"] for o in objs]
    ptypes = set(map(type, preds))
    labels: list[Any]
    scores: list[Any]
    ok = True
    if ptypes <= _NUMBER_SET:
        scores, labels = preds, [None] * n
    elif ptypes == _DICT_SET:
        labels = [p.get("label") for p in preds]
        scores = [p.get("score") for p in preds]
        ok = set(map(type, labels)) <= _SCALAR_SET and set(map(type, scores)) <= _OPT_NUMBER
    elif ptypes <= _PRED_TYPES:
        labels, scores = [], []
        for p in preds:
            tp = type(p)
            if tp is dict:
                label = p.get("label")
                ok = ok and type(label) in _SCALAR_SET
                labels.append(label)
                scores.append(p.get("score"))
            elif tp is float or tp is int:
                labels.append(None)
                scores.append(p)
            else:
                labels.append(p)
                scores.append(None)
        ok = set(map(type, labels)) <= _OPT_SCALAR and set(map(type, scores)) <= _OPT_NUMBER
    else:
        ok = False
    latency = [o.get("latency_ms") for o in objs]
    fallback = [o.get("fallback") for o in objs]
    error = [o.get("error") for o in objs]
    segments = [o.get("segment") for o in objs]
    asof_raw = [o.get("features_as_of") for o in objs]
    ok = (
        ok
        and set(map(type, latency)) <= _OPT_NUMBER
        and set(map(type, fallback)) <= _OPT_BOOL
        and set(map(type, error)) <= _OPT_ERROR
    )
    seg_types = set(map(type, segments))
    if ok and seg_types != _NONE_SET:
        ok = seg_types <= _OPT_DICT and all(
            type(v) is str for s in segments if s is not None for v in s.values()
        )
    latency_arr = np.array(latency, dtype=np.float64) if ok else np.empty(0)
    if ok and n and np.nanmin(latency_arr, initial=0.0) < 0:
        ok = False
    asof: np.ndarray | None = None
    if ok:
        if set(map(type, asof_raw)) == _NONE_SET:
            asof = np.full(n, np.nan)
        else:
            try:
                asof = np.array(
                    [np.nan if a is None else parse_timestamp(a) for a in asof_raw],
                    dtype=np.float64,
                )
            except ValueError:
                ok = False
    if not ok:
        return _refinalize(key, idx, ts, objs, keep_request_ids, rejects)
    assert asof is not None

    feats = [o["features"] for o in objs]
    first = feats[0].keys()
    if all(f.keys() == first for f in feats):  # the common case: one feature set
        features = {name: [f[name] for f in feats] for name in first}
        missing = dict.fromkeys(first, 0)
        missing_rows = {}
    else:
        names: dict[str, Any] = {}  # union of names in first-seen order; values unused
        for f in feats:
            names.update(f)
        features = {name: [f.get(name) for f in feats] for name in names}
        missing_rows = {
            name: np.array([j for j, f in enumerate(feats) if name not in f], dtype=np.int64)
            for name in names
        }
        missing = {name: len(rows) for name, rows in missing_rows.items()}
        missing_rows = {name: rows for name, rows in missing_rows.items() if len(rows)}

    return PredictionBatch(
        model=key[0],
        model_version=key[1],
        indices=np.array(idx, dtype=np.int64),
        timestamps=np.array(ts, dtype=np.float64),
        features=features,
        missing=missing,
        missing_rows=missing_rows,
        window_start_ms=key[2] if len(key) > 2 else 0,
        prediction_score=np.array(scores, dtype=np.float64),  # None -> NaN
        prediction_label=labels,
        latency_ms=latency_arr,
        fallback=np.array([f is True for f in fallback], dtype=np.bool_),
        error=np.array([bool(e) for e in error], dtype=np.bool_),
        features_as_of=asof,
        segments=segments,
        request_ids=[o["request_id"] for o in objs] if keep_request_ids else None,
    )


def _refinalize(
    key: BatchKey,
    idx: list[int],
    ts: list[float],
    objs: list[dict[str, Any]],
    keep_request_ids: bool,
    rejects: list[Reject],
) -> PredictionBatch | None:
    """Slow path: reject the records that break the envelope, finalize the rest."""
    keep: list[int] = []
    for j, obj in enumerate(objs):
        problem = _record_error(obj)
        if problem is None:
            keep.append(j)
        else:
            rejects.append(Reject(idx[j], *problem))
    if not keep:
        return None
    if len(keep) == len(objs):  # pragma: no cover - a bug: fast and slow checks disagree
        for j in keep:
            rejects.append(Reject(idx[j], WRONG_TYPE, "invalid envelope (internal check)"))
        return None
    return _finalize(
        key,
        [idx[j] for j in keep],
        [ts[j] for j in keep],
        [objs[j] for j in keep],
        keep_request_ids,
        rejects,
    )


def _take(col: list[Any] | pa.Array, rows: np.ndarray, pick: list[int]) -> list[Any] | pa.Array:
    if isinstance(col, pa.Array):
        return col.take(pa.array(rows, type=pa.int64()))
    return [col[i] for i in pick]


def typed_columns(features: dict[str, list[Any] | pa.Array]) -> dict[str, Any]:
    """Feature lists as typed arrays where the values allow it, so profiles skip the
    per-value Python pass: all numbers → float64 (nulls masked; JSON has no NaN, so a
    NaN here is always a null), all strings → pyarrow string array (nulls as nulls),
    all booleans → bool. Mixed or wrongly typed columns stay lists (the profile counts
    the odd values as invalid). Arrow arrays (already typed) pass through."""
    out: dict[str, Any] = {}
    for name, col in features.items():
        if isinstance(col, pa.Array):
            out[name] = col
            continue
        types = set(map(type, col))
        has_null = _NONE in types
        types.discard(_NONE)
        if not types:
            out[name] = col
        elif types <= _NUMBER_SET:
            arr = np.array(col, dtype=np.float64)
            out[name] = np.ma.masked_invalid(arr) if has_null else arr
        elif types == _STR_SET:
            out[name] = pa.array(col, type=pa.string())
        elif types == _BOOL_SET and not has_null:
            out[name] = np.array(col, dtype=np.bool_)
        else:
            out[name] = col
    return out


_STR_SET: Final = frozenset({str})
_BOOL_SET: Final = frozenset({bool})
_NUMBER_SET: Final = frozenset({int, float})
_DICT_SET: Final = frozenset({dict})
_NONE_SET: Final = frozenset({_NONE})
_OPT_DICT: Final = frozenset({dict, _NONE})
_OPT_SCALAR: Final = frozenset({int, float, str, bool, _NONE})
_PRED_TYPES: Final = frozenset({int, float, str, bool, dict})
