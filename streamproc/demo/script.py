"""The demo's scripted incident: phases on a wall-clock timeline, and the worker timings.

Five phases, run once:

1. ``normal``        — traffic as in training;
2. ``concept_drift`` — inputs and scores as in training, but the outcome flips for 40%
   of the applications (:class:`streamproc.demo.model.ConceptDrift`): only the labels
   show it, when they arrive;
3. ``incident``      — two features drift, a null spike, a new category (see
   :class:`streamproc.demo.model.Incident`); the outcomes follow the model again;
4. ``stall``         — the serving system stops logging: nothing is produced for longer
   than the staleness threshold;
5. ``recovery``      — normal traffic again, so every alert resolves.

Throughout, :class:`Labels` says which share of predictions gets its label, and after
how long (event time: the label's timestamp is when it is produced).

Timings are chosen so that each alert has time to fire and to resolve: the stall is
longer than the staleness threshold (plus two evaluations, the lifecycle's "2 of 3")
and at least one window long, so the first window after it holds recovery data only.
A labeled window is judged once (its first verdict with enough labels, a few seconds
after it starts), so the concept drift lasts two windows and a few seconds — two
breaching windows fire ``performance_drop`` — and the clean windows of the incident
and the recovery (three in a row) resolve it.
:data:`STANDARD` runs about four minutes; :data:`FAST` (``--fast``) under a minute and
a half.
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
    concept_drift: bool = False
    """Draw the outcomes (labels) with the concept drift applied."""
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
class Labels:
    """Delayed ground truth: ``share`` of the predictions get a label event, after
    ``min_delay_s`` plus an exponential delay of mean ``mean_delay_s``, at most
    ``max_delay_s`` (seconds, event time = wall clock)."""

    share: float = 0.7
    min_delay_s: float = 2.0
    mean_delay_s: float = 10.0
    max_delay_s: float = 60.0


@dataclass(frozen=True)
class Script:
    name: str
    phases: tuple[Phase, ...]
    timings: Timings
    labels: Labels = Labels()

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
        drift = next((p for p in self.phases if p.concept_drift), None)
        if drift is not None:
            # two windows whose first labeled seconds fall in the phase (2 of 3 fire)
            need = 2 * t.window_s + self.labels.min_delay_s + 1
            if drift.seconds < need:
                raise ValueError(
                    f"concept drift of {drift.seconds:g}s cannot fire performance_drop "
                    f"(>= {need:g}s: two windows and the first labels)"
                )


def _phases(
    normal: float, drift: float, incident: float, stall: float, recovery: float
) -> tuple[Phase, ...]:
    return (
        Phase("normal", normal, title="traffic as in training"),
        Phase(
            "concept_drift",
            drift,
            concept_drift=True,
            title="inputs as in training, but the outcome flips for 40% of applications",
        ),
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
    _phases(normal=30, drift=65, incident=45, stall=35, recovery=70),
    Timings(window_s=30, allowed_lateness_s=2, rolling_horizon_s=60, staleness_s=20),
)
FAST: Final = Script(
    "fast",
    _phases(normal=10, drift=25, incident=14, stall=12, recovery=20),
    Timings(window_s=10, allowed_lateness_s=1, rolling_horizon_s=10, staleness_s=6),
)
