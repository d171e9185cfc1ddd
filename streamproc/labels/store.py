"""The pending-prediction store of the label join: typed records over an ordered KV.

Key layout (``id`` = u16 big-endian length of the model name, the model name, the
request id; both UTF-8 and capped at :data:`MAX_ID_BYTES` like a long category, so both
topics map a hostile id to the same bounded key):

    P id                    → a pending prediction (:class:`Pending`)
    T event_ms(u64 BE) id   → b"" — the event-time index of P, for retention
    L id                    → a label waiting for its prediction (:class:`WaitingLabel`)
    U label_ms(u64 BE) id   → b"" — the event-time index of L, for the grace period
    M                       → the store's metadata (JSON: counts, sample rate, watermark)

Retention and grace expiry scan T and U from their start, so each call's work is bounded
by its limit however large the store. A :class:`Pending` value is a fixed 29-byte header
(event ms, window start ms, score f64, sample rate f32, flags), the label time once
labeled, then u16-length-prefixed fields (model version, predicted label as JSON, first
and last label as JSON, segment as JSON) — see ``benchmarks/bench_label_store.py`` for the
bytes per entry on disk.

**Transactions.** Writes go to an overlay that reads see; :meth:`PendingStore.commit`
applies them to the KV in one atomic batch and returns them: the changelog records to
produce in the same Kafka transaction as the consumer offsets (Quix Streams' design: one
transaction per processed batch, a changelog topic per store). :meth:`restore` replays
such records into an empty or stale store.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from streamproc.contracts.limits import cap_category
from streamproc.labels.kv import KV, Write

MAX_ID_BYTES: Final = 256
"""Longer model names and request ids are capped (prefix + digest) in keys."""
_HEAD: Final = struct.Struct("<qqdfB")
_Q: Final = struct.Struct("<q")
_U16: Final = struct.Struct("<H")
_U64BE: Final = struct.Struct(">Q")
_LABELED, _HAS_LAST, _HAS_SEGMENT = 1, 2, 4
_META_KEY: Final = b"M"


def record_id(model: str, request_id: str) -> bytes:
    """The ``id`` part of every key of (model, request id)."""
    m = cap_category(model, MAX_ID_BYTES).encode()
    return len(m).to_bytes(2, "big") + m + cap_category(request_id, MAX_ID_BYTES).encode()


def split_id(rid: bytes) -> tuple[str, str]:
    n = int.from_bytes(rid[:2], "big")
    return rid[2 : 2 + n].decode(), rid[2 + n :].decode()


def sample_hash(request_id: str) -> float:
    """A request id's place in [0, 1): BLAKE2b-64 of its UTF-8 bytes / 2⁶⁴. A prediction
    is kept when this is below the sample rate — on every worker and after any restart."""
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


@dataclass(frozen=True, slots=True)
class Pending:
    """A prediction waiting for (or holding) its label."""

    model: str
    request_id: str
    event_ms: int
    window_start_ms: int
    model_version: str
    predicted: Any = None
    """Predicted label (a JSON scalar) or None."""
    score: float = math.nan
    sample_rate: float = 1.0
    """The join's sample rate when it was stored."""
    segment: Mapping[str, str] | None = None
    label: Any = None
    """The first label, once one matched (``label_ms`` is then set)."""
    label_ms: int | None = None
    last_label: Any = None
    """The latest label that differed from the one before it (corrections), else None."""

    @property
    def labeled(self) -> bool:
        return self.label_ms is not None

    def encode(self) -> bytes:
        flags = (
            (_LABELED if self.labeled else 0)
            | (_HAS_LAST if self.last_label is not None else 0)
            | (_HAS_SEGMENT if self.segment else 0)
        )
        parts = [
            _HEAD.pack(self.event_ms, self.window_start_ms, self.score, self.sample_rate, flags)
        ]
        if self.label_ms is not None:
            parts.append(_Q.pack(self.label_ms))
        fields = [self.model_version.encode(), orjson.dumps(self.predicted)]
        if self.labeled:
            fields.append(orjson.dumps(self.label))
        if self.last_label is not None:
            fields.append(orjson.dumps(self.last_label))
        if self.segment:
            fields.append(orjson.dumps(dict(self.segment)))
        for f in fields:
            parts.append(_U16.pack(len(f)))
            parts.append(f)
        return b"".join(parts)

    @classmethod
    def decode(cls, rid: bytes, data: bytes) -> Pending:
        model, request_id = split_id(rid)
        event_ms, window, score, rate, flags = _HEAD.unpack_from(data)
        pos = _HEAD.size
        label_ms = None
        if flags & _LABELED:
            (label_ms,) = _Q.unpack_from(data, pos)
            pos += 8
        fields = []
        while pos < len(data):
            (n,) = _U16.unpack_from(data, pos)
            fields.append(data[pos + 2 : pos + 2 + n])
            pos += 2 + n
        it = iter(fields)
        version = next(it).decode()
        predicted = orjson.loads(next(it))
        label = orjson.loads(next(it)) if flags & _LABELED else None
        last = orjson.loads(next(it)) if flags & _HAS_LAST else None
        segment = orjson.loads(next(it)) if flags & _HAS_SEGMENT else None
        return cls(
            model, request_id, event_ms, window, version, predicted, score, float(rate),
            segment, label, label_ms, last,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class WaitingLabel:
    """A label that came before its prediction."""

    model: str
    request_id: str
    label: Any
    label_ms: int
    last_label: Any = None

    def encode(self) -> bytes:
        body = [self.label] if self.last_label is None else [self.label, self.last_label]
        return _Q.pack(self.label_ms) + orjson.dumps(body)

    @classmethod
    def decode(cls, rid: bytes, data: bytes) -> WaitingLabel:
        model, request_id = split_id(rid)
        (label_ms,) = _Q.unpack_from(data)
        body = orjson.loads(data[8:])
        return cls(model, request_id, body[0], label_ms, body[1] if len(body) > 1 else None)


class PendingStore:
    """Typed access to the key layout of the module docstring, in transactions."""

    def __init__(self, kv: KV) -> None:
        self.kv = kv
        self._overlay: dict[bytes, bytes | None] = {}
        self._cache: dict[bytes, bytes | None] = {}
        raw = kv.get(_META_KEY)
        self.meta: dict[str, Any] = orjson.loads(raw) if raw else {}
        self.meta.setdefault("pending", 0)
        self.meta.setdefault("waiting", 0)

    # ---------------------------------------------------------------- transactions

    def _get(self, key: bytes) -> bytes | None:
        if key in self._overlay:
            return self._overlay[key]
        if key in self._cache:
            return self._cache[key]
        return self.kv.get(key)

    def _put(self, key: bytes, value: bytes | None) -> None:
        self._overlay[key] = value

    def prefetch(self, ids: Sequence[bytes]) -> None:
        """Read the predictions and waiting labels of ``ids`` in two multi-gets."""
        for prefix in (b"P", b"L"):
            keys = [prefix + i for i in ids if prefix + i not in self._overlay]
            self._cache.update(zip(keys, self.kv.get_many(keys), strict=True))

    def commit(self) -> list[Write]:
        """Apply this transaction atomically; return its writes (the changelog)."""
        writes: list[Write] = list(self._overlay.items())
        writes.append((_META_KEY, orjson.dumps(self.meta)))
        self.kv.write(writes)
        self._overlay.clear()
        self._cache.clear()
        return writes

    def rollback(self) -> None:
        """Drop this transaction's writes (and reload the metadata)."""
        self._overlay.clear()
        self._cache.clear()
        raw = self.kv.get(_META_KEY)
        self.meta = orjson.loads(raw) if raw else {"pending": 0, "waiting": 0}

    def restore(self, writes: Sequence[Write]) -> None:
        """Apply changelog records (in order) and reload the metadata."""
        self.kv.write(writes)
        self.rollback()

    def _scan(self, lo: bytes, hi: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Committed items in [lo, hi) merged with this transaction's writes."""
        pending = sorted(k for k in self._overlay if lo <= k < hi)
        j = 0
        for key, value in self.kv.scan(lo, hi):
            while j < len(pending) and pending[j] < key:
                v = self._overlay[pending[j]]
                if v is not None:
                    yield pending[j], v
                j += 1
            if j < len(pending) and pending[j] == key:
                j += 1
            cur = self._overlay.get(key, value) if key in self._overlay else value
            if cur is not None:
                yield key, cur
        for k in pending[j:]:
            v = self._overlay[k]
            if v is not None:
                yield k, v

    # --------------------------------------------------------------- predictions

    def get_prediction(self, rid: bytes) -> Pending | None:
        raw = self._get(b"P" + rid)
        return None if raw is None else Pending.decode(rid, raw)

    def put_prediction(self, p: Pending, old: Pending | None = None) -> None:
        """Store ``p`` (``old``: the entry it replaces, if any)."""
        rid = record_id(p.model, p.request_id)
        if old is None:
            self.meta["pending"] += 1
            self._put(b"T" + _U64BE.pack(p.event_ms) + rid, b"")
        elif old.event_ms != p.event_ms:
            self._put(b"T" + _U64BE.pack(old.event_ms) + rid, None)
            self._put(b"T" + _U64BE.pack(p.event_ms) + rid, b"")
        self._put(b"P" + rid, p.encode())

    def delete_prediction(self, p: Pending) -> None:
        rid = record_id(p.model, p.request_id)
        self._put(b"P" + rid, None)
        self._put(b"T" + _U64BE.pack(p.event_ms) + rid, None)
        self.meta["pending"] -= 1

    def predictions_before(self, cutoff_ms: int, limit: int) -> list[Pending]:
        """Up to ``limit`` predictions with event time < ``cutoff_ms``, oldest first."""
        out: list[Pending] = []
        hi = b"T" + _U64BE.pack(max(cutoff_ms, 0))
        keys = [key for key, _ in itertools.islice(self._scan(b"T", hi), limit)]
        self.prefetch([key[9:] for key in keys])  # one multi-get, not a read per entry
        for key in keys:
            p = self.get_prediction(key[9:])
            if p is not None and p.event_ms == _U64BE.unpack_from(key, 1)[0]:
                out.append(p)
            else:  # an index entry without its record (cannot happen; cleaned if it does)
                self._put(key, None)
        return out

    def predictions_from(self, cursor: bytes, limit: int) -> tuple[list[Pending], bytes | None]:
        """Up to ``limit`` predictions in key order from ``cursor`` (an id, b"" = start),
        and the cursor to continue from (None when the scan is complete)."""
        out: list[Pending] = []
        for key, value in self._scan(b"P" + cursor, b"Q"):
            if len(out) >= limit:
                return out, key[1:]
            out.append(Pending.decode(key[1:], value))
        return out, None

    # ----------------------------------------------------------------- waiting labels

    def get_waiting(self, rid: bytes) -> WaitingLabel | None:
        raw = self._get(b"L" + rid)
        return None if raw is None else WaitingLabel.decode(rid, raw)

    def put_waiting(self, w: WaitingLabel, new: bool) -> None:
        rid = record_id(w.model, w.request_id)
        if new:
            self.meta["waiting"] += 1
            self._put(b"U" + _U64BE.pack(w.label_ms) + rid, b"")
        self._put(b"L" + rid, w.encode())

    def delete_waiting(self, w: WaitingLabel) -> None:
        rid = record_id(w.model, w.request_id)
        self._put(b"L" + rid, None)
        self._put(b"U" + _U64BE.pack(w.label_ms) + rid, None)
        self.meta["waiting"] -= 1

    def waiting_before(self, cutoff_ms: int, limit: int) -> list[WaitingLabel]:
        """Up to ``limit`` waiting labels with label time < ``cutoff_ms``, oldest first."""
        out: list[WaitingLabel] = []
        hi = b"U" + _U64BE.pack(max(cutoff_ms, 0))
        keys = [key for key, _ in itertools.islice(self._scan(b"U", hi), limit)]
        self.prefetch([key[9:] for key in keys])
        for key in keys:
            w = self.get_waiting(key[9:])
            if w is not None and w.label_ms == _U64BE.unpack_from(key, 1)[0]:
                out.append(w)
            else:
                self._put(key, None)
        return out
