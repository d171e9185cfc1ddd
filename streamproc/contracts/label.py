"""Decoding label events into columns, with rejects that carry a reason.

Contract: ``schemas/label_event.schema.json`` —
``{"model", "request_id", "timestamp", "label"}``, extra fields allowed. The rules are
the prediction log's (:mod:`streamproc.contracts.prediction`): the same stable reason
codes, the timestamp rules of :func:`~streamproc.contracts.envelope.parse_timestamp`
(``timestamp`` is the event time at which the truth became known), ``max_event_ms``
for timestamps ahead of the wall clock, duplicate keys rejected (orjson would keep the
last), ``max_message_bytes`` for oversized values, unknown models by ``known_models``.
A string label longer than ``max_category_bytes`` is capped as a predicted label is
(:func:`~streamproc.contracts.limits.cap_category`), so a long true class still equals
its predicted class.

**Stateless mode.** A label event may carry the prediction it judges in an optional
``prediction`` object: ``{"label"?, "score"?, "model_version"?, "timestamp"?}`` (the
prediction's event time; default: the label's). Such rows need no store: the columns
``prediction_*`` hold them, NaN / None where absent, and ``has_prediction`` says which.

Never raises on bad input: every value ends up either in a row or in ``rejects``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import orjson

from streamproc.contracts.batch import Reject
from streamproc.contracts.envelope import LABEL_TYPES, parse_timestamp
from streamproc.contracts.limits import DEFAULT_LIMITS, DecodeLimits, cap_category
from streamproc.contracts.prediction import (
    BAD_TIMESTAMP,
    DUPLICATE_KEY,
    FUTURE_TIMESTAMP,
    MALFORMED_JSON,
    MISSING_FIELD,
    NOT_AN_OBJECT,
    OVERSIZED,
    UNKNOWN_MODEL,
    WRONG_TYPE,
)

REQUIRED: Final = ("model", "request_id", "timestamp", "label")
_NUMBERS: Final = frozenset({int, float})


@dataclass(slots=True)
class LabelBatch:
    """Accepted label events in input order (all columns of length ``n``)."""

    positions: np.ndarray
    """int64 positions in the decoded input list (for offsets and dead-lettering)."""
    models: list[str]
    request_ids: list[str]
    label_ms: np.ndarray
    """int64 event time of the label, epoch ms."""
    labels: list[str | int | float | bool]
    has_prediction: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    prediction_label: list[Any] = field(default_factory=list)
    prediction_score: np.ndarray = field(default_factory=lambda: np.zeros(0))
    prediction_version: list[str | None] = field(default_factory=list)
    prediction_ms: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def n(self) -> int:
        return len(self.positions)


@dataclass(slots=True)
class LabelDecodeResult:
    batch: LabelBatch
    rejects: list[Reject]
    truncated_values: int = 0
    not_labels: list[Reject] = field(default_factory=list)
    """Records a ``[labels_mapping]`` maps to no label (reason ``not_a_label``: a business
    event whose value is not in ``label.map``); counted, not rejects
    (:func:`~streamproc.contracts.label_mapping.decode_mapped_labels`)."""


def _duplicate(raw: bytes, obj: dict[str, Any]) -> str | None:
    """Detail when some object of ``raw`` repeats a key (exact; cheap when none can)."""
    nested = obj.get("prediction")
    keys = len(obj) + (len(nested) if type(nested) is dict else 0)
    if raw.count(b":") <= keys:  # each key has one colon outside any string
        return None
    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        names = [k for k, _ in items]
        if not found and len(set(names)) < len(names):
            found.append(next(k for i, k in enumerate(names) if k in names[:i]))
        return dict(items)

    try:
        json.loads(raw, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return None
    return f"duplicate key {found[0]!r:.64} in a JSON object" if found else None


_Stateless = tuple[Any, float, str | None, int]
"""(label, score, version, event ms) of a stateless ``prediction``."""


def _prediction(
    pred: Any, label_ms: int, max_event_ms: int | None, cap: int
) -> _Stateless | tuple[str, str]:
    """The stateless ``prediction`` of a label event, or ``(reason, detail)``."""
    if type(pred) is not dict:
        return WRONG_TYPE, "prediction must be an object"
    label = pred.get("label")
    score = pred.get("score")
    version = pred.get("model_version")
    if label is not None and type(label) not in LABEL_TYPES:
        return WRONG_TYPE, "prediction.label must be a string, number or boolean"
    if score is not None and type(score) not in _NUMBERS:
        return WRONG_TYPE, "prediction.score must be a number"
    if version is not None and type(version) is not str:
        return WRONG_TYPE, "prediction.model_version must be a string"
    ts = pred.get("timestamp")
    ms = label_ms
    if ts is not None:
        try:
            ms = int(parse_timestamp(ts) * 1000)
        except ValueError as exc:
            return BAD_TIMESTAMP, f"prediction.timestamp: {exc}"
        if max_event_ms is not None and ms > max_event_ms:
            return FUTURE_TIMESTAMP, "prediction.timestamp after the latest allowed event time"
    if type(label) is str:
        label = cap_category(label, cap)
    return label, np.nan if score is None else float(score), version, ms


def decode_labels(
    values: Sequence[bytes | bytearray | memoryview | None],
    *,
    known_models: Callable[[str], bool] | frozenset[str] | set[str] | None = None,
    limits: DecodeLimits | None = None,
    max_event_ms: int | None = None,
) -> LabelDecodeResult:
    """Decode raw Kafka values of the labels topic (see the module docstring)."""
    lim = limits or DEFAULT_LIMITS
    is_known = (
        known_models
        if known_models is None or callable(known_models)
        else known_models.__contains__
    )
    rejects: list[Reject] = []
    pos: list[int] = []
    models: list[str] = []
    rids: list[str] = []
    times: list[int] = []
    labels: list[Any] = []
    stateless: list[_Stateless | None] = []
    truncated = 0
    for i, raw in enumerate(values):
        if raw is None:
            rejects.append(Reject(i, MALFORMED_JSON, "empty value (tombstone)"))
            continue
        if len(raw) > lim.max_message_bytes:
            rejects.append(
                Reject(i, OVERSIZED, f"{len(raw)} bytes > limit {lim.max_message_bytes}")
            )
            continue
        data = bytes(raw)
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            rejects.append(Reject(i, MALFORMED_JSON, str(exc)[:200]))
            continue
        if type(obj) is not dict:
            rejects.append(
                Reject(i, NOT_AN_OBJECT, f"JSON {type(obj).__name__}, expected an object")
            )
            continue
        dup = _duplicate(data, obj)
        if dup is not None:
            rejects.append(Reject(i, DUPLICATE_KEY, dup))
            continue
        missing = next((name for name in REQUIRED if obj.get(name) is None), None)
        if missing is not None:
            rejects.append(Reject(i, MISSING_FIELD, f"missing required field {missing!r}"))
            continue
        model, rid, label = obj["model"], obj["request_id"], obj["label"]
        if type(model) is not str or not model:
            rejects.append(Reject(i, WRONG_TYPE, "model must be a non-empty string"))
            continue
        if type(rid) is not str:
            rejects.append(Reject(i, WRONG_TYPE, "request_id must be a string"))
            continue
        if type(label) not in LABEL_TYPES:
            kind = type(label).__name__
            rejects.append(
                Reject(i, WRONG_TYPE, f"label must be a string, number or boolean, got {kind}")
            )
            continue
        try:
            ms = int(parse_timestamp(obj["timestamp"]) * 1000)
        except ValueError as exc:
            rejects.append(Reject(i, BAD_TIMESTAMP, str(exc)))
            continue
        if max_event_ms is not None and ms > max_event_ms:
            ahead = ms - max_event_ms
            rejects.append(
                Reject(i, FUTURE_TIMESTAMP, f"timestamp: {ahead} ms after the latest allowed")
            )
            continue
        if is_known is not None and not is_known(model):
            rejects.append(Reject(i, UNKNOWN_MODEL, f"unknown model {model!r:.64}"))
            continue
        extra: _Stateless | None = None
        if obj.get("prediction") is not None:
            got = _prediction(obj["prediction"], ms, max_event_ms, lim.max_category_bytes)
            if len(got) == 2:
                rejects.append(Reject(i, str(got[0]), str(got[1])))
                continue
            extra = got
        if type(label) is str:
            capped = cap_category(label, lim.max_category_bytes)
            truncated += capped is not label
            label = capped
        pos.append(i)
        models.append(model)
        rids.append(rid)
        times.append(ms)
        labels.append(label)
        stateless.append(extra)
    has = np.array([s is not None for s in stateless], dtype=bool)
    batch = LabelBatch(
        positions=np.array(pos, dtype=np.int64),
        models=models,
        request_ids=rids,
        label_ms=np.array(times, dtype=np.int64),
        labels=labels,
        has_prediction=has,
        prediction_label=[None if s is None else s[0] for s in stateless],
        prediction_score=np.array([np.nan if s is None else s[1] for s in stateless]),
        prediction_version=[None if s is None else s[2] for s in stateless],
        prediction_ms=np.array(
            [t if s is None else s[3] for s, t in zip(stateless, times, strict=True)],
            dtype=np.int64,
        ),
    )
    return LabelDecodeResult(batch, rejects, truncated)
