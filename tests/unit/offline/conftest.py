"""Small data sets written as CSV, Parquet and JSON Lines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest


def make_table(n: int = 4000, seed: int = 3, shift: bool = False) -> pa.Table:
    """Mixed features plus id/timestamp/prediction/label columns; ~5% nulls.

    ``shift`` moves ``x`` by +1 sd and re-weights ``color`` only.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(10.0 + (3.0 if shift else 0.0), 3.0, n)
    y = rng.exponential(2.0, n)
    k = rng.integers(0, 5, n)
    p = [0.1, 0.1, 0.8] if shift else [0.6, 0.3, 0.1]
    color = rng.choice(["red", "green", "blue"], n, p=p)
    flag = rng.random(n) < 0.3
    mask = rng.random((4, n)) < 0.05
    ts = np.datetime64("2024-03-01T00:00:00", "s").astype(np.int64) + np.arange(n) * 60
    score = rng.random(n)
    return pa.table(
        {
            "id": pa.array(np.arange(n)),
            "ts": pa.array(ts, type=pa.timestamp("s")),
            "x": pa.array(x, mask=mask[0]),
            "y": pa.array(y, mask=mask[1]),
            "k": pa.array(k),
            "color": pa.array(color.tolist(), mask=mask[2]),
            "flag": pa.array(flag, mask=mask[3]),
            "score": pa.array(score),
            "label": pa.array((rng.random(n) < score).astype(np.int64)),
        }
    )


def write(table: pa.Table, path: Path) -> Path:
    """Write ``table`` in the format named by ``path``'s suffix."""
    if path.suffix == ".parquet":
        pq.write_table(table, path, row_group_size=700)
    elif path.suffix == ".csv":
        pacsv.write_csv(table, path)
    elif path.suffix == ".jsonl":
        with path.open("w") as fh:
            for row in table.to_pylist():
                fh.write(json.dumps(row, default=lambda v: v.isoformat()) + "\n")
    else:
        raise ValueError(path)
    return path


@pytest.fixture
def table() -> pa.Table:
    return make_table()


@pytest.fixture
def data_files(tmp_path: Path, table: pa.Table) -> dict[str, Path]:
    return {s: write(table, tmp_path / f"train.{s}") for s in ("csv", "parquet", "jsonl")}
