"""Group fairness of a binary decision per declared protected group: mergeable counts.

The protected attribute is **declared** per model (a ``segment`` key or a feature named
in configuration) and its value is read from each record; it is never inferred from
other features. State per group (:class:`GroupCounts`), added up across windows and
workers: predictions ``n`` and ``selected`` (predicted positive); over labeled rows the
confusion counts TP, FP, FN, TN; over labeled rows with a score, ``scored``,
``scored_pos`` and ``score_sum`` (calibration). Rows without the attribute are counted
in :attr:`FairnessCounts.missing`. At most ``max_groups`` groups are kept (:data:`OTHER`
included); later ones pool into it (a declared attribute has a handful of values).

Metrics (:func:`fairness_report`), after fairlearn's definitions
(``fairlearn.metrics``: ``selection_rate``, ``demographic_parity_difference``,
``equalized_odds_difference``) and the EEOC *Uniform Guidelines* (29 CFR 1607.4(D),
the four-fifths rule):

* selection rate per group P(ŷ = 1 | g); **disparate impact ratio** min_g / max_g of the
  selection rates (four-fifths rule: below 0.8 is adverse impact); **demographic parity
  difference** max_g − min_g.
* with labels: TPR = TP/(TP + FN), FPR = FP/(FP + TN), precision TP/(TP + FP) per
  group; the TPR and FPR gaps (max − min) and the **equalized odds difference**, the
  larger of the two; **calibration** per group: the mean score against the observed
  positive rate of the same rows (calibration in the large; gap = mean − observed).

Intervals (95%): Wilson for each group's rate; Newcombe (hybrid score) for a difference
and Katz (log) for a ratio (:mod:`streamproc.core.proportions`), between the two groups
that define the extreme — the groups are picked by the data, so these intervals are
somewhat optimistic about the gap. A rate whose denominator (the group's predictions,
positives, negatives or selected) is below ``min_group_size`` is *insufficient*: it has
no value, and does not take part in the gaps; nor does the pooled :data:`OTHER`.

What these numbers cannot say: a gap is a disparity in outcomes on this traffic, not a
cause; the criteria conflict with each other when base rates differ (Kleinberg,
Mullainathan & Raghavan 2016; Chouldechova 2017), and labels that come from past
decisions carry their bias into TPR/FPR.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np

from streamproc.core import codec
from streamproc.core.errors import ProfileFormatError
from streamproc.core.intervals import Z_95, Interval, wilson_interval
from streamproc.core.proportions import katz_ratio_interval, newcombe_interval

MAGIC: Final = b"SPFR"
OTHER: Final = "__other__"
DEFAULT_MAX_GROUPS: Final = 50
DEFAULT_MIN_GROUP_SIZE: Final = 30
FOUR_FIFTHS: Final = 0.8
_INT_FIELDS: Final = ("n", "selected", "tp", "fp", "fn", "tn", "scored", "scored_pos")

Status = Literal["ok", "insufficient", "empty"]


@dataclass(slots=True)
class GroupCounts:
    """Counters of one group (see the module docstring); merge by addition."""

    n: int = 0
    selected: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    scored: int = 0
    scored_pos: int = 0
    score_sum: float = 0.0

    def __add__(self, other: GroupCounts) -> GroupCounts:
        return GroupCounts.of([a + b for a, b in zip(self.to_list(), other.to_list(), strict=True)])

    @classmethod
    def of(cls, row: Sequence[float]) -> GroupCounts:
        """From :meth:`to_list`'s order: the integer counters, then the score sum."""
        if len(row) != len(_INT_FIELDS) + 1:
            raise ValueError(f"{len(row)} group counters, expected {len(_INT_FIELDS) + 1}")
        ints = [int(v) for v in row[:-1]]
        if any(v < 0 for v in ints):
            raise ValueError("negative group counter")
        return cls(**dict(zip(_INT_FIELDS, ints, strict=True)), score_sum=float(row[-1]))

    def to_list(self) -> list[float]:
        return [*(getattr(self, f) for f in _INT_FIELDS), self.score_sum]


