"""Build model profiles from data files, batch by batch, in bounded memory.

``build_reference`` is what ``streamproc reference build`` runs: it plans the
columns from the first file's schema (see :mod:`streamproc.offline.plan`), streams
every file through :class:`streamproc.offline.readers.DataFile` and feeds each
Arrow batch to ``ModelProfile.update_columns`` without converting it to Python
objects, then records the learned schema. ``profile_like`` profiles a *current*
data set with the feature kinds fixed by a reference, for ``streamproc drift``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from streamproc.contracts.limits import DEFAULT_MAX_CATEGORY_BYTES, cap_category
from streamproc.core.feature_profile import REFERENCE_K
from streamproc.core.kinds import FeatureKind
from streamproc.core.model_profile import ModelProfile
from streamproc.offline.errors import InputError
from streamproc.offline.plan import ColumnPlan, PredictionKind, plan_columns, plan_for_kinds
from streamproc.offline.progress import Progress
from streamproc.offline.readers import DataFile
from streamproc.offline.reference_labels import reference_performance_meta

ROLE_KEYS = ("prediction_col", "label_col", "timestamp_col", "id_col")
"""Metadata keys under which a reference records its role columns."""


def _event_times(column: pa.Array, name: str, source: Path) -> pa.Array:
    """Event times as Arrow timestamps or epoch seconds (numbers pass through)."""
    t = column.type
    if pat.is_timestamp(t) or pat.is_integer(t) or pat.is_floating(t):
        return column
    if pat.is_date(t):
        return column.cast(pa.timestamp("s"))
    if pat.is_string(t) or pat.is_large_string(t):
        try:
            return pc.cast(column, pa.timestamp("us"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            first = str(exc).splitlines()[0]
            raise InputError(
                f"timestamp column {name!r} of {source} is not ISO 8601 or epoch seconds "
                f"({first}); fix the column or leave out --timestamp-col"
            ) from exc
    raise InputError(
        f"timestamp column {name!r} of {source} has type {t}; use a timestamp, "
        "an ISO 8601 string or epoch seconds"
    )


def cap_long_strings(
    column: pa.Array | pa.ChunkedArray, max_bytes: int = DEFAULT_MAX_CATEGORY_BYTES
) -> pa.Array | pa.ChunkedArray:
    """A string column with values over ``max_bytes`` UTF-8 bytes capped as the worker caps
    them (:func:`~streamproc.contracts.limits.cap_category`), so a long training category
    matches its live counterpart; other columns, and columns without such values, as is."""
    if not (pat.is_string(column.type) or pat.is_large_string(column.type)):
        return column
    longest = pc.max(pc.binary_length(column)).as_py()
    if longest is None or longest <= max_bytes:
        return column
    values = [None if v is None else cap_category(v, max_bytes) for v in column.to_pylist()]
    return pa.array(values, type=column.type)


def _open_all(paths: Sequence[str | Path]) -> list[DataFile]:
    if not paths:
        raise InputError("no data file given; pass --data FILE")
    return [DataFile(p) for p in paths]


def _check_same_columns(files: Sequence[DataFile], plan: ColumnPlan) -> None:
    for data in files[1:]:
        names = set(data.peek_schema().names)
        missing = [c for c in plan.columns if c not in names]
        if missing:
            raise InputError(
                f"{data.path} has no column {missing[0]!r} (found in {files[0].path}); "
                "give files with the same columns"
            )


def feed_files(
    profile: ModelProfile,
    files: Sequence[DataFile],
    plan: ColumnPlan,
    *,
    progress: Progress | None = None,
) -> None:
    """Stream every file's batches into ``profile`` (mutated in place)."""
    total_rows = 0
    done_bytes = 0
    for data in files:
        if progress is not None:
            progress.set_label(data.path.name)
        for batch in data.batches(plan.columns, plan.read_types):
            columns = {name: cap_long_strings(batch.column(name)) for name in plan.features}
            kwargs: dict[str, Any] = {}
            if plan.prediction is not None:
                key = (
                    "predictions"
                    if plan.prediction_kind is PredictionKind.SCORE
                    else "predicted_labels"
                )
                kwargs[key] = cap_long_strings(batch.column(plan.prediction))
            if plan.timestamp is not None:
                kwargs["event_times"] = _event_times(
                    batch.column(plan.timestamp), plan.timestamp, data.path
                )
            profile.update_columns(columns, **kwargs)
            total_rows += batch.num_rows
            if progress is not None:
                progress.update(total_rows, done_bytes + data.bytes_read)
        done_bytes += data.size_bytes
    if progress is not None:
        progress.update(total_rows, done_bytes)
        progress.close()
    if profile.row_count == 0:
        names = ", ".join(str(f.path) for f in files)
        raise InputError(f"no data rows in {names}; give files with a header and rows")


