"""Window buffers mixing fast-path (Arrow) and orjson-path (list) chunks build the same
deltas as buffers of orjson-path chunks only."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pytest

from streamproc.contracts.fast_decode import fast_decode
from streamproc.contracts.prediction import DecodeResult, PredictionBatch, decode_predictions
from streamproc.core.model_profile import ModelProfile
from streamproc.monitor.window_buffer import BufferedChunk, WindowBuffer, build_delta

WINDOW_MS = 60_000
T0 = 1_700_000_040.0


@pytest.fixture(scope="module")
def reference() -> ModelProfile:
    rng = np.random.default_rng(0)
    n = 1_000
    return ModelProfile.build_reference(
        "m",
        "1",
        {
            "x": rng.normal(size=n),
            "c": rng.choice(["a", "b"], size=n).astype(object),
            "b": rng.random(n) < 0.3,
        },
        predictions=rng.random(n),
        predicted_labels=rng.choice(["yes", "no"], size=n).astype(object),
    )


def _values(start: int, n: int, **features: Any) -> list[bytes]:
    out = []
    for i in range(start, start + n):
        feats = {"x": i * 0.25 if i % 5 else None, "c": "ab"[i % 2], "b": i % 3 == 0}
        feats.update(features)
        out.append(
            orjson.dumps(
                {
                    "model": "m",
                    "model_version": "1",
                    "request_id": f"r{i}",
                    "timestamp": T0 + i * 0.01,
                    "features": feats,
                    "prediction": {"label": "yes" if i % 3 else "no", "score": (i % 10) / 10},
                    "latency_ms": float(i % 7),
                }
            )
        )
    return out


def _batch(values: list[bytes], fast: bool, reference: ModelProfile) -> PredictionBatch:
    kinds = {k: p.kind for k, p in reference.features.items()}
    if fast:
        result = fast_decode(values, kinds_for=lambda m, v: kinds, window_ms=WINDOW_MS)
        assert isinstance(result, DecodeResult)
    else:
        result = decode_predictions(values, window_ms=WINDOW_MS)
    (batch,) = result.batches.values()
    return batch


def _delta(batches: list[PredictionBatch], reference: ModelProfile) -> Any:
    buf = WindowBuffer("m", "1", batches[0].window_start_ms, batches[0].window_start_ms + WINDOW_MS)
    for b in batches:
        buf.add(BufferedChunk(b, b.timestamps + 0.5, 1.8e9), np.zeros(b.n, np.int64), b.indices)
    return build_delta(buf, reference, topic="t", producer_id="p")


@pytest.mark.parametrize("pattern", ["fs", "sfs", "ffs", "fsfs"])
def test_mixed_chunks_give_the_orjson_deltas(pattern: str, reference: ModelProfile) -> None:
    parts = [_values(i * 40, 40) for i in range(len(pattern))]
    # the last chunk (orjson path) lacks feature "b" entirely and has an unexpected one
    parts[-1] = [v.replace(b',"b":', b',"z":') for v in parts[-1]]
    mixed = [
        _batch(v, p == "f" and j < len(pattern) - 1, reference)
        for j, (v, p) in enumerate(zip(parts, pattern, strict=True))
    ]
    slow = [_batch(v, False, reference) for v in parts]
    assert any(isinstance(col, pa.Array) for b in mixed for col in b.features.values())
    got, want = _delta(mixed, reference), _delta(slow, reference)
    assert got.profile == want.profile
    assert got.ops == want.ops


def test_take_of_an_arrow_batch_matches_the_list_batch(reference: ModelProfile) -> None:
    values = _values(0, 30)
    fast, slow = _batch(values, True, reference), _batch(values, False, reference)
    rows = np.array([0, 3, 4, 17, 29])
    f, s = fast.take(rows), slow.take(rows)
    for name, col in f.features.items():
        assert isinstance(col, pa.Array)
        assert col.to_pylist() == s.features[name]
    np.testing.assert_array_equal(f.indices, s.indices)
    assert _delta([f], reference).profile == _delta([s], reference).profile
