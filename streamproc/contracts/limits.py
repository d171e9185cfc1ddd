"""Resource limits of the prediction decoders, and the bounded form of a long category.

Both decoders (:func:`~streamproc.contracts.prediction.decode_predictions` and
:func:`~streamproc.contracts.fast_decode.fast_decode`) take a :class:`DecodeLimits`; the
wall-clock bound on event times (``max_event_ms``) is a separate keyword because it
changes with every call.

A string feature value or predicted label longer than ``max_category_bytes`` UTF-8 bytes
becomes a category in the profiles (distinct counts, top-k), so it is replaced by
:func:`cap_category`: a prefix cut on a character boundary, :data:`TRUNCATION_MARK` and
the first :data:`DIGEST_HEX_CHARS` hex digits of the SHA-256 of the whole value. Distinct
long values stay distinct, the state per value stays bounded, and a capped value is
itself within the limit (capping is idempotent).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

DEFAULT_MAX_MESSAGE_BYTES: Final = 1 << 20
"""Larger values are rejected as ``oversized``."""
DEFAULT_MAX_FEATURES: Final = 1000
"""Records with more features are rejected as ``too_many_features``."""
DEFAULT_MAX_CATEGORY_BYTES: Final = 256
"""Longer string feature values and labels (UTF-8 bytes) are capped (:func:`cap_category`)."""
DEFAULT_MAX_FUTURE_SKEW_MS: Final = 5 * 60_000
"""Event time allowed ahead of the wall clock: callers pass ``max_event_ms`` = wall clock
+ this skew."""

TRUNCATION_MARK: Final = "…#"
"""Between the kept prefix and the digest of a capped value."""
DIGEST_HEX_CHARS: Final = 16
"""Hex digits of the SHA-256 of the whole value kept in a capped value (64 bits)."""
_SUFFIX_BYTES: Final = len(TRUNCATION_MARK.encode()) + DIGEST_HEX_CHARS
MIN_CATEGORY_BYTES: Final = 32
"""Smallest allowed ``max_category_bytes``: the mark and digest take 20 bytes."""


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """Per-record bounds of the decoders (defaults: the ``DEFAULT_*`` constants)."""

    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_features: int = DEFAULT_MAX_FEATURES
    max_category_bytes: int = DEFAULT_MAX_CATEGORY_BYTES

    def __post_init__(self) -> None:
        for name in ("max_message_bytes", "max_features", "max_category_bytes"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if self.max_category_bytes < MIN_CATEGORY_BYTES:
            raise ValueError(
                f"max_category_bytes must be at least {MIN_CATEGORY_BYTES}, "
                f"got {self.max_category_bytes}"
            )


DEFAULT_LIMITS: Final = DecodeLimits()


def resolve_limits(limits: DecodeLimits | None, max_message_bytes: int | None) -> DecodeLimits:
    """The limits a decoder call uses: ``limits``, or the defaults with the older
    ``max_message_bytes`` keyword; giving both is an error."""
    if max_message_bytes is None:
        return DEFAULT_LIMITS if limits is None else limits
    if limits is not None:
        raise TypeError("pass max_message_bytes inside limits=DecodeLimits(...), not both")
    return DecodeLimits(max_message_bytes=max_message_bytes)


def cap_category(value: str, max_bytes: int) -> str:
    """``value`` if it fits in ``max_bytes`` UTF-8 bytes, else its capped form: the longest
    prefix of whole characters that leaves room for the suffix, :data:`TRUNCATION_MARK`,
    and the first :data:`DIGEST_HEX_CHARS` hex digits of the SHA-256 of its UTF-8 bytes
    (at most ``max_bytes`` bytes in all)."""
    data = value.encode("utf-8")
    if len(data) <= max_bytes:
        return value
    head = data[: max(max_bytes - _SUFFIX_BYTES, 0)].decode("utf-8", "ignore")
    return f"{head}{TRUNCATION_MARK}{hashlib.sha256(data).hexdigest()[:DIGEST_HEX_CHARS]}"
