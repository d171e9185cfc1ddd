"""Guess a ``[labels_mapping]`` from a sample of a labels topic: ``attach --sample --labels``.

:func:`infer_labels` classifies the fields of a few hundred records as
:func:`~streamproc.contracts.inference.infer` does, then proposes where each field of a
label event (``model``, ``request_id``, ``timestamp``, ``label``) comes from:

* ``label``: a field named like one (``label``, ``truth``, ``actual``, ``target``,
  ``outcome``, ``is_fraud``, ``y``, ``class``), as it is. Otherwise a **derived label**
  from a business event: a string field of at most :data:`MAX_EVENT_TYPES` distinct
  identifier-like values (``chargeback``, ``settled``, ``shipped``) that is named like an
  event type (``type``, ``event``, ``kind``, ``status``, ...) or whose values name an
  outcome. Values that name a positive outcome (a token of :data:`POSITIVE`:
  ``chargeback``, ``refund_fraud``) map to 1, those that name a negative one
  (:data:`NEGATIVE`: ``settled``, ``not_fraud``) to 0, and the others (``shipped``,
  ``created``) are left out of ``map``: they are *not label events* (counted, never
  dead-lettered), so an order that ships and is later charged back is labeled 1, not
  fixed at 0 by its first event (the first label of a request counts). When no negative
  value is recognised, the proposal adds ``default = 0`` (else no record would ever be
  labeled 0) and says what that costs. A label field and an event-type field both
  present: the field is the proposal, the derived label a commented alternative.
* ``request_id``: an id field (``request…`` first; ids named like an event's own id,
  ``event_id``, ``message_id``, are passed over), else the Kafka key (``$key``).
* ``timestamp``: an event-time field, else the Kafka record timestamp.
* ``model``: a field naming the model, else the constant given (it must be the model name
  the predictions carry).

Pure, like :mod:`~streamproc.contracts.inference`: the CLI reads the topic and prints.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any, Final

from streamproc.contracts.inference import FieldGuess, Proposal, guess_fields, pick

__all__ = ["MAX_EVENT_TYPES", "NEGATIVE", "POSITIVE", "infer_labels", "outcome_of"]

MAX_EVENT_TYPES: Final = 20
"""At most this many distinct values make a field an event type."""
POSITIVE: Final = frozenset(
    {
        "chargeback",
        "chargebacks",
        "chargedback",
        "fraud",
        "fraudulent",
        "dispute",
        "disputed",
        "defaulted",
        "delinquent",
        "churned",
        "positive",
    }
)
"""Tokens of an event type that name a positive outcome (label 1)."""
NEGATIVE: Final = frozenset(
    {
        "settled",
        "paid",
        "repaid",
        "legit",
        "legitimate",
        "genuine",
        "cleared",
        "negative",
        "ok",
        "good",
    }
)
"""Tokens of an event type that name a negative outcome (label 0)."""
_NEGATION: Final = frozenset({"not", "no", "non"})
_LABEL_ENVELOPE: Final = frozenset({"model", "request_id", "timestamp", "label"})
_LABEL_NAME: Final = re.compile(
    r"(^|_)(label|truth|actual|target|outcome)($|_)|^(y|class|is_fraud|fraud)$", re.I
)
_LABEL_ROLES: Final = frozenset({"label", "categorical", "boolean", "numeric"})
_EVENT_NAME: Final = re.compile(
    r"(^|_)(type|event|kind|status|action|state|outcome|name)($|_)|Type$", re.I
)
_EVENT_VALUE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
_EVENT_ID: Final = re.compile(r"event|message|msg|trace|span|offset", re.I)


def outcome_of(value: str) -> int | None:
    """1 when an event type names a positive outcome, 0 a negative one, else None."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1_\2", value).lower()
    parts = [t for t in re.split(r"[^a-z0-9]+", spaced) if t]
    tokens = {*parts, "".join(parts)}  # charge_back, ChargeBack: chargeback
    if tokens & POSITIVE:
        return 0 if tokens & _NEGATION else 1
    if tokens & NEGATIVE:
        return 1 if tokens & _NEGATION else 0
    return None


