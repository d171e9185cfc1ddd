"""Unexpected feature names stay bounded per window however many deltas bring new ones."""

from __future__ import annotations

import numpy as np

from streamproc.contracts.prediction import decode_predictions
from streamproc.core.model_profile import ModelProfile
from streamproc.core.ops import MAX_UNEXPECTED_FEATURES, OTHER_FEATURES, UNEXPECTED_FEATURE
from streamproc.monitor.state import AggregateState
from streamproc.monitor.window_buffer import BufferedChunk, WindowBuffer, build_delta
from tests.unit.contracts.test_sparse_features import _records


def test_a_window_keeps_the_most_frequent_names_and_folds_the_rest() -> None:
    rng = np.random.default_rng(0)
    reference = ModelProfile.build_reference("m", "1", {"x": rng.normal(size=100)})
    state = AggregateState(window_ms=10**13, allowed_lateness_ms=0, retention_ms=10**14)
    occurrences = 0
    for seed in range(6):
        values, feats = _records(200, seed=seed)  # 50 fresh random names per record
        occurrences += sum(len(f) - 1 - ("opt" in f) for f in feats)  # not x, opt
        (batch,) = decode_predictions(values).batches.values()
        buf = WindowBuffer("m", "1", 0, 10**13)
        offsets = np.arange(batch.n) + seed * 1_000
        buf.add(BufferedChunk(batch, batch.timestamps, 0.0), np.zeros(batch.n), offsets)
        delta = build_delta(buf, reference, topic="t", producer_id="p")
        assert state.apply(delta, arrival_ms=0)
    (window,) = state.windows.values()
    cats = window.ops.features[UNEXPECTED_FEATURE].categories
    assert cats is not None and cats.is_exact
    counts, _ = cats.counts()
    assert len(counts) <= MAX_UNEXPECTED_FEATURES + 1 and OTHER_FEATURES in counts
    # "opt" is unexpected too (not in the reference): a third of the rows, the most frequent
    assert counts["opt"] == 6 * len(range(0, 200, 3))
    assert sum(counts.values()) <= occurrences + counts["opt"]
    assert counts[OTHER_FEATURES] >= 6 * 200  # each delta's records beyond its own cap
