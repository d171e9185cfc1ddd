"""Guess a ``[mapping]`` from a sample of records: ``streamproc attach --sample``.

:func:`infer` looks at a few hundred decoded records (and their Kafka keys) and names what
each field looks like — an id, an event time (epoch seconds, epoch milliseconds or RFC
3339), a score in [0, 1], a map (or array) of class probabilities, a label, a categorical
or numeric feature, the model or its version — then proposes a ``[mapping]`` that the
worker accepts (:meth:`Proposal.toml`). Pure: the CLI (``cli/attach_cmd.py``) reads the
topic, decodes records in the Confluent wire format through the registry first (then
:func:`with_wire_format` adds ``format`` and ``schema_registry_url``) and prints. A guess,
not a contract: the proposal says what it could not find. A labels topic's
``[labels_mapping]`` is guessed from the same field classes
(:mod:`streamproc.contracts.label_inference`).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from streamproc.contracts.envelope import is_rfc3339

__all__ = ["FieldGuess", "Proposal", "guess_fields", "infer", "pick", "with_wire_format"]

_YEAR_S: Final = 365.25 * 86_400
_ENVELOPE: Final = frozenset(
    {"model", "model_version", "request_id", "timestamp", "features", "prediction"}
)
_ID_HINT: Final = re.compile(r"(^|_)(id|uuid|guid|key|trace|request)($|_)|Id$|ID$", re.I)
_TIME_HINT: Final = re.compile(r"(^|_)(ts|time|timestamp|date|datetime|at|ms|epoch)($|_)", re.I)
_SCORE_NAMES: Final = ("score", "probability", "proba", "prob", "p", "prediction", "pred")
_LABEL_HINT: Final = re.compile(r"label|class|decision|prediction|predicted|outcome|pred", re.I)
_MODEL_NAMES: Final = frozenset({"model", "model_name", "modelname", "name"})
_VERSION_NAMES: Final = frozenset({"model_version", "version", "modelversion"})
_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")
_MAX_DEPTH: Final = 3


@dataclass(slots=True)
class FieldGuess:
    """What one field (a JSON Pointer) of the sample looks like."""

    pointer: str
    present: int = 0
    nulls: int = 0
    types: Counter[str] = field(default_factory=Counter)
    values: list[Any] = field(default_factory=list)
    role: str = ""
    """id, timestamp, score, probabilities, label, categorical, numeric, boolean, model,
    version, text, object or mixed."""
    detail: str = ""

    @property
    def name(self) -> str:
        return self.pointer.rsplit("/", 1)[-1]

    @property
    def distinct(self) -> int:
        return len({json.dumps(v, sort_keys=True) for v in self.values})

    @property
    def example(self) -> str:
        return json.dumps(self.values[0])[:40] if self.values else "null"


@dataclass(slots=True)
class Proposal:
    """The guesses and the ``[mapping]`` they add up to."""

    fields: list[FieldGuess]
    mapping: dict[str, Any]
    notes: list[str]
    records: int
    not_objects: int = 0
    section: str = "mapping"
    """The config section proposed: ``mapping``, or ``labels_mapping`` for a labels topic."""
    comments: list[str] = field(default_factory=list)
    """Commented-out alternatives printed after the section (``# label = ...``)."""

    def toml(self) -> str:
        """The section (``[mapping]``, ``[labels_mapping]``), as TOML."""
        lines = [f"[{self.section}]"]
        lines += [f"{_key(k)} = {_value(v)}" for k, v in self.mapping.items()]
        lines += [f"# {c}" for c in self.comments]
        return "\n".join(lines) + "\n"


def with_wire_format(proposal: Proposal, fmt: str, url: str) -> Proposal:
    """``proposal`` for records decoded from the Confluent wire format: ``format`` and
    ``schema_registry_url`` first in its ``[mapping]`` (the envelope case included: the
    worker still has to decode the records through the registry)."""
    proposal.mapping = {"format": fmt, "schema_registry_url": url, **proposal.mapping}
    proposal.notes = [
        n.replace("no [mapping] needed", "[mapping] needs only the format keys")
        for n in proposal.notes
    ]
    return proposal


def infer(
    records: Sequence[Any],
    keys: Sequence[bytes | None] = (),
    *,
    model: str = "model",
    now_s: float,
) -> Proposal:
    """Guess every field of ``records`` (decoded JSON values) and propose a mapping.

    ``keys``: the records' Kafka keys (a key-per-record topic gives ``request_id =
    "$key"``); ``model``: the constant model name used when no field names it;
    ``now_s``: the wall clock (epoch seconds) that bounds plausible event times."""
    guesses, objects = guess_fields(records, now_s)
    n = len(objects)
    proposal = Proposal(guesses, {}, [], len(records), len(records) - n)
    if n and all(r.keys() >= _ENVELOPE for r in objects):
        proposal.notes.append("the records are already envelopes: no [mapping] needed")
        return proposal
    _propose(proposal, guesses, keys, model)
    return proposal


def guess_fields(
    records: Sequence[Any], now_s: float
) -> tuple[list[FieldGuess], list[dict[str, Any]]]:
    """Every field (JSON Pointer) of the objects among ``records``, classified; and those
    objects."""
    objects = [r for r in records if type(r) is dict]
    guesses: dict[str, FieldGuess] = {}
    for rec in objects:
        _walk(rec, "", guesses, 1)
    for g in guesses.values():
        _classify(g, len(objects), now_s)
    return list(guesses.values()), objects


def _walk(obj: dict[str, Any], prefix: str, out: dict[str, FieldGuess], depth: int) -> None:
    for name, value in obj.items():
        pointer = f"{prefix}/{name.replace('~', '~0').replace('/', '~1')}"
        g = out.get(pointer)
        if g is None:
            g = out[pointer] = FieldGuess(pointer)
        g.present += 1
        if value is None:
            g.nulls += 1
            continue
        g.types[_json_type(value)] += 1
        g.values.append(value)
        if type(value) is dict and depth < _MAX_DEPTH and not _is_probabilities(value):
            _walk(value, pointer, out, depth + 1)


def _json_type(v: Any) -> str:
    if type(v) is bool:
        return "boolean"
    if type(v) is int or type(v) is float:
        return "number"
    names: dict[type, str] = {str: "string", dict: "object", list: "array"}
    return names.get(type(v), "other")


def _is_probabilities(v: Any) -> bool:
    values = list(v.values()) if type(v) is dict else v if type(v) is list else []
    if len(values) < 2 or not all(type(x) is float or type(x) is int for x in values):
        return False
    return all(0 <= x <= 1 for x in values) and abs(sum(values) - 1) <= 0.02


def _classify(g: FieldGuess, n: int, now_s: float) -> None:
    values, name = g.values, g.name
    if not values:
        g.role, g.detail = "mixed", "always null"
        return
    kinds = set(g.types)
    distinct = g.distinct
    unique = distinct >= 0.95 * len(values) and len(values) >= 10
    if len(kinds) > 1:
        g.role, g.detail = "mixed", "/".join(sorted(kinds))
    elif kinds == {"object"} or kinds == {"array"}:
        if all(_is_probabilities(v) for v in values):
            g.role, g.detail = "probabilities", f"{len(values[0])} classes"
        else:
            g.role = "object" if kinds == {"object"} else "mixed"
    elif kinds == {"boolean"}:
        g.role = "boolean"
    elif kinds == {"number"}:
        nums = [float(v) for v in values]
        lo, hi = min(nums), max(nums)
        plausible = (now_s - 20 * _YEAR_S, now_s + 86_400)
        if plausible[0] * 1000 <= lo and hi <= plausible[1] * 1000:
            g.role, g.detail = "timestamp", "epoch ms"
        elif plausible[0] <= lo and hi <= plausible[1] and (_TIME_HINT.search(name) or unique):
            g.role, g.detail = "timestamp", "epoch s"
        elif _ID_HINT.search(name) and unique and all(x == int(x) for x in nums):
            g.role = "id"
        elif lo >= 0 and hi <= 1 and any(not float(x).is_integer() for x in nums):
            g.role, g.detail = "score", "in [0, 1]"
        else:
            g.role, g.detail = "numeric", f"{_num(lo)} … {_num(hi)}"
    elif all(is_rfc3339(v) for v in values):
        g.role, g.detail = "timestamp", "RFC 3339"
    elif name.lower() in _MODEL_NAMES and distinct <= 3:
        g.role = "model"
    elif name.lower() in _VERSION_NAMES and distinct <= 5:
        g.role = "version"
    elif _ID_HINT.search(name) or (unique and distinct > 20):
        g.role = "id" if unique or _ID_HINT.search(name) else "text"
    elif distinct <= max(20, len(values) // 2):
        g.role = "label" if _LABEL_HINT.search(name) else "categorical"
        g.detail = f"{distinct} values"
    else:
        g.role, g.detail = "text", f"{distinct} values"


def _num(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else str(x)


def pick(guesses: list[FieldGuess], role: str, prefer: Sequence[str] = ()) -> FieldGuess | None:
    """The best field of ``role``: a preferred name first, then the most present, top-level
    fields before nested ones."""
    found = [g for g in guesses if g.role == role]
    if not found:
        return None

    def rank(g: FieldGuess) -> tuple[int, int, int]:
        named = next((i for i, p in enumerate(prefer) if p in g.name.lower()), len(prefer))
        return named, g.pointer.count("/"), -g.present

    return min(found, key=rank)


def _propose(
    p: Proposal, guesses: list[FieldGuess], keys: Sequence[bytes | None], model: str
) -> None:
    m, used = p.mapping, set()

    def take(g: FieldGuess | None) -> str | None:
        if g is None:
            return None
        used.add(g.pointer)
        return g.pointer

    m["model"] = take(pick(guesses, "model")) or model
    m["model_version"] = take(pick(guesses, "version")) or "1"
    rid = take(pick(guesses, "id", ("request", "id")))
    keyed = sum(k is not None for k in keys)
    if rid is None and keys and keyed >= 0.99 * len(keys):
        rid = "$key"
    if rid is None:
        p.notes.append("no request id found (label joins need one): request_id is a constant")
    m["request_id"] = rid or "none"
    ts = take(pick(guesses, "timestamp", ("timestamp", "ts", "time", "event", "created")))
    m["timestamp"] = ts or "$timestamp"
    probs = pick(guesses, "probabilities")
    if probs is not None:
        m["prediction"] = {"probabilities": take(probs)}
        if probs.types.get("array"):
            p.notes.append("probabilities are an array: name the classes with classes = [...]")
    else:
        pred: dict[str, str] = {}
        score = pick(guesses, "score", _SCORE_NAMES)
        if score is None:
            score = next(
                (g for g in guesses if g.role == "numeric" and g.name in _SCORE_NAMES), None
            )
        label = pick(guesses, "label", ("label", "class", "decision", "pred"))
        if label is not None:
            pred["label"] = take(label)  # type: ignore[assignment]
        if score is not None:
            pred["score"] = take(score)  # type: ignore[assignment]
        if not pred:
            p.notes.append("no prediction found: set [mapping] prediction by hand")
            pred["score"] = "/score"
        m["prediction"] = pred
    nested = next((g for g in guesses if g.pointer == "/features" and g.role == "object"), None)
    if nested is not None:
        m["features"] = "/features"
        return
    m["features"] = "*"
    tops = {u.split("/")[1] for u in used}
    skip = [
        g.name
        for g in guesses
        if g.pointer.count("/") == 1
        and g.name not in tops
        and g.role in ("id", "timestamp", "object", "text", "mixed", "model", "version")
    ]
    if skip:
        m["features_except"] = skip


def _key(k: str) -> str:
    return k if _BARE_KEY.fullmatch(k) else json.dumps(k)


def _value(v: Any) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    # a JSON string is a TOML basic string, DEL aside
    return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
