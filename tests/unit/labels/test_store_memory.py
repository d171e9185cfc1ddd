"""RSS stays flat-ish while the RocksDB store grows (reported; a loose bound asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamproc.labels.join import JoinPolicy, LabelJoin, PredictionRows
from streamproc.labels.kv import RocksKV
from streamproc.labels.store import PendingStore

T0 = 1_714_000_000_000


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    pytest.skip("no /proc/self/status")


@pytest.mark.slow
def test_rss_does_not_grow_with_pending_predictions(tmp_path: Path) -> None:
    kv = RocksKV(tmp_path / "db")
    join = LabelJoin(PendingStore(kv), JoinPolicy(budget=10**9))
    batch, n = 10_000, 600_000
    marks = {}
    for start in range(0, n, batch):
        ids = [f"{i:012x}-0000-4000-8000-{i * 7919:012x}" for i in range(start, start + batch)]
        join.apply_predictions(
            PredictionRows(["m"] * batch, ids, [T0 + i for i in range(batch)], [T0] * batch,
                           ["v1"] * batch, [None] * batch, [0.5] * batch)
        )  # fmt: skip
        if start + batch in (200_000, n):
            marks[start + batch] = _rss_mb()
    kv.close()
    per_entry = (marks[n] - marks[200_000]) * 2**20 / (n - 200_000)
    print(f"RSS {marks}; growth {per_entry:.0f} bytes per pending prediction")
    # a Python dict of the same entries costs hundreds of bytes each; RocksDB's memtables and
    # block cache are bounded (kv.WRITE_BUFFER_BYTES, kv.BLOCK_CACHE_BYTES)
    assert per_entry < 250
