"""What the demo prints: a header, a status line per second, a line per alert, a summary.

Formatting is pure (strings in, strings out) so it is tested without a terminal.
:class:`Console` writes them: on a TTY the status line is redrawn in place and alerts
are coloured; otherwise every line is plain text, one per line (logs, CI, ``| tee``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TextIO

from streamproc.demo.script import Phase, Script

_CODES: Final = {"red": "31", "green": "32", "yellow": "33", "cyan": "36", "bold": "1", "dim": "2"}


@dataclass(frozen=True)
class Style:
    """ANSI colours when ``color`` is set, plain text otherwise."""

    color: bool = False

    def __call__(self, text: str, *styles: str) -> str:
        if not self.color or not styles:
            return text
        codes = ";".join(_CODES[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"


PLAIN: Final = Style(False)


def clock_text(epoch_s: float) -> str:
    """Local wall-clock time ``HH:MM:SS``."""
    return time.strftime("%H:%M:%S", time.localtime(epoch_s))


def elapsed_text(seconds: float) -> str:
    """Seconds since the script start, one token, right-aligned: ``" +12.3s"``."""
    return f"{f'+{seconds:.1f}s':>7}"


def rate_text(per_s: float) -> str:
    return f"{per_s:,.0f}/s"


@dataclass(frozen=True)
class Header:
    broker: str
    broker_note: str
    topics: Mapping[str, str]
    reference_path: str
    metrics_url: str
    model: str
    rate: float
    script_seconds: float
    timings: str


def format_header(h: Header, style: Style = PLAIN) -> list[str]:
    """The lines printed once the worker runs, before any traffic."""
    width = max(len(k) for k in h.topics)
    lines = [
        style("streamproc demo", "bold") + f" — model {h.model}, {rate_text(h.rate)}, "
        f"scripted incident over {h.script_seconds:.0f} s",
        f"  broker     {h.broker}  ({h.broker_note})",
        "  topics",
        *(f"    {k:<{width}}  {v}" for k, v in h.topics.items()),
        f"  reference  {h.reference_path}",
        f"  metrics    {h.metrics_url}",
        f"  worker     {h.timings}",
    ]
    return lines


def format_phase(label: str, seconds: float, title: str, at: float) -> str:
    """A permanent line when a phase begins, e.g. ``── phase 2/4 incident, 45 s: …``."""
    length = "" if seconds == float("inf") else f", {seconds:.0f} s"
    return f"{clock_text(at)} ── {label}{length}: {title}"


@dataclass(frozen=True)
class Status:
    at: float
    elapsed_s: float
    phase: str
    produced_per_s: float
    processed_per_s: float
    produced_total: int
    processed_total: int
    deadletters: int
    firing: int


def format_status(s: Status, style: Style = PLAIN) -> str:
    """The once-per-second status line."""
    firing = f"alerts firing {s.firing}"
    if s.firing:
        firing = style(firing, "red", "bold")
    return (
        f"{clock_text(s.at)} {elapsed_text(s.elapsed_s)}  {s.phase:<9} "
        f"produced {rate_text(s.produced_per_s):>8} ({s.produced_total:,})  "
        f"processed {rate_text(s.processed_per_s):>8} ({s.processed_total:,})  "
        f"dead-letters {s.deadletters:,}  {firing}"
    )


def alert_status(alert: Mapping[str, Any]) -> str:
    """FIRING, ESCALATED or RESOLVED (re-notifications read as FIRING)."""
    if alert.get("status") == "resolved":
        return "RESOLVED"
    return "ESCALATED" if alert.get("reason") == "escalated" else "FIRING"


def format_alert(
    alert: Mapping[str, Any], at: float, elapsed_s: float, style: Style = PLAIN
) -> str:
    """One alert message: time, status, severity, check, feature, summary."""
    status = alert_status(alert)
    colour = "green" if status == "RESOLVED" else "red"
    severity = str(alert.get("severity") or "-")
    feature = alert.get("feature") or "-"
    return (
        f"{clock_text(at)} {elapsed_text(elapsed_s)}  {style(f'{status:<9}', colour, 'bold')} "
        f"{style(f'{severity:<8}', 'yellow' if severity == 'warning' else colour)} "
        f"{alert.get('check', '?'):<17} {feature:<22} {alert.get('summary', '')}"
    )


@dataclass(frozen=True)
class AlertTiming:
    """When an alert fired and resolved, seconds after the script start."""

    check: str
    feature: str | None
    severity: str
    fired_s: float
    resolved_s: float | None = None


def format_summary(
    timings: Sequence[AlertTiming],
    phase_starts: Mapping[str, float],
    *,
    produced: int,
    processed: int,
    deadletters: int,
    producing_s: float,
    cause: Mapping[str, str],
    horizon_s: float,
    labels: tuple[int, int] | None = None,
) -> list[str]:
    """The closing summary: volumes, then one line per alert episode: when it fired,
    also after the start of the phase that caused it (``cause[check]``, default
    ``incident``), and when it resolved, also after the start of ``recovery``;
    ``labels``: (label events produced, labels joined to their prediction)."""
    rate = produced / producing_s if producing_s > 0 else 0.0
    lines = [
        f"Summary: produced {produced:,} events ({rate_text(rate)} while producing), "
        f"the worker processed {processed:,}, dead-letters {deadletters:,}",
    ]
    if labels is not None:
        lines.append(f"  labels: produced {labels[0]:,}, joined to their prediction {labels[1]:,}")
    if not timings:
        return [*lines, "  no alerts"]
    lines.append(f"  {'check':<17} {'feature':<22} {'severity':<8}  {'fired':<35}  resolved")
    recovery = phase_starts.get("recovery")
    still_slow = False
    for t in sorted(timings, key=lambda t: t.fired_s):
        phase = cause.get(t.check, "incident")
        start = phase_starts.get(phase)
        fired = f"+{t.fired_s:.1f}s"
        if start is not None:
            fired += f" ({t.fired_s - start:.1f}s after {phase})"
        if t.resolved_s is None:
            resolved = "still firing"
            still_slow = still_slow or t.check == "slow_drift"
        else:
            resolved = f"+{t.resolved_s:.1f}s"
            if recovery is not None and t.resolved_s >= recovery:
                resolved += f" ({t.resolved_s - recovery:.1f}s after recovery)"
        lines.append(
            f"  {t.check:<17} {t.feature or '-':<22} {t.severity:<8}  {fired:<35}  {resolved}"
        )
    if still_slow:
        lines.append(
            f"  (slow_drift judges the rolling horizon of closed windows, {horizon_s:g} s: "
            "it resolves once the incident has left it; run longer with --duration)"
        )
    return lines


class Console:
    """Writes lines; on a TTY keeps one status line at the bottom, redrawn in place."""

    def __init__(self, stream: TextIO, tty: bool | None = None) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.style = Style(self.tty)
        self._status_shown = False

    def line(self, text: str = "") -> None:
        if self._status_shown:
            self.stream.write("\r\x1b[2K")
            self._status_shown = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def status(self, text: str) -> None:
        if not self.tty:
            self.line(text)
            return
        self.stream.write("\r\x1b[2K" + text)
        self.stream.flush()
        self._status_shown = True

    def close(self) -> None:
        if self._status_shown:
            self.stream.write("\n")
            self.stream.flush()
            self._status_shown = False

    # What the session reports; a live view (:class:`streamproc.demo.terminal.LiveConsole`)
    # overrides these, this console prints them as lines.

    def show_header(self, header: Header, script: Script) -> None:
        for text in format_header(header, self.style):
            self.line(text)

    def show_phase(self, index: int, label: str, phase: Phase, at: float) -> None:
        self.line(format_phase(label, phase.seconds, phase.title, at))

    def show_status(self, status: Status) -> None:
        self.status(format_status(status, self.style))

    def show_alert(self, alert: Mapping[str, Any], at: float, elapsed_s: float) -> None:
        self.line(format_alert(alert, at, elapsed_s, self.style))

    def show_summary(self, lines: Sequence[str], timings: Sequence[AlertTiming]) -> None:
        self.line()
        for text in lines:
            self.line(text)

    def finish(self) -> None:
        """The demo is over (however it ended)."""
        self.close()