def _as_bool(values: Sequence[Any] | np.ndarray, n: int, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise ValueError(f"{what} has {arr.size} values, expected {n}")
    return arr.astype(bool)


@dataclass(eq=False)
class FairnessCounts:
    """Mergeable per-group counters of one protected attribute."""

    attribute: str
    max_groups: int = DEFAULT_MAX_GROUPS
    groups: dict[str, GroupCounts] = field(default_factory=dict)
    missing: int = 0
    """Rows without a value of the attribute (predictions and labeled rows)."""

    def _group(self, name: str) -> GroupCounts:
        g = self.groups.get(name)
        if g is None:
            if len(self.groups) >= self.max_groups - 1 and name != OTHER:
                return self._group(OTHER)
            g = self.groups[name] = GroupCounts()
        return g

    def add_predictions(
        self, groups: Sequence[str | None], selected: Sequence[bool] | np.ndarray
    ) -> None:
        """Count predictions: ``groups[i]`` the row's attribute value (None: missing),
        ``selected[i]`` whether the decision was positive."""
        sel = _as_bool(selected, len(groups), "selected")
        for name, idx in _rows_by_group(groups).items():
            if name is None:
                self.missing += len(idx)
                continue
            g = self._group(name)
            g.n += len(idx)
            g.selected += int(sel[idx].sum())

    def add_labeled(
        self,
        groups: Sequence[str | None],
        selected: Sequence[bool] | np.ndarray,
        labels: Sequence[bool] | np.ndarray,
        scores: np.ndarray | None = None,
    ) -> None:
        """Count labeled rows: the decision, the true outcome (positive: True) and
        optionally the score, P(positive) in [0, 1] (NaN or outside: no score)."""
        n = len(groups)
        sel = _as_bool(selected, n, "selected")
        y = _as_bool(labels, n, "labels")
        s = np.full(n, np.nan) if scores is None else np.asarray(scores, dtype=np.float64)
        if s.shape != (n,):
            raise ValueError(f"scores has {s.size} values, expected {n}")
        ok = np.isfinite(s) & (s >= 0.0) & (s <= 1.0)
        for name, idx in _rows_by_group(groups).items():
            if name is None:
                self.missing += len(idx)
                continue
            g = self._group(name)
            gs, gy, gok = sel[idx], y[idx], ok[idx]
            g.tp += int((gs & gy).sum())
            g.fp += int((gs & ~gy).sum())
            g.fn += int((~gs & gy).sum())
            g.tn += int((~gs & ~gy).sum())
            g.scored += int(gok.sum())
            g.scored_pos += int((gok & gy).sum())
            g.score_sum += float(s[idx][gok].sum())

    def merge(self, other: FairnessCounts) -> FairnessCounts:
        """Both inputs' rows; neither is modified. Exact while the union of groups fits
        ``max_groups`` − 1 named groups; beyond, the smallest (by n, then name) pool
        into OTHER."""
        if self.attribute != other.attribute:
            raise ValueError(f"cannot merge attributes {self.attribute!r} and {other.attribute!r}")
        cap = min(self.max_groups, other.max_groups)
        union: dict[str, GroupCounts] = {}
        for side in (self.groups, other.groups):
            for name, g in side.items():
                union[name] = union.get(name, GroupCounts()) + g
        named = sorted((k for k in union if k != OTHER), key=lambda k: (-union[k].n, k))
        if len(named) > cap - 1:  # as in updates: cap − 1 named groups and OTHER
            pooled = union.get(OTHER, GroupCounts())
            for name in named[cap - 1 :]:
                pooled = pooled + union.pop(name)
            union[OTHER] = pooled
        return FairnessCounts(self.attribute, cap, union, self.missing + other.missing)

    # ----------------------------------------------------------------- serialization

    def to_bytes(self) -> bytes:
        names = sorted(self.groups)
        meta = {
            "attribute": self.attribute,
            "max_groups": self.max_groups,
            "missing": self.missing,
            "groups": names,
            "counts": [self.groups[k].to_list() for k in names],
        }
        return codec.pack(MAGIC, meta, [])

    @classmethod
    def from_bytes(cls, data: bytes) -> FairnessCounts:
        """Inverse of :meth:`to_bytes`; ProfileFormatError on bytes that are not one."""
        meta, _ = codec.unpack(data, MAGIC, "fairness counts")
        try:
            groups = {}
            for name, row in zip(meta["groups"], meta["counts"], strict=True):
                groups[str(name)] = GroupCounts.of(row)
            return cls(
                str(meta["attribute"]), int(meta["max_groups"]), groups, int(meta["missing"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileFormatError(f"fairness counts: corrupt ({exc})") from exc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FairnessCounts):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]


def _rows_by_group(groups: Sequence[str | None]) -> dict[str | None, np.ndarray]:
    out: dict[str | None, list[int]] = {}
    for i, g in enumerate(groups):
        out.setdefault(None if g is None else str(g), []).append(i)
    return {k: np.array(v, dtype=np.int64) for k, v in out.items()}


# ----------------------------------------------------------------------------- report


@dataclass(frozen=True, slots=True)
class Rate:
    """successes / n of one group with its Wilson interval; no value when n is below the
    minimum group size (``insufficient``) or 0 (``empty``)."""

    successes: int
    n: int
    status: Status
    interval: Interval | None

    @property
    def value(self) -> float | None:
        return self.interval.value if self.interval is not None else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n": self.n, "status": self.status, "value": self.value}
        if self.interval is not None:
            out["low"], out["high"] = self.interval.low, self.interval.high
        return out


def rate(successes: int, n: int, min_n: int, z: float = Z_95) -> Rate:
    """A :class:`Rate`, insufficient below ``min_n``."""
    if n <= 0:
        return Rate(successes, n, "empty", None)
    if n < min_n:
        return Rate(successes, n, "insufficient", None)
    return Rate(successes, n, "ok", wilson_interval(successes, n, z))


@dataclass(frozen=True, slots=True)
class Disparity:
    """A gap between two groups: ``high_group``'s rate − ``low_group``'s (a difference)
    or low ÷ high (a ratio), with its interval; ``insufficient`` when fewer than two
    groups have a value."""

    metric: str
    status: Status
    interval: Interval | None = None
    low_group: str | None = None
    high_group: str | None = None

    @property
    def value(self) -> float | None:
        return self.interval.value if self.interval is not None else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"metric": self.metric, "status": self.status, "value": self.value}
        if self.interval is not None:
            out |= {"low": self.interval.low, "high": self.interval.high}
            out |= {"low_group": self.low_group, "high_group": self.high_group}
        return out


def _extremes(rates: Mapping[str, Rate]) -> tuple[str, str] | None:
    ok = sorted((r.value, g) for g, r in rates.items() if r.value is not None and g != OTHER)
    if len(ok) < 2:
        return None
    return ok[0][1], ok[-1][1]


def difference(metric: str, rates: Mapping[str, Rate], z: float = Z_95) -> Disparity:
    """max − min of the groups' rates, Newcombe interval."""
    ext = _extremes(rates)
    if ext is None:
        return Disparity(metric, "insufficient")
    lo, hi = rates[ext[0]], rates[ext[1]]
    iv = newcombe_interval(hi.successes, hi.n, lo.successes, lo.n, z)
    return Disparity(metric, "ok", iv, ext[0], ext[1])


def ratio(metric: str, rates: Mapping[str, Rate], z: float = Z_95) -> Disparity:
    """min ÷ max of the groups' rates, Katz log interval (1 when every rate is 0)."""
    ext = _extremes(rates)
    if ext is None:
        return Disparity(metric, "insufficient")
    lo, hi = rates[ext[0]], rates[ext[1]]
    iv = katz_ratio_interval(lo.successes, lo.n, hi.successes, hi.n, z)
    if iv is None:  # every rate 0: no disparity
        iv = Interval(1.0, 1.0, 1.0, lo.n + hi.n)
    return Disparity(metric, "ok", iv, ext[0], ext[1])


@dataclass(frozen=True)
class Calibration:
    """Mean score and observed positive rate of a group's scored labeled rows."""

    mean_score: float | None
    observed: Rate

    @property
    def gap(self) -> float | None:
        """mean score − observed positive rate (positive: over-predicts)."""
        if self.mean_score is None or self.observed.value is None:
            return None
        return self.mean_score - self.observed.value

    def to_dict(self) -> dict[str, Any]:
        return {"mean_score": self.mean_score, "observed": self.observed.to_dict(), "gap": self.gap}


@dataclass(frozen=True)
class FairnessReport:
    """Every fairness metric of one attribute at one window (see the module docstring)."""

    attribute: str
    min_group_size: int
    selection_rate: dict[str, Rate]
    tpr: dict[str, Rate]
    fpr: dict[str, Rate]
    precision: dict[str, Rate]
    calibration: dict[str, Calibration]
    disparate_impact: Disparity
    demographic_parity_difference: Disparity
    tpr_gap: Disparity
    fpr_gap: Disparity
    missing: int

    @property
    def equalized_odds_difference(self) -> Disparity:
        """The larger of the TPR and FPR gaps (insufficient unless both have a value)."""
        t, f = self.tpr_gap, self.fpr_gap
        if t.value is None or f.value is None:
            return Disparity("equalized_odds_difference", "insufficient")
        worst = t if t.value >= f.value else f
        return Disparity(
            "equalized_odds_difference", "ok", worst.interval, worst.low_group, worst.high_group
        )

    @property
    def four_fifths(self) -> bool | None:
        """Whether the disparate impact ratio is at least 0.8 (None: insufficient)."""
        v = self.disparate_impact.value
        return None if v is None else v >= FOUR_FIFTHS

    @property
    def four_fifths_clearly_violated(self) -> bool:
        """The ratio's whole interval lies below 0.8 (not explained by sampling noise)."""
        iv = self.disparate_impact.interval
        return iv is not None and iv.high < FOUR_FIFTHS

    def small_groups(self) -> list[str]:
        """Groups whose predictions are below the minimum group size."""
        return sorted(g for g, r in self.selection_rate.items() if r.status != "ok")

    def to_dict(self, raw_small_groups: bool = False) -> dict[str, Any]:
        """JSON-able form. The names of groups below the minimum size are left out
        (only their number is given) unless ``raw_small_groups``."""
        small = set(self.small_groups())
        keep = [g for g in sorted(self.selection_rate) if raw_small_groups or g not in small]
        per_group = {
            g: {
                "selection_rate": self.selection_rate[g].to_dict(),
                "tpr": self.tpr[g].to_dict(),
                "fpr": self.fpr[g].to_dict(),
                "precision": self.precision[g].to_dict(),
                "calibration": self.calibration[g].to_dict(),
            }
            for g in keep
        }
        gaps = (
            self.disparate_impact,
            self.demographic_parity_difference,
            self.tpr_gap,
            self.fpr_gap,
            self.equalized_odds_difference,
        )
        return {
            "attribute": self.attribute,
            "min_group_size": self.min_group_size,
            "groups": per_group,
            "small_groups_left_out": 0 if raw_small_groups else len(small),
            "disparities": {d.metric: d.to_dict() for d in gaps},
            "four_fifths": self.four_fifths,
            "missing": self.missing,
        }


def fairness_report(
    counts: FairnessCounts, min_group_size: int = DEFAULT_MIN_GROUP_SIZE, z: float = Z_95
) -> FairnessReport:
    """All metrics of ``counts``; a rate is insufficient below ``min_group_size`` rows in
    its denominator."""
    if min_group_size < 1:
        raise ValueError("min_group_size must be >= 1")
    m = min_group_size
    g = counts.groups
    sel = {k: rate(c.selected, c.n, m, z) for k, c in g.items()}
    tpr = {k: rate(c.tp, c.tp + c.fn, m, z) for k, c in g.items()}
    fpr = {k: rate(c.fp, c.fp + c.tn, m, z) for k, c in g.items()}
    prec = {k: rate(c.tp, c.tp + c.fp, m, z) for k, c in g.items()}
    cal = {
        k: Calibration(
            c.score_sum / c.scored if c.scored >= m else None, rate(c.scored_pos, c.scored, m, z)
        )
        for k, c in g.items()
    }
    return FairnessReport(
        counts.attribute,
        m,
        sel,
        tpr,
        fpr,
        prec,
        cal,
        disparate_impact=ratio("disparate_impact_ratio", sel, z),
        demographic_parity_difference=difference("demographic_parity_difference", sel, z),
        tpr_gap=difference("tpr_gap", tpr, z),
        fpr_gap=difference("fpr_gap", fpr, z),
        missing=counts.missing,
    )
