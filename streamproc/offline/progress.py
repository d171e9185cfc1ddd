"""A dependency-free progress line on stderr for long offline reads.

Shown only when the stream is a terminal, so logs and CI output stay clean. It
reports rows read, the read rate in rows/s and the share of the input's bytes
consumed, redrawn at most ``max_redraws_per_s`` times a second.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _human(n: float) -> str:
    """Format a count compactly: 950, 12.3k, 4.56M."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.0f}"


class Progress:
    """Progress of one or more files read in sequence.

    ``total_bytes`` is the summed size of the inputs; ``update`` takes cumulative
    rows and bytes. When ``enabled`` is None the bar is on only if ``stream`` is a TTY.
    """

    def __init__(
        self,
        total_bytes: int,
        *,
        label: str = "reading",
        stream: TextIO | None = None,
        enabled: bool | None = None,
        max_redraws_per_s: float = 8.0,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self._stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.total_bytes = max(total_bytes, 0)
        self.label = label
        self.rows = 0
        self.bytes_done = 0
        self._start_s = time.perf_counter()
        self._last_draw_s = 0.0
        self._min_interval_s = 1.0 / max_redraws_per_s
        self._width = 0

    def set_label(self, label: str) -> None:
        """Name the file being read now."""
        self.label = label

    def update(self, rows: int, bytes_done: int) -> None:
        """Record cumulative ``rows`` and ``bytes_done``; redraw if enough time passed."""
        self.rows = rows
        self.bytes_done = bytes_done
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last_draw_s >= self._min_interval_s:
            self._last_draw_s = now
            self._draw(now)

    def render(self, now_s: float | None = None) -> str:
        """The progress line as text (without carriage return)."""
        now = time.perf_counter() if now_s is None else now_s
        elapsed = max(now - self._start_s, 1e-9)
        rate = self.rows / elapsed
        if self.total_bytes > 0:
            share = min(self.bytes_done / self.total_bytes, 1.0)
            filled = int(share * 20)
            bar = "#" * filled + "." * (20 - filled)
            pct = f"[{bar}] {share * 100:5.1f}%"
        else:
            pct = ""
        return f"{self.label} {pct} {_human(self.rows)} rows  {_human(rate)} rows/s  {elapsed:.1f}s"

    def _draw(self, now: float) -> None:
        line = self.render(now)
        pad = max(self._width - len(line), 0)
        self._width = len(line)
        self._stream.write("\r" + line + " " * pad)
        self._stream.flush()

    def close(self) -> None:
        """Draw the final state and end the line."""
        if not self.enabled:
            return
        self._draw(time.perf_counter())
        self._stream.write("\n")
        self._stream.flush()
