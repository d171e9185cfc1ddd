"""Records with random feature names cost linear time: rare names are kept sparse."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import orjson

from streamproc.contracts.prediction import decode_predictions
from streamproc.core.model_profile import ModelProfile
from streamproc.monitor.window_buffer import BufferedChunk, WindowBuffer, build_delta


def _records(n: int, seed: int) -> tuple[list[bytes], list[dict[str, float]]]:
    rng = random.Random(seed)
    out, feats = [], []
    for i in range(n):
        f = {"x": float(i), **{f"r{rng.getrandbits(40):x}": rng.random() for _ in range(50)}}
        if i % 3 == 0:
            f["opt"] = float(i)  # an optional feature: a third of the rows
        feats.append(f)
        out.append(
            orjson.dumps(
                {
                    "model": "m",
                    "model_version": "1",
                    "request_id": str(i),
                    "timestamp": 1_700_000_000 + i / 100,
                    "features": f,
                    "prediction": 0.5,
                }
            )
        )
    return out, feats


def test_rare_names_are_sparse_with_exact_rows_and_values() -> None:
    values, feats = _records(400, seed=1)
    (batch,) = decode_predictions(values).batches.values()
    assert set(batch.features) == {"x", "opt"}  # carried by >= 5 % of the rows
    assert batch.missing["opt"] == sum(1 for f in feats if "opt" not in f)
    expected = {}
    for j, f in enumerate(feats):
        for name, v in f.items():
            if name not in ("x", "opt"):
                rows, vals = expected.setdefault(name, ([], []))
                rows.append(j)
                vals.append(v)
    assert set(batch.sparse) == set(expected)
    for name, (rows, vals) in expected.items():
        assert batch.sparse[name][0].tolist() == rows and batch.sparse[name][1] == vals

    half = batch.take(np.arange(0, 400, 2))
    kept = {name for j, f in enumerate(feats) if j % 2 == 0 for name in f} - {"x", "opt"}
    assert set(half.sparse) == kept


def test_a_delta_counts_sparse_names_as_unexpected_and_sketches_expected_ones() -> None:
    values, feats = _records(400, seed=2)
    rng = np.random.default_rng(0)
    sparse_name = next(iter(feats[0].keys() - {"x", "opt"}))
    reference = ModelProfile.build_reference(
        "m",
        "1",
        {"x": rng.normal(size=100), "opt": rng.normal(size=100), sparse_name: rng.normal(size=100)},
    )
    (batch,) = decode_predictions(values).batches.values()
    buf = WindowBuffer("m", "1", 0, 10**13)
    buf.add(BufferedChunk(batch, batch.timestamps, 0.0), np.zeros(batch.n), np.arange(batch.n))
    delta = build_delta(buf, reference, topic="t", producer_id="p", max_unexpected_features=10**6)
    # an expected feature that is rare in the batch keeps its value
    assert delta.profile.features[sparse_name].valid_count == 1
    assert delta.profile.features["opt"].valid_count == sum(1 for f in feats if "opt" in f)
    unexpected = Counter(name for f in feats for name in f if name not in ("x", "opt", sparse_name))
    ops = delta.ops.features["unexpected_feature"]
    assert ops.valid_count == sum(unexpected.values())
