"""The stable JSON document ``streamproc drift --format json`` prints.

Documented field by field in ``docs/DRIFT_JSON.md``. ``format_version`` changes
only when a field is removed or changes meaning; new fields may be added.
"""

from __future__ import annotations

from typing import Any

from streamproc.core.drift import DriftReport
from streamproc.core.model_profile import ModelProfile

DRIFT_JSON_FORMAT_VERSION = 1

STATUS_RANK = {"insufficient_data": 0, "ok": 1, "warning": 2, "critical": 3}


def _sources(profile: ModelProfile) -> list[str]:
    src = profile.metadata.get("source")
    if isinstance(src, list):
        return [str(s) for s in src]
    return [str(src)] if src else []


def drift_json(
    report: DriftReport,
    reference: ModelProfile,
    current: ModelProfile,
    *,
    fail_on: str | None = None,
) -> dict[str, Any]:
    """The drift report as a JSON-able dict (see docs/DRIFT_JSON.md)."""
    core = report.to_dict()
    failed = fail_on is not None and STATUS_RANK[report.status] >= STATUS_RANK[fail_on]
    return {
        "format_version": DRIFT_JSON_FORMAT_VERSION,
        "model": core["model"],
        "model_version": reference.model_version,
        "n_reference": core["n_reference"],
        "n_current": core["n_current"],
        "reference_source": _sources(reference),
        "current_source": _sources(current),
        "status": core["status"],
        "fail_on": fail_on,
        "failed": failed,
        "drifted_features": core["drifted_features"],
        "features": core["features"],
    }


def exit_code_for(status: str, fail_on: str | None) -> int:
    """1 when ``status`` reaches ``fail_on`` ("warning" or "critical"), else 0."""
    if fail_on is None:
        return 0
    return 1 if STATUS_RANK[status] >= STATUS_RANK[fail_on] else 0
