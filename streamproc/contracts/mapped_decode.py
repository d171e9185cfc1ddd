"""Mapped records → envelope records, ahead of the ordinary decoders.

:func:`map_records` parses each raw value once (orjson), applies a
:class:`~streamproc.contracts.mapping.RecordMapping` with the record's Kafka key,
timestamp and headers, and re-encodes the envelope object it builds (orjson, ~1 µs). The
caller then decodes those envelope values exactly as it decodes the native envelope
(:func:`~streamproc.contracts.fast_decode.fast_decode`, else
:func:`~streamproc.contracts.prediction.decode_predictions`) and hands the result to
:meth:`Mapped.restore`, which puts every row and reject back at its input position and
adds the records the mapping itself rejected. So the envelope rules, the limits and the
fast path serve mapped records unchanged, and every input record ends up once: in a batch
row or in ``rejects``.

Rejected here, before any envelope rule: a tombstone or non-JSON value
(``malformed_json``), a value over ``limits.max_message_bytes`` (``oversized``), a JSON
value that is not an object (``not_an_object``), a duplicate key in any object of the
record (``duplicate_key``: the envelope no longer shows it), a required field whose
source is missing (``missing_field``), a header that is not UTF-8 or a bad probability map
(``wrong_type``).

Why not parse mapped JSON with pyarrow directly: the fast path's equivalence with the
orjson decoder rests on the envelope's fixed shape (an explicit schema, a key count from
the quotes of the batch); a mapped record has fields the schema does not name (``"*"``
features, fields nobody maps), pointers of any depth and Kafka metadata, so pyarrow would
need a schema per topic inferred from the data and a new proof of equivalence. The cost
of the extra orjson round trip is measured in ``benchmarks/bench_mapping.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from streamproc.contracts.batch import DecodeResult, Reject
from streamproc.contracts.limits import DecodeLimits, resolve_limits
from streamproc.contracts.mapping import Meta, RecordMapping
from streamproc.contracts.prediction import (
    _STRING_TOKEN,
    _decoded_keys,
    _duplicate_detail,
)

__all__ = ["Mapped", "map_records", "timestamps_ms"]

_NO_HEADERS: dict[str, bytes | None] = {}


@dataclass(slots=True)
class Mapped:
    """Envelope values of the records that mapped, and the records that did not."""

    values: list[bytes]
    """Envelope JSON, one per mapped record, in input order."""
    positions: np.ndarray
    """int64 input position of each of ``values``."""
    rejects: list[Reject] = field(default_factory=list)
    """Records the mapping rejected (input positions)."""

    def restore(self, result: DecodeResult) -> DecodeResult:
        """``result`` (of decoding ``values``) with input positions, plus the mapping's
        rejects; rejects sorted by position."""
        pos = self.positions
        for batch in result.batches.values():
            batch.indices = pos[batch.indices]
        rejects = [Reject(int(pos[r.position]), r.reason, r.detail) for r in result.rejects]
        rejects += self.rejects
        rejects.sort(key=_position)
        result.rejects = rejects
        return result


def _position(r: Reject) -> int:
    return r.position


def map_records(
    mapping: RecordMapping,
    values: Sequence[bytes | bytearray | memoryview | None],
    *,
    keys: Sequence[bytes | str | None] | None = None,
    timestamps_ms: Sequence[int | None] | None = None,
    headers: Sequence[Any] | None = None,
    limits: DecodeLimits | None = None,
) -> Mapped:
    """Map each of ``values`` to an envelope value (see the module docstring).

    ``keys``, ``timestamps_ms`` (epoch ms, None when the record has none) and ``headers``
    (per record: a list of (name, bytes) pairs, a dict, or None) are parallel to
    ``values``; each is needed only when the mapping uses it. Never raises on bad input.
    """
    max_bytes = resolve_limits(limits, None).max_message_bytes
    loads, dumps = orjson.loads, orjson.dumps
    decode_error, encode_error = orjson.JSONDecodeError, orjson.JSONEncodeError
    out: list[bytes] = []
    where: list[int] = []
    rejects: list[Reject] = []
    reject = rejects.append
    use_key = mapping.uses_key and keys is not None
    use_ts = mapping.uses_timestamp and timestamps_ms is not None
    use_headers = mapping.uses_headers and headers is not None
    apply = mapping.apply
    plain = Meta()
    for i, raw in enumerate(values):
        if raw is None:
            reject(Reject(i, "malformed_json", "empty value (tombstone)"))
            continue
        if len(raw) > max_bytes:
            reject(Reject(i, "oversized", f"{len(raw)} bytes > limit {max_bytes}"))
            continue
        if type(raw) is not bytes:
            raw = bytes(raw)
        try:
            obj = loads(raw)
        except decode_error as exc:
            reject(Reject(i, "malformed_json", str(exc)[:200]))
            continue
        if type(obj) is not dict:
            reject(Reject(i, "not_an_object", f"JSON {type(obj).__name__}, expected an object"))
            continue
        if _has_duplicate(raw, obj):
            reject(Reject(i, "duplicate_key", _duplicate_detail(raw)))
            continue
        meta = plain
        if use_key or use_ts or use_headers:
            key = keys[i] if use_key else None  # type: ignore[index]
            meta = Meta(
                key.encode() if type(key) is str else key,  # type: ignore[arg-type]
                timestamps_ms[i] if use_ts else None,  # type: ignore[index]
                _header_dict(headers[i]) if use_headers else _NO_HEADERS,  # type: ignore[index]
            )
        env = apply(obj, meta)
        if type(env) is tuple:
            reject(Reject(i, *env))
            continue
        try:
            out.append(dumps(env))
        except encode_error as exc:  # pragma: no cover - decoded JSON always re-encodes
            reject(Reject(i, "wrong_type", str(exc)[:200]))
            continue
        where.append(i)
    return Mapped(out, np.array(where, dtype=np.int64), rejects)


def _has_duplicate(raw: bytes, obj: dict[str, Any]) -> bool:
    """Whether some JSON object of ``raw`` repeats a key (exact; cheap when it does not).

    Every key has one colon outside any string, so when the colons of the text, less those
    of its top-level string values, are not above the decoded keys, no key repeats; else
    the keys of the text are counted (see :mod:`streamproc.contracts.prediction`)."""
    bound = raw.count(b":")
    if bound <= len(obj):  # the usual flat record: no key walk at all
        return False
    n = _decoded_keys(obj)
    if bound > n and b"\\" not in raw:
        for value in obj.values():
            if type(value) is str:
                bound -= value.count(":")
    if bound <= n:
        return False
    marks = _STRING_TOKEN.findall(raw)
    return len(marks) - marks.count(b"") > n


def _header_dict(headers: Any) -> dict[str, bytes | None]:
    """Headers by name, the last of a repeated name winning (Kafka's ``lastHeader``)."""
    if not headers:
        return _NO_HEADERS
    items = headers.items() if isinstance(headers, dict) else headers
    out: dict[str, bytes | None] = {}
    for name, value in items:
        out[str(name)] = value.encode() if isinstance(value, str) else value
    return out


def timestamps_ms(pairs: Iterable[tuple[int, int]]) -> list[int | None]:
    """Kafka ``(timestamp type, epoch ms)`` pairs (``Message.timestamp()``) → epoch ms, or
    None where the record has none (type 0, ``TIMESTAMP_NOT_AVAILABLE``)."""
    return [ms if kind != 0 else None for kind, ms in pairs]
