"""A reference profile from a period of the live predictions stream (the pure part).

``streamproc reference build --from-topic`` reads a topic between two instants
(``streamproc/cli/reference_topic.py`` holds the Kafka consumer) and hands the records
here in chunks. Each chunk is decoded exactly as the worker decodes it (the ``[mapping]``
with :func:`~streamproc.contracts.mapped_decode.map_records`, then
:func:`~streamproc.contracts.fast_decode.fast_decode`, else
:func:`~streamproc.contracts.prediction.decode_predictions`), its rows are kept when the
event time is in ``[from, to)`` and the model (and version) is the one asked for, and fed
to a :class:`~streamproc.core.model_profile.ModelProfile` as the file path feeds Arrow
batches: memory is bounded by one chunk plus the sketches, whatever the period's size.

Feature kinds come from the values (:func:`~streamproc.core.kinds.infer_kind`, as for a
file; ``categorical`` overrides); a feature first seen in a later chunk is added then,
null for the rows before it. A second pass over the same records
(:meth:`TopicReference.start_joint_pass`) fills the co-moments clipped at the fences of
the first, as :func:`streamproc.offline.reference.feed_joint` does for files.

Which records are read: per partition, from the first offset whose Kafka timestamp is at
or after ``from`` (``offsets_for_times``) up to the first record whose Kafka timestamp is
at or after ``to``, or the partition's end offset taken when the read began
(:class:`PartitionSpan`). Event times are then filtered exactly; a record whose event
time is in the period but whose Kafka timestamp is not (a producer far behind) is missed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from streamproc.contracts.batch import DecodeResult, PredictionBatch, typed_columns
from streamproc.contracts.fast_decode import FastPathDeclined, fast_decode
from streamproc.contracts.limits import DecodeLimits
from streamproc.contracts.mapped_decode import map_records
from streamproc.contracts.mapping import RecordMapping
from streamproc.contracts.prediction import decode_predictions
from streamproc.contracts.start_from import parse_start_from
from streamproc.core.feature_profile import REFERENCE_K, FeatureProfile
from streamproc.core.kinds import FeatureKind, infer_kind
from streamproc.core.model_profile import ModelProfile
from streamproc.offline.errors import InputError

__all__ = [
    "Chunk",
    "PartitionSpan",
    "Period",
    "TopicReference",
    "parse_period",
    "plan_spans",
    "production_warning",
]

CHUNK_RECORDS = 20_000
"""Records decoded and fed per chunk (bounds memory)."""


@dataclass(frozen=True, slots=True)
class Period:
    """``[start_ms, end_ms)`` in epoch milliseconds."""

    start_ms: int
    end_ms: int

    def contains_s(self, seconds: np.ndarray) -> np.ndarray:
        """Mask of event times (epoch seconds) in the period."""
        ms = np.asarray(seconds, dtype=np.float64) * 1000.0
        return (ms >= self.start_ms) & (ms < self.end_ms)

    def describe(self) -> str:
        return f"{_iso(self.start_ms)} to {_iso(self.end_ms)}"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def parse_period(start: str, end: str | None, *, now_ms: int) -> Period:
    """``--from`` / ``--to`` (RFC 3339 or ``<duration> ago``; ``end`` None: now)."""
    bounds = []
    for option, text in (("--from", start), ("--to", end)):
        if text is None:
            bounds.append(now_ms)
            continue
        try:
            parsed = parse_start_from(text)
        except ValueError as exc:
            raise InputError(f"{option}: {exc}") from None
        when = parsed.timestamp_ms(now_ms)
        if when is None:
            raise InputError(
                f"{option} takes an RFC 3339 time (2024-05-01T10:00:00Z) or a duration ago "
                f"('2h ago'), not {text!r}"
            )
        bounds.append(when)
    period = Period(bounds[0], bounds[1])
    if period.start_ms >= period.end_ms:
        raise InputError(f"--from must be before --to (got {period.describe()})")
    return period


@dataclass(slots=True)
class PartitionSpan:
    """Which offsets of one partition belong to the read: ``[start, end)``, cut at the
    first record whose Kafka timestamp is at or after the period's end."""

    partition: int
    start: int
    end: int
    """The partition's end offset when the read began (exclusive)."""
    position: int = -1
    """Next offset expected (``start`` until a record is admitted)."""
    stopped_at: int | None = None
    """Offset of the record past the period that ended the read, if one did."""
    done: bool = False

    def __post_init__(self) -> None:
        if self.position < 0:
            self.position = self.start
        if self.start >= self.end:
            self.done = True

    def admit(self, offset: int, timestamp_ms: int | None, end_ms: int) -> bool:
        """Whether the record at ``offset`` is read; marks the span done at its end."""
        if self.done:
            return False
        if offset >= self.end:
            self.done = True
            return False
        if timestamp_ms is not None and timestamp_ms >= end_ms:
            self.stopped_at = offset
            self.done = True
            return False
        self.position = offset + 1
        if self.position >= self.end:
            self.done = True
        return True

    def reached_end(self) -> None:
        """The consumer reports the end of the partition (control records may follow the
        last data record, so the end offset itself is never seen)."""
        self.done = True

    def replay(self) -> PartitionSpan:
        """The same records again (the joint pass): from ``start`` to where this stopped."""
        return PartitionSpan(self.partition, self.start, self.position)


