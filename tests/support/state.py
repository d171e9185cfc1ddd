"""Real window and alert states for tests of what reads the state topic."""

from __future__ import annotations

from typing import Any

import numpy as np

from streamproc.checks.lifecycle import AlertState
from streamproc.checks.result import fingerprint
from streamproc.core.model_profile import ModelProfile
from streamproc.core.ops import new_ops_profile
from streamproc.monitor.state import WindowState

T0 = 1_714_557_600_000  # 2024-05-01T10:00:00Z
W = 300_000
"""Window size, ms."""


def window(model: str, version: str, start_ms: int, rows: int, **kw: Any) -> WindowState:
    """A window of ``rows`` rows of one numeric feature, starting at ``start_ms``."""
    profile = ModelProfile.build_reference(model, version, {"x": np.arange(float(rows))})
    return WindowState(
        model, version, start_ms, start_ms + W, profile, new_ops_profile(model, version), **kw
    )


def alert(check: str, model: str, version: str, feature: str | None, **kw: Any) -> AlertState:
    """The alert state of one fingerprint, with ``kw`` set."""
    fp = fingerprint(check, model, version, feature)
    return AlertState(fp, check, model, version, feature, **kw)
