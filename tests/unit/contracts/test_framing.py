"""Profile-delta framing and dead-letter headers match their schemas and round-trip."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamproc.contracts import load_schema, validate
from streamproc.contracts.framing import (
    FramingError,
    deadletter_header_object,
    deadletter_headers,
    decode_profile_delta,
    encode_profile_delta,
)
from streamproc.contracts.prediction import decode_predictions


def test_profile_delta_round_trip() -> None:
    header = load_schema("profile_delta")["examples"][0]
    value = encode_profile_delta(header, b"\x00profile\xff")
    assert struct.unpack(">I", value[:4])[0] == len(value) - 4 - len(b"\x00profile\xff")
    got, profile = decode_profile_delta(value)
    assert got == header and profile == b"\x00profile\xff"
    validate("profile_delta", got)


@pytest.mark.parametrize(
    "value",
    [b"", b"\x00\x00", b"\x00\x00\x00\x09{}", b"\x00\x00\x00\x02[]", b"\x00\x00\x00\x02{x"],
)
def test_profile_delta_framing_errors(value: bytes) -> None:
    with pytest.raises(FramingError):
        decode_profile_delta(value)


@given(st.binary(max_size=64))
def test_profile_delta_decode_only_raises_framing_error(value: bytes) -> None:
    with contextlib.suppress(FramingError):
        header, _ = decode_profile_delta(value)
        assert isinstance(header, dict)


def test_deadletter_headers_validate() -> None:
    rejects = decode_predictions([b"{oops"]).rejects
    (r,) = rejects
    headers = deadletter_headers(
        r.reason, r.detail, "predictions", 3, 120455, original=[("trace", b"abc")]
    )
    assert headers[0] == ("trace", b"abc")
    obj = deadletter_header_object(headers)
    validate("deadletter", obj)
    assert obj["streamproc.reason"] == "malformed_json"
    assert obj["streamproc.source.offset"] == "120455"


def test_deadletter_headers_replace_stale_ones_and_cap_detail() -> None:
    headers = deadletter_headers(
        "oversized", "x" * 5000, "p", 0, 1, original=[("streamproc.reason", b"old")]
    )
    obj = deadletter_header_object(headers)
    assert obj["streamproc.reason"] == "oversized"
    assert [k for k, _ in headers].count("streamproc.reason") == 1
    assert len(obj["streamproc.detail"]) == 1024
    validate("deadletter", obj)
