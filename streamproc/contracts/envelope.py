"""The prediction-log envelope, defined once: fields, timestamp rules, event-time windows.

Contract: ``schemas/prediction_log.schema.json``. Both decoders read this module: the
orjson decoder (:mod:`streamproc.contracts.prediction`) checks the field types, the pyarrow
fast path (:mod:`streamproc.contracts.fast_decode`) builds its explicit schema from the
Arrow types.

Timestamps (:func:`parse_timestamp`) are RFC 3339 strings with an explicit UTC offset
(``YYYY-MM-DDTHH:MM:SS[.fraction](Z|±hh:mm)``: no week or ordinal dates, no basic format,
no missing offset), or epoch numbers: below :data:`MAX_EPOCH_S` epoch *seconds*, from
:data:`MS_THRESHOLD` (1e12, 2001-09-09 in ms) to :data:`MAX_EPOCH_MS` epoch
*milliseconds*; any other number (negative, non-finite, or in between, where seconds
would lie past 2099 and milliseconds before 2001) is rejected. Either way the instant must
lie in [:data:`MIN_EPOCH_S`, :data:`MAX_EPOCH_S`): 1970-01-01T00:00:00Z up to, not
including, 2100-01-01T00:00:00Z.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, overload

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

NoneType: Final = type(None)

_PY_TYPES: Final[Mapping[str, tuple[type, ...]]] = {
    "string": (str,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
}
"""JSON Schema type → Python types ``orjson.loads`` gives for it (bool is not a number)."""

SCALAR_ARROW: Final[Mapping[type, pa.DataType]] = {
    int: pa.float64(),
    float: pa.float64(),
    str: pa.string(),
    bool: pa.bool_(),
}
"""Python type of a JSON scalar → its Arrow column type on the fast path (ints as float64,
the type the orjson decoder's float columns give them)."""


@dataclass(frozen=True, slots=True)
class EnvelopeField:
    """One top-level field of a prediction record."""

    name: str
    required: bool
    json_types: tuple[str, ...]
    """JSON Schema types accepted; ``null`` in an optional field means absent."""
    arrow: Mapping[type, pa.DataType | None]
    """Fast path: Python type of the value in a batch's first record → Arrow column type;
    ``None`` for a struct built per batch (``features``, a ``prediction`` object). A type
    missing here (``null`` included) makes the fast path decline; empty: the fast path
    never handles the field."""
    py_types: frozenset[type] = field(init=False)
    """Python types of the accepted values, ``NoneType`` included for an optional field."""

    def __post_init__(self) -> None:
        types = {t for name in self.json_types for t in _PY_TYPES[name]}
        if not self.required:
            types.add(NoneType)
        object.__setattr__(self, "py_types", frozenset(types))


_STR: Final[Mapping[type, pa.DataType | None]] = {str: pa.string()}
_NUM: Final[Mapping[type, pa.DataType | None]] = {int: pa.float64(), float: pa.float64()}

ENVELOPE: Final = (
    EnvelopeField("model", True, ("string",), _STR),  # also non-empty
    EnvelopeField("model_version", True, ("string",), _STR),
    EnvelopeField("request_id", True, ("string",), _STR),
    EnvelopeField("timestamp", True, ("string", "number"), {**_NUM, **_STR}),
    EnvelopeField("features", True, ("object",), {dict: None}),
    EnvelopeField(
        "prediction", True, ("number", "string", "boolean", "object"), {**SCALAR_ARROW, dict: None}
    ),
    EnvelopeField("latency_ms", False, ("number",), _NUM),  # also >= 0
    EnvelopeField("fallback", False, ("boolean",), {bool: pa.bool_()}),
    EnvelopeField("error", False, ("boolean", "string"), {bool: pa.bool_(), str: pa.string()}),
    EnvelopeField("segment", False, ("object",), {}),  # values: strings
    EnvelopeField("features_as_of", False, ("string", "number"), _NUM),
)
"""Every envelope field, in schema order. Nested rules the table does not express:
``model`` non-empty, ``latency_ms`` >= 0, ``segment`` values strings, the ``prediction``
object (:data:`PREDICTION_KEYS`), and both timestamps following :func:`parse_timestamp`."""

FIELDS: Final = {f.name: f for f in ENVELOPE}
NAMES: Final = frozenset(FIELDS)
REQUIRED: Final = tuple(f.name for f in ENVELOPE if f.required)

PREDICTION_KEYS: Final = ("label", "score")
"""Keys of a ``prediction`` object: ``label`` (string, number or boolean) and ``score``
(number); at least one of them (a score without a label is valid; null means absent)."""
LABEL_TYPES: Final = frozenset({str, int, float, bool})
SCORE_TYPES: Final = frozenset({int, float, NoneType})
LABEL_ARROW: Final[Mapping[type, pa.DataType]] = {str: pa.string(), bool: pa.bool_()}
"""Labels the fast path takes (a numeric label stays an int in the orjson decoder)."""
SCORE_ARROW: Final = pa.float64()

# ----------------------------------------------------------------------- timestamps

MIN_EPOCH_S: Final = 0
"""Earliest accepted event time, epoch seconds: 1970-01-01T00:00:00Z."""
MAX_EPOCH_S: Final = 4_102_444_800
"""First rejected event time, epoch seconds: 2100-01-01T00:00:00Z (years 1970–2099)."""
MS_THRESHOLD: Final = 1e12
"""Epoch numbers from this on are milliseconds (2001-09-09T01:46:40Z); below
:data:`MAX_EPOCH_S` they are seconds; in between they are rejected as ambiguous."""
MAX_EPOCH_MS: Final = MAX_EPOCH_S * 1000
"""First rejected epoch number in milliseconds."""

_RFC3339_SCALAR: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
"""RFC 3339 ``date-time`` (section 5.6, ``T`` and ``Z`` in either case); the values of the
fields are checked by ``datetime``."""
_NO_OFFSET: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
)


