"""The envelope table matches the JSON Schema; timestamp and window helpers."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.contracts import load_schema
from streamproc.contracts.envelope import (
    ENVELOPE,
    FIELDS,
    MAX_EPOCH_MS,
    MAX_EPOCH_S,
    MIN_EPOCH_S,
    MS_THRESHOLD,
    REQUIRED,
    epoch_seconds,
    is_rfc3339,
    parse_timestamp,
    rfc3339_seconds,
    window_start_ms,
)


def _utc(*args: int, tz: timezone = UTC) -> float:
    """Expected epoch seconds, computed by ``datetime`` (not by the code under test)."""
    return datetime(*args, tzinfo=tz).timestamp()  # type: ignore[misc]


# ----------------------------------------------------------------------- the table


def _json_types(prop: dict[str, Any], defs: dict[str, Any]) -> set[str]:
    if "$ref" in prop:
        prop = defs[prop["$ref"].rsplit("/", 1)[1]]
    if "oneOf" in prop:
        return set().union(*(_json_types(p, defs) for p in prop["oneOf"]))
    t = prop["type"]
    return {t} if isinstance(t, str) else set(t)


def test_table_matches_the_json_schema() -> None:
    schema = load_schema("prediction_log")
    assert [f.name for f in ENVELOPE] == list(schema["properties"])
    assert list(REQUIRED) == schema["required"]
    for name, prop in schema["properties"].items():
        assert set(FIELDS[name].json_types) == _json_types(prop, schema["$defs"]), name


def test_python_types_follow_json_types_and_optionality() -> None:
    assert FIELDS["model"].py_types == {str}
    assert FIELDS["timestamp"].py_types == {str, int, float}
    assert FIELDS["latency_ms"].py_types == {int, float, type(None)}
    assert FIELDS["error"].py_types == {bool, str, type(None)}
    assert FIELDS["segment"].py_types == {dict, type(None)}


def test_arrow_types_only_for_accepted_values() -> None:
    for f in ENVELOPE:
        assert set(f.arrow) <= f.py_types, f.name
    assert FIELDS["segment"].arrow == {}  # the fast path never takes segments
    assert FIELDS["timestamp"].arrow[int] == pa.float64()
    assert FIELDS["timestamp"].arrow[str] == pa.string()


# ------------------------------------------------------------------ parse_timestamp


def test_range_constants_are_the_documented_instants() -> None:
    assert _utc(1970, 1, 1) == MIN_EPOCH_S
    assert _utc(2100, 1, 1) == MAX_EPOCH_S  # first rejected instant: years 1970-2099
    assert _utc(2001, 9, 9, 1, 46, 40) * 1000 == MS_THRESHOLD  # first epoch-ms number
    assert _utc(2100, 1, 1) * 1000 == MAX_EPOCH_MS


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # epoch seconds
        (0, 0.0),
        (1714557603, _utc(2024, 5, 1, 10, 0, 3)),
        (1714557603.25, _utc(2024, 5, 1, 10, 0, 3, 250000)),
        (4102444799, _utc(2099, 12, 31, 23, 59, 59)),  # the last accepted second
        (4102444799.999, _utc(2099, 12, 31, 23, 59, 59, 999000)),
        # epoch milliseconds
        (1714557603250, _utc(2024, 5, 1, 10, 0, 3, 250000)),
        (1714557603250.0, _utc(2024, 5, 1, 10, 0, 3, 250000)),
        (1e12, _utc(2001, 9, 9, 1, 46, 40)),  # the threshold itself is milliseconds
        (1000000000001, _utc(2001, 9, 9, 1, 46, 40, 1000)),
        (4102444799999, _utc(2099, 12, 31, 23, 59, 59, 999000)),
        # RFC 3339
        ("2024-05-01T10:00:03Z", _utc(2024, 5, 1, 10, 0, 3)),
        ("2024-05-01T10:00:03.250Z", _utc(2024, 5, 1, 10, 0, 3, 250000)),
        ("2024-05-01T10:00:03.5+00:00", _utc(2024, 5, 1, 10, 0, 3, 500000)),
        ("2024-05-01T10:00:03.123456Z", _utc(2024, 5, 1, 10, 0, 3, 123456)),
        ("2024-05-01T12:00:03.250+02:00", _utc(2024, 5, 1, 10, 0, 3, 250000)),
        (
            "2024-05-01T04:30:03-05:30",
            _utc(2024, 5, 1, 4, 30, 3, tz=timezone(-timedelta(hours=5, minutes=30))),
        ),
        ("2000-02-29T00:00:00Z", _utc(2000, 2, 29)),
        ("1970-01-01T00:00:00Z", 0.0),
        ("2099-12-31T23:59:59.999999Z", _utc(2099, 12, 31, 23, 59, 59, 999999)),
        # local year 1969, but the instant is in 1970 (the range is on the instant)
        ("1969-12-31T23:59:59-00:01", _utc(1970, 1, 1, 0, 0, 59)),
        ("2024-05-01t10:00:03z", _utc(2024, 5, 1, 10, 0, 3)),  # RFC 3339 allows t and z
        ("2024-05-01T10:00:03.123456789Z", _utc(2024, 5, 1, 10, 0, 3, 123456)),  # truncated
        ("2024-05-01T10:00:03-00:00", _utc(2024, 5, 1, 10, 0, 3)),
    ],
)
def test_parse_timestamp(value: object, expected: float) -> None:
    assert math.isclose(parse_timestamp(value), expected, rel_tol=0, abs_tol=1e-6)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "out of range"),
        (-0.001, "out of range"),
        (MAX_EPOCH_MS * 2, "out of range"),
        (math.nan, "out of range"),
        (math.inf, "out of range"),
        (MAX_EPOCH_S, "out of range"),  # 2100-01-01 in seconds
        (1e11, "out of range"),  # seconds past 2099, milliseconds before 2001: ambiguous
        (MS_THRESHOLD - 1, "out of range"),
        (253402300799, "out of range"),  # 9999-12-31T23:59:59Z in seconds
        (MAX_EPOCH_MS, "out of range"),
        (7258118400000, "out of range"),  # 2200-01-01 in milliseconds
        ("2024-05-01T10:00:03", "no UTC offset"),
        ("2024-05-01T10:00:03.25", "no UTC offset"),
        ("soon", "not an RFC 3339"),
        ("", "not an RFC 3339"),
        ("2023-02-29T10:00:03Z", "not an RFC 3339"),
        ("2024-W18-3T00:00:00Z", "not an RFC 3339"),  # ISO week date
        ("2024-122T00:00:00Z", "not an RFC 3339"),  # ordinal date
        ("20240501T100003Z", "not an RFC 3339"),  # ISO basic format
        ("2024-05-01 10:00:03Z", "not an RFC 3339"),  # space separator
        ("2024-05-01T10:00Z", "not an RFC 3339"),  # no seconds
        ("2024-05-01T10:00:03,5Z", "not an RFC 3339"),  # comma fraction
        ("2024-05-01T10:00:03.Z", "not an RFC 3339"),
        ("2024-05-01T10:00:03+0200", "not an RFC 3339"),
        ("2024-05-01T10:00:03+02", "not an RFC 3339"),
        ("2024-05-01T10:00:03+24:00", "not an RFC 3339"),
        ("2024-05-01T10:00:03+00:75", "not an RFC 3339"),
        ("2024-05-01T10:00:60Z", "not an RFC 3339"),  # leap second: datetime has none
        ("2024-05-01T24:00:00Z", "not an RFC 3339"),
        ("2024-05-01T10:00:03Z\n", "not an RFC 3339"),
        ("\uff12\uff10\uff12\uff14-05-01T10:00:03Z", "not an RFC 3339"),  # fullwidth digits
        ("1900-01-01T00:00:00Z", "out of range"),
        ("1969-12-31T23:59:59.999999Z", "out of range"),
        ("2100-01-01T00:00:00Z", "out of range"),
        ("9999-12-31T23:59:59Z", "out of range"),
        ("2099-12-31T23:59:59-00:01", "out of range"),  # the instant is in 2100
        (None, "string or number"),
        (True, "string or number"),  # a JSON boolean is not a number
        ([1], "string or number"),
    ],
)
def test_parse_timestamp_rejects(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_timestamp(value)


# ------------------------------------------------------------------- vectorized


def test_epoch_seconds_is_parse_timestamp_vectorized() -> None:
    last_s, first_ms, last_ms = MAX_EPOCH_S - 1, MS_THRESHOLD, MAX_EPOCH_MS - 1
    x = np.array([0, 1, last_s, first_ms, first_ms + 1, 1714557603250, 1714557603.5, last_ms])
    out = epoch_seconds(x)
    assert out is not None
    assert out.tolist() == [parse_timestamp(float(v)) for v in x]


@pytest.mark.parametrize(
    "bad",
    [-1.0, np.nan, np.inf, MAX_EPOCH_MS * 2, MAX_EPOCH_S, MS_THRESHOLD - 1, MAX_EPOCH_MS],
)
def test_epoch_seconds_declines_what_parse_timestamp_rejects(bad: float) -> None:
    assert epoch_seconds(np.array([1.0, bad])) is None


def test_rfc3339_seconds_strict_forms() -> None:
    stamps = [
        "2024-05-01T10:00:03Z",
        "2024-05-01T10:00:03.25Z",
        "2024-05-01T10:00:03.123456+02:00",
        "1969-12-31T23:59:59.999999-05:30",
        "2000-02-29T23:59:59+23:59",
    ]
    expected = [
        _utc(2024, 5, 1, 10, 0, 3),
        _utc(2024, 5, 1, 10, 0, 3, 250000),
        _utc(2024, 5, 1, 10, 0, 3, 123456, tz=timezone(timedelta(hours=2))),
        _utc(1969, 12, 31, 23, 59, 59, 999999, tz=timezone(-timedelta(hours=5, minutes=30))),
        _utc(2000, 2, 29, 23, 59, 59, tz=timezone(timedelta(hours=23, minutes=59))),
    ]
    out = rfc3339_seconds(pa.array(stamps))
    assert out is not None
    assert out.tolist() == expected
    assert out.tolist() == [parse_timestamp(s) for s in stamps]


@pytest.mark.parametrize(
    "stamp",
    [
        "2024-05-01 10:00:03Z",  # valid for parse_timestamp, but not strict
        "2024-05-01T10:00:03z",
        "2024-05-01T10:00:03",
        "2024-05-01T10:00:03.1234567Z",
        "2024-05-01T10:00:03.Z",
        "2024-05-01T10:00:03+0200",
        "2023-02-29T10:00:03Z",
        "2024-13-01T10:00:03Z",
        "2024-05-01T24:00:00Z",
        "2024-05-01T10:00:03+00:75",
        "2024-W18-3T00:00:00Z",
        "0001-01-01T00:00:00Z",  # out of range (float microseconds inexact that far out)
        "1969-12-31T23:59:59.999999Z",
        "1900-01-01T00:00:00Z",
        "2100-01-01T00:00:00Z",
        "2099-12-31T23:59:59-00:01",
        "9999-12-31T23:59:59Z",
    ],
)
def test_rfc3339_seconds_declines_other_forms(stamp: str) -> None:
    assert rfc3339_seconds(pa.array(["2024-05-01T10:00:03Z", stamp])) is None


def test_rfc3339_seconds_range_bounds() -> None:
    stamps = ["1970-01-01T00:00:00Z", "2099-12-31T23:59:59.999999Z", "1970-01-01T05:30:00+05:30"]
    out = rfc3339_seconds(pa.array(stamps))
    assert out is not None
    assert out.tolist() == [0.0, _utc(2099, 12, 31, 23, 59, 59, 999999), 0.0]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T10:00:03Z", True),
        ("2024-05-01t10:00:03.5+05:30", True),
        ("1900-01-01T00:00:00Z", True),  # a date-time, only out of the event-time range
        ("2024-W18-3T00:00:00Z", False),
        ("2024-05-01 10:00:03Z", False),
        ("2024-05-01T10:00:03", False),
        ("2024-02-30T10:00:03Z", False),
    ],
)
def test_is_rfc3339(value: str, expected: bool) -> None:
    assert is_rfc3339(value) is expected


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.floats(-5e9, 8e9),
        st.floats(-100, 100),
        st.floats(MAX_EPOCH_S - 100, MAX_EPOCH_S + 100),
    ).map(lambda t: round(t, 6)),
    st.sampled_from([0, 330, -480, 1439, -1439]),
)
def test_rfc3339_seconds_matches_parse_timestamp(t: float, offset_min: int) -> None:
    stamp = datetime.fromtimestamp(t, timezone(timedelta(minutes=offset_min))).isoformat()
    out = rfc3339_seconds(pa.array([stamp]))
    instant = datetime.fromisoformat(stamp).timestamp()
    if not (0 <= instant < _utc(2100, 1, 1)):
        assert out is None
        with pytest.raises(ValueError, match="out of range"):
            parse_timestamp(stamp)
        return
    assert out is not None
    assert out.tolist() == [parse_timestamp(stamp)] == [instant]


# ---------------------------------------------------------------------- windows


@pytest.mark.parametrize(
    ("ts_ms", "window_ms", "expected"),
    [
        (0, 60_000, 0),
        (59_999.9, 60_000, 0),
        (60_000, 60_000, 60_000),
        (1_700_000_040_500.0, 60_000, 1_700_000_040_000),
        (1_700_000_099_999.0, 60_000, 1_700_000_040_000),
        (1_700_000_100_000.0, 60_000, 1_700_000_100_000),
        (1_700_000_040_500.0, 3_600_000, 1_699_999_200_000),
        (-1.0, 60_000, -60_000),  # before the epoch: the window that holds it
        (-0.5, 60_000, 0),  # truncated toward zero to whole ms first
    ],
)
def test_window_start_ms(ts_ms: float, window_ms: int, expected: int) -> None:
    assert window_start_ms(ts_ms, window_ms) == expected
    assert type(window_start_ms(ts_ms, window_ms)) is int
    vector = window_start_ms(np.array([ts_ms]), window_ms)
    assert vector.dtype == np.int64
    assert vector.tolist() == [expected]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(-1e13, 1e14, allow_nan=False), min_size=1, max_size=20),
    st.sampled_from([1, 1000, 60_000, 3_600_000, 86_400_000]),
)
def test_window_start_ms_scalar_and_vector_agree(ts_ms: list[float], window_ms: int) -> None:
    vector = window_start_ms(np.array(ts_ms), window_ms).tolist()
    assert vector == [window_start_ms(t, window_ms) for t in ts_ms]
    for t, start in zip(ts_ms, vector, strict=True):
        whole = math.trunc(t)
        assert start <= whole < start + window_ms
        assert start % window_ms == 0
