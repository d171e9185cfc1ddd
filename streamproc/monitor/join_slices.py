"""The labels side's slices: per-slice performance, labeled fairness counts and shadow
pairs of one window's matches (pure; the join stage calls it at every flush).

Slices of labeled rows come from the ``segment`` their prediction carried (the join
stores it with the prediction); a feature used as a dimension is not stored, so its
slices have prediction-side checks only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from streamproc.core.fairness import FairnessCounts
from streamproc.core.labeled_slices import LabeledSlices, Performance
from streamproc.core.performance import ClassificationPerformance, class_key
from streamproc.core.regression_performance import RegressionPerformance
from streamproc.core.segments import SegmentCounts
from streamproc.core.shadow import ShadowPairs
from streamproc.core.slice_profiles import SliceSpec
from streamproc.labels.store import Pending


def update_performance(
    perf: Performance,
    truth: Sequence[Any],
    predicted: Sequence[Any],
    scores: np.ndarray,
    lag_s: np.ndarray,
    regression_value: Any,
) -> None:
    """Add rows to a classification or regression accumulator."""
    if isinstance(perf, RegressionPerformance):
        values = [regression_value(p, s) for s, p in zip(scores.tolist(), predicted, strict=True)]
        perf.update(list(truth), values, lag_s)
    else:
        perf.update(list(truth), list(predicted), scores, lag_s)


def positive_class(spec: SliceSpec | None, perf: Performance) -> str | None:
    """The class that counts as positive: the configured one, else the reference's."""
    if spec is not None and spec.positive is not None:
        return spec.positive
    if isinstance(perf, ClassificationPerformance) and perf.positive is not None:
        return str(perf.positive)
    return None


def is_positive(values: Sequence[Any], positive: str) -> np.ndarray:
    key = class_key(positive)
    return np.fromiter((class_key(v) == key for v in values), dtype=bool, count=len(values))


def labeled_slices(
    spec: SliceSpec,
    template: Performance,
    new_performance: Any,
    regression_value: Any,
    truth: Sequence[Any],
    predicted: Sequence[Any],
    scores: np.ndarray,
    lag_s: np.ndarray,
    segments: Sequence[Mapping[str, str] | None],
) -> LabeledSlices:
    """Per-slice accumulators (``new_performance()`` makes an empty one) and the labeled
    fairness counts of one window's matches."""
    out = LabeledSlices(max_slices=spec.policy.max_slices)
    if spec.profile_slices:
        counts = SegmentCounts(spec.policy)
        counts.update(segments)
        for key, rows in counts.slices().assign(segments).items():
            perf = new_performance()
            update_performance(
                perf,
                [truth[i] for i in rows.tolist()],
                [predicted[i] for i in rows.tolist()],
                scores[rows],
                lag_s[rows],
                regression_value,
            )
            out.performance[key] = perf
    positive = positive_class(spec, template)
    if spec.protected and positive is not None:
        if spec.positive is not None:  # decisions are predicted labels
            selected = is_positive(predicted, spec.positive)
        else:
            selected = spec.selected(scores, predicted)
        y = is_positive(truth, positive)
        for attr in spec.protected:
            fc = FairnessCounts(attr)
            fc.add_labeled([None if not s else s.get(attr) for s in segments], selected, y, scores)
            out.fairness[attr] = fc
    return out


def shadow_update(pairs: ShadowPairs, found: Sequence[tuple[Pending, Pending]]) -> ShadowPairs:
    """Add (champion, challenger) prediction pairs (their scores)."""
    if found:
        pairs.update(
            np.array([a.score for a, _ in found], dtype=np.float64),
            np.array([b.score for _, b in found], dtype=np.float64),
        )
    return pairs


def shadow_update_labeled(
    pairs: ShadowPairs,
    found: Sequence[tuple[Pending, Pending, Any, int]],
    positive: str,
) -> ShadowPairs:
    """Add labeled (champion, challenger, label, label ms) pairs."""
    if found:
        pairs.update_labeled(
            [a.request_id for a, _, _, _ in found],
            np.array([a.score for a, _, _, _ in found], dtype=np.float64),
            np.array([b.score for _, b, _, _ in found], dtype=np.float64),
            is_positive([label for _, _, label, _ in found], positive),
        )
    return pairs
