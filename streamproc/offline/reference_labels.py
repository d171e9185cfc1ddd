"""The reference's performance: a pass over its label and prediction columns.

``reference build --label-col COL [--positive-class V]`` stores the realized
performance of the reference data (a validation set) in the profile's metadata
(:mod:`streamproc.core.reference_performance`), the baseline of the worker's
performance checks. The task: binary classification with ``--positive-class`` (the
score is P(positive); a string/boolean prediction column is the predicted label);
regression for a numeric score with a numeric label and no positive class; multiclass
for a predicted-label column without one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.types as pat

from streamproc.core.cbpe import CalibrationMap
from streamproc.core.performance import ClassificationPerformance
from streamproc.core.reference_performance import KEY, ReferencePerformance
from streamproc.core.regression_performance import RegressionPerformance
from streamproc.offline.errors import InputError
from streamproc.offline.plan import ColumnPlan, PredictionKind
from streamproc.offline.readers import DataFile


def reference_performance_meta(
    files: Sequence[DataFile], plan: ColumnPlan, positive: str | None
) -> dict[str, Any] | None:
    """``metadata["performance"]`` of the reference; None without both a label and a
    prediction column."""
    if plan.label is None or plan.prediction is None:
        return None  # performance judges predictions: a label column alone is left out
    label_type = files[0].peek_schema().field(plan.label).type
    score = plan.prediction_kind is PredictionKind.SCORE
    perf: ClassificationPerformance | RegressionPerformance
    if score and positive is None:
        if not (pat.is_integer(label_type) or pat.is_floating(label_type)):
            raise InputError("a score prediction with a non-numeric label: pass --positive-class V")
        perf = RegressionPerformance()
    else:
        perf = ClassificationPerformance(positive=positive)
    names = [plan.label, plan.prediction]
    types = {n: t for n, t in (plan.read_types or {}).items() if n in names}
    for data in files:
        for batch in data.batches(names, types):
            labels = _values(batch.column(plan.label))
            pred = batch.column(plan.prediction)
            if isinstance(perf, RegressionPerformance):
                perf.update(labels, _floats(pred))
            elif score:
                perf.update(labels, None, _floats(pred))
            else:
                perf.update(labels, _values(pred))
    cal = None
    if isinstance(perf, ClassificationPerformance) and perf.binary and perf.n_scored:
        cal = CalibrationMap.fit(perf.score_pos, perf.score_neg)
    return {KEY: ReferencePerformance(perf, cal).to_meta()}


def _values(column: pa.Array | pa.ChunkedArray) -> list[Any]:
    return column.to_pylist()


def _floats(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in column.to_pylist()])
