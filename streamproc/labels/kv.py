"""Ordered byte key–value stores under the label join: RocksDB, and a dict for tests.

:class:`KV` is the whole interface the pending-prediction store needs: point reads (one
or many), an atomic batch of writes, and an ordered scan of a key range. RocksDB
(through ``rocksdict``, the binding faust-streaming's tables use) keeps the data on disk
with bounded memory: a write buffer and a block cache of fixed size, so RSS does not
grow with the number of pending predictions. :class:`MemoryKV` is the same contract in a
dict and a sorted key list, for unit tests and replays.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final, Protocol

Write = tuple[bytes, bytes | None]
"""A put (value) or a delete (None)."""

WRITE_BUFFER_BYTES: Final = 32 << 20
BLOCK_CACHE_BYTES: Final = 64 << 20


class KV(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]: ...

    def write(self, writes: Sequence[Write]) -> None:
        """Apply all writes atomically, in order."""
        ...

    def scan(self, lo: bytes, hi: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Items with lo ≤ key < hi in key order."""
        ...

    def close(self) -> None: ...


class MemoryKV:
    """:class:`KV` in memory (a dict plus a sorted list of keys)."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._keys: list[bytes] = []

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        return [self._data.get(k) for k in keys]

    def write(self, writes: Sequence[Write]) -> None:
        for key, value in writes:
            if value is None:
                if self._data.pop(key, None) is not None:
                    del self._keys[bisect.bisect_left(self._keys, key)]
            else:
                if key not in self._data:
                    bisect.insort(self._keys, key)
                self._data[key] = value

    def scan(self, lo: bytes, hi: bytes) -> Iterator[tuple[bytes, bytes]]:
        i = bisect.bisect_left(self._keys, lo)
        keys = self._keys[i : bisect.bisect_left(self._keys, hi)]
        for key in keys:  # a snapshot of the keys: writes during the scan are safe
            value = self._data.get(key)
            if value is not None:
                yield key, value

    def __len__(self) -> int:
        return len(self._data)

    def close(self) -> None:
        pass


class RocksKV:
    """:class:`KV` on a RocksDB directory (created if missing), bytes in, bytes out.

    LZ4-compressed blocks, a bloom filter for point lookups (most labels look up a key
    that exists; a label before its prediction looks up one that does not), a
    ``WRITE_BUFFER_BYTES`` memtable and a ``BLOCK_CACHE_BYTES`` LRU cache: memory stays
    bounded however many entries the directory holds. Writes go through the WAL without
    fsync: durability across machines is the changelog's job, not the local disk's.
    """

    def __init__(self, path: str | Path) -> None:
        from rocksdict import (
            BlockBasedOptions,
            Cache,
            DBCompressionType,
            Options,
            Rdict,
        )

        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        opts.set_compression_type(DBCompressionType.lz4())
        opts.set_write_buffer_size(WRITE_BUFFER_BYTES)
        opts.set_max_write_buffer_number(2)
        table = BlockBasedOptions()
        table.set_block_cache(Cache(BLOCK_CACHE_BYTES))
        table.set_bloom_filter(10, False)
        table.set_cache_index_and_filter_blocks(True)
        opts.set_block_based_table_factory(table)
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(self.path), opts)

    def get(self, key: bytes) -> bytes | None:
        value = self._db.get(key)
        return None if value is None else bytes(value)

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        if not keys:
            return []
        values = self._db.get(list(keys)) or [None] * len(keys)
        return [None if v is None else bytes(v) for v in values]

    def write(self, writes: Sequence[Write]) -> None:
        from rocksdict import WriteBatch

        batch = WriteBatch(raw_mode=True)
        for key, value in writes:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        self._db.write(batch)

    def scan(self, lo: bytes, hi: bytes) -> Iterator[tuple[bytes, bytes]]:
        it = self._db.iter()
        it.seek(lo)
        while it.valid():
            key = bytes(it.key())
            if key >= hi:
                return
            yield key, bytes(it.value())
            it.next()

    def disk_bytes(self) -> int:
        """Live SST bytes plus memtables (RocksDB's own estimates)."""
        total = 0
        for prop in ("rocksdb.total-sst-files-size", "rocksdb.cur-size-all-mem-tables"):
            total += self._db.property_int_value(prop) or 0
        return total

    def flush(self) -> None:
        self._db.flush()

    def close(self) -> None:
        self._db.close()