def feed_joint(profile: ModelProfile, files: Sequence[DataFile], plan: ColumnPlan) -> None:
    """Second pass of a reference build: the co-moments again, clipped at the fences its
    first pass found (``ModelProfile.fenced_joint``; docs/STATISTICS.md *Joint
    distribution*). Reads only the joint features' columns."""
    joint = profile.fenced_joint()
    if joint is None:
        return
    names = list(joint.names)
    types = {n: t for n, t in (plan.read_types or {}).items() if n in joint.names}
    for data in files:
        for batch in data.batches(names, types):
            joint.update({n: batch.column(n) for n in names}, batch.num_rows)
    profile.joint = joint


def _label_kind(plan: ColumnPlan, files: Sequence[DataFile]) -> FeatureKind:
    if plan.prediction is None or plan.prediction_kind is not PredictionKind.LABEL:
        return FeatureKind.CATEGORICAL
    t = files[0].peek_schema().field(plan.prediction).type
    return FeatureKind.BOOLEAN if pat.is_boolean(t) else FeatureKind.CATEGORICAL


def build_reference(
    paths: Sequence[str | Path],
    *,
    model: str,
    model_version: str = "",
    features: Iterable[str] | None = None,
    categorical: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    prediction_col: str | None = None,
    label_col: str | None = None,
    timestamp_col: str | None = None,
    id_col: str | None = None,
    progress_stream: TextIO | None = None,
    show_progress: bool | None = None,
    positive_class: str | None = None,
) -> ModelProfile:
    """Reference profile of ``model`` from CSV / Parquet / JSON Lines files.

    Kinds come from the first file's Arrow types (``categorical`` overrides); role
    columns are not features; the prediction column becomes the profile's
    ``prediction`` (numeric scores) or ``predicted_label`` (strings/booleans).
    Sketches use ``REFERENCE_K``. Raises ``InputError`` for unusable input.
    """
    if not model:
        raise InputError("the model name is empty; pass --model NAME")
    files = _open_all(paths)
    plan = plan_columns(
        files[0].peek_schema(),
        source=str(files[0].path),
        features=features,
        categorical=categorical,
        exclude=exclude,
        prediction=prediction_col,
        label=label_col,
        timestamp=timestamp_col,
        id_col=id_col,
    )
    _check_same_columns(files, plan)
    roles = dict(zip(ROLE_KEYS, (prediction_col, label_col, timestamp_col, id_col), strict=True))
    metadata: dict[str, Any] = {
        "role": "reference",
        "source": [f.path.name for f in files],
        **{k: v for k, v in roles.items() if v is not None},
    }
    if plan.skipped:
        metadata["skipped_columns"] = list(plan.skipped)
    profile = ModelProfile.new(
        model,
        model_version,
        plan.features,
        created_at=time.time(),
        k=REFERENCE_K,
        label_kind=_label_kind(plan, files),
        metadata=metadata,
    )
    total = sum(f.size_bytes for f in files)
    progress = Progress(total, stream=progress_stream, enabled=show_progress)
    feed_files(profile, files, plan, progress=progress)
    feed_joint(profile, files, plan)
    performance = reference_performance_meta(files, plan, positive_class)
    if performance is not None:  # --label-col: the baseline of the performance checks
        profile.metadata.update(performance)
    profile.learn_schema()
    return profile


def reference_kinds(reference: ModelProfile) -> dict[str, FeatureKind]:
    """Feature kinds a reference fixes: its recorded schema, else its features."""
    if reference.schema:
        return {name: s.kind for name, s in reference.schema.items()}
    return {name: f.kind for name, f in reference.features.items()}


def profile_like(
    reference: ModelProfile,
    paths: Sequence[str | Path],
    *,
    progress_stream: TextIO | None = None,
    show_progress: bool | None = None,
) -> ModelProfile:
    """Profile data files with the reference's features, kinds and role columns."""
    files = _open_all(paths)
    kinds = reference_kinds(reference)
    meta = reference.metadata
    plan = plan_for_kinds(
        files[0].peek_schema(),
        kinds,
        source=str(files[0].path),
        prediction=meta.get("prediction_col"),
        timestamp=meta.get("timestamp_col"),
    )
    _check_same_columns(files, plan)
    profile = ModelProfile.new(
        reference.model,
        reference.model_version,
        plan.features,
        created_at=time.time(),
        k=REFERENCE_K,
        label_kind=reference.label_kind,
        metadata={"role": "current", "source": [f.path.name for f in files]},
        bin_edges=reference.psi_edges(),  # exact current shares for PSI/JS
        joint_features=reference.joint_features(),
        joint_bounds=reference.joint_bounds(),  # co-moments clipped as the reference's
    )
    total = sum(f.size_bytes for f in files)
    progress = Progress(total, stream=progress_stream, enabled=show_progress)
    feed_files(profile, files, plan, progress=progress)
    return profile