def plan_spans(
    looked_up: Mapping[int, int | None], watermarks: Mapping[int, tuple[int, int]]
) -> list[PartitionSpan]:
    """Spans from ``offsets_for_times`` answers (negative/None: no record that late) and
    ``(low, high)`` watermarks per partition."""
    spans = []
    for partition in sorted(watermarks):
        low, high = watermarks[partition]
        found = looked_up.get(partition)
        start = high if found is None or found < 0 else max(found, low)
        spans.append(PartitionSpan(partition, start, high))
    return spans


@dataclass(slots=True)
class Chunk:
    """Records to decode together: parallel lists."""

    values: list[bytes | None] = field(default_factory=list)
    keys: list[bytes | None] = field(default_factory=list)
    timestamps_ms: list[int | None] = field(default_factory=list)
    headers: list[Any] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.values)

    def append(self, value: bytes | None, key: bytes | None, ts: int | None, hdr: Any) -> None:
        self.values.append(value)
        self.keys.append(key)
        self.timestamps_ms.append(ts)
        self.headers.append(hdr)


def _split(values: Iterable[str] | None) -> set[str]:
    return {v.strip() for value in values or () for v in value.split(",") if v.strip()}


def production_warning(ref: TopicReference, topic: str) -> str:
    """The stderr warning printed with every reference taken from production."""
    c = ref.counts
    lines = [
        f"warning: this reference is taken from production ({topic}, "
        f"{ref.period.describe()}), not from training data. Whatever drift the stream "
        "already had in that period is now the baseline: it will never alert. Prefer a "
        "period you trust (just after a release that was checked), and rebuild from "
        "training data when you have it.",
        f"  {c.rows} rows profiled of {c.records} records read; "
        f"{c.outside_period} with an event time outside the period, "
        f"{sum(c.other_models.values())} of other models or versions",
    ]
    if c.rejects:
        reasons = ", ".join(f"{n} {reason}" for reason, n in c.rejects.most_common())
        lines.append(f"  {sum(c.rejects.values())} dead-letter-worthy records skipped: {reasons}")
    else:
        lines.append("  no dead-letter-worthy records")
    if c.truncated_values:
        lines.append(f"  {c.truncated_values} long category values capped as the worker caps them")
    if c.rare_names:
        lines.append(
            f"  {c.rare_names} times a field carried by under 5% of a chunk's records and "
            "absent before was not profiled"
        )
    return "\n".join(lines)


@dataclass(slots=True)
class Counts:
    records: int = 0
    rows: int = 0
    outside_period: int = 0
    other_models: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    rejects: Counter[str] = field(default_factory=Counter)
    truncated_values: int = 0
    rare_names: int = 0
    """Times a field name carried by few records of a chunk was not profiled."""


