"""Compiling a ``[mapping]`` table into a :class:`~streamproc.contracts.mapping.RecordMapping`.

The table's keys and sources are described in :mod:`streamproc.contracts.mapping` and in
``docs/monitor.example.toml``; :data:`IDENTITY` is the default table (every envelope field
from its own name), which the decoders serve without any mapping at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from streamproc.contracts.mapping import (
    OPTIONAL_FIELDS,
    REQUIRED_FIELDS,
    Header,
    KafkaKey,
    KafkaTimestamp,
    Pointer,
    PredictionSpec,
    RecordMapping,
    Source,
    parse_pointer,
    parse_source,
)

__all__ = ["IDENTITY", "compile_mapping", "is_identity"]

_PREDICTION_KEYS: Final = frozenset(
    {"score", "label", "probabilities", "classes", "class_score_prefix"}
)
_KEYS: Final = frozenset(
    {*REQUIRED_FIELDS, *OPTIONAL_FIELDS, "features", "features_except", "prediction", "segment"}
)


IDENTITY: Final[Mapping[str, Any]] = {
    **{name: f"/{name}" for name in (*REQUIRED_FIELDS, *OPTIONAL_FIELDS)},
    "features": "/features",
    "features_except": [],
    "prediction": "/prediction",
    "segment": "/segment",
}
"""The default ``[mapping]``: every envelope field from its own name."""


def is_identity(table: Mapping[str, Any]) -> bool:
    """Whether ``table`` (the ``[mapping]`` keys given) maps the envelope to itself."""
    return all(IDENTITY[k] == v for k, v in table.items() if k in IDENTITY)


def compile_mapping(table: Mapping[str, Any]) -> RecordMapping:
    """A :class:`RecordMapping` from a ``[mapping]`` table (absent keys: :data:`IDENTITY`);
    ValueError naming the key when it is unusable."""
    unknown = set(table) - _KEYS
    if unknown:
        raise ValueError(f"unknown key(s) {sorted(unknown)}; known: {sorted(_KEYS)}")
    full = {**IDENTITY, **table}
    fields = tuple(
        (name, parse_source(full[name], name)) for name in (*REQUIRED_FIELDS, *OPTIONAL_FIELDS)
    )
    prediction = _compile_prediction(full["prediction"])
    segment = _compile_named(full["segment"], "segment")
    except_ = full["features_except"]
    if not isinstance(except_, list) or not all(isinstance(x, str) for x in except_):
        raise ValueError("features_except: expected a list of top-level field names")
    raw_features = full["features"]
    features: Source | tuple[tuple[str, Source], ...] | frozenset[str]
    if raw_features == "*":
        used = [src for _, src in fields]
        used += _prediction_sources(prediction)
        used += [s for _, s in segment] if isinstance(segment, tuple) else [segment]
        tops = {s.tokens[0] for s in used if type(s) is Pointer and s.tokens}
        features = frozenset({*tops, *(x.removeprefix("/") for x in except_)})
    elif isinstance(raw_features, list):
        pairs = []
        for item in raw_features:
            if not isinstance(item, str) or not item:
                raise ValueError("features: list items are field names or JSON Pointers")
            src = parse_pointer(item) if item.startswith("/") else Pointer(item, (item,))
            pairs.append((".".join(src.tokens), src))
        features = _unique(pairs)
    elif except_:
        raise ValueError('features_except needs features = "*"')
    else:
        features = _compile_named(raw_features, "features")
    uses = [src for _, src in fields]
    uses += _prediction_sources(prediction)
    for part in (features, segment):
        if isinstance(part, tuple):
            uses += [s for _, s in part]
        elif not isinstance(part, frozenset):
            uses.append(part)
    return RecordMapping(
        fields=fields,
        features=features,
        prediction=prediction,
        segment=segment,
        uses_key=any(type(s) is KafkaKey for s in uses),
        uses_timestamp=any(type(s) is KafkaTimestamp for s in uses),
        uses_headers=any(type(s) is Header for s in uses),
    )


def _compile_named(value: object, where: str) -> Source | tuple[tuple[str, Source], ...]:
    """A source of an object, or a table name → source."""
    if isinstance(value, Mapping) and set(value) != {"const"}:
        return _unique([(str(k), parse_source(v, f"{where}.{k}")) for k, v in value.items()])
    return parse_source(value, where)


def _unique(pairs: Sequence[tuple[str, Source]]) -> tuple[tuple[str, Source], ...]:
    names = [name for name, _ in pairs]
    if len(set(names)) < len(names):
        raise ValueError(f"two sources for one name in {names}")
    return tuple(pairs)


def _compile_prediction(value: object) -> Source | PredictionSpec:
    if not isinstance(value, Mapping) or set(value) == {"const"}:
        return parse_source(value, "prediction")
    unknown = set(value) - _PREDICTION_KEYS
    if unknown:
        raise ValueError(f"prediction: unknown key(s) {sorted(unknown)}")

    def src(key: str) -> Source | None:
        return parse_source(value[key], f"prediction.{key}") if key in value else None

    classes = value.get("classes", [])
    prefix = value.get("class_score_prefix", "")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ValueError("prediction.classes: expected a list of class names")
    if not isinstance(prefix, str):
        raise ValueError("prediction.class_score_prefix: expected a string")
    spec = PredictionSpec(
        score=src("score"),
        label=src("label"),
        probabilities=src("probabilities"),
        classes=tuple(classes),
        class_score_prefix=prefix,
    )
    if spec.probabilities is None and spec.score is None and spec.label is None:
        raise ValueError("prediction: give score, label (or both) or probabilities")
    if spec.probabilities is not None and (spec.score or spec.label):
        raise ValueError("prediction: probabilities give the label and score; not both")
    if (classes or prefix) and spec.probabilities is None:
        raise ValueError("prediction: classes and class_score_prefix go with probabilities")
    return spec


def _prediction_sources(pred: Source | PredictionSpec) -> list[Source]:
    if isinstance(pred, PredictionSpec):
        return [s for s in (pred.score, pred.label, pred.probabilities) if s is not None]
    return [pred]
