"""Capped exponential backoff with full jitter (AWS Architecture Blog, "Exponential
Backoff And Jitter", 2015): attempt ``n`` waits a uniform random time in
``[initial·factor^n / 2, min(cap, initial·factor^n)]`` — half-jittered, so retries of
several forwarders spread out but never hammer a recovering Alertmanager at once."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Backoff:
    """Delays in seconds between retries of one post."""

    initial_s: float = 0.5
    cap_s: float = 30.0
    factor: float = 2.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.initial_s <= 0 or self.cap_s < self.initial_s or self.factor < 1:
            raise ValueError(
                f"need 0 < initial_s <= cap_s and factor >= 1, got {self.initial_s}, "
                f"{self.cap_s}, {self.factor}"
            )

    def delay_s(self, attempt: int) -> float:
        """Wait before retry number ``attempt`` (0 = the first retry)."""
        ceiling = min(self.cap_s, self.initial_s * self.factor ** min(attempt, 64))
        return self.rng.uniform(ceiling / 2, ceiling)
