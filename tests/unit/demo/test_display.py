"""The demo's console output: alert and status lines, summary, TTY and plain modes."""

from __future__ import annotations

import io
from typing import Any

from streamproc.demo import display
from streamproc.demo.display import AlertTiming, Console, Status, Style
from streamproc.demo.run import alert_timings


def _alert(status: str, reason: str, severity: str, **kw: Any) -> dict[str, Any]:
    return {
        "fingerprint": kw.get("fingerprint", "fp1"),
        "status": status,
        "reason": reason,
        "severity": severity,
        "check": kw.get("check", "feature_drift"),
        "feature": kw.get("feature", "income"),
        "summary": kw.get("summary", "income drifted: PSI 2.4 > 0.25 over 9,000 events"),
    }


def test_alert_line_has_time_status_severity_check_feature_summary() -> None:
    line = display.format_alert(_alert("firing", "fired", "critical"), 0.0, 12.34)
    assert " +12.3s " in line
    fields = line.split()
    assert fields[2:6] == ["FIRING", "critical", "feature_drift", "income"]
    assert line.endswith("income drifted: PSI 2.4 > 0.25 over 9,000 events")
    assert "\x1b[" not in line


def test_alert_statuses_and_missing_feature() -> None:
    resolved = _alert("resolved", "resolved", "critical", check="staleness", feature=None)
    line = display.format_alert(resolved, 0.0, 1.0)
    assert line.split()[2:6] == ["RESOLVED", "critical", "staleness", "-"]
    assert display.alert_status(_alert("firing", "escalated", "critical")) == "ESCALATED"
    assert display.alert_status(_alert("firing", "renotify", "warning")) == "FIRING"


def test_colours_only_when_asked() -> None:
    coloured = display.format_alert(_alert("firing", "fired", "warning"), 0.0, 1.0, Style(True))
    assert "\x1b[31;1mFIRING" in coloured
    assert Style(False)("x", "red") == "x"


def test_status_line() -> None:
    s = Status(
        at=0.0,
        elapsed_s=42.0,
        phase="incident",
        produced_per_s=998.6,
        processed_per_s=1002.2,
        produced_total=42_000,
        processed_total=41_500,
        deadletters=3,
        firing=5,
    )
    line = display.format_status(s)
    for part in (" +42.0s ", "incident", "produced    999/s (42,000)", "1,002/s (41,500)"):
        assert part in line
    assert line.endswith("dead-letters 3  alerts firing 5")


def test_header_names_broker_topics_reference_and_metrics_url() -> None:
    header = display.Header(
        broker="127.0.0.1:9092",
        broker_note="started by the demo",
        topics={"predictions": "p (4 partitions)", "alerts": "a"},
        reference_path="/tmp/x/credit-risk.profile",
        metrics_url="http://localhost:9464/metrics",
        model="credit-risk",
        rate=1000,
        script_seconds=180,
        timings="windows 30 s",
    )
    text = "\n".join(display.format_header(header))
    for part in ("127.0.0.1:9092", "p (4 partitions)", "credit-risk.profile", ":9464/metrics"):
        assert part in text


def test_plain_console_prints_every_status_as_a_line() -> None:
    out = io.StringIO()
    console = Console(out, tty=False)
    console.status("status 1")
    console.line("alert")
    console.status("status 2")
    console.close()
    assert out.getvalue() == "status 1\nalert\nstatus 2\n"


def test_tty_console_redraws_the_status_line_in_place() -> None:
    out = io.StringIO()
    console = Console(out, tty=True)
    console.status("status 1")
    console.status("status 2")
    console.line("alert")
    console.close()
    text = out.getvalue()
    assert text == "\r\x1b[2Kstatus 1\r\x1b[2Kstatus 2\r\x1b[2Kalert\n"


def test_alert_timings_track_episodes_and_escalation() -> None:
    alerts = [
        (10.0, _alert("firing", "fired", "warning")),
        (11.0, _alert("firing", "escalated", "critical")),
        (12.0, _alert("firing", "fired", "critical", fingerprint="fp2", check="staleness")),
        (30.0, _alert("resolved", "resolved", "critical")),
        (40.0, _alert("firing", "fired", "warning")),
    ]
    timings = alert_timings(alerts)
    assert AlertTiming("feature_drift", "income", "critical", 10.0, 30.0) in timings
    assert AlertTiming("staleness", "income", "critical", 12.0, None) in timings
    assert AlertTiming("feature_drift", "income", "warning", 40.0, None) in timings
    assert len(timings) == 3


def test_summary_times_alerts_from_their_cause_and_the_recovery() -> None:
    timings = [
        AlertTiming("feature_drift", "income", "critical", 34.0, 118.0),
        AlertTiming("staleness", None, "critical", 98.0, 114.0),
        AlertTiming("slow_drift", "income", "critical", 60.0, None),
    ]
    lines = display.format_summary(
        timings,
        {"normal": 0, "incident": 30, "stall": 75, "recovery": 110},
        produced=145_000,
        processed=145_000,
        deadletters=0,
        producing_s=145.0,
        cause={"staleness": "stall"},
        horizon_s=60,
    )
    assert "produced 145,000 events (1,000/s while producing)" in lines[0]
    text = "\n".join(lines)
    assert "+34.0s (4.0s after incident)" in text
    assert "+98.0s (23.0s after stall)" in text
    assert "+118.0s (8.0s after recovery)" in text
    assert "still firing" in text and "rolling horizon" in text
