"""The demo's live view: the model fed by session events, rendered at a fixed width."""

from __future__ import annotations

import dataclasses
import io
from typing import Any

from rich.console import Console as RichConsole

from streamproc.demo import live
from streamproc.demo.display import Header, Status
from streamproc.demo.script import FAST
from streamproc.demo.terminal import LiveConsole

HEADER = Header(
    broker="127.0.0.1:9092",
    broker_note="started by the demo",
    topics={"predictions": "p"},
    reference_path="/tmp/credit-risk.profile",
    metrics_url="http://localhost:9464/metrics",
    model="credit-risk",
    rate=1000,
    script_seconds=FAST.seconds,
    timings="windows 10 s",
)
SCRIPT = dataclasses.replace(FAST, phases=tuple(p for p in FAST.phases if not p.concept_drift))
"""FAST without its concept drift: normal 10 s, incident, stall, recovery."""


def _status(elapsed: float, processed_per_s: float, firing: int = 0) -> Status:
    return Status(
        at=0.0,
        elapsed_s=elapsed,
        phase="incident",
        produced_per_s=1000.0,
        processed_per_s=processed_per_s,
        produced_total=int(elapsed * 1000),
        processed_total=int(elapsed * 990),
        deadletters=0,
        firing=firing,
    )


def _alert(status: str, fp: str = "fp1", **kw: Any) -> dict[str, Any]:
    return {
        "fingerprint": fp,
        "status": status,
        "reason": "resolved" if status == "resolved" else "fired",
        "severity": "critical",
        "check": kw.get("check", "feature_drift"),
        "feature": kw.get("feature", "income"),
        "statistic": "psi",
        "value": 2.4123,
        "threshold": 0.25,
    }


def _text(renderable: Any, width: int = 140) -> str:
    console = RichConsole(record=True, width=width, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def test_sparkline_scales_to_the_maximum_and_shows_gaps() -> None:
    assert live.sparkline([0, 50, 100], width=5) == "   ▅█"
    assert live.sparkline([], width=3) == "   "
    assert len(live.sparkline(range(200))) == live.HISTORY_S


def test_model_tracks_alert_states_and_episodes() -> None:
    model = live.LiveModel(SCRIPT)
    model.on_alert(_alert("firing"), 12.0)
    model.on_alert(_alert("firing"), 14.0)  # a re-notification: same episode
    model.on_alert(_alert("firing", "fp2", check="staleness", feature=None), 30.0)
    assert model.firing == 2
    model.on_alert(_alert("resolved"), 40.0)
    view = model.alerts["fp1"]
    assert (view.state, view.fired_s, view.since_s) == ("RESOLVED", 12.0, 40.0)
    assert [(e.check, e.fired_s, e.resolved_s) for e in model.episodes] == [
        ("feature_drift", 12.0, 40.0),
        ("staleness", 30.0, None),
    ]
    assert model.firing == 1


def test_render_shows_header_throughput_alerts_and_timeline() -> None:
    model = live.LiveModel(SCRIPT)
    model.on_header(HEADER)
    model.on_phase(1)
    for t in range(1, 15):
        model.on_status(_status(float(t), 0.0 if t == 5 else 1000.0))
    model.on_alert(_alert("firing"), 12.5)
    model.on_alert(_alert("resolved", "fp3", feature="channel", check="cardinality"), 13.0)
    text = _text(live.render(model))
    lines = text.splitlines()
    assert "model credit-risk" in text and "broker 127.0.0.1:9092" in text
    assert "+14s of 56s" in text and "phase 2/4 incident" in text
    assert "processed 1,000/s (13,860)" in text and "alerts firing 1" in text
    spark = next(line for line in lines if line.startswith("events/s"))
    assert "████ █████████]" in spark  # the zero second is a gap
    firing = next(line for line in lines if "FIRING" in line)
    for part in ("feature_drift", "income", "critical", "psi 2.41 vs 0.25", "+12.5s (2s ago)"):
        assert part in firing
    assert lines.index(firing) < next(i for i, x in enumerate(lines) if "RESOLVED" in x)
    incident = next(i for i, x in enumerate(lines) if "▶" in x and "incident" in x)
    assert "▲ fired 2.5s into incident: feature_drift income" in lines[incident + 1]
    assert "✓" in next(x for x in lines if " normal " in x)
    assert "summary" not in text


def test_summary_marks_every_phase_done() -> None:
    model = live.LiveModel(SCRIPT)
    model.on_alert(_alert("firing"), 12.5)
    model.on_alert(_alert("firing", "fp2", feature="channel"), 12.9)  # one group with fp1
    model.on_alert(_alert("resolved"), 40.0)
    model.on_summary(["Summary: produced 40,000 events"])
    text = _text(live.render(model))
    assert "finished" in text and "Summary: produced 40,000 events" in text
    assert "▼ resolved 4.0s into recovery: feature_drift income" in text
    assert "▲ fired 2.5s into incident: feature_drift income, feature_drift channel" in text
    assert "▶" not in text and text.count("✓") == 1  # it ended in the first phase


def test_live_console_draws_in_place_and_leaves_the_final_frame() -> None:
    out = io.StringIO()
    console = LiveConsole(out, width=120)
    console.line("starting a local broker")
    console.show_header(HEADER, FAST)
    console.show_phase(0, "phase 1/4 normal", FAST.phases[0], 0.0)
    console.show_status(_status(1.0, 1000.0))
    console.show_alert(_alert("firing"), 0.0, 1.5)
    console.close()
    console.show_summary(["Summary: produced 1,000 events"], [])
    console.finish()  # idempotent
    text = out.getvalue()
    assert text.startswith("starting a local broker")
    assert "Summary: produced 1,000 events" in text and "feature_drift" in text
    assert console.live is None and console.model is not None and console.model.finished


def test_timeline_shows_the_concept_drift_and_its_performance_alert() -> None:
    model = live.LiveModel(FAST)
    model.on_phase(1)
    drift = FAST.start_of("concept_drift")
    alert = _alert("firing", "fp9", check="performance_drop", feature=None)
    model.on_alert(alert, drift + 21.0)
    lines = _text(live.render(model)).splitlines()
    row = next(i for i, x in enumerate(lines) if "▶" in x and "concept_drift" in x)
    assert "outcome flips for 40%" in lines[row]
    assert "▲ fired 21.0s into concept_drift: performance_drop" in lines[row + 1]
