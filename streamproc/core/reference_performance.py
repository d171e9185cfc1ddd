"""The reference's performance and calibration map, stored in its profile's metadata.

``ModelProfile.metadata["performance"]`` (JSON; readers that predate it ignore it, so
older profiles and older readers keep working):

    {"task": "classification" | "regression",
     "state": base64 of the accumulator's bytes (core.performance /
              core.regression_performance),
     "metrics": the derived metrics (for display and the checks),
     "calibration": CalibrationMap.to_meta() — binary classification with scores only}

Built by :func:`build` from the reference's label column and its prediction column
(scores and/or predicted labels), the same columns the offline reference build reads.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from streamproc.core.cbpe import CalibrationMap
from streamproc.core.errors import ProfileFormatError
from streamproc.core.performance import ClassificationPerformance
from streamproc.core.regression_performance import RegressionPerformance

KEY: Final = "performance"


@dataclass(frozen=True)
class ReferencePerformance:
    perf: ClassificationPerformance | RegressionPerformance
    calibration: CalibrationMap | None

    @property
    def metrics(self) -> dict[str, float | None]:
        return self.perf.metrics()

    def to_meta(self) -> dict[str, Any]:
        task = (
            "classification" if isinstance(self.perf, ClassificationPerformance) else "regression"
        )
        out: dict[str, Any] = {
            "task": task,
            "state": base64.b64encode(self.perf.to_bytes()).decode("ascii"),
            "metrics": self.metrics,
        }
        if self.calibration is not None:
            out["calibration"] = self.calibration.to_meta()
        return out

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> ReferencePerformance | None:
        """From a profile's metadata; None when it has none (older profiles)."""
        meta = metadata.get(KEY)
        if meta is None:
            return None
        try:
            raw = base64.b64decode(meta["state"], validate=True)
            perf: ClassificationPerformance | RegressionPerformance = (
                ClassificationPerformance.from_bytes(raw)
                if meta["task"] == "classification"
                else RegressionPerformance.from_bytes(raw)
            )
            cal = meta.get("calibration")
            return cls(perf, None if cal is None else CalibrationMap.from_meta(cal))
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileFormatError(f"reference performance: corrupt ({exc})") from exc


def build(
    labels: Sequence[Any],
    *,
    scores: np.ndarray | None = None,
    predicted: Sequence[Any] | None = None,
    positive: str | None = None,
    regression: bool = False,
    threshold: float = 0.5,
) -> ReferencePerformance:
    """Reference performance from the label column and the prediction column(s)."""
    if regression:
        reg = RegressionPerformance()
        reg.update(labels, scores if scores is not None else predicted)
        return ReferencePerformance(reg, None)
    perf = ClassificationPerformance(positive=positive, threshold=threshold)
    perf.update(labels, predicted, scores)
    cal = None
    if positive is not None and perf.n_scored:
        cal = CalibrationMap.fit(perf.score_pos, perf.score_neg)
    return ReferencePerformance(perf, cal)
