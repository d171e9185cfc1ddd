"""The records that carry predictions and labels to the join, keyed by request id.

Predictions and labels need not be co-partitioned (a labels topic is often keyed by a
user or an order, with another partition count), so the worker **always repartitions**,
as Kafka Streams does: the ingest stage writes one compact record per accepted
prediction that has a request id, and the labels stage one per label event without an
embedded prediction, to two internal topics with the same partition count, both keyed
by :func:`join_key` — so a prediction and its label meet on the same partition number,
which one join task owns (:mod:`streamproc.monitor.join_stage`). Both writes are in the
writing stage's Kafka transaction, so each record reaches the join exactly once.

Values are JSON arrays (orjson), in a fixed field order:

* prediction: ``[model, request_id, event_ms, window_start_ms, model_version,
  predicted_label, score, segment]`` (score ``null`` when NaN);
* label: ``[model, request_id, label_ms, label]``.

:func:`decode_predictions` / :func:`decode_labels` never raise: a record that is not
such an array (a foreign writer) is returned in ``bad`` by position.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from streamproc.contracts.batch import PredictionBatch
from streamproc.labels.join import PredictionRows
from streamproc.labels.store import record_id


def join_key(model: str, request_id: str) -> bytes:
    """The Kafka key of both repartition topics (the store's id of the pair): equal keys
    hash to the same partition under the default partitioner (murmur2)."""
    return record_id(model, request_id)


def encode_predictions(batch: PredictionBatch) -> list[tuple[bytes, bytes]]:
    """(key, value) per row of ``batch`` that has a request id (decoded with
    ``keep_request_ids=True`` and ``window_ms``); rows without one cannot be joined."""
    ids = batch.request_ids
    if ids is None:
        raise ValueError("decode predictions with keep_request_ids=True for the join")
    model, version, start = batch.model, batch.model_version, batch.window_start_ms
    event_ms = (np.asarray(batch.timestamps) * 1000).astype(np.int64).tolist()
    scores = np.asarray(batch.prediction_score, dtype=np.float64).tolist()
    segments = batch.segments
    out: list[tuple[bytes, bytes]] = []
    for i, request_id in enumerate(ids):
        if not request_id:
            continue
        score = scores[i]
        value = [
            model,
            request_id,
            event_ms[i],
            start,
            version,
            batch.prediction_label[i],
            None if math.isnan(score) else score,
            segments[i] if segments else None,
        ]
        out.append((join_key(model, request_id), orjson.dumps(value)))
    return out


def encode_label(model: str, request_id: str, label_ms: int, label: Any) -> tuple[bytes, bytes]:
    """(key, value) of one label for the join."""
    return join_key(model, request_id), orjson.dumps([model, request_id, int(label_ms), label])


@dataclass
class DecodedLabels:
    models: list[str] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)
    label_ms: list[int] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)
    bad: list[int] = field(default_factory=list)
    """Positions of values that are not label records."""


@dataclass
class DecodedPredictions:
    rows: PredictionRows
    bad: list[int] = field(default_factory=list)


def decode_predictions(values: Sequence[bytes | None]) -> DecodedPredictions:
    """The prediction records of ``values`` as :class:`PredictionRows` (input order)."""
    cols: list[list[Any]] = [[] for _ in range(8)]
    bad: list[int] = []
    for pos, raw in enumerate(values):
        try:
            v = orjson.loads(raw or b"")
            model, rid, event_ms, start, version, predicted, score, segment = v
            row = (
                str(model),
                str(rid),
                int(event_ms),
                int(start),
                str(version),
                predicted,
                float("nan") if score is None else float(score),
                segment if isinstance(segment, dict) else None,
            )
        except (orjson.JSONDecodeError, TypeError, ValueError):
            bad.append(pos)
            continue
        for col, x in zip(cols, row, strict=True):
            col.append(x)
    models, rids, event_ms, starts, versions, predicted, scores, segments = cols
    rows = PredictionRows(models, rids, event_ms, starts, versions, predicted, scores, segments)
    return DecodedPredictions(rows, bad)


def decode_labels(values: Sequence[bytes | None]) -> DecodedLabels:
    """The label records of ``values`` (input order)."""
    out = DecodedLabels()
    for pos, raw in enumerate(values):
        try:
            model, rid, label_ms, label = orjson.loads(raw or b"")
            row = (str(model), str(rid), int(label_ms), label)
        except (orjson.JSONDecodeError, TypeError, ValueError):
            out.bad.append(pos)
            continue
        out.models.append(row[0])
        out.request_ids.append(row[1])
        out.label_ms.append(row[2])
        out.labels.append(row[3])
    return out


__all__ = [
    "DecodedLabels",
    "DecodedPredictions",
    "decode_labels",
    "decode_predictions",
    "encode_label",
    "encode_predictions",
    "join_key",
]
