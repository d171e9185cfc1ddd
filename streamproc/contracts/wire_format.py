"""The Confluent wire format, without a registry: framing, schema fields, JSON values.

A record in the Confluent wire format is a magic byte ``0``, the schema id (4 bytes, big
endian), then the payload: Avro binary, Protobuf (first the message indexes: a zig-zag
varint count, then that many zig-zag varint indexes; a count of 0 means ``[0]``), or JSON
text. :mod:`streamproc.contracts.registry` fetches the writer schemas and decodes; this
module is the part that needs neither a registry nor a serialization library:

* :func:`schema_id_of`: the schema id of a value, or why it is not in the wire format;
* :func:`message_indexes`: the Protobuf message indexes after the schema id;
* :func:`schema_fields`: the top-level field names of an Avro or JSON Schema schema text,
  and :class:`SchemaChange`, what changed when a topic's records use a new schema;
* :func:`json_default`: the ``default=`` of ``orjson.dumps`` for the decoded values JSON
  has no type for (bytes, decimals, sets).

Dead-letter reasons of records in the wire format (besides the envelope's):
:data:`NOT_WIRE_FORMAT`, :data:`SCHEMA_UNKNOWN`, :data:`UNDECODABLE`.
"""

from __future__ import annotations

import base64
import decimal
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "MAGIC_BYTE",
    "NOT_WIRE_FORMAT",
    "SCHEMA_UNKNOWN",
    "UNDECODABLE",
    "SchemaChange",
    "json_default",
    "message_indexes",
    "schema_fields",
    "schema_id_of",
]

MAGIC_BYTE: Final = 0
HEADER_BYTES: Final = 5
"""The magic byte and the 4-byte schema id."""

NOT_WIRE_FORMAT: Final = "not_wire_format"
"""No magic byte 0 and schema id (plain JSON on a registry topic, a tombstone, 1-4 bytes)."""
SCHEMA_UNKNOWN: Final = "schema_unknown"
"""The registry answered that it has no schema of this id (HTTP 404 and other refusals
that no retry cures)."""
UNDECODABLE: Final = "undecodable"
"""The payload does not decode with its writer schema (truncated, corrupt, another
format's bytes, a message index the schema lacks), or decodes to something other than an
object (an Avro string, a JSON array)."""


def schema_id_of(value: bytes | bytearray | memoryview | None) -> int | tuple[str, str]:
    """The schema id of a wire-format value, or (:data:`NOT_WIRE_FORMAT`, detail)."""
    if value is None:
        return NOT_WIRE_FORMAT, "empty value (tombstone)"
    if len(value) < HEADER_BYTES:
        return NOT_WIRE_FORMAT, f"{len(value)} bytes: shorter than the magic byte and schema id"
    if value[0] != MAGIC_BYTE:
        return NOT_WIRE_FORMAT, f"first byte {value[0]:#04x}, not the magic byte 0x00"
    return int.from_bytes(value[1:HEADER_BYTES], "big")


def _zigzag_varint(data: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """A zig-zag varint at ``pos``: (value, next position); ValueError when cut short."""
    shift = result = 0
    while True:
        if pos >= len(data):
            raise ValueError("varint cut short")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def message_indexes(value: bytes | bytearray | memoryview) -> tuple[list[int], int]:
    """The Protobuf message indexes after the schema id and where the message starts;
    ValueError when they are not there."""
    count, pos = _zigzag_varint(value, HEADER_BYTES)
    if count == 0:
        return [0], pos
    if count < 0 or count > 100:
        raise ValueError(f"message index count {count}")
    out = []
    for _ in range(count):
        index, pos = _zigzag_varint(value, pos)
        out.append(index)
    return out, pos


def schema_fields(schema_type: str, schema_str: str) -> frozenset[str] | None:
    """The top-level field names of an Avro record schema or a JSON Schema object schema
    (``schema_type`` as the registry says it: ``AVRO``, ``JSON``); None when the text
    names none (not a record, unparsable)."""
    try:
        doc = json.loads(schema_str)
    except ValueError:
        return None
    if schema_type.upper() == "AVRO":
        if isinstance(doc, dict) and doc.get("type") == "record":
            return frozenset(f["name"] for f in doc.get("fields", ()) if isinstance(f, dict))
        return None
    if isinstance(doc, dict) and isinstance(doc.get("properties"), dict):
        return frozenset(doc["properties"])
    return None


@dataclass(frozen=True, slots=True)
class SchemaChange:
    """A topic's records began to use a schema id the topic had not used before."""

    topic: str
    schema_id: int
    previous_id: int | None
    """The id of the records before it; None for the first schema seen."""
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    subject_versions: tuple[tuple[str, int], ...] = ()
    """(subject, version) pairs of the new id, as the registry lists them (may be empty)."""

    @classmethod
    def between(
        cls,
        topic: str,
        schema_id: int,
        previous_id: int | None,
        old: Iterable[str] | None,
        new: Iterable[str] | None,
        subject_versions: tuple[tuple[str, int], ...] = (),
    ) -> SchemaChange:
        if old is None or new is None:
            return cls(topic, schema_id, previous_id, subject_versions=subject_versions)
        before, after = set(old), set(new)
        return cls(
            topic,
            schema_id,
            previous_id,
            tuple(sorted(after - before)),
            tuple(sorted(before - after)),
            subject_versions,
        )

    def describe(self) -> str:
        """One log line."""
        versions = ", ".join(f"{s} v{v}" for s, v in self.subject_versions)
        head = f"topic {self.topic}: records now use schema id {self.schema_id}"
        head += f" ({versions})" if versions else ""
        if self.previous_id is None:
            return head
        parts = [f"was {self.previous_id}"]
        if self.added:
            parts.append(f"fields added {list(self.added)}")
        if self.removed:
            parts.append(
                f"fields removed {list(self.removed)} (their features now count as missing)"
            )
        return f"{head}; " + "; ".join(parts)


def json_default(value: Any) -> Any:
    """``orjson.dumps(default=...)`` for decoded values JSON has no type for: bytes as
    base64 text, decimals as floats, sets as lists; TypeError for anything else."""
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} has no JSON form")
