"""The live view on a terminal: :class:`LiveConsole` feeds a :class:`LiveModel` and
redraws it in place with :class:`rich.live.Live` (no refresh thread: it redraws on each
event, at most a few times a second, from the session's thread only)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from rich.console import Console as RichConsole
from rich.live import Live

from streamproc.demo import display
from streamproc.demo.live import LiveModel, render
from streamproc.demo.script import Phase, Script


class LiveConsole(display.Console):
    """A :class:`display.Console` whose session events update a live view; other lines
    (broker start-up, the closing notes) print above it."""

    def __init__(self, stream: TextIO, width: int | None = None) -> None:
        super().__init__(stream, tty=True)
        self.rich = RichConsole(file=stream, width=width)
        self.model: LiveModel | None = None
        self.live: Live | None = None

    def line(self, text: str = "") -> None:
        (self.live.console if self.live is not None else self.rich).print(
            text, markup=False, highlight=False, soft_wrap=True
        )

    def status(self, text: str) -> None:  # only the live view shows the status
        pass

    def _refresh(self) -> None:
        if self.live is not None and self.model is not None:
            self.live.update(render(self.model), refresh=True)

    def show_header(self, header: display.Header, script: Script) -> None:
        self.model = LiveModel(script)
        self.model.on_header(header)
        self.live = Live(
            render(self.model),
            console=self.rich,
            auto_refresh=False,
            transient=False,
            vertical_overflow="visible",
        )
        self.live.start()

    def show_phase(self, index: int, label: str, phase: Phase, at: float) -> None:
        if self.model is not None:
            self.model.on_phase(index)
        self._refresh()

    def show_status(self, status: display.Status) -> None:
        if self.model is not None:
            self.model.on_status(status)
        self._refresh()

    def show_alert(self, alert: Mapping[str, Any], at: float, elapsed_s: float) -> None:
        if self.model is not None:
            self.model.on_alert(alert, elapsed_s)
        self._refresh()

    def close(self) -> None:
        """The session ended: one last redraw (the summary comes next)."""
        self._refresh()

    def finish(self) -> None:
        """Stop redrawing; the last frame stays on the screen."""
        if self.live is not None:
            self._refresh()
            self.live.stop()
            self.live = None

    def show_summary(self, lines: Sequence[str], timings: Sequence[display.AlertTiming]) -> None:
        """The final frame: every phase done, the summary under the timeline."""
        if self.model is None or self.live is None:
            super().show_summary(lines, timings)
            return
        self.model.on_summary(lines, timings)
        self.finish()
