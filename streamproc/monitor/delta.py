"""Profile deltas: what the ingest stage ships to the aggregate stage.

Wire format (contract: ``schemas/profile_delta.schema.json``, framing in
:mod:`streamproc.contracts.framing`): the JSON header, then ``profile_bytes`` bytes of
the feature :class:`ModelProfile`, then ``ops_bytes`` bytes of the ops profile (see
:mod:`streamproc.core.ops`). The Kafka key is the model name, so every delta of a
model lands on one partition of the profiles topic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streamproc.contracts.framing import FramingError, decode_profile_delta, encode_profile_delta
from streamproc.core.errors import ProfileFormatError
from streamproc.core.model_profile import ModelProfile
from streamproc.core.slice_profiles import SliceProfiles

DELTA_FORMAT_VERSION = 1


@dataclass
class ProfileDelta:
    """Sketches of the records of one (model, version, window) from one ingest flush.

    ``ranges`` holds ``(partition, first_offset, last_offset)`` (inclusive) of the input
    records that went into it, per source partition, so the aggregate stage can drop a
    delta it has already applied.
    """

    model: str
    model_version: str
    window_start_ms: int
    window_end_ms: int
    topic: str
    ranges: list[tuple[int, int, int]]
    producer_id: str
    profile: ModelProfile
    ops: ModelProfile
    counts: dict[str, int] = field(default_factory=dict)
    slices: SliceProfiles | None = None
    """Per-slice profiles and fairness counts (models with slicing configured); in the
    body after the ops profile, ``slices_bytes`` long (absent: none)."""

    def header(self, profile_len: int, ops_len: int, slices_len: int = 0) -> dict[str, Any]:
        return {
            "format_version": DELTA_FORMAT_VERSION,
            "model": self.model,
            "model_version": self.model_version,
            "window": {"start_ms": self.window_start_ms, "end_ms": self.window_end_ms},
            "source": {"topic": self.topic, "ranges": [list(r) for r in self.ranges]},
            "producer_id": self.producer_id,
            "counts": {"records": self.profile.row_count, **self.counts},
            "profile_bytes": profile_len,
            "ops_bytes": ops_len,
            **({"slices_bytes": slices_len} if slices_len else {}),
        }

    def to_bytes(self) -> bytes:
        profile = self.profile.to_bytes()
        ops = self.ops.to_bytes()
        extra = self.slices.to_bytes() if self.slices is not None else b""
        head = self.header(len(profile), len(ops), len(extra))
        return encode_profile_delta(head, profile + ops + extra)

    @classmethod
    def from_bytes(cls, data: bytes) -> ProfileDelta:
        """Decode a delta; raises :class:`ProfileFormatError` on anything malformed."""
        try:
            head, body = decode_profile_delta(data)
        except FramingError as exc:
            raise ProfileFormatError(str(exc)) from exc
        if head.get("format_version") != DELTA_FORMAT_VERSION:
            raise ProfileFormatError(
                f"profile delta format version {head.get('format_version')!r} is not "
                f"supported (this streamproc reads {DELTA_FORMAT_VERSION}); upgrade the worker"
            )
        try:
            p_len, o_len = int(head["profile_bytes"]), int(head["ops_bytes"])
            s_len = int(head.get("slices_bytes", 0))
            if len(body) != p_len + o_len + s_len:
                raise ProfileFormatError(
                    f"profile delta body is {len(body)} bytes, "
                    f"header promises {p_len + o_len + s_len}"
                )
            return cls(
                model=head["model"],
                model_version=head["model_version"],
                window_start_ms=int(head["window"]["start_ms"]),
                window_end_ms=int(head["window"]["end_ms"]),
                topic=head["source"]["topic"],
                ranges=[(int(p), int(a), int(b)) for p, a, b in head["source"]["ranges"]],
                producer_id=head["producer_id"],
                profile=ModelProfile.from_bytes(body[:p_len]),
                ops=ModelProfile.from_bytes(body[p_len : p_len + o_len]),
                counts={k: int(v) for k, v in head["counts"].items() if k != "records"},
                slices=SliceProfiles.from_bytes(body[p_len + o_len :]) if s_len else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileFormatError(f"profile delta header is incomplete: {exc!r}") from exc
