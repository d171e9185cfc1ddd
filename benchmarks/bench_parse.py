"""JSON parsers on the worker's benchmark records: the floor under any Python-level decode.

Diagnosis for ``bench_worker.py`` (not a headline): CPU µs per record of parsing the same
records (``_common.EventFactory``: 20 numeric + 5 categorical features, ~740 bytes) with
``orjson.loads`` one by one (the ceiling's parse), ``pyarrow.json.read_json`` of the
newline-joined batch (the worker's fast path) and, when installed, ``polars.read_ndjson``
and ``msgspec.json.decode``. Batches of ``--batch`` records, median of ``--repeats``,
pinned to one CPU with ``taskset`` by the caller if wanted::

    taskset -c 1 .venv/bin/python benchmarks/bench_parse.py
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c


def per_record_us(fn: Callable[[], object], n: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.process_time()
        fn()
        times.append(time.process_time() - began)
    return statistics.median(times) / n * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=10_000)
    p.add_argument("--repeats", type=int, default=9)
    a = p.parse_args()
    import orjson
    import pyarrow.json as pj

    values = c.EventFactory(pool=a.batch).batch(0, a.batch, time.time() - 3600, 1000.0)
    blob = b"\n".join(values)
    rows: list[tuple[str, Callable[[], object]]] = [
        ("orjson.loads, one call per record", lambda: [orjson.loads(v) for v in values]),
        ("pyarrow.json.read_json, the batch", lambda: pj.read_json(io.BytesIO(blob))),
    ]
    try:
        import polars as pl

        rows.append(("polars.read_ndjson, the batch", lambda: pl.read_ndjson(io.BytesIO(blob))))
    except ImportError:
        pass
    try:
        import msgspec

        decoder = msgspec.json.Decoder()
        rows.append(
            ("msgspec.json.decode, one call per record", lambda: list(map(decoder.decode, values)))
        )
    except ImportError:
        pass
    print(f"{a.batch:,} records, {len(blob) / a.batch:.0f} bytes mean; CPU µs per record:")
    for name, fn in rows:
        print(f"  {name:45s} {per_record_us(fn, a.batch, a.repeats):6.2f}")


if __name__ == "__main__":
    main()
