"""Cost of segment analysis per slice: ingest CPU and delta bytes (a diagnosis).

Builds the delta of one 0.5 s flush (``--rows`` decoded rows of a 20-feature model)
with and without slicing, for a range of slice counts (one ``country`` dimension with
``--values`` values, top K = values), and reports per configuration: the median build
time, the extra µs per row, the slice profiles' serialized bytes and bytes per slice.
Key features: ``--key-features`` of the 20 (default 5, as the worker's default).

    taskset -c 1 .venv/bin/python benchmarks/bench_slices.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from streamproc.checks.policy import EvaluationPolicy
from streamproc.contracts.batch import PredictionBatch
from streamproc.core.model_profile import ModelProfile
from streamproc.core.segments import SlicingPolicy
from streamproc.core.slice_profiles import SliceSpec
from streamproc.monitor.slice_eval import segment_results
from streamproc.monitor.state import WindowState
from streamproc.monitor.window_buffer import BufferedChunk, WindowBuffer, build_delta

FEATURES = 20


def _reference() -> ModelProfile:
    rng = np.random.default_rng(0)
    cols = {f"f{i:02d}": rng.normal(0, 1, 20_000) for i in range(FEATURES)}
    return ModelProfile.build_reference("m", "1", cols, predictions=rng.random(20_000))


def _buffer(rows: int, values: int, seed: int) -> WindowBuffer:
    rng = np.random.default_rng(seed)
    n = rows
    batch = PredictionBatch(
        model="m",
        model_version="1",
        indices=np.arange(n, dtype=np.int64),
        timestamps=np.full(n, 1_700_000_000.0) + rng.random(n),
        features={f"f{i:02d}": rng.normal(0, 1, n).tolist() for i in range(FEATURES)},
        missing={},
        prediction_score=rng.random(n),
        prediction_label=[None] * n,
        latency_ms=np.full(n, np.nan),
        fallback=np.zeros(n, dtype=bool),
        error=np.zeros(n, dtype=bool),
        features_as_of=np.full(n, np.nan),
        segments=[{"country": f"c{int(v)}"} for v in rng.zipf(1.3, n) % values],
    )
    buf = WindowBuffer("m", "1", 0, 300_000)
    buf.add(
        BufferedChunk(batch, batch.timestamps.copy(), 1_700_000_001.0),
        np.zeros(n, dtype=np.int64),
        np.arange(n, dtype=np.int64),
    )
    return buf


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--key-features", type=int, default=5)
    args = ap.parse_args()
    ref = _reference()
    keys = tuple(f"f{i:02d}" for i in range(args.key_features))
    print(f"rows/flush {args.rows}, features {FEATURES}, key features {len(keys)}")
    print("values  slices  build ms  +µs/row  slice bytes  bytes/slice  merge ms  eval ms")
    base: float | None = None
    for values in (0, 5, 20, 50, 200):
        buf = _buffer(args.rows, max(values, 1), seed=values)
        spec = (
            None
            if values == 0
            else SliceSpec(
                SlicingPolicy(("country",), top_k=values, max_slices=max(values + 1, 2)),
                key_features=keys,
            )
        )
        times = []
        delta = None
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            delta = build_delta(buf, ref, topic="t", producer_id="p", slices=spec)
            times.append(time.perf_counter() - t0)
        ms = statistics.median(times) * 1000
        if base is None:
            base = ms
        assert delta is not None
        sl = delta.slices
        n_slices = 0 if sl is None else len(sl.profiles)
        size = 0 if sl is None else len(sl.to_bytes())
        extra_us = (ms - base) * 1000 / args.rows
        per = size / n_slices if n_slices else 0
        merge_ms = eval_ms = 0.0
        if sl is not None:
            other = build_delta(_buffer(args.rows, values, values + 1), ref, topic="t",
                                producer_id="p", slices=spec).slices  # fmt: skip
            assert other is not None
            t0 = time.perf_counter()
            merged = sl.merge(other)
            merge_ms = (time.perf_counter() - t0) * 1000
            window = WindowState("m", "1", 0, 300_000, delta.profile, delta.ops, slices=merged)
            t0 = time.perf_counter()
            segment_results(window, ref, keys, EvaluationPolicy(), [], 0.05)
            eval_ms = (time.perf_counter() - t0) * 1000
        print(
            f"{values:>6}  {n_slices:>6}  {ms:8.1f}  {extra_us:7.2f}  {size:11,}  {per:11,.0f}"
            f"  {merge_ms:8.1f}  {eval_ms:7.1f}"
        )


if __name__ == "__main__":
    main()
