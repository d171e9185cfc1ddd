"""The label join as a deterministic state machine over a :class:`PendingStore`.

Three inputs, each one store transaction, each returning a :class:`JoinOutput` with the
changelog writes of that transaction:

* :meth:`LabelJoin.apply_predictions` — store each prediction under (model, request id),
  or match it at once with a label that came first;
* :meth:`LabelJoin.apply_labels` — match each label with its stored prediction, or keep
  it waiting for the grace period;
* :meth:`LabelJoin.advance` — move event time to ``now_ms`` (the caller's watermark of
  the predictions stream; it never moves back) and expire, in bounded work per call,
  predictions past the label horizon and labels past their grace.

The rules (also in README/STATISTICS):

* **Horizon.** A prediction older than ``watermark − horizon_ms`` is gone: it is deleted
  (unlabeled ones are counted per window in ``expired``), not stored when it arrives
  that late (``late_predictions``), and never matched even before its deletion — so the
  output does not depend on how much work each call may do.
* **Labels first.** A label with no prediction waits until ``watermark − grace_ms``
  passes its label time, then is returned as :class:`Unmatched` (reason
  ``no_prediction``); a label older than ``watermark − horizon_ms`` could only judge a
  deleted prediction and is unmatched at once (``past_retention``).
* **Duplicates.** The first label counts. A later label equal to the latest one seen is
  a duplicate (counted); a different one is a correction (:class:`Correction`, counted;
  the metrics keep the first label).
* **Duplicate predictions** (same model and request id): the first is kept.
* **Sample.** A prediction is stored only when :func:`sample_hash` of its request id is
  below the sample rate; a label whose prediction is absent and whose hash is not below
  it is dropped (``sampled_out_labels``) rather than waiting. When more than ``budget``
  predictions are pending, :meth:`advance` halves the rate and sweeps the store (bounded
  work per call) for entries above it: the kept set shrinks to a subset, each entry
  records the rate it was kept at, and a replay of the same calls gives the same output.
* **Shadow pairs.** For a model in ``JoinPolicy.shadow`` (model → (champion version,
  challenger version)), a challenger prediction is stored under its own key (model +
  :data:`SHADOW_SUFFIX`, request id), so it is no duplicate of the champion's; every
  other version keeps the model's key. It is a regular prediction of its version (stored,
  labeled, expired, sampled by request id like any other), and it waits on no label of
  its own: labels are keyed by model, and each one that is kept — matched, waiting,
  duplicate or correction — also labels a live unlabeled challenger with the request's
  *first* label (a :class:`Matched` of its own; duplicates and corrections are the
  champion's only). A challenger that arrives while a label waits is stored unlabeled
  and is labeled when the champion takes the label; one that arrives after a labeled
  champion takes the champion's label. When the second of a live champion/challenger
  pair is stored, ``(champion, challenger)`` goes to ``pairs``; when the second of the
  two is labeled (both stored), ``(champion, challenger, label, label_ms)`` goes to
  ``labeled_pairs`` — once per pair, whatever the order of the three arrivals, with the
  champion's first label. Outputs carry the real model name on both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

import numpy as np

from streamproc.labels.kv import Write
from streamproc.labels.store import (
    Pending,
    PendingStore,
    WaitingLabel,
    record_id,
    sample_hash,
)

DAY_MS: Final = 86_400_000
DEFAULT_HORIZON_MS: Final = 30 * DAY_MS
DEFAULT_GRACE_MS: Final = 3_600_000
DEFAULT_BUDGET: Final = 20_000_000
"""Pending predictions per store before sampling: ~2.2 GB on disk at the measured
~110 bytes per entry at 1e7 entries (benchmarks/bench_label_store.py)."""
DEFAULT_MAX_WORK: Final = 20_000
NO_PREDICTION: Final = "no_prediction"
PAST_RETENTION: Final = "past_retention"
SHADOW_SUFFIX: Final = "\x1fshadow"
"""Appended to the model name in the store key of a challenger's predictions."""


