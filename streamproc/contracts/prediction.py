"""Hot-path decoding of prediction-log records into columnar batches.

Contract: ``schemas/prediction_log.schema.json``; the envelope (fields, types, timestamp
rules) is defined once in :mod:`streamproc.contracts.envelope`. Running jsonschema per
record costs tens of microseconds; this module parses with orjson and checks the envelope
with a few ``type(x) is T`` tests per record, then builds one column per field with list
comprehensions over the batch, so per-field Python work is paid once per batch and not
once per record.

* A broken envelope (a missing required field, a value of a type the envelope table does
  not accept, a bad timestamp) rejects the record with a stable reason code. ``null`` in
  an optional field means absent.
* Bad input never wins: a record with a duplicate key in any of its JSON objects
  (``duplicate_key``: orjson would silently keep the last), more than
  ``limits.max_features`` features (``too_many_features``), or an event time later
  than ``max_event_ms`` (``future_timestamp``) is rejected; a ``features_as_of`` later
  than ``max_event_ms`` is invalid for that field alone (taken as absent, counted in
  ``DecodeResult.future_features_as_of``: the record's features are still good data); a
  string feature value or predicted label longer than ``limits.max_category_bytes`` UTF-8
  bytes is replaced by its capped form (:func:`~streamproc.contracts.limits.cap_category`)
  and counted in ``DecodeResult.truncated_values``.
* Feature values are *not* type-checked here: a feature whose value is an object or
  array is passed through in its column, and the profile counts it as invalid for that
  feature. One bad feature never rejects a whole record.

Duplicate keys cost one ``bytes.count`` per record: every key is followed by a colon
outside any string, so the colons of the raw value, less those inside its top-level
string values (when it has no escapes), bound its number of keys from above; when that
bound is not above the keys of the decoded object, there is no duplicate. Otherwise the
keys of the raw text are counted exactly (every string token, in order; a key is one
followed by ``:``) and compared with the keys of the decoded objects at every depth.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any, Final

import numpy as np
import orjson

from streamproc.contracts.batch import (
    SPARSE_SHARE,
    BatchKey,
    DecodeResult,
    PredictionBatch,
    Reject,
    typed_columns,
)
from streamproc.contracts.envelope import (
    FIELDS,
    LABEL_TYPES,
    MAX_EPOCH_MS,
    MS_THRESHOLD,
    REQUIRED,
    SCORE_TYPES,
    NoneType,
    parse_timestamp,
    window_start_ms,
)
from streamproc.contracts.limits import (
    DEFAULT_MAX_MESSAGE_BYTES,
    DecodeLimits,
    cap_category,
    resolve_limits,
)

__all__ = [
    "BAD_TIMESTAMP",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DUPLICATE_KEY",
    "FUTURE_TIMESTAMP",
    "MALFORMED_JSON",
    "MAX_EPOCH_MS",
    "MISSING_FIELD",
    "MS_THRESHOLD",
    "NOT_AN_OBJECT",
    "OVERSIZED",
    "REASON_CODES",
    "TOO_MANY_FEATURES",
    "UNKNOWN_MODEL",
    "WRONG_TYPE",
    "BatchKey",
    "DecodeLimits",
    "DecodeResult",
    "PredictionBatch",
    "Reject",
    "decode_predictions",
    "parse_timestamp",
    "typed_columns",
]

# Stable reason codes (also the enum of ``streamproc.reason`` in the dead-letter schema).
MALFORMED_JSON: Final = "malformed_json"
NOT_AN_OBJECT: Final = "not_an_object"
MISSING_FIELD: Final = "missing_field"
BAD_TIMESTAMP: Final = "bad_timestamp"
WRONG_TYPE: Final = "wrong_type"
OVERSIZED: Final = "oversized"
UNKNOWN_MODEL: Final = "unknown_model"
FUTURE_TIMESTAMP: Final = "future_timestamp"
DUPLICATE_KEY: Final = "duplicate_key"
TOO_MANY_FEATURES: Final = "too_many_features"
REASON_CODES: Final = (
    MALFORMED_JSON,
    NOT_AN_OBJECT,
    MISSING_FIELD,
    BAD_TIMESTAMP,
    WRONG_TYPE,
    OVERSIZED,
    UNKNOWN_MODEL,
    FUTURE_TIMESTAMP,
    DUPLICATE_KEY,
    TOO_MANY_FEATURES,
)

_STRING_FIELDS: Final = tuple(
    f.name for f in FIELDS.values() if f.required and f.json_types == ("string",)
)
_LATENCY: Final = FIELDS["latency_ms"].py_types
_FALLBACK: Final = FIELDS["fallback"].py_types
_ERROR: Final = FIELDS["error"].py_types
_SEGMENT: Final = FIELDS["segment"].py_types
_PREDICTION: Final = FIELDS["prediction"].py_types
_OPT_LABEL: Final = LABEL_TYPES | {NoneType}
_NUMBER_SET: Final = frozenset({int, float})
_DICT_SET: Final = frozenset({dict})
_NONE_SET: Final = frozenset({NoneType})
_STRING_TOKEN: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"(\s*:)?')
"""One JSON string token, and the colon after it when it is a key. Scanning valid JSON
from its start, every match begins at an opening quote (a quote outside a string always
opens one), so the matches are exactly the string tokens, in order."""


@dataclass(slots=True)
class _Context:
    """Per-call settings of ``_finalize`` and what it counts."""

    keep_request_ids: bool
    max_event_ms: int | None
    max_category_bytes: int
    rejects: list[Reject]
    truncated: int = 0
    future_as_of: int = 0


def _record_error(obj: dict[str, Any], max_event_ms: int | None) -> tuple[str, str] | None:
    """Slow path: why a decoded object breaks the envelope, or None if it is fine.

    Used to explain a record that failed a fast check; the fast checks (per record in
    the decode loop, per column in ``_finalize``) accept exactly what this accepts.
    """
    for name in REQUIRED:
        if name not in obj:
            return MISSING_FIELD, f"missing required field {name!r}"
    for name in _STRING_FIELDS:
        if type(obj[name]) is not str:
            return WRONG_TYPE, f"{name} must be a string, got {type(obj[name]).__name__}"
    if not obj["model"]:
        return WRONG_TYPE, "model must be a non-empty string"
    if type(obj["features"]) is not dict:
        return WRONG_TYPE, f"features must be an object, got {type(obj['features']).__name__}"
    pred = obj["prediction"]
    if type(pred) is dict:
        label, score = pred.get("label"), pred.get("score")
        if type(label) not in _OPT_LABEL:
            return WRONG_TYPE, "prediction.label must be a string, number or boolean"
        if type(score) not in SCORE_TYPES:
            return WRONG_TYPE, "prediction.score must be a number"
        if label is None and score is None:
            return WRONG_TYPE, "prediction object needs a 'label', a 'score' or both"
    elif type(pred) not in _PREDICTION:
        kind = type(pred).__name__
        return WRONG_TYPE, f"prediction must be a number, string, boolean or object, got {kind}"
    latency = obj.get("latency_ms")
    if type(latency) not in _LATENCY or (latency is not None and latency < 0):
        return WRONG_TYPE, "latency_ms must be a non-negative number"
    if type(obj.get("fallback")) not in _FALLBACK:
        return WRONG_TYPE, "fallback must be a boolean"
    if type(obj.get("error")) not in _ERROR:
        return WRONG_TYPE, "error must be a boolean or a string"
    segment = obj.get("segment")
    if segment is not None and (
        type(segment) not in _SEGMENT or any(type(v) is not str for v in segment.values())
    ):
        return WRONG_TYPE, "segment must be an object of strings"
    asof = obj.get("features_as_of")
    if asof is not None:
        try:
            parse_timestamp(asof)
        except ValueError as exc:
            return BAD_TIMESTAMP, f"features_as_of: {exc}"
    return None


def _ahead(t: float, max_event_ms: int) -> str:
    return f"{t * 1000 - max_event_ms:.0f} ms after the latest allowed event time"


def _shallow_keys(obj: dict[str, Any]) -> int:
    """Keys of the record and of its ``features``, ``prediction`` and ``segment`` objects."""
    n = len(obj)
    for name in ("features", "prediction", "segment"):
        value = obj.get(name)
        if type(value) is dict:
            n += len(value)
    return n


def _duplicate_key(raw: bytes, obj: dict[str, Any], n_keys: int) -> tuple[str, str] | None:
    """``(duplicate_key, detail)`` if some JSON object of ``raw`` (decoded: ``obj``, with
    ``n_keys`` keys by :func:`_shallow_keys`) repeats a key, else None. Exact."""
    bound = raw.count(b":")  # >= keys in the text: each key has one outside any string
    if bound <= n_keys:
        return None
    if b"\\" not in raw:  # without escapes a string's raw colons are its decoded ones
        for value in obj.values():
            if type(value) is str:
                bound -= value.count(":")
        if bound <= n_keys:
            return None
        for name in ("features", "prediction", "segment"):
            nested = obj.get(name)
            if type(nested) is dict:
                for value in nested.values():
                    if type(value) is str:
                        bound -= value.count(":")
        if bound <= n_keys:
            return None
    marks = _STRING_TOKEN.findall(raw)
    if len(marks) - marks.count(b"") <= _decoded_keys(obj):
        return None
    return DUPLICATE_KEY, _duplicate_detail(raw)


def _decoded_keys(obj: dict[str, Any]) -> int:
    """Keys of every object in ``obj``, at any depth."""
    n = 0
    stack: list[Any] = [obj]
    while stack:
        node = stack.pop()
        children = node.values() if type(node) is dict else node
        if type(node) is dict:
            n += len(node)
        stack.extend(c for c in children if type(c) is dict or type(c) is list)
    return n


def _duplicate_detail(raw: bytes) -> str:
    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(items)
        if not found and len(obj) < len(items):
            seen: set[str] = set()
            for key, _ in items:
                if key in seen:
                    found.append(key)
                    break
                seen.add(key)
        return obj

    with contextlib.suppress(ValueError, RecursionError):  # orjson read it: no ValueError
        json.loads(raw, object_pairs_hook=pairs)
    return f"duplicate key {found[0]!r:.64} in a JSON object" if found else "duplicate key"


def decode_predictions(
    values: Sequence[bytes | bytearray | memoryview | None],
    *,
    known_models: Callable[[str], bool] | frozenset[str] | set[str] | None = None,
    max_message_bytes: int | None = None,
    keep_request_ids: bool = False,
    window_ms: int | None = None,
    limits: DecodeLimits | None = None,
    max_event_ms: int | None = None,
) -> DecodeResult:
    """Decode raw Kafka values into per-(model, version) columnar batches plus rejects.

    With ``window_ms``, batches are per (model, version, window start in epoch ms) of
    event-time tumbling windows of that size, and each batch's ``window_start_ms`` says
    which.

    ``known_models``: a set of model names, or a predicate on the model name (the hook
    for "unknown model" policy); records of other models are rejected as
    ``unknown_model``. ``None`` accepts every model. Never raises on bad input: every
    record ends up either in exactly one batch row or in ``rejects`` (sorted by position).

    ``limits``: the per-record bounds (default :class:`DecodeLimits`); the older
    ``max_message_bytes`` keyword still works on its own (not with ``limits``).
    ``max_event_ms``: latest allowed event time in epoch ms (the caller's wall clock plus
    the allowed skew); a record whose ``timestamp`` or ``features_as_of`` is later (in ms,
    ``seconds * 1000 > max_event_ms``) is rejected as ``future_timestamp``. None: no bound.
    """
    lim = resolve_limits(limits, max_message_bytes)
    max_bytes, max_features = lim.max_message_bytes, lim.max_features
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    if known_models is None or callable(known_models):
        is_known = known_models
    else:
        is_known = known_models.__contains__
    # per key: (positions, timestamps, objects), appended in input order
    groups: dict[BatchKey, tuple[list[int], list[float], list[dict[str, Any]]]] = {}
    unknown_keys: set[BatchKey] = set()
    rejects: list[Reject] = []
    reject = rejects.append
    str_t, dict_t, bytes_t = str, dict, bytes

    for i, raw in enumerate(values):
        if raw is None:
            reject(Reject(i, MALFORMED_JSON, "empty value (tombstone)"))
            continue
        if len(raw) > max_bytes:
            reject(Reject(i, OVERSIZED, f"{len(raw)} bytes > limit {max_bytes}"))
            continue
        if type(raw) is not bytes_t:
            raw = bytes(raw)
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
            features = obj["features"]
            pred = obj["prediction"]
            if (
                type(model) is not str_t
                or type(version) is not str_t
                or type(obj["request_id"]) is not str_t
                or type(features) is not dict_t
                or not model
            ):
                raise KeyError
        except KeyError:
            problem = (
                _duplicate_key(raw, obj, _shallow_keys(obj))
                or _record_error(obj, max_event_ms)
                or (WRONG_TYPE, "invalid envelope")
            )
            reject(Reject(i, *problem))
            continue
        n_keys = len(obj) + len(features)
        if type(pred) is dict_t:
            n_keys += len(pred)
        segment = obj.get("segment")
        if type(segment) is dict_t:
            n_keys += len(segment)
        colons = raw.count(b":")  # not above n_keys: no duplicate (the module docstring)
        if colons > n_keys and type(ts) is str_t and b"\\" not in raw:
            colons -= ts.count(":")  # the usual case: the colons of an RFC 3339 timestamp
        if colons > n_keys:
            duplicate = _duplicate_key(raw, obj, n_keys)
            if duplicate is not None:
                reject(Reject(i, *duplicate))
                continue
        if len(features) > max_features:
            reject(Reject(i, TOO_MANY_FEATURES, f"{len(features)} features > limit {max_features}"))
            continue
        try:
            t = parse_timestamp(ts)
        except ValueError as exc:
            reject(Reject(i, BAD_TIMESTAMP, str(exc)))
            continue
        if max_event_ms is not None and t * 1000 > max_event_ms:
            reject(Reject(i, FUTURE_TIMESTAMP, f"timestamp: {_ahead(t, max_event_ms)}"))
            continue
        key: BatchKey = (
            (model, version)
            if window_ms is None
            else (model, version, window_start_ms(t * 1000, window_ms))
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

    ctx = _Context(keep_request_ids, max_event_ms, lim.max_category_bytes, rejects)
    batches: dict[BatchKey, PredictionBatch] = {}
    n_rejects = len(rejects)
    for key, (idx, ts_list, objs) in groups.items():
        batch = _finalize(key, idx, ts_list, objs, ctx)
        if batch is not None:
            batches[key] = batch
    if len(rejects) > n_rejects:
        rejects.sort(key=_position)
    return DecodeResult(
        batches, rejects, truncated_values=ctx.truncated, future_features_as_of=ctx.future_as_of
    )


def _position(r: Reject) -> int:
    return r.position


def _finalize(
    key: BatchKey,
    idx: list[int],
    ts: list[float],
    objs: list[dict[str, Any]],
    ctx: _Context,
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
        label_types = set(map(type, labels))
        ok = label_types <= _OPT_LABEL and set(map(type, scores)) <= SCORE_TYPES
        if ok and NoneType in label_types:  # a score alone is a prediction; nothing is not
            ok = all(s is not None for s, lb in zip(scores, labels, strict=True) if lb is None)
    elif ptypes <= _PREDICTION:
        labels, scores = [], []
        for p in preds:
            tp = type(p)
            if tp is dict:
                label, score = p.get("label"), p.get("score")
                ok = ok and (type(label) in LABEL_TYPES or (label is None and score is not None))
                labels.append(label)
                scores.append(score)
            elif tp is float or tp is int:
                labels.append(None)
                scores.append(p)
            else:
                labels.append(p)
                scores.append(None)
        ok = ok and set(map(type, labels)) <= _OPT_LABEL and set(map(type, scores)) <= SCORE_TYPES
    else:
        ok = False
    latency = [o.get("latency_ms") for o in objs]
    fallback = [o.get("fallback") for o in objs]
    error = [o.get("error") for o in objs]
    segments = [o.get("segment") for o in objs]
    asof_raw = [o.get("features_as_of") for o in objs]
    ok = (
        ok
        and set(map(type, latency)) <= _LATENCY
        and set(map(type, fallback)) <= _FALLBACK
        and set(map(type, error)) <= _ERROR
    )
    seg_types = set(map(type, segments))
    if ok and seg_types != _NONE_SET:
        ok = seg_types <= _SEGMENT and all(
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
            else:
                if ctx.max_event_ms is not None:
                    ahead = asof * 1000 > ctx.max_event_ms  # NaN (absent) compares False
                    if ahead.any():
                        asof[ahead] = np.nan  # invalid for this field only
                        ctx.future_as_of += int(ahead.sum())
    if not ok:
        return _refinalize(key, idx, ts, objs, ctx)
    assert asof is not None

    feats = [o["features"] for o in objs]
    first = feats[0].keys()
    sparse: dict[str, tuple[np.ndarray, list[Any]]] = {}
    if all(f.keys() == first for f in feats):  # the common case: one feature set
        features = {name: [f[name] for f in feats] for name in first}
        missing = dict.fromkeys(first, 0)
        missing_rows = {}
    else:
        presence = Counter(chain.from_iterable(feats))  # first-seen order, linear in keys
        dense_from = max(1, math.ceil(SPARSE_SHARE * n))
        names = [name for name, k in presence.items() if k >= dense_from]
        features = {name: [f.get(name) for f in feats] for name in names}
        missing_rows = {
            name: np.array([j for j, f in enumerate(feats) if name not in f], dtype=np.int64)
            for name in names
            if presence[name] < n
        }
        missing = {name: n - presence[name] for name in names}
        if len(names) < len(presence):
            sparse = _sparse_features(feats, {x for x in presence if presence[x] < dense_from})
    cap = ctx.max_category_bytes
    ctx.truncated += sum(_cap_strings(col, cap) for col in features.values())
    ctx.truncated += sum(_cap_strings(values, cap) for _rows, values in sparse.values())
    ctx.truncated += _cap_strings(labels, cap)

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
        request_ids=[o["request_id"] for o in objs] if ctx.keep_request_ids else None,
        sparse=sparse,
    )


def _sparse_features(
    feats: list[dict[str, Any]], names: set[str]
) -> dict[str, tuple[np.ndarray, list[Any]]]:
    """(rows, values) of each of ``names`` in one pass over the records' keys."""
    rows: dict[str, list[int]] = {}
    values: dict[str, list[Any]] = {}
    for j, f in enumerate(feats):
        for name, value in f.items():
            if name in names:
                rows.setdefault(name, []).append(j)
                values.setdefault(name, []).append(value)
    return {name: (np.array(rows[name], dtype=np.int64), values[name]) for name in rows}


def _cap_strings(col: list[Any], max_bytes: int) -> int:
    """Replace the strings of ``col`` longer than ``max_bytes`` UTF-8 bytes by
    :func:`cap_category` (in place); how many were."""
    types = set(map(type, col))
    if str not in types:
        return 0
    strings = col if len(types) == 1 else [v for v in col if type(v) is str]
    short = max_bytes // 4  # a character is at most 4 UTF-8 bytes
    if max(map(len, strings)) <= short:
        return 0
    count = 0
    for j, v in enumerate(col):
        if type(v) is str and len(v) > short:
            capped = cap_category(v, max_bytes)
            if capped is not v:
                col[j] = capped
                count += 1
    return count


def _refinalize(
    key: BatchKey,
    idx: list[int],
    ts: list[float],
    objs: list[dict[str, Any]],
    ctx: _Context,
) -> PredictionBatch | None:
    """Slow path: reject the records that break the envelope, finalize the rest."""
    keep: list[int] = []
    rejects = ctx.rejects
    for j, obj in enumerate(objs):
        problem = _record_error(obj, ctx.max_event_ms)
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
        ctx,
    )
