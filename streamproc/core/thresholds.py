"""Default drift thresholds, in one table, overridable globally and per feature.

A statistic *breaches* a threshold when it is strictly greater than it.

=============================  =========  =========  ==========================================
statistic                      warning    critical   notes
=============================  =========  =========  ==========================================
PSI                            0.1        0.25       Siddiqi 2006 rule of thumb
KS distance                    0.1        0.2        and KS > critical value at ``ks_alpha``
KS significance level α        0.01                  c(α)·sqrt((n+m)/(n·m))
Jensen–Shannon distance        0.1        0.2        base 2, in [0, 1]
new-category share             0 (any)    0.05       share of current in unseen categories
null rate, × reference         2          5          and current > reference + 0.01
null rate absolute floor       0.01                  the "+ 0.01" above
type-invalid rate increase     0.01       0.05       current − reference, absolute
non-finite rate increase       0.01       0.05       current − reference, absolute
minimum samples                500                   below it: "insufficient_data"
PSI/JS bins                    10                    reference quantiles
PSI smoothing ε                5e-4                  empty-bin floor, shares renormalized
out-of-range share             0.01       0.05       outside the valid range (checks ``range``)
valid range                    None       None       ``range_min`` / ``range_max``, declared
robust-range margin            0.1                   × (q99.9 − q0.1) each side, by default
=============================  =========  =========  ==========================================

The valid range of a numeric feature is ``[range_min, range_max]`` where declared (per
feature, e.g. ``{"features": {"age": {"range_min": 0, "range_max": 120}}}``; one side may
be left open), else the reference's robust range: its 0.1% and 99.9% quantiles widened
by ``range_margin`` × their distance on each side.

Null, invalid and non-finite checks need ``min_samples`` rows on both sides; the
distribution checks (PSI, KS, JS, new categories) need ``min_samples`` valid values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class Thresholds:
    """Drift thresholds; ``features`` maps a feature name to its own overrides."""

    psi_warning: float = 0.1
    psi_critical: float = 0.25
    ks_warning: float = 0.1
    ks_critical: float = 0.2
    ks_alpha: float = 0.01
    js_warning: float = 0.1
    js_critical: float = 0.2
    new_category_share_warning: float = 0.0
    new_category_share_critical: float = 0.05
    null_rate_ratio_warning: float = 2.0
    null_rate_ratio_critical: float = 5.0
    null_rate_absolute_floor: float = 0.01
    invalid_rate_warning: float = 0.01
    invalid_rate_critical: float = 0.05
    nonfinite_rate_warning: float = 0.01
    nonfinite_rate_critical: float = 0.05
    min_samples: int = 500
    psi_bins: int = 10
    psi_smoothing: float = 5e-4
    out_of_range_warning: float = 0.01
    out_of_range_critical: float = 0.05
    range_min: float | None = None
    range_max: float | None = None
    range_margin: float = 0.1
    features: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        for name in ("psi", "ks", "js", "new_category_share", "null_rate_ratio", "out_of_range"):
            w, c = getattr(self, f"{name}_warning"), getattr(self, f"{name}_critical")
            if w > c:
                raise ValueError(f"{name}: warning threshold {w} exceeds critical {c}")
        if not 0.0 < self.ks_alpha < 1.0:
            raise ValueError(f"ks_alpha must be in (0, 1), got {self.ks_alpha}")
        if self.psi_bins < 2:
            raise ValueError(f"psi_bins must be at least 2, got {self.psi_bins}")
        if self.min_samples < 1:
            raise ValueError(f"min_samples must be at least 1, got {self.min_samples}")
        lo, hi = self.range_min, self.range_max
        if lo is not None and hi is not None and lo >= hi:
            raise ValueError(f"range_min {lo} must be below range_max {hi}")
        if self.range_margin < 0:
            raise ValueError(f"range_margin must be >= 0, got {self.range_margin}")

    def _typed(self, key: str, value: Any) -> Any:
        """``value`` as the type of field ``key`` (optional fields: float or None)."""
        default = getattr(self, key)
        if key in _OPTIONAL:
            return None if value is None else float(value)
        return type(default)(value)

    def with_overrides(self, mapping: Mapping[str, Any]) -> Thresholds:
        """A copy with fields replaced; key ``"features"`` adds per-feature overrides,
        e.g. ``{"psi_warning": 0.2, "features": {"age": {"psi_critical": 0.5}}}``."""
        known = {f.name for f in dataclasses.fields(self)} - {"features"}
        changes: dict[str, Any] = {}
        for key, value in mapping.items():
            if key == "features":
                merged = {n: dict(o) for n, o in self.features.items()}
                for fname, over in value.items():
                    bad = set(over) - known
                    if bad:
                        raise ValueError(f"unknown threshold(s) for feature {fname}: {sorted(bad)}")
                    merged.setdefault(fname, {}).update(over)
                changes["features"] = MappingProxyType(
                    {n: MappingProxyType(o) for n, o in merged.items()}
                )
            elif key in known:
                changes[key] = self._typed(key, value)
            else:
                raise ValueError(f"unknown threshold {key!r}; known: {sorted(known)}")
        return dataclasses.replace(self, **changes)

    def for_feature(self, name: str) -> Thresholds:
        """The thresholds that apply to feature ``name``."""
        over = self.features.get(name)
        if not over:
            return self
        return dataclasses.replace(self, **{k: self._typed(k, v) for k, v in over.items()})

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["features"] = {n: dict(o) for n, o in self.features.items()}
        return d


_OPTIONAL = frozenset({"range_min", "range_max"})
DEFAULT_THRESHOLDS = Thresholds()