class TopicReference:
    """Decode chunks of records, keep a period of one model, stream them into a profile."""

    def __init__(
        self,
        *,
        model: str,
        model_version: str | None,
        period: Period,
        source: str,
        mapping: RecordMapping | None = None,
        limits: DecodeLimits | None = None,
        max_future_skew_ms: int = 300_000,
        features: Iterable[str] | None = None,
        categorical: Iterable[str] | None = None,
        exclude: Iterable[str] | None = None,
        now_ms: int | None = None,
    ) -> None:
        if not model:
            raise InputError("the model name is empty; pass --model NAME")
        self.model = model
        self.model_version = model_version
        self.period = period
        self.source = source
        self.mapping = mapping
        self.limits = limits or DecodeLimits()
        now = int(time.time() * 1000) if now_ms is None else now_ms
        self.max_event_ms = now + max_future_skew_ms
        self.only = _split(features)
        self.categorical = _split(categorical)
        self.exclude = _split(exclude)
        self.profile: ModelProfile | None = None
        self.counts = Counts()
        self._joint_pass: Any = None
        self._joint_rows = 0

    # ------------------------------------------------------------------ decoding

    def decode(self, chunk: Chunk) -> DecodeResult:
        """The worker's decode of ``chunk``: mapping, fast path, else the orjson decoder."""
        values: Sequence[bytes | None] = chunk.values
        mapped = None
        if self.mapping is not None:
            m = self.mapping
            mapped = map_records(
                m,
                chunk.values,
                keys=chunk.keys if m.uses_key else None,
                timestamps_ms=chunk.timestamps_ms if m.uses_timestamp else None,
                headers=chunk.headers if m.uses_headers else None,
                limits=self.limits,
            )
            values = mapped.values
        result: DecodeResult | FastPathDeclined = DecodeResult({})
        if values and self.profile is not None:
            result = fast_decode(
                values,
                kinds_for=self._kinds_for,
                limits=self.limits,
                max_event_ms=self.max_event_ms,
            )
        if isinstance(result, FastPathDeclined) or (values and self.profile is None):
            result = decode_predictions(values, limits=self.limits, max_event_ms=self.max_event_ms)
        if mapped is not None:
            result = mapped.restore(result)
        return result

    def _kinds_for(self, model: str, version: str) -> dict[str, FeatureKind] | None:
        if self.profile is None or model != self.model:
            return None
        if self.model_version is not None and version != self.model_version:
            return None
        return {name: f.kind for name, f in self.profile.features.items()}

    def select(self, result: DecodeResult) -> list[PredictionBatch]:
        """The rows of ``result`` this reference takes (and the counts of the rest)."""
        c = self.counts
        c.rejects.update(r.reason for r in result.rejects)
        c.records += len(result.rejects)
        kept = []
        for batch in result.batches.values():
            c.records += batch.n
            if batch.model != self.model or (
                self.model_version is not None and batch.model_version != self.model_version
            ):
                c.other_models[f"{batch.model} {batch.model_version}".rstrip()] += batch.n
                continue
            inside = self.period.contains_s(batch.timestamps)
            n_in = int(inside.sum())
            c.outside_period += batch.n - n_in
            if n_in == 0:
                continue
            if n_in < batch.n:
                batch = batch.take(np.flatnonzero(inside))
            c.versions[batch.model_version] += batch.n
            kept.append(batch)
        return kept

    # ------------------------------------------------------------------ feeding

    def add(self, chunk: Chunk) -> int:
        """Decode ``chunk`` and feed its rows; the number of rows taken."""
        if not len(chunk):
            return 0
        result = self.decode(chunk)
        if self._joint_pass is not None:
            return self._add_joint(result)
        self.counts.truncated_values += result.truncated_values
        taken = 0
        for batch in self.select(result):
            self._feed(batch)
            taken += batch.n
        return taken

    def _wanted(self, name: str) -> bool:
        return (not self.only or name in self.only) and name not in self.exclude

    def _kind(self, name: str, column: Any) -> FeatureKind:
        if name in self.categorical:
            return FeatureKind.CATEGORICAL
        return infer_kind(column)

    def _feed(self, batch: PredictionBatch) -> None:
        kwargs = batch.profile_columns()
        columns = {n: c for n, c in kwargs.pop("columns").items() if self._wanted(n)}
        if self.profile is None:
            self.profile = self._new_profile(batch, columns)
        profile = self.profile
        for name, (rows, values) in batch.sparse.items():
            # a name few rows carry: filled out when it is a feature already (as the
            # worker's window buffer does), else only counted (random names per record
            # must not become features)
            if not self._wanted(name):
                continue
            if name not in profile.features:
                self.counts.rare_names += 1
                continue
            full: list[Any] = [None] * batch.n
            for r, v in zip(rows.tolist(), values, strict=True):
                full[r] = v
            columns[name] = typed_columns({name: full})[name]
        if self.model_version is None and batch.model_version != profile.model_version:
            return  # counted in versions; finish() refuses a period of several versions
        for name, column in columns.items():
            if name not in profile.features:  # first seen now: null in the rows before
                prof = FeatureProfile.new(
                    self._kind(name, column), k=profile.k, max_categories=profile.max_categories
                )
                prof.add_nulls(profile.row_count)
                profile.features[name] = prof
        profile.update_columns(columns, **kwargs)

    def _new_profile(self, batch: PredictionBatch, columns: Mapping[str, Any]) -> ModelProfile:
        labels = [v for v in batch.prediction_label if v is not None]
        label_kind = (
            FeatureKind.BOOLEAN
            if labels and all(type(v) is bool for v in labels)
            else FeatureKind.CATEGORICAL
        )
        metadata: dict[str, Any] = {
            "role": "reference",
            "source": [self.source],
            "taken_from": "production",
            "period": {"from": _iso(self.period.start_ms), "to": _iso(self.period.end_ms)},
        }
        return ModelProfile.new(
            self.model,
            batch.model_version if self.model_version is None else self.model_version,
            {name: self._kind(name, col) for name, col in columns.items()},
            created_at=time.time(),
            k=REFERENCE_K,
            label_kind=label_kind,
            metadata=metadata,
        )

    # ------------------------------------------------------------------ joint pass

    def start_joint_pass(self) -> bool:
        """Begin the second pass (the same records again, for the fenced co-moments);
        False when the profile has no joint features (no second pass needed)."""
        if self.profile is None:
            return False
        joint = self.profile.fenced_joint()
        if joint is None:
            return False
        self._joint_pass = joint
        self._joint_rows = 0
        return True

    def _add_joint(self, result: DecodeResult) -> int:
        joint = self._joint_pass
        saved = self.counts
        self.counts = Counts()  # the first pass counted these records already
        try:
            batches = self.select(result)
        finally:
            self.counts = saved
        taken = 0
        assert self.profile is not None
        for batch in batches:
            if batch.model_version != self.profile.model_version:
                continue
            cols = typed_columns({n: batch.features[n] for n in joint.names if n in batch.features})
            joint.update(cols, batch.n)
            taken += batch.n
        self._joint_rows += taken
        return taken

    def finish_joint_pass(self) -> bool:
        """Install the fenced co-moments when the second pass saw the first pass's rows
        (retention may have deleted some in between: then the first pass's unfenced
        co-moments stay); whether they were installed."""
        joint, self._joint_pass = self._joint_pass, None
        if joint is None or self.profile is None or self._joint_rows != self.profile.row_count:
            return False
        self.profile.joint = joint
        return True

    # ------------------------------------------------------------------ result

    def finish(self) -> ModelProfile:
        """The profile with its schema learned; InputError when the period gave no rows
        or mixes model versions (without ``model_version``)."""
        c = self.counts
        if len(c.versions) > 1:
            shown = ", ".join(f"{v or '(empty)'}: {n} rows" for v, n in c.versions.most_common())
            raise InputError(
                f"the period holds several versions of {self.model} ({shown}); "
                "pass --model-version to choose one"
            )
        if self.profile is None or self.profile.row_count == 0:
            others = ", ".join(f"{m}: {n}" for m, n in c.other_models.most_common(5))
            raise InputError(
                f"no rows of model {self.model!r} with an event time in {self.period.describe()} "
                f"({c.records} records read, {c.outside_period} outside the period"
                + (f"; other models: {others}" if others else "")
                + (f"; {sum(c.rejects.values())} rejected" if c.rejects else "")
                + "); check --model, --from and --to"
            )
        c.rows = self.profile.row_count
        self.profile.learn_schema()
        return self.profile