@dataclass(frozen=True)
class JoinPolicy:
    horizon_ms: int = DEFAULT_HORIZON_MS
    """Label horizon: how long a prediction waits for its label (event time)."""
    grace_ms: int = DEFAULT_GRACE_MS
    """How long a label waits for its prediction (event time)."""
    budget: int = DEFAULT_BUDGET
    sample_rate: float = 1.0
    """Initial sample rate in (0, 1]."""
    max_work: int = DEFAULT_MAX_WORK
    """Entries expired or swept per :meth:`LabelJoin.advance`, per kind."""
    shadow: Mapping[str, tuple[str, str]] = field(default_factory=dict, hash=False)
    """Model → (champion version, challenger version) of a shadow deployment: the two
    versions' predictions of a request id are paired (module docstring)."""

    def __post_init__(self) -> None:
        if not (0.0 < self.sample_rate <= 1.0):
            raise ValueError("sample_rate must be in (0, 1]")
        if min(self.horizon_ms, self.grace_ms) < 0 or min(self.budget, self.max_work) < 1:
            raise ValueError("horizon and grace must be >= 0, budget and max_work >= 1")
        for model, versions in self.shadow.items():
            if len(versions) != 2 or versions[0] == versions[1]:
                raise ValueError(
                    f"shadow[{model!r}] must be two different versions (champion, challenger)"
                )


@dataclass(frozen=True, slots=True)
class PredictionRows:
    """Columns of predictions for :meth:`LabelJoin.apply_predictions`."""

    models: Sequence[str]
    request_ids: Sequence[str]
    event_ms: Sequence[int]
    window_start_ms: Sequence[int]
    model_versions: Sequence[str]
    predicted: Sequence[Any]
    scores: Sequence[float]
    segments: Sequence[Mapping[str, str] | None] | None = None

    @classmethod
    def from_batch(cls, batch: Any) -> PredictionRows:
        """From a :class:`~streamproc.contracts.batch.PredictionBatch` decoded with
        ``keep_request_ids=True`` and ``window_ms``."""
        if batch.request_ids is None:
            raise ValueError("decode predictions with keep_request_ids=True for the join")
        n = batch.n
        return cls(
            [batch.model] * n,
            batch.request_ids,
            (np.asarray(batch.timestamps) * 1000).astype(np.int64).tolist(),
            [batch.window_start_ms] * n,
            [batch.model_version] * n,
            batch.prediction_label,
            np.asarray(batch.prediction_score, dtype=np.float64).tolist(),
            batch.segments,
        )


@dataclass(frozen=True, slots=True)
class Matched:
    """A prediction and its (first) label; metrics go to the prediction's window."""

    prediction: Pending
    label: Any
    label_ms: int

    @property
    def lag_ms(self) -> int:
        """Label time − prediction time (negative when the label's clock is ahead)."""
        return self.label_ms - self.prediction.event_ms


@dataclass(frozen=True, slots=True)
class Correction:
    model: str
    request_id: str
    first_label: Any
    label: Any
    label_ms: int
    window_start_ms: int | None
    """The prediction's window, or None while the label still waits for it."""


@dataclass(frozen=True, slots=True)
class Unmatched:
    """A label that found no prediction: dead-letter it with ``reason``."""

    model: str
    request_id: str
    label: Any
    label_ms: int
    reason: str

    def to_event(self) -> dict[str, Any]:
        """The label event it came from (for the dead-letter topic)."""
        return {
            "model": self.model,
            "request_id": self.request_id,
            "timestamp": self.label_ms,
            "label": self.label,
        }


@dataclass
class JoinOutput:
    matched: list[Matched] = field(default_factory=list)
    corrections: list[Correction] = field(default_factory=list)
    unmatched: list[Unmatched] = field(default_factory=list)
    expired: dict[tuple[str, int], int] = field(default_factory=dict)
    """(model, window start ms) → predictions deleted by retention without a label."""
    duplicates: int = 0
    duplicate_predictions: int = 0
    late_predictions: int = 0
    sampled_out_predictions: int = 0
    sampled_out_labels: int = 0
    swept: int = 0
    """Entries deleted because the sample rate dropped."""
    pairs: list[tuple[Pending, Pending]] = field(default_factory=list)
    """(champion, challenger) of a shadow model, when the second of the two is stored."""
    labeled_pairs: list[tuple[Pending, Pending, Any, int]] = field(default_factory=list)
    """(champion, challenger, label, label ms) when the second of a stored pair is labeled
    (the champion's first label), once per pair."""
    sample_rate: float = 1.0
    pending: int = 0
    waiting: int = 0
    changelog: list[Write] = field(default_factory=list)


