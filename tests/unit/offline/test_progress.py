"""Progress line: silent off a terminal, rows/s and byte share on one."""

from __future__ import annotations

import io

from streamproc.offline.progress import Progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_silent_when_not_a_tty() -> None:
    out = io.StringIO()
    bar = Progress(100, stream=out)
    bar.update(10, 50)
    bar.close()
    assert out.getvalue() == ""


def test_tty_shows_share_and_rate() -> None:
    out = _Tty()
    bar = Progress(200, stream=out, label="data.csv", max_redraws_per_s=1e9)
    bar.update(1_500, 50)
    bar.close()
    text = out.getvalue()
    assert text.startswith("\rdata.csv [#####...............]  25.0% 1.5k rows")
    assert "rows/s" in text
    assert text.endswith("\n")
