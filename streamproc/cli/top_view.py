"""What ``streamproc top`` shows, from what it read: pure, tested without a broker.

:func:`build` turns the decoded state topic (:class:`StateSnapshot`), the windows'
profiles, the references and the alerts topic's latest messages into a :class:`TopView`
— per model its latest windows (start, end, rows, final or open), the drift of each
feature in each of those windows (with a reference: :func:`compare_profiles` of the
window's profile against it; without: the feature's alert states), and the alerts
firing. :func:`plain_text` prints it for scripts (``--once``); :func:`render` is the
rich view that ``top`` redraws.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from streamproc.checks.alerts import rfc3339
from streamproc.core.drift import compare_profiles
from streamproc.core.model_profile import ModelProfile
from streamproc.core.thresholds import DEFAULT_THRESHOLDS, Thresholds
from streamproc.monitor.state_reader import AlertRow, StateSnapshot, WindowRow

STATUS_STYLE = {
    "critical": "bold red",
    "warning": "yellow",
    "firing": "bold red",
    "ok": "green",
    "resolved": "green",
}


@dataclass(frozen=True)
class Cell:
    """One feature in one window: a status and the statistic that says most."""

    status: str
    detail: str = ""

    def text(self) -> str:
        return f"{self.status} {self.detail}".strip()


@dataclass
class ModelView:
    model: str
    versions: list[str]
    windows: list[WindowRow]
    """The latest windows, oldest first."""
    total_windows: int
    drift_source: str
    """``reference <model>/<version>`` or ``alert states``."""
    drift: dict[str, list[Cell]]
    """Feature → one cell per window (with a reference) or one cell (alert states)."""
    firing: list[tuple[AlertRow, Mapping[str, Any] | None]]
    """Alert states firing, with the alerts topic's latest message for each if read."""


@dataclass
class TopView:
    state_topic: str
    alerts_topic: str
    models: list[ModelView] = field(default_factory=list)
    unreadable: int = 0


def _window_cells(
    reference: ModelProfile, profile: ModelProfile, thresholds: Thresholds
) -> dict[str, Cell]:
    report = compare_profiles(reference, profile, thresholds)
    out: dict[str, Cell] = {}
    for name, f in report.features.items():
        if f.breaches:
            worst = max(f.breaches, key=lambda b: b.value / b.threshold if b.threshold else 0)
            out[name] = Cell(f.status, f"{worst.statistic} {worst.value:.3g}")
        else:
            stat = next((k for k in ("psi", "js") if f.statistics.get(k) is not None), None)
            value = f.statistics.get(stat) if stat else None
            out[name] = Cell(f.status, f"{stat} {value:.3g}" if stat and value is not None else "")
    return out


def _alert_cells(alerts: Iterable[AlertRow]) -> dict[str, list[Cell]]:
    """Feature (``(model)`` for model-level checks) → its checks' states, firing first."""
    by: dict[str, list[AlertRow]] = {}
    for a in alerts:
        if a.started_at_ms is not None:
            by.setdefault(a.feature or "(model)", []).append(a)
    return {
        name: [
            Cell(a.status, f"{a.check}" + (f" {a.severity}" if a.status == "firing" else ""))
            for a in sorted(rows, key=lambda a: (a.status != "firing", a.check))
        ]
        for name, rows in sorted(by.items())
    }


def build(
    snapshot: StateSnapshot,
    *,
    state_topic: str,
    alerts_topic: str,
    profile_of: Callable[[WindowRow], ModelProfile | None] = lambda _w: None,
    reference_of: Callable[[str, str], ModelProfile | None] = lambda _m, _v: None,
    thresholds_of: Callable[[str], Thresholds] | None = None,
    latest_alerts: Mapping[str, Mapping[str, Any]] | None = None,
    model: str | None = None,
    windows: int = 3,
) -> TopView:
    """The view of ``snapshot``: the latest ``windows`` windows of each model (all
    versions, by start), drift per feature, alerts firing (``latest_alerts``: the
    alerts topic's latest message by fingerprint)."""
    latest_alerts = latest_alerts or {}
    view = TopView(state_topic, alerts_topic, unreadable=len(snapshot.unreadable))
    names = sorted({w.model for w in snapshot.windows} | {a.model for a in snapshot.alerts})
    for name in names:
        if model is not None and name != model:
            continue
        all_windows = sorted(
            (w for w in snapshot.windows if w.model == name),
            key=lambda w: (w.start_ms, w.model_version),
        )
        shown = all_windows[-windows:] if windows > 0 else []
        alerts = [a for a in snapshot.alerts if a.model == name]
        seen = {w.model_version for w in all_windows} | {a.model_version for a in alerts}
        versions = sorted(seen - {"*"})  # "*": an alert over every version
        reference = reference_of(name, shown[-1].model_version) if shown else None
        drift: dict[str, list[Cell]] = {}
        if reference is not None:
            thresholds = thresholds_of(name) if thresholds_of else DEFAULT_THRESHOLDS
            source = f"reference {reference.model}/{reference.model_version}"
            for i, w in enumerate(shown):
                profile = profile_of(w)
                if profile is None:
                    continue
                cells = _window_cells(reference, profile, thresholds)
                for feature, cell in cells.items():
                    drift.setdefault(feature, [Cell("-")] * len(shown))[i] = cell
        else:
            source = "alert states"
            drift = _alert_cells(alerts)
        firing = [
            (a, latest_alerts.get(a.fingerprint))
            for a in alerts
            if a.status == "firing" and a.started_at_ms is not None
        ]
        firing.sort(key=lambda x: (x[0].started_at_ms or 0, x[0].check))
        view.models.append(
            ModelView(name, versions, shown, len(all_windows), source, drift, firing)
        )
    return view


