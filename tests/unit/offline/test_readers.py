"""Readers: same rows and values from CSV, Parquet and JSON Lines, in bounded batches."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from streamproc.offline.errors import InputError
from streamproc.offline.readers import DataFile, DataFormat, detect_format


def _table(n: int = 5000) -> pa.Table:
    rng = np.random.default_rng(7)
    x = rng.normal(size=n)
    x_mask = rng.random(n) < 0.1
    ints = rng.integers(0, 10, n)
    cats = rng.choice(["a", "b", "c"], n)
    return pa.table(
        {
            "x": pa.array(x, mask=x_mask),
            "i": pa.array(ints),
            "c": pa.array(cats),
            "flag": pa.array(rng.random(n) < 0.3),
        }
    )


def _write(table: pa.Table, path: Path) -> Path:
    if path.suffix == ".parquet":
        pq.write_table(table, path, row_group_size=1000)
    elif path.suffix == ".csv":
        pacsv.write_csv(table, path)
    else:
        with path.open("w") as fh:
            for row in table.to_pylist():
                fh.write(json.dumps(row) + "\n")
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_batches_round_trip_values(tmp_path: Path, suffix: str) -> None:
    table = _table()
    data = DataFile(_write(table, tmp_path / f"d{suffix}"), block_bytes=16_384, batch_rows=700)
    types = {"x": pa.float64(), "i": pa.float64(), "c": pa.string(), "flag": pa.bool_()}
    batches = list(data.batches(["x", "i", "c", "flag"], types))
    assert len(batches) > 3  # really streamed in several blocks
    got = pa.Table.from_batches(batches)
    assert got.num_rows == table.num_rows
    assert data.bytes_read == data.size_bytes
    np.testing.assert_allclose(
        got["x"].to_numpy(zero_copy_only=False),
        table["x"].to_numpy(zero_copy_only=False),
    )
    assert got["x"].null_count == table["x"].null_count
    np.testing.assert_array_equal(
        np.asarray(got["i"].to_numpy(), dtype=float), table["i"].to_numpy().astype(float)
    )
    assert got["c"].to_pylist() == table["c"].to_pylist()
    assert got["flag"].to_pylist() == table["flag"].to_pylist()


def test_csv_int_then_float_does_not_fail_with_explicit_types(tmp_path: Path) -> None:
    lines = ["v"] + ["1"] * 600_000 + ["2.5"]
    path = tmp_path / "late_float.csv"
    path.write_text("\n".join(lines) + "\n")
    data = DataFile(path, block_bytes=4096)
    assert data.peek_schema().field("v").type == pa.int64()
    got = pa.Table.from_batches(list(data.batches(["v"], {"v": pa.float64()})))
    assert got.num_rows == 600_001
    assert got["v"].to_pylist()[-1] == 2.5


def test_jsonl_long_lines_and_gzip(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl.gz"
    rows = [{"s": "x" * (i % 50), "n": i} for i in range(3000)]
    with gzip.open(path, "wt") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    data = DataFile(path, block_bytes=1000)
    got = pa.Table.from_batches(list(data.batches(["n", "s"], {"n": pa.float64()})))
    assert got["n"].to_pylist() == [float(i) for i in range(3000)]
    assert got["s"].to_pylist() == [r["s"] for r in rows]


def test_detect_format() -> None:
    assert detect_format(Path("a.csv")) == (DataFormat.CSV, None)
    assert detect_format(Path("a.b.csv.gz")) == (DataFormat.CSV, "gzip")
    assert detect_format(Path("a.PARQUET")) == (DataFormat.PARQUET, None)
    assert detect_format(Path("a.ndjson")) == (DataFormat.JSONL, None)
    with pytest.raises(InputError, match="cannot tell the format"):
        detect_format(Path("a.xlsx"))


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        DataFile(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match="is empty"):
        DataFile(tmp_path / "empty.csv")


def test_corrupt_parquet_is_input_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"this is not parquet at all")
    with pytest.raises(InputError, match=r"cannot read .* as parquet"):
        DataFile(path).peek_schema()


def test_jsonl_array_is_input_error(tmp_path: Path) -> None:
    path = tmp_path / "array.json"
    path.write_text('[{"a": 1}, {"a": 2}]\n')
    with pytest.raises(InputError, match="one JSON object per line"):
        DataFile(path).peek_schema()
