"""Bad bytes are rejected with a clear ProfileFormatError."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.core.errors import ProfileFormatError
from streamproc.core.feature_profile import FeatureProfile
from streamproc.core.kinds import FeatureKind
from streamproc.core.model_profile import ModelProfile


def _model_bytes() -> bytes:
    p = ModelProfile.new("m", "1", {"x": FeatureKind.NUMERIC, "c": FeatureKind.CATEGORICAL})
    p.update_columns({"x": np.arange(100.0), "c": np.array(["a", "b"] * 50)})
    return p.to_bytes()


def _feature_bytes() -> bytes:
    p = FeatureProfile.new(FeatureKind.NUMERIC)
    p.update(np.arange(1000.0))
    return p.to_bytes()


@pytest.mark.parametrize(
    ("decode", "data"),
    [(ModelProfile.from_bytes, _model_bytes()), (FeatureProfile.from_bytes, _feature_bytes())],
)
def test_truncated_wrong_magic_future_version(decode: object, data: bytes) -> None:
    assert callable(decode)
    decode(data)
    with pytest.raises(ProfileFormatError, match="truncated"):
        decode(data[:-1])
    with pytest.raises(ProfileFormatError, match="truncated"):
        decode(data[:5])
    with pytest.raises(ProfileFormatError, match="truncated"):
        decode(b"")
    with pytest.raises(ProfileFormatError, match="wrong magic"):
        decode(b"XXXX" + data[4:])
    future = data[:4] + struct.pack("<H", 99) + data[6:]
    with pytest.raises(ProfileFormatError, match=r"version 99 is not supported.*upgrade"):
        decode(future)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    with pytest.raises(ProfileFormatError, match="corrupt"):
        decode(bytes(flipped))
    with pytest.raises(ProfileFormatError, match="trailing"):
        decode(data + b"\0")


def test_feature_bytes_are_not_a_model_profile() -> None:
    with pytest.raises(ProfileFormatError, match="wrong magic"):
        ModelProfile.from_bytes(_feature_bytes())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_escape_as_other_errors(data: bytes) -> None:
    for decode in (ModelProfile.from_bytes, FeatureProfile.from_bytes):
        with pytest.raises(ProfileFormatError):
            decode(data)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 255))
def test_any_single_byte_corruption_is_detected(pos: int, value: int) -> None:
    data = bytearray(_feature_bytes())
    pos %= len(data)
    if data[pos] == value:
        return
    data[pos] = value
    with pytest.raises(ProfileFormatError):
        FeatureProfile.from_bytes(bytes(data))


def test_nonzero_reserved_flags_are_corrupt() -> None:
    data = bytearray(_feature_bytes())
    data[6] = 1
    with pytest.raises(ProfileFormatError, match="corrupt, reserved header flags"):
        FeatureProfile.from_bytes(bytes(data))
