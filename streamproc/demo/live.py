"""The demo's live terminal view: a model of what happened, and its rendering with rich.

Pure: :class:`LiveModel` is fed the session's events (header, phase, status, alert,
summary) and :func:`render` turns it into a rich renderable — a header (model, broker,
elapsed time, phase of the scripted incident), a throughput sparkline (events/s over
the last minute), the alerts by state (firing first), the incident timeline (each phase
and when each alert fired after that phase's start) and, at the end, the summary.
:mod:`streamproc.demo.terminal` draws it in place; tests render it to a recording
console of fixed width.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from streamproc.demo.display import AlertTiming, Header, Status, alert_status, rate_text
from streamproc.demo.script import Script

SPARK: Final = "▁▂▃▄▅▆▇█"
HISTORY_S: Final = 60
"""Seconds of throughput the sparkline shows (one sample per status, once a second)."""
MAX_ALERT_ROWS: Final = 12


def sparkline(values: Sequence[float], width: int = HISTORY_S) -> str:
    """The last ``width`` values as block characters scaled to their maximum; zero is a
    blank (a stall shows as a gap), the string is left-padded to ``width``."""
    tail = list(values)[-width:]
    top = max(tail, default=0.0)
    chars = []
    for v in tail:
        if v <= 0 or top <= 0:
            chars.append(" ")
        else:
            chars.append(SPARK[min(len(SPARK) - 1, int(v / top * (len(SPARK) - 1) + 0.5))])
    return "".join(chars).rjust(width)


def _number(v: Any) -> str:
    if not isinstance(v, int | float):
        return "-"
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


@dataclass
class AlertView:
    """One alert (by fingerprint) as the table shows it."""

    check: str
    feature: str | None
    severity: str
    state: str
    """FIRING, ESCALATED or RESOLVED."""
    statistic: str | None
    value: Any
    threshold: Any
    fired_s: float
    """When this episode fired, seconds after the script start."""
    since_s: float
    """When it entered ``state``."""


@dataclass
class Episode:
    """One alert from firing to resolved, seconds after the script start."""

    fingerprint: str
    check: str
    feature: str | None
    fired_s: float
    resolved_s: float | None = None


@dataclass
class LiveModel:
    """Everything the live view shows, updated by the ``on_*`` methods."""

    script: Script
    header: Header | None = None
    elapsed_s: float = 0.0
    phase_index: int = 0
    last: Status | None = None
    rates: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY_S))
    alerts: dict[str, AlertView] = field(default_factory=dict)
    episodes: list[Episode] = field(default_factory=list)
    """Every firing episode, in firing order."""
    summary: list[str] | None = None
    finished: bool = False

    def on_header(self, header: Header) -> None:
        self.header = header

    def on_phase(self, index: int) -> None:
        self.phase_index = index

    def on_status(self, status: Status) -> None:
        self.last = status
        self.elapsed_s = status.elapsed_s
        self.rates.append(status.processed_per_s)

    def on_alert(self, alert: Mapping[str, Any], elapsed_s: float) -> None:
        fp = str(alert.get("fingerprint"))
        state = alert_status(alert)
        known = self.alerts.get(fp)
        opened = known is not None and known.state != "RESOLVED"
        check, feature = str(alert.get("check", "?")), alert.get("feature")
        if state != "RESOLVED" and not opened:
            self.episodes.append(Episode(fp, check, feature, elapsed_s))
        if state == "RESOLVED" and opened:
            for ep in reversed(self.episodes):
                if ep.fingerprint == fp and ep.resolved_s is None:
                    ep.resolved_s = elapsed_s
                    break
        self.alerts[fp] = AlertView(
            check=check,
            feature=feature,
            severity=str(alert.get("severity") or "-"),
            state=state,
            statistic=alert.get("statistic"),
            value=alert.get("value"),
            threshold=alert.get("threshold"),
            fired_s=known.fired_s if opened and known is not None else elapsed_s,
            since_s=known.since_s if known is not None and known.state == state else elapsed_s,
        )

    def on_summary(self, lines: Sequence[str], timings: Sequence[AlertTiming] = ()) -> None:
        self.summary = list(lines)
        self.finished = True

    @property
    def firing(self) -> int:
        return sum(1 for a in self.alerts.values() if a.state != "RESOLVED")


# ----------------------------------------------------------------------------- render


def _phase_label(model: LiveModel) -> str:
    phases, i = model.script.phases, model.phase_index
    if model.finished:
        return "finished"
    if i >= len(phases):
        return "after the script"
    return f"phase {i + 1}/{len(phases)} {phases[i].name}: {phases[i].title}"


def render_header(model: LiveModel) -> RenderableType:
    h = model.header
    text = Text()
    text.append("streamproc demo", style="bold")
    if h is not None:
        text.append(f"  model {h.model}", style="bold cyan")
        text.append(f"  {rate_text(h.rate)}  broker {h.broker} ({h.broker_note})")
    text.append("\n")
    total = model.script.seconds
    text.append(f"+{model.elapsed_s:.0f}s of {total:.0f}s  ", style="bold")
    text.append(_phase_label(model), style="yellow" if model.phase_index else "green")
    if h is not None:
        text.append(f"\nmetrics {h.metrics_url}  reference {h.reference_path}", style="dim")
    return Panel(text, border_style="blue")


def render_throughput(model: LiveModel) -> RenderableType:
    s = model.last
    text = Text("events/s ", style="bold")
    text.append(f"[{sparkline(model.rates)}]", style="cyan")
    text.append(" last 60 s\n")
    if s is None:
        text.append("waiting for the first second of traffic", style="dim")
        return text
    text.append(f"produced {rate_text(s.produced_per_s)} ({s.produced_total:,})  ")
    text.append(f"processed {rate_text(s.processed_per_s)} ({s.processed_total:,})  ")
    text.append(f"dead-letters {s.deadletters:,}  ")
    firing = model.firing
    text.append(f"alerts firing {firing}", style="bold red" if firing else "green")
    return text


def render_alerts(model: LiveModel) -> RenderableType:
    table = Table(title="alerts", title_justify="left", expand=False, show_edge=False)
    for name in ("state", "check", "feature", "severity", "value vs threshold", "since"):
        table.add_column(name, no_wrap=True)
    order = sorted(
        model.alerts.values(), key=lambda a: (a.state == "RESOLVED", -a.since_s, a.check)
    )
    for a in order[:MAX_ALERT_ROWS]:
        colour = "green" if a.state == "RESOLVED" else "red"
        vs = f"{a.statistic or 'value'} {_number(a.value)} vs {_number(a.threshold)}"
        ago = max(0.0, model.elapsed_s - a.since_s)
        table.add_row(
            Text(a.state, style=f"bold {colour}"),
            a.check,
            a.feature or "-",
            Text(a.severity, style="yellow" if a.severity == "warning" else colour),
            vs,
            f"+{a.since_s:.1f}s ({ago:.0f}s ago)",
        )
    if len(order) > MAX_ALERT_ROWS:
        table.add_row("", f"… {len(order) - MAX_ALERT_ROWS} more", "", "", "", "")
    if not order:
        table.add_row(Text("no alerts yet", style="dim"), "", "", "", "", "")
    return table


def _groups(model: LiveModel, start: float, end: float) -> list[tuple[float, bool, list[str]]]:
    """(time, fired?, alert names) of the alerts that fired or resolved in [start, end),
    those of one kind less than a second apart in one group."""
    events: list[tuple[float, bool, str]] = []
    for ep in model.episodes:
        name = f"{ep.check} {ep.feature}" if ep.feature else ep.check
        events.append((ep.fired_s, True, name))
        if ep.resolved_s is not None:
            events.append((ep.resolved_s, False, name))
    groups: list[tuple[float, bool, list[str]]] = []
    for t, fired, name in sorted(events, key=lambda e: (not e[1], e[0])):
        if not start <= t < end:
            continue
        same = [g for g in groups if g[1] == fired and t - g[0] < 1.0]
        if same:
            same[-1][2].append(name)
        else:
            groups.append((t, fired, [name]))
    return sorted(groups, key=lambda g: g[0])


def render_timeline(model: LiveModel) -> RenderableType:
    script = model.script
    table = Table(title="incident timeline", title_justify="left", show_edge=False)
    for name in ("", "phase", "starts", "length", "what happens / alerts"):
        table.add_column(name, no_wrap=name != "what happens / alerts")
    starts = script.starts()
    for i, (phase, start) in enumerate(zip(script.phases, starts, strict=True)):
        current = i == model.phase_index
        done = i < model.phase_index or (model.finished and current)
        mark = "✓" if done else ("▶" if current else " ")
        style = "bold" if current and not model.finished else None
        length = f"{phase.seconds:.0f}s"
        table.add_row(mark, phase.name, f"+{start:.0f}s", length, phase.title, style=style)
        end = float("inf") if i == len(starts) - 1 else start + phase.seconds
        for t, fired, names in _groups(model, start, end):
            verb, sign, colour = ("fired", "▲", "red") if fired else ("resolved", "▼", "green")
            what = Text(f"{sign} {verb} {t - start:.1f}s into {phase.name}: ", style=colour)
            what.append(", ".join(names))
            table.add_row("", "", f"+{t:.1f}s", "", what)
    return table


def render(model: LiveModel) -> RenderableType:
    """The whole view."""
    parts: list[RenderableType] = [
        render_header(model),
        render_throughput(model),
        Text(),
        render_alerts(model),
        Text(),
        render_timeline(model),
    ]
    if model.summary is not None:
        parts += [
            Text(),
            Panel(Text("\n".join(model.summary)), title="summary", title_align="left"),
        ]
    return Group(*parts)
