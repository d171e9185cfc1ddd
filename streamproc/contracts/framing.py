"""Byte layouts of the internal messages: profile deltas and dead-letter headers.

Profile delta value (``schemas/profile_delta.schema.json`` describes the header)::

    +----------------+---------------------+---------------------------+
    | L: uint32 BE   | L bytes UTF-8 JSON  | serialized ModelProfile   |
    +----------------+---------------------+---------------------------+

Dead-letter record: the original key and value, unchanged; the reason travels in Kafka
headers (``schemas/deadletter.schema.json``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import Any, Final

import orjson

_LEN = struct.Struct(">I")
MAX_HEADER_BYTES: Final = 1 << 20
MAX_DETAIL_CHARS: Final = 1024

REASON: Final = "streamproc.reason"
DETAIL: Final = "streamproc.detail"
SOURCE_TOPIC: Final = "streamproc.source.topic"
SOURCE_PARTITION: Final = "streamproc.source.partition"
SOURCE_OFFSET: Final = "streamproc.source.offset"


class FramingError(ValueError):
    """A profile-delta value that is truncated or whose header is not a JSON object."""


def encode_profile_delta(header: Mapping[str, Any], profile: bytes) -> bytes:
    """Frame ``header`` (validated by the caller against ``profile_delta``) and profile."""
    head = orjson.dumps(dict(header))
    if len(head) > MAX_HEADER_BYTES:
        raise FramingError(f"profile delta header too large: {len(head)} bytes")
    return b"".join((_LEN.pack(len(head)), head, profile))


def decode_profile_delta(value: bytes) -> tuple[dict[str, Any], bytes]:
    """Inverse of :func:`encode_profile_delta`: (header, profile bytes)."""
    if len(value) < _LEN.size:
        raise FramingError("profile delta shorter than its length prefix")
    (size,) = _LEN.unpack_from(value)
    end = _LEN.size + size
    if size > MAX_HEADER_BYTES or end > len(value):
        raise FramingError(f"profile delta header length {size} exceeds the message")
    try:
        header = orjson.loads(value[_LEN.size : end])
    except orjson.JSONDecodeError as exc:
        raise FramingError(f"profile delta header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise FramingError("profile delta header is not a JSON object")
    return header, bytes(value[end:])


def deadletter_headers(
    reason: str,
    detail: str,
    topic: str,
    partition: int,
    offset: int,
    original: Iterable[tuple[str, bytes | None]] | None = None,
) -> list[tuple[str, bytes]]:
    """Kafka headers for a dead-lettered record: original headers (minus any stale
    ``streamproc.*`` ones) followed by the reason and source coordinates, UTF-8."""
    ours = {
        REASON: reason,
        DETAIL: detail[:MAX_DETAIL_CHARS],
        SOURCE_TOPIC: topic,
        SOURCE_PARTITION: str(partition),
        SOURCE_OFFSET: str(offset),
    }
    kept = [(k, v or b"") for k, v in (original or ()) if not k.startswith("streamproc.")]
    return kept + [(k, v.encode("utf-8")) for k, v in ours.items()]


def deadletter_header_object(headers: Iterable[tuple[str, bytes | None]]) -> dict[str, str]:
    """Headers as the object ``schemas/deadletter.schema.json`` describes (last wins)."""
    return {k: (v or b"").decode("utf-8", "replace") for k, v in headers}
