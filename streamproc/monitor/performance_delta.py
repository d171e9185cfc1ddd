"""Performance deltas: what the labels stage ships to the aggregate stage.

One :class:`PerformanceDelta` holds the realized performance accumulator
(:mod:`streamproc.core.performance` or :mod:`streamproc.core.regression_performance`)
of the labeled rows of one (model, version, *prediction* event-time window) from one
labels flush, with the ``(partition, first_offset, last_offset)`` ranges of the label
records that went into it — so the aggregate drops a re-delivered delta exactly as it
drops a re-delivered :class:`~streamproc.monitor.delta.ProfileDelta`.

Wire format: the magic :data:`MAGIC` (``SPPD``), then the profile-delta framing of
:mod:`streamproc.contracts.framing` (uint32 BE header length, JSON header, body = the
accumulator's bytes). A profile delta starts with its header length, whose first byte
is 0 (headers are under 1 MiB), so the two kinds never read as each other; the Kafka
header ``streamproc.kind: performance`` names the kind for other readers. The Kafka key
is the model name, so a model's performance deltas land on the profiles partition that
owns its windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from streamproc.contracts.framing import FramingError, decode_profile_delta, encode_profile_delta
from streamproc.core.errors import ProfileFormatError
from streamproc.core.labeled_slices import (
    LabeledSlices,
    Performance,
    merge_performance,
    performance_from_bytes,
)
from streamproc.core.regression_performance import RegressionPerformance

MAGIC: Final = b"SPPD"
FORMAT_VERSION: Final = 1
KIND_HEADER: Final = "streamproc.kind"
KIND_PERFORMANCE: Final = b"performance"


def is_performance_delta(value: bytes | None) -> bool:
    """Whether a profiles-topic value is a performance delta (by its leading magic)."""
    return value is not None and value[:4] == MAGIC


@dataclass
class PerformanceDelta:
    """Realized performance of the labeled rows of one window from one labels flush."""

    model: str
    model_version: str
    window_start_ms: int
    window_end_ms: int
    topic: str
    """The labels topic the rows came from."""
    ranges: list[tuple[int, int, int]]
    """``(partition, first_offset, last_offset)`` (inclusive) of the label records."""
    producer_id: str
    performance: Performance
    slices: LabeledSlices | None = None
    """Per-slice performance, labeled fairness counts and shadow pairs (models with
    slices, protected attributes or a shadow rollout configured)."""

    def header(self, body_len: int, slices_len: int = 0) -> dict[str, Any]:
        task = (
            "regression"
            if isinstance(self.performance, RegressionPerformance)
            else "classification"
        )
        return {
            "format_version": FORMAT_VERSION,
            "kind": "performance",
            "task": task,
            "model": self.model,
            "model_version": self.model_version,
            "window": {"start_ms": self.window_start_ms, "end_ms": self.window_end_ms},
            "source": {"topic": self.topic, "ranges": [list(r) for r in self.ranges]},
            "producer_id": self.producer_id,
            "counts": {"labels": self.performance.n},
            "performance_bytes": body_len,
            **({"slices_bytes": slices_len} if slices_len else {}),
        }

    def to_bytes(self) -> bytes:
        body = self.performance.to_bytes()
        if self.slices is None or self.slices.empty():
            return MAGIC + encode_profile_delta(self.header(len(body)), body)
        extra = self.slices.to_bytes()
        return MAGIC + encode_profile_delta(self.header(len(body), len(extra)), body + extra)

    @classmethod
    def from_bytes(cls, data: bytes) -> PerformanceDelta:
        """Decode a delta; raises :class:`ProfileFormatError` on anything malformed."""
        if not is_performance_delta(data):
            raise ProfileFormatError("not a performance delta (magic)")
        try:
            head, body = decode_profile_delta(data[len(MAGIC) :])
        except FramingError as exc:
            raise ProfileFormatError(str(exc)) from exc
        if head.get("format_version") != FORMAT_VERSION:
            raise ProfileFormatError(
                f"performance delta format version {head.get('format_version')!r} is not "
                f"supported (this streamproc reads {FORMAT_VERSION}); upgrade the worker"
            )
        try:
            n, extra = int(head["performance_bytes"]), int(head.get("slices_bytes", 0))
            if len(body) != n + extra:
                raise ProfileFormatError("performance delta body length differs from its header")
            return cls(
                model=str(head["model"]),
                model_version=str(head["model_version"]),
                window_start_ms=int(head["window"]["start_ms"]),
                window_end_ms=int(head["window"]["end_ms"]),
                topic=str(head["source"]["topic"]),
                ranges=[(int(p), int(a), int(b)) for p, a, b in head["source"]["ranges"]],
                producer_id=str(head["producer_id"]),
                performance=performance_from_bytes(body[:n]),
                slices=LabeledSlices.from_bytes(body[n:]) if extra else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileFormatError(f"performance delta header is incomplete: {exc!r}") from exc


__all__ = [
    "KIND_HEADER",
    "KIND_PERFORMANCE",
    "MAGIC",
    "Performance",
    "PerformanceDelta",
    "is_performance_delta",
    "merge_performance",
    "performance_from_bytes",
]
