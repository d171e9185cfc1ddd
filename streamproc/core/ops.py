"""The operational side of a window: freshness lags, service health and schema events.

Kept as a second :class:`~streamproc.core.model_profile.ModelProfile` next to the
feature profile, so it merges, serializes and sketches exactly like features do.
Its features (all reserved names):

==========================  ===========  ====================================================
name                        kind         values, one per accepted record (unless noted)
==========================  ===========  ====================================================
``pipeline_lag_s``          numeric      Kafka append time − event time, seconds
``processing_lag_s``        numeric      ingest processing time − Kafka append time, seconds
``data_lag_s``              numeric      event time − ``features_as_of``, seconds (null if absent)
``fallback``                boolean      the record's ``fallback`` flag
``error``                   boolean      ``error`` true or a non-empty string
``missing_feature``         categorical  one value per (record, expected feature absent)
``unexpected_feature``      categorical  one value per (record, feature not in the reference)
==========================  ===========  ====================================================

``missing_feature`` and ``unexpected_feature`` are event lists, not per-record columns:
each batch adds one null per record plus one value per occurrence, so their
``valid_count`` is the number of occurrences and ``top_categories`` counts per name;
a name's count divided by the ops profile's ``row_count`` is the share of records
affected.

``unexpected_feature`` names come from the input, so a delta keeps at most
``max_unexpected_features`` (default :data:`MAX_UNEXPECTED_FEATURES`) of them, the most
frequent (ties by name), each at most :data:`MAX_EVENT_NAME_BYTES` UTF-8 bytes (a longer
name becomes a prefix, ``…#`` and a digest of the whole name, as long category values
do); the records carrying any of the other names are counted once each under
:data:`OTHER_FEATURES`, so that count too is a number of records (hence
``valid_count`` is then no longer the number of occurrences). Merged windows stay
bounded by the category sketch: exact up to the ops profile's 1000 names, then a
fixed-size frequent-items sketch (at most 768 names).
"""

from __future__ import annotations

from typing import Final

from streamproc.core.kinds import FeatureKind
from streamproc.core.model_profile import ModelProfile

PIPELINE_LAG: Final = "pipeline_lag_s"
PROCESSING_LAG: Final = "processing_lag_s"
DATA_LAG: Final = "data_lag_s"
FALLBACK: Final = "fallback"
ERROR: Final = "error"
MISSING_FEATURE: Final = "missing_feature"
UNEXPECTED_FEATURE: Final = "unexpected_feature"

OPS_FEATURES: Final[dict[str, FeatureKind]] = {
    PIPELINE_LAG: FeatureKind.NUMERIC,
    PROCESSING_LAG: FeatureKind.NUMERIC,
    DATA_LAG: FeatureKind.NUMERIC,
    FALLBACK: FeatureKind.BOOLEAN,
    ERROR: FeatureKind.BOOLEAN,
    MISSING_FEATURE: FeatureKind.CATEGORICAL,
    UNEXPECTED_FEATURE: FeatureKind.CATEGORICAL,
}

OTHER_FEATURES: Final = "__other__"
"""Bucket name of the unexpected feature names beyond a delta's cap."""
MAX_UNEXPECTED_FEATURES: Final = 100
"""Default cap on distinct unexpected feature names per delta (plus the bucket)."""
MAX_EVENT_NAME_BYTES: Final = 256
"""Longest unexpected feature name (UTF-8 bytes) kept as is in the event list."""

#: Ops sketches need less precision than drift sketches: p95 of a lag within ~1%.
OPS_K: Final = 200


def new_ops_profile(model: str, model_version: str) -> ModelProfile:
    """An empty ops profile for one model version."""
    return ModelProfile.new(
        model, model_version, OPS_FEATURES, k=OPS_K, max_categories=1000, joint_features=()
    )


def cap_event_names(ops: ModelProfile, cap: int = MAX_UNEXPECTED_FEATURES) -> None:
    """Keep at most ``cap`` unexpected feature names in a merged ops profile (in place):
    the most frequent, the rest folded into :data:`OTHER_FEATURES`, so a window's state
    stays bounded however many deltas with fresh names merge into it. The count of the
    names folded here adds their largest count to ``OTHER_FEATURES``: a lower bound of the
    records carrying any of them (the records of two names may coincide), so the schema
    check's share of records never overstates."""
    prof = ops.features.get(UNEXPECTED_FEATURE)
    cats = prof.categories if prof is not None else None
    if prof is None or cats is None or not cats.is_exact:
        return
    counts, _ = cats.counts()
    named = [(n, c) for n, c in counts.items() if n != OTHER_FEATURES]
    if len(named) <= cap:
        return
    named.sort(key=lambda nc: (-nc[1], nc[0]))
    other = counts.get(OTHER_FEATURES, 0) + max(c for _n, c in named[cap:])
    kept = [*named[:cap], (OTHER_FEATURES, other)]
    capped = type(cats)(cats.max_categories, cats.lg_max_map_size)
    capped.update([n for n, _c in kept], [c for _n, c in kept])
    prof.categories = capped