# ----------------------------------------------------------------------------- text


def _columns(rows: list[list[str]], indent: str = "    ", right: Iterable[int] = ()) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        out.append((indent + "  ".join(cells)).rstrip())
    return out


def _short(ms: int) -> str:
    """``2024-05-01T10:05:00Z`` → ``10:05:00``."""
    return rfc3339(ms)[11:].removesuffix("Z")


def _drift_header(m: ModelView) -> list[str]:
    if m.drift_source == "alert states":
        return ["FEATURE", "ALERT STATES"]
    return ["FEATURE", *(_short(w.start_ms) for w in m.windows)]


def _firing_row(a: AlertRow, msg: Mapping[str, Any] | None) -> list[str]:
    summary = str(msg.get("summary", "")) if msg else ""
    since = rfc3339(a.started_at_ms) if a.started_at_ms is not None else "-"
    return [a.check, a.feature or "-", a.severity or "-", since, summary]


def plain_text(view: TopView) -> str:
    """The whole view as plain aligned text."""
    lines = [f"streamproc top: state {view.state_topic}, alerts {view.alerts_topic}"]
    if not view.models:
        lines.append("no models in the state topic yet")
    for m in view.models:
        lines.append(
            f"model {m.model}  versions {', '.join(m.versions) or '-'}  "
            f"windows {len(m.windows)} of {m.total_windows}  alerts firing {len(m.firing)}"
        )
        if m.windows:
            lines.append("  windows")
            rows = [["START", "END", "VERSION", "ROWS", "STATE"]]
            rows += [
                [
                    rfc3339(w.start_ms),
                    rfc3339(w.end_ms),
                    w.model_version,
                    f"{w.rows:,}",
                    "final" if w.final else "open",
                ]
                for w in m.windows
            ]
            lines += _columns(rows, right={3})
        if m.drift:
            lines.append(f"  drift per feature ({m.drift_source})")
            if m.drift_source == "alert states":
                rows = [_drift_header(m)] + [
                    [f, ", ".join(c.text() for c in cells)] for f, cells in m.drift.items()
                ]
            else:
                rows = [_drift_header(m)] + [
                    [f, *(c.text() for c in cells)] for f, cells in m.drift.items()
                ]
            lines += _columns(rows)
        if m.firing:
            lines.append("  alerts firing")
            rows = [["CHECK", "FEATURE", "SEVERITY", "SINCE", "SUMMARY"]]
            rows += [_firing_row(a, msg) for a, msg in m.firing]
            lines += _columns(rows)
    if view.unreadable:
        lines.append(f"{view.unreadable} unreadable state record(s) (see `streamproc inspect`)")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- rich


def _styled(cell: Cell) -> Text:
    return Text(cell.text(), style=STATUS_STYLE.get(cell.status, "dim"))


def render(view: TopView, header: str = "") -> RenderableType:
    """The live view: a heading, then a panel per model."""
    parts: list[RenderableType] = [
        Text.assemble(
            ("streamproc top", "bold"),
            f"  state {view.state_topic}  alerts {view.alerts_topic}  {header}",
        )
    ]
    if not view.models:
        parts.append(Text("no models in the state topic yet", style="dim"))
    for m in view.models:
        body: list[RenderableType] = []
        windows = Table(title="windows", title_justify="left", show_edge=False)
        for c in ("start", "end", "version", "rows", "state"):
            windows.add_column(c, justify="right" if c == "rows" else "left", no_wrap=True)
        for w in m.windows:
            windows.add_row(
                rfc3339(w.start_ms),
                rfc3339(w.end_ms),
                w.model_version,
                f"{w.rows:,}",
                Text("final", style="dim") if w.final else Text("open", style="cyan"),
            )
        body.append(windows)
        if m.drift:
            drift = Table(
                title=f"drift per feature ({m.drift_source})", title_justify="left", show_edge=False
            )
            for c in _drift_header(m):
                drift.add_column(c.lower(), no_wrap=True)
            for feature, cells in m.drift.items():
                if m.drift_source == "alert states":
                    drift.add_row(feature, Text(", ").join(_styled(c) for c in cells))
                else:
                    drift.add_row(feature, *(_styled(c) for c in cells))
            body.append(drift)
        firing = Table(
            title=f"alerts firing ({len(m.firing)})", title_justify="left", show_edge=False
        )
        for c in ("check", "feature", "severity", "since", "summary"):
            firing.add_column(c, no_wrap=c != "summary")
        for a, msg in m.firing:
            row = _firing_row(a, msg)
            firing.add_row(
                row[0], row[1], Text(row[2], style=STATUS_STYLE.get(row[2], "")), row[3], row[4]
            )
        body.append(firing)
        title = f"model {m.model} (versions {', '.join(m.versions)}, {m.total_windows} windows)"
        parts.append(
            Panel(
                Group(*body),
                title=title,
                title_align="left",
                border_style="red" if m.firing else "blue",
            )
        )
    return Group(*parts)