def is_rfc3339(value: str) -> bool:
    """Whether ``value`` is an RFC 3339 ``date-time`` with an explicit UTC offset (the
    string rule of :func:`parse_timestamp`, without its range)."""
    return _rfc3339_datetime(value) is not None


def _rfc3339_datetime(value: str) -> datetime | None:
    if _RFC3339_SCALAR.fullmatch(value) is None:
        return None
    try:  # fromisoformat reads every such string, 'z' aside; checks the field values
        return datetime.fromisoformat(value[:-1] + "Z" if value[-1] == "z" else value)
    except ValueError:
        return None


def parse_timestamp(value: object) -> float:
    """Event time as float epoch seconds; raises ``ValueError`` (message: why) if unusable.

    Accepts an RFC 3339 string with an explicit UTC offset, or epoch seconds (below
    :data:`MAX_EPOCH_S`) or milliseconds (from :data:`MS_THRESHOLD` up to
    :data:`MAX_EPOCH_MS`); the instant must lie in 1970–2099 (see the module docstring).
    Fractions beyond microseconds are truncated.
    """
    tv = type(value)
    if tv is float or tv is int:
        ts = float(value)  # type: ignore[arg-type]
        if MIN_EPOCH_S <= ts < MAX_EPOCH_S:  # also rejects NaN
            return ts
        if MS_THRESHOLD <= ts < MAX_EPOCH_MS:
            return ts / 1000.0
        raise ValueError(
            f"epoch timestamp out of range: {value!r} (seconds below {MAX_EPOCH_S} or "
            f"milliseconds from {MS_THRESHOLD:.0f} below {MAX_EPOCH_MS}: years 1970-2099)"
        )
    if tv is str:
        text: str = value  # type: ignore[assignment]
        parsed = _rfc3339_datetime(text)
        if parsed is None:
            if _NO_OFFSET.fullmatch(text):
                raise ValueError(f"timestamp has no UTC offset: {value!r:.64}")
            raise ValueError(f"not an RFC 3339 timestamp: {value!r:.64}")
        ts = parsed.timestamp()
        if not (MIN_EPOCH_S <= ts < MAX_EPOCH_S):
            raise ValueError(f"timestamp out of range (years 1970-2099): {value!r:.64}")
        return ts
    raise ValueError(f"timestamp must be a string or number: {value!r:.64}")