class LabelJoin:
    """The join over one store (one partition of the labels, by request id)."""

    def __init__(self, store: PendingStore, policy: JoinPolicy | None = None) -> None:
        self.store = store
        self.policy = policy or JoinPolicy()
        self.store.meta.setdefault("rate", self.policy.sample_rate)
        self.store.meta.setdefault("watermark_ms", 0)

    @property
    def rate(self) -> float:
        return float(self.store.meta["rate"])

    @property
    def watermark_ms(self) -> int:
        return int(self.store.meta["watermark_ms"])

    def _horizon_cut(self) -> int:
        return self.watermark_ms - self.policy.horizon_ms

    def _finish(self, out: JoinOutput) -> JoinOutput:
        out.sample_rate = self.rate
        out.pending = int(self.store.meta["pending"])
        out.waiting = int(self.store.meta["waiting"])
        out.changelog = self.store.commit()
        return out

    def _live(self, p: Pending | None, out: JoinOutput) -> Pending | None:
        """``p`` unless it is past the horizon; then delete it now, as :meth:`advance`
        would have (so outputs do not depend on ``max_work``)."""
        if p is None or p.event_ms >= self._horizon_cut():
            return p
        self._expire_prediction(p, out)
        return None

    def _waiting(self, w: WaitingLabel | None, out: JoinOutput) -> WaitingLabel | None:
        """``w`` unless its grace is over; then unmatch it now (see :meth:`_live`)."""
        if w is None or w.label_ms >= self.watermark_ms - self.policy.grace_ms:
            return w
        self._expire_label(w, out)
        return None

    def _expire_prediction(self, p: Pending, out: JoinOutput) -> None:
        self.store.delete_prediction(p)
        if not p.labeled:
            key = (p.model.removesuffix(SHADOW_SUFFIX), p.window_start_ms)
            out.expired[key] = out.expired.get(key, 0) + 1

    def _expire_label(self, w: WaitingLabel, out: JoinOutput) -> None:
        self.store.delete_waiting(w)
        out.unmatched.append(Unmatched(w.model, w.request_id, w.label, w.label_ms, NO_PREDICTION))

    def _role(self, model: str, version: str) -> int:
        """0: a plain prediction, 1: a shadow model's champion, 2: its challenger."""
        versions = self.policy.shadow.get(model)
        if versions is None or version not in versions:
            return 0
        return 1 if version == versions[0] else 2

    def _challenger(self, model: str, request_id: str, out: JoinOutput) -> Pending | None:
        """The live stored challenger of ``request_id`` (its store form: the model name
        carries :data:`SHADOW_SUFFIX`), if any."""
        return self._live(self.store.get_prediction(_shadow_id(model, request_id)), out)

    def apply_predictions(self, rows: PredictionRows) -> JoinOutput:
        out = JoinOutput()
        st, rate, cut = self.store, self.rate, self._horizon_cut()
        models, versions = rows.models, rows.model_versions
        roles = [self._role(m, v) for m, v in zip(models, versions, strict=True)]
        ids = [record_id(m, r) for m, r in zip(models, rows.request_ids, strict=True)]
        shadow_ids = [
            _shadow_id(m, r)
            for m, r, role in zip(models, rows.request_ids, roles, strict=True)
            if role
        ]
        st.prefetch(ids + shadow_ids)
        segments = rows.segments or [None] * len(ids)
        for i, rid in enumerate(ids):
            event_ms = int(rows.event_ms[i])
            if event_ms < cut:
                out.late_predictions += 1
                continue
            model, request_id, role = models[i], rows.request_ids[i], roles[i]
            waiting = self._waiting(st.get_waiting(rid), out)
            own_id = _shadow_id(model, request_id) if role == 2 else rid
            if self._live(st.get_prediction(own_id), out) is not None:
                out.duplicate_predictions += 1
                continue
            if waiting is None and sample_hash(request_id) >= rate:
                out.sampled_out_predictions += 1
                continue
            score = float(rows.scores[i])
            p = Pending(
                model, request_id, event_ms, int(rows.window_start_ms[i]),
                versions[i], rows.predicted[i], score, rate, segments[i],
            )  # fmt: skip
            if role == 2:
                self._store_challenger(p, rid, out)
                continue
            if waiting is not None:
                st.delete_waiting(waiting)
                p = _labeled(p, waiting)
                out.matched.append(Matched(p, waiting.label, waiting.label_ms))
            st.put_prediction(p)
            if role == 1:
                self._pair_champion(p, out)
        return self._finish(out)

    def _pair_champion(self, p: Pending, out: JoinOutput) -> None:
        """A champion ``p`` was just stored: pair it with a stored challenger; when ``p``
        took a waiting label, label the challenger too (if it is not yet)."""
        c = self._challenger(p.model, p.request_id, out)
        if c is None:
            return
        if p.labeled and not c.labeled:
            c = self._label_challenger(c, p.model, p.label, _ms(p))
            out.matched.append(Matched(c, p.label, _ms(p)))
        c = replace(c, model=p.model)
        out.pairs.append((p, c))
        if p.labeled:
            out.labeled_pairs.append((p, c, p.label, _ms(p)))

    def _store_challenger(self, c: Pending, rid: bytes, out: JoinOutput) -> None:
        """Store a new challenger ``c`` (``rid``: its champion's id); pair it with a stored
        champion, and take that champion's label if it has one."""
        st = self.store
        p = self._live(st.get_prediction(rid), out)
        if p is not None and p.model_version != self.policy.shadow[c.model][0]:
            p = None  # another version under the champion's key: no pair
        if p is not None:
            p = replace(p, model=c.model)  # the real name (a stored one may be capped)
        if p is not None and p.labeled:
            c = self._label_challenger(c, c.model, p.label, _ms(p), new=True)
            out.matched.append(Matched(c, p.label, _ms(p)))
        else:
            st.put_prediction(replace(c, model=c.model + SHADOW_SUFFIX))
        if p is not None:
            out.pairs.append((p, c))
            if p.labeled:
                out.labeled_pairs.append((p, c, p.label, _ms(p)))

    def _label_challenger(
        self, c: Pending, model: str, label: Any, label_ms: int, new: bool = False
    ) -> Pending:
        """Store challenger ``c`` (store form, or a ``new`` one) labeled; return it with
        the real ``model`` name."""
        old = None if new else c
        labeled = replace(
            c, model=model + SHADOW_SUFFIX, label=label, label_ms=label_ms, last_label=None
        )
        self.store.put_prediction(labeled, old)
        return replace(labeled, model=model)

    def apply_labels(
        self, models: Sequence[str], request_ids: Sequence[str], label_ms: Sequence[int],
        labels: Sequence[Any],
    ) -> JoinOutput:  # fmt: skip
        """Labels in input order (e.g. a :class:`~streamproc.contracts.label.LabelBatch`:
        ``batch.models, batch.request_ids, batch.label_ms, batch.labels``)."""
        out = JoinOutput()
        st, cut = self.store, self._horizon_cut()
        ids = [record_id(m, r) for m, r in zip(models, request_ids, strict=True)]
        shadow_ids = [
            _shadow_id(m, r)
            for m, r in zip(models, request_ids, strict=True)
            if m in self.policy.shadow
        ]
        st.prefetch(ids + shadow_ids)
        for i, rid in enumerate(ids):
            t, label, model, request_id = int(label_ms[i]), labels[i], models[i], request_ids[i]
            first: tuple[Any, int] | None = None  # the request's first label, if kept
            newly = False
            p = self._live(st.get_prediction(rid), out)
            if p is not None:
                if not p.labeled:
                    p = _labeled(p, WaitingLabel(model, request_id, label, t))
                    st.put_prediction(p, p)
                    out.matched.append(Matched(p, label, t))
                    newly = True
                elif _same(label, p.label if p.last_label is None else p.last_label):
                    out.duplicates += 1
                else:
                    out.corrections.append(
                        Correction(model, request_id, p.label, label, t, p.window_start_ms)
                    )
                    st.put_prediction(replace(p, last_label=label), p)
                first = (p.label, _ms(p))
            elif (w := self._waiting(st.get_waiting(rid), out)) is not None:
                if _same(label, w.label if w.last_label is None else w.last_label):
                    out.duplicates += 1
                else:
                    out.corrections.append(Correction(model, request_id, w.label, label, t, None))
                    st.put_waiting(
                        WaitingLabel(model, request_id, w.label, w.label_ms, label), False
                    )
                first = (w.label, w.label_ms)
            elif t < cut:
                out.unmatched.append(Unmatched(model, request_id, label, t, PAST_RETENTION))
            elif sample_hash(request_id) >= self.rate:
                out.sampled_out_labels += 1
            else:
                st.put_waiting(WaitingLabel(model, request_id, label, t), True)
                first = (label, t)
            if first is not None and model in self.policy.shadow:
                self._label_pair(model, request_id, p, newly, first, out)
        return self._finish(out)

    def _label_pair(
        self, model: str, request_id: str, p: Pending | None, newly: bool,
        first: tuple[Any, int], out: JoinOutput,
    ) -> None:  # fmt: skip
        """After a label of a shadow model (``p``: its labeled champion, if stored;
        ``newly``: labeled by it): label a stored unlabeled challenger with ``first``."""
        c = self._challenger(model, request_id, out)
        if c is None:
            return
        labeled_now = not c.labeled
        if labeled_now:
            c = self._label_challenger(c, model, *first)
            out.matched.append(Matched(c, *first))
        else:
            c = replace(c, model=model)
        champion = self.policy.shadow[model][0]
        if p is not None and (newly or labeled_now) and p.model_version == champion:
            out.labeled_pairs.append((replace(p, model=model), c, p.label, _ms(p)))

    def advance(self, now_ms: int) -> JoinOutput:
        """Move the watermark to ``now_ms`` (never back); expire and sweep, bounded."""
        out = JoinOutput()
        st, pol = self.store, self.policy
        st.meta["watermark_ms"] = max(self.watermark_ms, int(now_ms))
        for p in st.predictions_before(self._horizon_cut(), pol.max_work):
            self._expire_prediction(p, out)
        for w in st.waiting_before(self.watermark_ms - pol.grace_ms, pol.max_work):
            self._expire_label(w, out)
        cursor = st.meta.get("sweep")
        if cursor is None and st.meta["pending"] > pol.budget:
            st.meta["rate"] = self.rate / 2.0
            cursor = ""
        if cursor is not None:
            found, nxt = st.predictions_from(bytes.fromhex(cursor), pol.max_work)
            for p in found:
                if sample_hash(p.request_id) >= self.rate:
                    st.delete_prediction(p)
                    out.swept += 1
            st.meta["sweep"] = None if nxt is None else nxt.hex()
        return self._finish(out)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and (a == b or (a != a and b != b))


def _shadow_id(model: str, request_id: str) -> bytes:
    """The store id of a challenger's prediction of (model, request id)."""
    return record_id(model + SHADOW_SUFFIX, request_id)


def _ms(p: Pending) -> int:
    """The label time of a labeled ``p``."""
    if p.label_ms is None:
        raise ValueError("an unlabeled prediction has no label time")
    return p.label_ms


def _labeled(p: Pending, w: WaitingLabel) -> Pending:
    return replace(p, label=w.label, label_ms=w.label_ms, last_label=w.last_label)


__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_GRACE_MS",
    "DEFAULT_HORIZON_MS",
    "NO_PREDICTION",
    "PAST_RETENTION",
    "SHADOW_SUFFIX",
    "Correction",
    "JoinOutput",
    "JoinPolicy",
    "LabelJoin",
    "Matched",
    "PredictionRows",
    "Unmatched",
]
