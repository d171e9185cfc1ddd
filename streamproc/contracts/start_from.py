"""Where a consumer group's first start reads from: ``--start-from`` / ``[kafka] start_from``.

``earliest`` (all retained data), ``latest`` (only what arrives from now on), an RFC 3339
time (``2024-05-01T10:00:00Z``) or a duration ago (``"1h ago"``, ``"30m ago"``, ``"7d
ago"``). Only partitions *without* a committed offset are placed: a committed offset always
wins, so a restart resumes exactly where the last transaction left off. A time means the
first record whose Kafka timestamp is at or after it (``Consumer.offsets_for_times``);
where no record is that late, the end of the partition.

The default, ``1h ago``, is one rolling horizon (``[windows] rolling_horizon``): a live
attach fills its first comparison at once instead of silently replaying a month of
retention; a backfill (``--replay``) says ``earliest``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from streamproc.contracts.envelope import parse_timestamp

__all__ = ["DEFAULT_START_FROM", "StartFrom", "choose_offset", "parse_start_from"]

DEFAULT_START_FROM: Final = "1h ago"
_AGO: Final = re.compile(r"((?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h|d))+)\s+ago")
_PART: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_UNIT_MS: Final = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
OFFSET_BEGINNING: Final = -2
"""librdkafka's logical offsets (``confluent_kafka.OFFSET_BEGINNING`` / ``OFFSET_END``)."""
OFFSET_END: Final = -1


@dataclass(frozen=True, slots=True)
class StartFrom:
    """A parsed ``start_from``: a logical position, an instant, or a time before now."""

    kind: Literal["earliest", "latest", "time", "ago"]
    ms: int = 0
    """Epoch ms for ``time``; milliseconds before now for ``ago``."""

    def timestamp_ms(self, now_ms: int) -> int | None:
        """The instant to look offsets up for (epoch ms), or None for earliest/latest."""
        if self.kind == "time":
            return self.ms
        if self.kind == "ago":
            return max(now_ms - self.ms, 0)
        return None

    def logical_offset(self) -> int | None:
        """``OFFSET_BEGINNING`` / ``OFFSET_END`` for earliest/latest, else None."""
        return {"earliest": OFFSET_BEGINNING, "latest": OFFSET_END}.get(self.kind)


def parse_start_from(text: str) -> StartFrom:
    """``earliest``, ``latest``, an RFC 3339 time, or ``<duration> ago``; ValueError."""
    value = text.strip()
    lowered = value.lower()
    if lowered in ("earliest", "latest"):
        return StartFrom(lowered)  # type: ignore[arg-type]
    ago = _AGO.fullmatch(lowered)
    if ago is not None:
        ms = sum(float(n) * _UNIT_MS[u] for n, u in _PART.findall(ago.group(1)))
        return StartFrom("ago", round(ms))
    try:
        seconds = parse_timestamp(value)
    except ValueError:
        raise ValueError(
            f"not a start position: {text!r} (use earliest, latest, an RFC 3339 time such "
            "as 2024-05-01T10:00:00Z, or a duration ago such as '1h ago')"
        ) from None
    return StartFrom("time", round(seconds * 1000))


def choose_offset(committed: int, looked_up: int | None, start: StartFrom) -> int | None:
    """The offset to place a partition at, or None to leave the committed one.

    ``committed``: the group's committed offset (negative: none); ``looked_up``: what
    ``offsets_for_times`` answered for ``start``'s instant (negative or None: no record
    that late, so the end)."""
    if committed >= 0:
        return None
    logical = start.logical_offset()
    if logical is not None:
        return logical
    return looked_up if looked_up is not None and looked_up >= 0 else OFFSET_END
