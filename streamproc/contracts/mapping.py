"""Field mappings: prediction records of any JSON shape → the prediction-log envelope.

A mapping says where each envelope field (``schemas/prediction_log.schema.json``) comes
from, in the spirit of Kafka Connect's and Vector's field-path transforms: a small
declarative table, no user code. It is the ``[mapping]`` section of the config
(``docs/monitor.example.toml``), compiled by
:func:`~streamproc.contracts.mapping_config.compile_mapping` into a
:class:`RecordMapping`, whose :meth:`RecordMapping.apply` builds one envelope object from
a decoded record and its Kafka metadata. The decoders then see an ordinary envelope, so
every envelope rule (types, timestamps, limits, reject reasons) holds for mapped records.

A *source* (the value of a field) is one of:

* ``"/a/b"`` — a JSON Pointer (RFC 6901) into the record (``~1`` is ``/``, ``~0`` is
  ``~``; a decimal token indexes an array);
* ``"$key"`` — the Kafka key (UTF-8; invalid bytes as ``\\x..`` escapes);
* ``"$timestamp"`` — the Kafka record timestamp (epoch ms, taken as event time);
* ``"$header:NAME"`` — the last header ``NAME`` (UTF-8; for ``timestamp``,
  ``features_as_of`` and ``latency_ms`` a numeric text is read as a number);
* anything else — a constant (``model = "fraud"``, ``fallback = false``); a string that
  starts with ``/`` or ``$`` is written ``{ const = "..." }``.

``features`` is a source of an object (``"/features"``, the identity), a list of names
(top-level fields) and pointers (named by their tokens joined with ``.``), a table of
name → source, or ``"*"``: every top-level field except those in ``features_except`` and
those whose top-level field another source points into. ``prediction`` is a source (taken
as the envelope's ``prediction``) or a table with ``score``, ``label`` (either or both) or
``probabilities`` (an object class → probability, or an array with optional ``classes``
names): the predicted label is then the top class and the score its probability, and with
``class_score_prefix`` each class's probability is also a numeric feature
``<prefix><class>`` (per-class score drift, when the reference has those features).

Every key left out keeps its identity source, so the default mapping *is* the envelope
(compiling a table: :mod:`streamproc.contracts.mapping_config`).
A required field whose source is missing makes the record a ``missing_field`` reject.

The same :class:`RecordMapping` builds label events (``[labels_mapping]``,
:mod:`streamproc.contracts.label_mapping`): no features, no prediction, its own required
fields, and a :class:`Lookup` source that derives the label from a business event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "MISSING",
    "NOT_A_LABEL",
    "Const",
    "Header",
    "KafkaKey",
    "KafkaTimestamp",
    "Lookup",
    "Pointer",
    "PredictionSpec",
    "RecordMapping",
    "Source",
    "parse_pointer",
    "parse_source",
]

REQUIRED_FIELDS: Final = ("model", "model_version", "request_id", "timestamp")
OPTIONAL_FIELDS: Final = ("latency_ms", "fallback", "error", "features_as_of")
_NUMERIC_HEADER_FIELDS: Final = frozenset({"timestamp", "features_as_of", "latency_ms"})
_NUMBER: Final = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_INDEX: Final = re.compile(r"0|[1-9][0-9]{0,8}")
NOT_A_LABEL: Final = "not_a_label"
"""Why a :class:`Lookup` yields nothing: the event's value is not in its map (no default)."""


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
"""What a source yields when the record (or its metadata) has no such value."""


@dataclass(frozen=True, slots=True)
class Pointer:
    text: str
    tokens: tuple[str, ...]

    def get(self, obj: Any) -> Any:
        node = obj
        for tok in self.tokens:
            if type(node) is dict:
                node = node.get(tok, MISSING)
                if node is MISSING:
                    return MISSING
            elif type(node) is list and _INDEX.fullmatch(tok) and int(tok) < len(node):
                node = node[int(tok)]
            else:
                return MISSING
        return node


@dataclass(frozen=True, slots=True)
class Const:
    value: str | int | float | bool


@dataclass(frozen=True, slots=True)
class KafkaKey:
    pass


@dataclass(frozen=True, slots=True)
class KafkaTimestamp:
    pass


@dataclass(frozen=True, slots=True)
class Header:
    name: str