def epoch_seconds(x: np.ndarray) -> np.ndarray | None:
    """:func:`parse_timestamp` on float64 epoch numbers, vectorized: epoch seconds, or
    None if any value would be rejected."""
    seconds = (x >= MIN_EPOCH_S) & (x < MAX_EPOCH_S)  # NaN fails both
    if not (seconds | ((x >= MS_THRESHOLD) & (x < MAX_EPOCH_MS))).all():
        return None
    return np.where(seconds, x, x / 1000.0)


RFC3339: Final = (
    r"^(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})T(?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2})"
    r"(?:\.(?P<f>\d{1,6}))?(?:Z|(?P<sign>[+-])(?P<oh>\d{2}):(?P<om>\d{2}))$"
)
"""Strict RFC 3339: ``YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|±HH:MM)``."""
_DAYS_BEFORE_MONTH: Final = np.array([0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334])
_DAYS_IN_MONTH: Final = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def rfc3339_seconds(col: pa.Array) -> np.ndarray | None:
    """:func:`parse_timestamp` on strict RFC 3339 strings (:data:`RFC3339`), vectorized:
    epoch seconds, or None if any string is not of that exact form (the scalar rule may
    still accept it: a lower-case ``t``/``z``, more than six fraction digits), names an
    invalid date or time, or lies outside 1970–2099."""
    if not pc.all(pc.match_substring_regex(col, RFC3339)).as_py():
        return None
    parts = pc.extract_regex(col, RFC3339)

    def num(name: str, width: int = 2) -> np.ndarray:
        text = parts.field(name)
        if width:  # optional groups are "" when absent: pad to zeros
            text = pc.utf8_rpad(text, width, "0")
        return _np(pc.cast(text, pa.int64()))

    y, mo, d = num("y", 0), num("mo", 0), num("d", 0)
    h, mi, sec = num("h", 0), num("mi", 0), num("s", 0)
    frac, oh, om = num("f", 6), num("oh"), num("om")
    leap = (y % 4 == 0) & ((y % 100 != 0) | (y % 400 == 0))
    if not (
        (y >= 1).all()
        and ((mo >= 1) & (mo <= 12)).all()
        and (d >= 1).all()
        and (d <= _DAYS_IN_MONTH[mo] + ((mo == 2) & leap)).all()
        and (h <= 23).all()
        and (mi <= 59).all()
        and (sec <= 59).all()
        and (oh <= 23).all()
        and (om <= 59).all()
    ):
        return None
    # days since 1970-01-01 of the proleptic Gregorian calendar
    yp = y - 1
    days = (
        yp * 365
        + yp // 4
        - yp // 100
        + yp // 400
        - 719162  # 719162: days before 1970
        + _DAYS_BEFORE_MONTH[mo]
        + ((mo > 2) & leap)
        + d
        - 1
    )
    sign = np.where(_np(pc.equal(parts.field("sign"), "-")), -1, 1)
    seconds = days * 86400 + h * 3600 + mi * 60 + sec - sign * (oh * 3600 + om * 60)
    if not ((seconds >= MIN_EPOCH_S) & (seconds < MAX_EPOCH_S)).all():
        return None  # the range of parse_timestamp (whole seconds decide it)
    micros = seconds * 1_000_000 + frac  # exact int64; exact as float64 below 2**53
    return micros / 1e6  # timedelta.total_seconds(): micros / 10**6, correctly rounded


def _np(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(arr.to_numpy(zero_copy_only=False))


# -------------------------------------------------------------------------- windows


@overload
def window_start_ms(ts_ms: float, window_ms: int) -> int: ...
@overload
def window_start_ms(ts_ms: np.ndarray, window_ms: int) -> np.ndarray: ...
def window_start_ms(ts_ms: float | np.ndarray, window_ms: int) -> int | np.ndarray:
    """Start (epoch ms) of the event-time tumbling window of ``window_ms`` ms holding
    ``ts_ms`` (epoch ms, truncated toward zero to whole ms first); element-wise (int64)
    for an array."""
    if isinstance(ts_ms, np.ndarray):
        return ts_ms.astype(np.int64) // window_ms * window_ms
    return int(ts_ms) // window_ms * window_ms
