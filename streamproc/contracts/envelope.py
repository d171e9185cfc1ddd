"""The prediction-log envelope, defined once: fields, timestamp rules, event-time windows.

Contract: ``schemas/prediction_log.schema.json``. Both decoders read this module: the
orjson decoder (:mod:`streamproc.contracts.prediction`) checks the field types, the pyarrow
fast path (:mod:`streamproc.contracts.fast_decode`) builds its explicit schema from the
Arrow types.

Timestamps are RFC 3339 strings with a UTC offset, or epoch numbers: a number above
:data:`MS_THRESHOLD` (1e11) is epoch *milliseconds* (1e11 s is the year 5138, 1e11 ms is
1973), otherwise epoch seconds. Negative, non-finite or larger than :data:`MAX_EPOCH_MS`
(1e14, i.e. microsecond epochs) numbers are rejected.
"""

from __future__ import annotations

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
"""Keys of a ``prediction`` object: ``label`` (required: string, number or boolean) and
``score`` (optional number)."""
LABEL_TYPES: Final = frozenset({str, int, float, bool})
SCORE_TYPES: Final = frozenset({int, float, NoneType})
LABEL_ARROW: Final[Mapping[type, pa.DataType]] = {str: pa.string(), bool: pa.bool_()}
"""Labels the fast path takes (a numeric label stays an int in the orjson decoder)."""
SCORE_ARROW: Final = pa.float64()

# ----------------------------------------------------------------------- timestamps

MS_THRESHOLD: Final = 1e11
"""Epoch numbers above this are milliseconds, at or below it seconds."""
MAX_EPOCH_MS: Final = 1e14
"""Largest accepted epoch number (milliseconds: the year 5138)."""


def parse_timestamp(value: object) -> float:
    """Event time as float epoch seconds; raises ``ValueError`` (message: why) if unusable.

    Accepts an RFC 3339 string with a UTC offset (any form ``datetime.fromisoformat``
    reads), or epoch seconds / milliseconds (numbers above 1e11 are milliseconds).
    """
    tv = type(value)
    if tv is float or tv is int:
        ts = float(value)  # type: ignore[arg-type]
        if not (0.0 <= ts <= MAX_EPOCH_MS):  # also rejects NaN
            raise ValueError(f"epoch timestamp out of range: {value!r}")
        return ts / 1000.0 if ts > MS_THRESHOLD else ts
    if tv is str:
        try:
            parsed = datetime.fromisoformat(value)  # type: ignore[arg-type]
        except ValueError:
            raise ValueError(f"not an RFC 3339 timestamp: {value!r:.64}") from None
        if parsed.tzinfo is None:
            raise ValueError(f"timestamp has no UTC offset: {value!r:.64}")
        return parsed.timestamp()
    raise ValueError(f"timestamp must be a string or number: {value!r:.64}")


def epoch_seconds(x: np.ndarray) -> np.ndarray | None:
    """:func:`parse_timestamp` on float64 epoch numbers, vectorized: epoch seconds, or
    None if any value would be rejected."""
    if not ((x >= 0.0) & (x <= MAX_EPOCH_MS)).all():  # NaN fails too
        return None
    return np.where(x > MS_THRESHOLD, x / 1000.0, x)


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
    still accept it), names an invalid date or time, or lies where float microseconds are
    inexact."""
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
    if not (np.abs(seconds) < 2**53 // 1_000_000 - 1).all():
        return None
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