@dataclass(frozen=True, slots=True)
class Lookup:
    """A value looked up in a table: ``label = {from = "/type", map = {chargeback = 1}}``.

    The source's value (a string; a number or boolean by its JSON text) selects the
    table's value; one not in the table yields ``default``, or without one the
    (:data:`NOT_A_LABEL`, detail) pair; a missing (or null) value is MISSING."""

    source: Pointer | Const | KafkaKey | KafkaTimestamp | Header
    table: Mapping[str, str | int | float | bool]
    default: str | int | float | bool | None = None

    def pick(self, value: Any, name: str) -> Any:
        """The table's value for ``value``, else ``default``, else (NOT_A_LABEL, detail)."""
        tv = type(value)
        if tv is bool:
            key: str | None = "true" if value else "false"
        elif tv is str or tv is int or tv is float:
            key = str(value)
        else:  # an object or an array selects nothing
            key = None
        if key is not None and key in self.table:
            return self.table[key]
        if self.default is not None:
            return self.default
        return NOT_A_LABEL, f"{name}: {_describe(self.source)} is {value!r:.64}, not in its map"


Source = Pointer | Const | KafkaKey | KafkaTimestamp | Header | Lookup


def parse_pointer(text: str) -> Pointer:
    """An RFC 6901 JSON Pointer (``""`` is the whole record); ValueError if malformed."""
    if text and not text.startswith("/"):
        raise ValueError(f"a JSON Pointer starts with '/': {text!r}")
    tokens = []
    for raw in text.split("/")[1:]:
        if re.search(r"~(?![01])", raw):
            raise ValueError(f"bad escape in JSON Pointer {text!r} (use ~0 for ~, ~1 for /)")
        tokens.append(raw.replace("~1", "/").replace("~0", "~"))
    return Pointer(text, tuple(tokens))


def parse_source(value: object, where: str) -> Source:
    """One source (see the module docstring); ValueError naming ``where`` if unusable."""
    if isinstance(value, Mapping):
        if set(value) != {"const"} or not isinstance(value["const"], str | int | float):
            raise ValueError(f"{where}: a table source is {{ const = <value> }}")
        return Const(value["const"])
    if isinstance(value, str):
        if value.startswith("/"):
            return parse_pointer(value)
        if value == "$key":
            return KafkaKey()
        if value == "$timestamp":
            return KafkaTimestamp()
        if value.startswith("$header:") and len(value) > len("$header:"):
            return Header(value[len("$header:") :])
        if value.startswith("$"):
            raise ValueError(
                f"{where}: unknown source {value!r} (known: $key, $timestamp, $header:NAME; "
                'a constant starting with $ is written { const = "..." })'
            )
        return Const(value)
    if isinstance(value, int | float):  # bool is an int
        return Const(value)
    raise ValueError(f"{where}: expected a pointer, $key, $timestamp, $header:NAME or a constant")


@dataclass(frozen=True, slots=True)
class PredictionSpec:
    """The table form of ``prediction``."""

    score: Source | None = None
    label: Source | None = None
    probabilities: Source | None = None
    classes: tuple[str, ...] = ()
    class_score_prefix: str = ""