def infer_labels(
    records: Sequence[Any],
    keys: Sequence[bytes | None] = (),
    *,
    model: str | None = None,
    now_s: float,
) -> Proposal:
    """Guess the fields of ``records`` (decoded JSON values of a labels topic) and propose
    a ``[labels_mapping]`` (see the module docstring); arguments as
    :func:`~streamproc.contracts.inference.infer` takes them, but ``model`` None: no name
    given (the constant ``"model"``, with a note, when no field names the model)."""
    guesses, objects = guess_fields(records, now_s)
    n = len(objects)
    p = Proposal(guesses, {}, [], len(records), len(records) - n, section="labels_mapping")
    if n and all(r.keys() >= _LABEL_ENVELOPE for r in objects):
        p.notes.append("the records are already label events: no [labels_mapping] needed")
        return p
    m = p.mapping
    named = pick(guesses, "model")
    if named is None and model is None:
        p.notes.append(
            'no field names the model: model = "model"; set it to the model name the '
            "predictions carry (--model NAME)"
        )
    m["model"] = named.pointer if named is not None else model or "model"
    ids = [g for g in guesses if g.role == "id" and not _EVENT_ID.search(g.name)]
    rid = pick(ids, "id", ("request", "order", "id"))
    keyed = sum(k is not None for k in keys)
    if rid is not None:
        m["request_id"] = rid.pointer
    elif keys and keyed >= 0.99 * len(keys):
        m["request_id"] = "$key"
    else:
        p.notes.append("no request id found: set request_id to the predictions' request id")
        m["request_id"] = "/request_id"
    ts = pick(guesses, "timestamp", ("timestamp", "ts", "time", "at", "event", "created"))
    m["timestamp"] = ts.pointer if ts is not None else "$timestamp"
    _propose_label(p, guesses)
    return p


def _propose_label(p: Proposal, guesses: list[FieldGuess]) -> None:
    event = _event_type(guesses)
    direct = [g for g in guesses if g.role in _LABEL_ROLES and _LABEL_NAME.search(g.name)]
    label = min(direct, key=_label_rank) if direct else None
    # a label-named field of event types, some of which judge nothing (outcome = "shipped")
    if (
        label is not None
        and event is not None
        and label.pointer == event.pointer
        and any(outcome_of(v) is None for v in set(event.values))
    ):
        label = None
    derived = _derived(p, event) if event is not None else None
    if label is not None:
        p.mapping["label"] = label.pointer
        if derived is not None:
            p.comments.append(f"or a label derived from {derived['from']}:")
            p.comments.append(f"label = {_inline(derived)}")
        return
    if derived is not None:
        p.mapping["label"] = derived
        return
    p.notes.append("no label found: set [labels_mapping] label by hand")
    p.mapping["label"] = "/label"
    strings = [g for g in guesses if _looks_like_event_type(g)]
    for g in strings[:3]:
        values = ", ".join(f"{v} = ?" for v, _ in Counter(g.values).most_common(6))
        p.comments.append(f'label = {{ from = "{g.pointer}", map = {{ {values} }} }}')


def _label_rank(g: FieldGuess) -> tuple[int, int, int]:
    prefer = ("label", "truth", "actual", "target", "outcome")
    named = next((i for i, w in enumerate(prefer) if w in g.name.lower()), len(prefer))
    return named, g.pointer.count("/"), -g.present


def _event_type(guesses: list[FieldGuess]) -> FieldGuess | None:
    """The field that looks most like a business event's type, if any."""
    found = [
        g
        for g in guesses
        if _looks_like_event_type(g)
        and (_EVENT_NAME.search(g.name) or any(outcome_of(v) is not None for v in g.values))
    ]
    if not found:
        return None

    def rank(g: FieldGuess) -> tuple[int, int, int, int]:
        outcomes = any(outcome_of(v) == 1 for v in set(g.values))
        hinted = _EVENT_NAME.search(g.name) is not None
        return (not outcomes), (not hinted), g.pointer.count("/"), -g.present

    return min(found, key=rank)


def _looks_like_event_type(g: FieldGuess) -> bool:
    if set(g.types) != {"string"} or g.role not in ("categorical", "label"):
        return False
    distinct = set(g.values)
    return 2 <= len(distinct) <= MAX_EVENT_TYPES and all(
        _EVENT_VALUE.fullmatch(v) for v in distinct
    )


def _derived(p: Proposal, event: FieldGuess) -> dict[str, Any] | None:
    """``{from, map, default?}`` of ``event``'s values; None without a positive value."""
    counts = Counter(event.values)
    values = sorted(counts, key=lambda v: (-counts[v], v))
    outcomes = {v: o for v in values if (o := outcome_of(v)) is not None}
    table = dict(sorted(outcomes.items(), key=lambda kv: -kv[1]))  # positives first
    if 1 not in table.values():
        p.notes.append(
            f"{event.pointer} looks like an event type ({', '.join(values[:8])}) but none of "
            "its values names a positive outcome: map them by hand"
        )
        return None
    others = [v for v in values if v not in table]
    derived: dict[str, Any] = {"from": event.pointer, "map": table}
    if 0 not in table.values():
        derived["default"] = 0
        p.notes.append(
            f"no {event.pointer} value names a negative outcome, so default = 0 labels every "
            f"other event 0; the first label of a request counts, so an event before the "
            f"deciding one ({', '.join(others[:3]) or 'none seen'}) would fix it at 0: map "
            "the negative event (e.g. settled = 0) and drop the default if there is one"
        )
    elif others:
        p.notes.append(
            f"{event.pointer} values {', '.join(others[:8])} are not label events (counted in "
            "streamproc_non_label_events_total, not dead-lettered); add default = 0 to count "
            "them as negatives"
        )
    return derived


def _inline(v: Any) -> str:
    return Proposal([], {"x": v}, [], 0).toml().splitlines()[1].removeprefix("x = ")
