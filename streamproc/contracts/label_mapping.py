"""Label mappings: records of any JSON shape on the labels topic → label events.

The ``[labels_mapping]`` section of the config (``docs/monitor.example.toml``) says where
each field of the label event (``schemas/label_event.schema.json``: ``model``,
``request_id``, ``timestamp``, ``label``, and the stateless mode's optional
``prediction``) comes from, with the sources of ``[mapping]``
(:mod:`streamproc.contracts.mapping`): a JSON Pointer, a constant, ``$key``,
``$timestamp`` or ``$header:NAME``. :func:`compile_label_mapping` compiles it into the
same :class:`~streamproc.contracts.mapping.RecordMapping` that maps prediction records
(no features, no prediction, the label event's required fields), and
:func:`decode_mapped_labels` runs it ahead of
:func:`~streamproc.contracts.label.decode_labels` through
:func:`~streamproc.contracts.mapped_decode.map_records`: every label-event rule (types,
timestamps, limits, known models, reject reasons) holds for mapped records.

``label`` is a source, or a label **derived from a business event**::

    label = { from = "/type", map = { chargeback = 1, refund_fraud = 1, settled = 0 } }

The value at ``from`` (a string; a number or boolean by its JSON text, ``"3"``,
``"true"``) selects the label in ``map``. A value not in ``map`` takes ``default`` when
one is given; without one the record is **not a label event**: it is neither a label nor
an error (a business-events topic carries mostly events that judge nothing, such as
``shipped``), so it is counted in ``streamproc_non_label_events_total``, committed with
the batch, and never dead-lettered (:attr:`LabelDecodeResult.not_labels`, reason
:data:`~streamproc.contracts.mapping.NOT_A_LABEL`). A record where ``from`` is missing
(or null) is a ``missing_field`` reject like any required field, so every record is
counted once (a label, a non-label event) or dead-lettered once with a reason.

The identity (:data:`LABEL_IDENTITY`) is the default; it is served without any mapping.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from streamproc.contracts.batch import Reject
from streamproc.contracts.label import LabelDecodeResult, decode_labels
from streamproc.contracts.limits import DecodeLimits
from streamproc.contracts.mapped_decode import map_records
from streamproc.contracts.mapping import (
    NOT_A_LABEL,
    Header,
    KafkaKey,
    KafkaTimestamp,
    Lookup,
    RecordMapping,
    Source,
    parse_source,
)

__all__ = [
    "LABEL_FIELDS",
    "LABEL_IDENTITY",
    "LABEL_REQUIRED",
    "NOT_A_LABEL",
    "compile_label_mapping",
    "decode_mapped_labels",
    "is_label_identity",
]

LABEL_REQUIRED: Final = ("model", "request_id", "timestamp", "label")
LABEL_FIELDS: Final = (*LABEL_REQUIRED, "prediction")
LABEL_IDENTITY: Final[Mapping[str, Any]] = {name: f"/{name}" for name in LABEL_FIELDS}
"""The default ``[labels_mapping]``: every label-event field from its own name."""
_LOOKUP_KEYS: Final = frozenset({"from", "map", "default"})
_LABEL_TYPES: Final = (str, int, float, bool)


def is_label_identity(table: Mapping[str, Any]) -> bool:
    """Whether ``table`` (the ``[labels_mapping]`` keys given) maps label events to themselves."""
    return all(LABEL_IDENTITY.get(k) == v for k, v in table.items())


def compile_label_mapping(table: Mapping[str, Any]) -> RecordMapping:
    """A :class:`RecordMapping` building label events from a ``[labels_mapping]`` table
    (absent keys: :data:`LABEL_IDENTITY`); ValueError naming the key when it is unusable."""
    unknown = set(table) - set(LABEL_FIELDS)
    if unknown:
        raise ValueError(f"unknown key(s) {sorted(unknown)}; known: {sorted(LABEL_FIELDS)}")
    full = {**LABEL_IDENTITY, **table}
    fields: list[tuple[str, Source]] = []
    for name in LABEL_FIELDS:
        value = full[name]
        if name == "label" and isinstance(value, Mapping) and set(value) != {"const"}:
            fields.append((name, _lookup(value)))
        else:
            fields.append((name, parse_source(value, name)))
    used = [src.source if type(src) is Lookup else src for _, src in fields]
    return RecordMapping(
        fields=tuple(fields),
        features=None,
        prediction=None,
        segment=(),
        uses_key=any(type(s) is KafkaKey for s in used),
        uses_timestamp=any(type(s) is KafkaTimestamp for s in used),
        uses_headers=any(type(s) is Header for s in used),
        required=LABEL_REQUIRED,
    )


def _lookup(value: Mapping[str, Any]) -> Lookup:
    """``label = { from = <source>, map = { value = label, ... }, default? = label }``."""
    unknown = set(value) - _LOOKUP_KEYS
    if unknown or "from" not in value or "map" not in value:
        raise ValueError(
            "label: a derived label is { from = <source>, map = { <event value> = <label>, "
            f"... }}, default = <label> }} (default optional); got keys {sorted(value)}"
        )
    source = parse_source(value["from"], "label.from")
    if isinstance(source, Lookup):  # pragma: no cover - parse_source never builds one
        raise ValueError("label.from: expected a source")
    table = value["map"]
    if not isinstance(table, Mapping) or not table:
        raise ValueError("label.map: expected a non-empty table of event value = label")
    for key, label in table.items():
        if not isinstance(label, _LABEL_TYPES):
            raise ValueError(f"label.map.{key}: a label is a string, number or boolean")
    default = value.get("default")
    if default is not None and not isinstance(default, _LABEL_TYPES):
        raise ValueError("label.default: a label is a string, number or boolean")
    return Lookup(source, {str(k): v for k, v in table.items()}, default)


def decode_mapped_labels(
    mapping: RecordMapping,
    values: Sequence[bytes | bytearray | memoryview | None],
    *,
    keys: Sequence[bytes | str | None] | None = None,
    timestamps_ms: Sequence[int | None] | None = None,
    headers: Sequence[Any] | None = None,
    known_models: Callable[[str], bool] | frozenset[str] | set[str] | None = None,
    limits: DecodeLimits | None = None,
    max_event_ms: int | None = None,
) -> LabelDecodeResult:
    """:func:`~streamproc.contracts.label.decode_labels` of records mapped by ``mapping``,
    positions and rejects back at their input positions; the mapping's ``not_a_label``
    records in ``not_labels``, its other rejects in ``rejects``. Never raises on bad input.

    ``keys``, ``timestamps_ms`` and ``headers`` are parallel to ``values``, as
    :func:`~streamproc.contracts.mapped_decode.map_records` takes them."""
    mapped = map_records(
        mapping, values, keys=keys, timestamps_ms=timestamps_ms, headers=headers, limits=limits
    )
    result = decode_labels(
        mapped.values, known_models=known_models, limits=limits, max_event_ms=max_event_ms
    )
    pos = mapped.positions
    batch = result.batch
    batch.positions = pos[batch.positions]
    rejects = [Reject(int(pos[r.position]), r.reason, r.detail) for r in result.rejects]
    not_labels: list[Reject] = []
    for r in mapped.rejects:
        (not_labels if r.reason == NOT_A_LABEL else rejects).append(r)
    rejects.sort(key=_position)
    result.rejects = rejects
    result.not_labels = not_labels
    return result


def _position(r: Reject) -> int:
    return r.position