@dataclass(frozen=True, slots=True)
class Meta:
    """Kafka metadata of one record: key bytes, timestamp (epoch ms), headers by name."""

    key: bytes | None = None
    timestamp_ms: int | None = None
    headers: Mapping[str, bytes | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecordMapping:
    """A compiled ``[mapping]``: :meth:`apply` builds an envelope object per record."""

    fields: tuple[tuple[str, Source], ...]
    features: Source | tuple[tuple[str, Source], ...] | frozenset[str] | None
    """A source of the features object, (name, source) pairs, or the excluded top-level
    names of ``"*"``; None: the built object has no ``features`` (a label event)."""
    prediction: Source | PredictionSpec | None
    """None: the built object has no ``prediction`` (a label event)."""
    segment: Source | tuple[tuple[str, Source], ...]
    uses_key: bool = False
    uses_timestamp: bool = False
    uses_headers: bool = False
    required: tuple[str, ...] = REQUIRED_FIELDS
    """The ``fields`` whose missing source makes the record a ``missing_field`` reject."""

    def apply(self, obj: dict[str, Any], meta: Meta) -> dict[str, Any] | tuple[str, str]:
        """The envelope object for ``obj``, or (reason, detail) when it cannot be built.
        Never raises on any decoded JSON value and any metadata."""
        env: dict[str, Any] = {}
        get = obj.get
        for name, src in self.fields:
            if type(src) is Pointer and len(src.tokens) == 1:  # the usual case, inline
                value = get(src.tokens[0], MISSING)
            else:
                value = _value(src, obj, meta, name)
                if type(value) is tuple:
                    return value
            if value is MISSING:
                if name in self.required:
                    return "missing_field", f"{name}: {_describe(src)} not in the record"
                continue
            env[name] = value
        feats = self.features
        if feats is None:  # a label event: no features, no prediction
            features: Any = None
        elif type(feats) is frozenset:
            features = {k: v for k, v in obj.items() if k not in feats}
        elif type(feats) is tuple:
            features = {}
            for name, src in feats:
                value = _value(src, obj, meta, name)
                if type(value) is tuple:
                    return value
                if value is not MISSING:  # an absent feature is a missing value
                    features[name] = value
        else:
            features = _value(feats, obj, meta, "features")  # type: ignore[arg-type]
            if type(features) is tuple:
                return features
            if features is MISSING:
                return "missing_field", f"features: {_describe(feats)} not in the record"  # type: ignore[arg-type]
        if feats is not None:
            env["features"] = features
        pred = self.prediction
        if pred is None:
            pass
        elif type(pred) is PredictionSpec:
            built = _prediction(pred, obj, meta, features)
            if type(built) is tuple:
                return built
            env["prediction"] = built
        else:
            value = _value(pred, obj, meta, "prediction")  # type: ignore[arg-type]
            if type(value) is tuple:
                return value
            if value is MISSING:
                return "missing_field", f"prediction: {_describe(pred)} not in the record"  # type: ignore[arg-type]
            env["prediction"] = value
        seg = self.segment
        if type(seg) is tuple:
            segment = {}
            for name, src in seg:
                value = _value(src, obj, meta, name)
                if type(value) is tuple:
                    return value
                if value is not MISSING:
                    segment[name] = value
            if segment:
                env["segment"] = segment
        else:
            value = _value(seg, obj, meta, "segment")  # type: ignore[arg-type]
            if type(value) is tuple:
                return value
            if value is not MISSING:
                env["segment"] = value
        return env


def _describe(src: Source) -> str:
    if type(src) is Lookup:
        return _describe(src.source)
    if type(src) is Const:
        return "a constant"
    if type(src) is Pointer:
        return f"pointer {src.text!r:.80}"
    if type(src) is Header:
        return f"header {src.name!r:.80}"
    return "the Kafka key" if type(src) is KafkaKey else "the Kafka timestamp"


def _value(src: Source, obj: dict[str, Any], meta: Meta, name: str) -> Any:
    """The value of ``src``, MISSING, or a (reason, detail) tuple."""
    tp = type(src)
    if tp is Pointer:
        return src.get(obj)  # type: ignore[union-attr]
    if tp is Const:
        return src.value  # type: ignore[union-attr]
    if tp is KafkaKey:
        key = meta.key
        return MISSING if key is None else key.decode("utf-8", "backslashreplace")
    if tp is KafkaTimestamp:
        ts = meta.timestamp_ms
        return MISSING if ts is None else ts / 1000.0
    if tp is Lookup:
        found = _value(src.source, obj, meta, name)  # type: ignore[union-attr]
        if found is MISSING or found is None or type(found) is tuple:
            return MISSING if found is None else found
        return src.pick(found, name)  # type: ignore[union-attr]
    raw = meta.headers.get(src.name, MISSING)  # type: ignore[union-attr]
    if raw is MISSING or raw is None:
        return MISSING
    try:
        text = bytes(raw).decode("utf-8")  # type: ignore[arg-type]
    except UnicodeDecodeError:
        return "wrong_type", f"{name}: header {src.name!r:.80} is not UTF-8"  # type: ignore[union-attr]
    if name in _NUMERIC_HEADER_FIELDS and _NUMBER.fullmatch(text):
        return float(text)
    return text


def _prediction(spec: PredictionSpec, obj: dict[str, Any], meta: Meta, features: Any) -> Any:
    if spec.probabilities is None:
        pred: dict[str, Any] = {}
        for key, src in (("label", spec.label), ("score", spec.score)):
            if src is not None:
                value = _value(src, obj, meta, f"prediction.{key}")
                if type(value) is tuple:
                    return value
                if value is not MISSING:
                    pred[key] = value
        if not pred:
            return "missing_field", "prediction: neither its score nor its label is in the record"
        return pred
    probs = _value(spec.probabilities, obj, meta, "prediction.probabilities")
    if type(probs) is tuple:
        return probs
    if probs is MISSING:
        what = _describe(spec.probabilities)
        return "missing_field", f"prediction.probabilities: {what} not in the record"
    if type(probs) is list:
        if spec.classes and len(spec.classes) != len(probs):
            return "wrong_type", f"{len(probs)} probabilities for {len(spec.classes)} classes"
        names = spec.classes or tuple(map(str, range(len(probs))))
        probs = dict(zip(names, probs, strict=True))
    if type(probs) is not dict or not probs:
        return "wrong_type", "prediction.probabilities must be a non-empty object or array"
    for value in probs.values():
        if type(value) is not float and type(value) is not int:
            return "wrong_type", "prediction.probabilities: every probability must be a number"
    top = max(probs, key=probs.__getitem__)  # the first of equal maxima
    if spec.class_score_prefix and type(features) is dict:
        prefix = spec.class_score_prefix
        for cls, value in probs.items():
            features[f"{prefix}{cls}"] = value
    return {"label": top, "score": probs[top]}
