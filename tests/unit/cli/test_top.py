"""`streamproc top`'s view: decoded state records → models, windows, drift, alerts firing."""

from __future__ import annotations

import io

import numpy as np
import orjson
import pytest
from rich.console import Console

from streamproc.cli import top_view
from streamproc.cli.main import main
from streamproc.core.model_profile import ModelProfile
from streamproc.monitor.state_reader import StateSnapshot, WindowRow, decode_state
from streamproc.monitor.store import alert_record_key, window_record_key
from tests.support.state import T0, W, alert, window

FIRING = alert(
    "feature_drift",
    "credit",
    "7",
    "x",
    status="firing",
    severity="critical",
    history=(True, True),
    started_at_ms=T0 + W,
    last_window_end_ms=T0 + 2 * W,
)
RESOLVED = alert(
    "completeness", "credit", "7", "x", started_at_ms=T0, resolved_at_ms=T0 + W, history=(False,)
)
NEVER = alert("schema", "fraud", "2", None, history=(False,))


def _snapshot() -> tuple[StateSnapshot, dict[tuple[str, int], ModelProfile]]:
    windows = [
        window("credit", "7", T0, 120, final=True),
        window("credit", "7", T0 + W, 80),
        window("credit", "7", T0 + 2 * W, 30),
        window("fraud", "2", T0, 5),
    ]
    latest = {window_record_key(w.key): (0, w.to_bytes()) for w in windows}
    for a in (FIRING, RESOLVED, NEVER):
        latest[alert_record_key(a.fingerprint)] = (0, orjson.dumps(a.to_dict()))
    profiles = {(w.model, w.start_ms): w.profile for w in windows}
    return decode_state(latest), profiles


def _build(**kw: object) -> top_view.TopView:
    snapshot, _ = _snapshot()
    return top_view.build(snapshot, state_topic="p-state", alerts_topic="a", **kw)  # type: ignore[arg-type]


def test_models_latest_windows_and_alerts_firing() -> None:
    summary = {FIRING.fingerprint: {"summary": "x drifted: PSI 2.4 > 0.25"}}
    view = _build(latest_alerts=summary, windows=2)
    credit, fraud = view.models
    assert (credit.model, credit.versions, credit.total_windows) == ("credit", ["7"], 3)
    assert [w.rows for w in credit.windows] == [80, 30]
    assert [(a.check, msg) for a, msg in credit.firing] == [
        ("feature_drift", summary[FIRING.fingerprint])
    ]
    assert credit.drift_source == "alert states"
    assert [c.text() for c in credit.drift["x"]] == [
        "firing feature_drift critical",
        "resolved completeness",
    ]
    assert fraud.firing == [] and fraud.drift == {}  # never fired: not shown

    text = top_view.plain_text(view)
    assert "model credit  versions 7  windows 2 of 3  alerts firing 1" in text
    rows = [line.split() for line in text.splitlines() if line.startswith("    2024-")]
    assert [r[3] for r in rows] == ["80", "30", "5"]
    assert (
        "feature_drift  x        critical  2024-05-01T10:05:00Z  x drifted: PSI 2.4 > 0.25" in text
    )
    assert [m.model for m in _build(model="fraud").models] == ["fraud"]


def test_drift_against_a_reference_per_window() -> None:
    snapshot, profiles = _snapshot()
    reference = ModelProfile.build_reference("credit", "7", {"x": np.arange(100.0)})

    def profile_of(w: WindowRow) -> ModelProfile:
        return profiles[(w.model, w.start_ms)]

    view = top_view.build(
        snapshot,
        state_topic="p-state",
        alerts_topic="a",
        profile_of=profile_of,
        reference_of=lambda m, _v: reference if m == "credit" else None,
    )
    credit = view.models[0]
    assert credit.drift_source == "reference credit/7"
    cells = credit.drift["x"]
    assert len(cells) == 3 and {c.status for c in cells} == {"insufficient_data"}  # < 500 rows
    assert [c.detail.split()[0] for c in cells] == ["psi"] * 3
    text = top_view.plain_text(view)
    assert "drift per feature (reference credit/7)" in text
    assert "FEATURE  10:00:00" in text and "10:10:00" in text

    console = Console(record=True, width=140, file=io.StringIO())
    console.print(top_view.render(view, "12:00:00"))
    out = console.export_text()
    for part in (
        "model credit (versions 7, 3 windows)",
        "alerts firing (1)",
        "feature_drift",
        "80",
    ):
        assert part in out


def test_empty_state() -> None:
    view = top_view.build(StateSnapshot(), state_topic="s", alerts_topic="a")
    assert "no models in the state topic yet" in top_view.plain_text(view)


def test_bad_flags_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["top", "--once", "--interval", "0s"]) == 2
    assert "--interval must be positive" in capsys.readouterr().err
