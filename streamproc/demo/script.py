"""The demo's scripted incident: phases on a wall-clock timeline, and the worker timings.

Four phases, run once:

1. ``normal``   — traffic as in training;
2. ``incident`` — two features drift, a null spike, a new category (see
   :class:`streamproc.demo.model.Incident`);
3. ``stall``    — the serving system stops logging: nothing is produced for longer
   than the staleness threshold;
4. ``recovery`` — normal traffic again, so every alert resolves.

Timings are chosen so that each alert has time to fire and to resolve: the stall is
longer than the staleness threshold (plus two evaluations, the lifecycle's "2 of 3")
and at least one window long, so the first window after it holds recovery data only.
:data:`STANDARD` runs about three minutes; :data:`FAST` (``--fast``) under a minute.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: float
    incident: bool = False
    """Draw traffic with the incident applied."""
    produce: bool = True
    """False: the stall, nothing is produced."""
    title: str = ""


@dataclass(frozen=True)
class Timings:
    """The worker's windows and thresholds for a demo profile, in seconds."""

    window_s: float
    allowed_lateness_s: float
    rolling_horizon_s: float
    staleness_s: float
    evaluation_s: float = 1.0


@dataclass(frozen=True)
class Script:
    name: str
    phases: tuple[Phase, ...]
    timings: Timings

    @property
    def seconds(self) -> float:
        """Length of the whole script."""
        return sum(p.seconds for p in self.phases)

    def starts(self) -> list[float]:
        """Start of each phase, seconds after the script starts."""
        out, t = [], 0.0
        for p in self.phases:
            out.append(t)
            t += p.seconds
        return out

    def phase_at(self, elapsed_s: float) -> tuple[int, Phase] | None:
        """The (index, phase) running ``elapsed_s`` after the start; None once it ended."""
        for i, (start, phase) in enumerate(zip(self.starts(), self.phases, strict=True)):
            if start <= elapsed_s < start + phase.seconds:
                return i, phase
        return None

    def start_of(self, name: str) -> float:
        """Start of the phase called ``name``, seconds after the script starts."""
        for start, phase in zip(self.starts(), self.phases, strict=True):
            if phase.name == name:
                return start
        raise KeyError(name)

    def producing_seconds(self, elapsed_s: float) -> float:
        """Seconds of the first ``elapsed_s`` during which traffic was produced."""
        idle = 0.0
        for start, phase in zip(self.starts(), self.phases, strict=True):
            if not phase.produce:
                idle += max(0.0, min(elapsed_s, start + phase.seconds) - start)
        return max(0.0, elapsed_s - idle)

    def validate(self) -> None:
        """The timeline properties the alerts rely on (see the module docstring)."""
        t = self.timings
        stall = next((p for p in self.phases if not p.produce), None)
        if stall is not None:
            need = t.staleness_s + 2 * t.evaluation_s
            if stall.seconds <= need:
                raise ValueError(f"stall of {stall.seconds:g}s cannot fire staleness (> {need:g}s)")
            if stall.seconds < t.window_s:
                raise ValueError("the stall must last at least one window")


def _phases(normal: float, incident: float, stall: float, recovery: float) -> tuple[Phase, ...]:
    return (
        Phase("normal", normal, title="traffic as in training"),
        Phase(
            "incident",
            incident,
            incident=True,
            title="income +1 sd, loan_purpose re-weighted, employment_years 30% null, "
            "new channel 'partner_api'",
        ),
        Phase("stall", stall, produce=False, title="the prediction log stops"),
        Phase("recovery", recovery, title="normal traffic again"),
    )


STANDARD: Final = Script(
    "standard",
    _phases(normal=30, incident=45, stall=35, recovery=70),
    Timings(window_s=30, allowed_lateness_s=2, rolling_horizon_s=60, staleness_s=20),
)
FAST: Final = Script(
    "fast",
    _phases(normal=10, incident=14, stall=12, recovery=16),
    Timings(window_s=10, allowed_lateness_s=1, rolling_horizon_s=10, staleness_s=6),
)
