"""Category counts: exact up to a cap of distinct values, then a frequent-items sketch.

Below ``max_categories`` distinct values every count is exact (a dict). When a new
value would exceed the cap, all counts move into a datasketches
``frequent_strings_sketch`` (Misra–Gries / SpaceSaving family; Anderson et al. 2017)
with ``lg_max_map_size`` (default 10: at most 768 tracked items, count error at most
3.5/1024 ≈ 0.34% of the total weight). Items the sketch reports form the head; the
rest of the total weight is an explicit, counted "other" tail. The exact mode is what
makes chi-squared exact below the cap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import datasketches as ds

DEFAULT_MAX_CATEGORIES = 1000
DEFAULT_LG_MAX_MAP_SIZE = 10
_NFN = ds.frequent_items_error_type.NO_FALSE_NEGATIVES


class CategoryCounts:
    """Counts per category string; mutable via :meth:`update`, merged without mutation."""

    __slots__ = ("exact", "lg_max_map_size", "max_categories", "sketch", "total")

    def __init__(
        self,
        max_categories: int = DEFAULT_MAX_CATEGORIES,
        lg_max_map_size: int = DEFAULT_LG_MAX_MAP_SIZE,
    ) -> None:
        self.max_categories = max_categories
        self.lg_max_map_size = lg_max_map_size
        self.exact: dict[str, int] | None = {}
        self.sketch: ds.frequent_strings_sketch | None = None
        self.total = 0

    @property
    def is_exact(self) -> bool:
        return self.exact is not None

    def _overflow(self) -> None:
        assert self.exact is not None
        sk = ds.frequent_strings_sketch(self.lg_max_map_size)
        for cat, cnt in self.exact.items():
            sk.update(cat, cnt)
        self.sketch = sk
        self.exact = None

    def update(self, categories: Sequence[str], counts: Iterable[int]) -> None:
        """Add ``counts[i]`` occurrences of ``categories[i]`` (one batch, pre-counted)."""
        pairs = [(c, int(n)) for c, n in zip(categories, counts, strict=True) if n > 0]
        if not pairs:
            return
        self.total += sum(n for _, n in pairs)
        if self.exact is not None:
            exact = self.exact
            new = sum(1 for c, _ in pairs if c not in exact)
            if len(exact) + new <= self.max_categories:
                for c, n in pairs:
                    exact[c] = exact.get(c, 0) + n
                return
            self._overflow()
        assert self.sketch is not None
        upd = self.sketch.update
        for c, n in pairs:
            upd(c, n)

    def merge(self, other: CategoryCounts) -> CategoryCounts:
        """A new object with both sides' counts; neither input changes."""
        out = CategoryCounts(
            min(self.max_categories, other.max_categories),
            min(self.lg_max_map_size, other.lg_max_map_size),
        )
        for side in (self, other):
            if side.exact is not None:
                out.update(list(side.exact), list(side.exact.values()))
            else:
                assert side.sketch is not None
                if out.exact is not None:
                    out._overflow()
                assert out.sketch is not None
                out.sketch.merge(side.sketch)
                out.total += side.total
        return out

    def counts(self) -> tuple[dict[str, int], int]:
        """(head counts, other-tail count). Exact mode: all counts and a zero tail."""
        if self.exact is not None:
            return dict(self.exact), 0
        assert self.sketch is not None
        head = {item: int(est) for item, est, _lo, _hi in self.sketch.get_frequent_items(_NFN)}
        return head, max(0, self.total - sum(head.values()))

    def bounds(self) -> dict[str, tuple[int, int]]:
        """Tracked categories with (lower, upper) bounds on their true counts.

        Exact mode: every category with (count, count). Sketch mode: the sketch's
        items (no false negatives) with its a-posteriori bounds; an untracked
        category's true count lies in [0, :meth:`max_error`]."""
        if self.exact is not None:
            return {c: (n, n) for c, n in self.exact.items()}
        assert self.sketch is not None
        return {
            item: (int(lo), int(hi)) for item, _est, lo, hi in self.sketch.get_frequent_items(_NFN)
        }

    def max_error(self) -> int:
        """Largest possible count error of any category (0 in exact mode): the
        sketch's offset, i.e. upper minus lower bound of every tracked item."""
        if self.exact is not None or self.sketch is None:
            return 0
        items = self.sketch.get_frequent_items(_NFN)
        return int(items[0][3] - items[0][2]) if items else 0

    def top(self, n: int) -> list[tuple[str, int]]:
        """The ``n`` most frequent categories with their (estimated) counts."""
        head, _ = self.counts()
        return sorted(head.items(), key=lambda kv: (-kv[1], kv[0]))[:n]

    def distinct(self) -> int:
        """Number of distinct categories held (exact mode) or tracked (sketch mode)."""
        head, _ = self.counts()
        return len(head)

    # ------------------------------------------------------------------ serialization

    def to_state(self) -> tuple[dict[str, Any], bytes]:
        """(JSON-able meta, sketch bytes or b"")."""
        meta: dict[str, Any] = {
            "max_categories": self.max_categories,
            "lg_max_map_size": self.lg_max_map_size,
            "total": self.total,
        }
        if self.exact is not None:
            cats = sorted(self.exact)
            meta["exact"] = [cats, [self.exact[c] for c in cats]]
            return meta, b""
        assert self.sketch is not None
        return meta, self.sketch.serialize()

    @classmethod
    def from_state(cls, meta: dict[str, Any], blob: bytes) -> CategoryCounts:
        out = cls(int(meta["max_categories"]), int(meta["lg_max_map_size"]))
        out.total = int(meta["total"])
        exact = meta.get("exact")
        if exact is not None:
            cats, cnts = exact
            out.exact = dict(zip(cats, (int(c) for c in cnts), strict=True))
        else:
            out.exact = None
            out.sketch = ds.frequent_strings_sketch.deserialize(blob)
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CategoryCounts):
            return NotImplemented
        return (
            self.total == other.total
            and self.is_exact == other.is_exact
            and (self.max_categories, self.lg_max_map_size)
            == (other.max_categories, other.lg_max_map_size)
            and self.counts() == other.counts()
        )

    __hash__ = None  # type: ignore[assignment]
