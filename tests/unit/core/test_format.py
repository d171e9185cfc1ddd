"""Bad bytes are rejected with a clear ProfileFormatError."""

from __future__ import annotations

import base64
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.core import codec
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


# A model profile written by format version 1 (before exact bin counts): features x
# (numeric: 0.5, 1.5, 2.5, None, nan, 3.0, -1.0) and c (categorical).
V1_MODEL = base64.b64decode(
    "U1BNUAEAAABlAwAAp+9FE8MAAAB7Im1vZGVsIjoibSIsIm1vZGVsX3ZlcnNpb24iOiIxIiwiZmVhdHVyZXMiOlsiYyIsIngiXSwiZXZlbnRfdGltZV9taW4iOm51bGwsImV2ZW50X3RpbWVfbWF4IjpudWxsLCJyb3dfY291bnQiOjcsIm1ldGFkYXRhIjp7fSwic2NoZW1hIjp7fSwiayI6NTEyLCJtYXhfY2F0ZWdvcmllcyI6MTAwMCwibGFiZWxfa2luZCI6ImNhdGVnb3JpY2FsIn0FAAAARAEAAFNQRlABAAAANAEAAFmJ3LUMAQAAeyJraW5kIjoiY2F0ZWdvcmljYWwiLCJrIjo1MTIsIm1heF9jYXRlZ29yaWVzIjoxMDAwLCJsZ19obGwiOjEyLCJjb3VudCI6NywibnVsbF9jb3VudCI6MSwiaW52YWxpZF9jb3VudCI6MCwibm9uZmluaXRlX2NvdW50IjowLCJtaW4iOm51bGwsIm1heCI6bnVsbCwic3VtIjowLjAsIm0yIjowLjAsImNhdGVnb3JpZXMiOnsibWF4X2NhdGVnb3JpZXMiOjEwMDAsImxnX21heF9tYXBfc2l6ZSI6MTAsInRvdGFsIjo2LCJleGFjdCI6W1siYSIsImIiLCJjIl0sWzMsMiwxXV19fQMAAAAAAAAAFAAAAAIBBwwDCAMAL4I7BAr/gARvGdwGAAAAAEIBAABTUEZQAQAAADIBAABggA7JsgAAAHsia2luZCI6Im51bWVyaWMiLCJrIjo1MTIsIm1heF9jYXRlZ29yaWVzIjoxMDAwLCJsZ19obGwiOjEyLCJjb3VudCI6NywibnVsbF9jb3VudCI6MSwiaW52YWxpZF9jb3VudCI6MCwibm9uZmluaXRlX2NvdW50IjoxLCJtaW4iOi0xLjAsIm1heCI6My4wLCJzdW0iOjYuNSwibTIiOjEwLjI5OTk5OTk5OTk5OTk5OX0DAAAAUAAAAAUBDwAAAggABQAAAAAAAAAAAgEA+wEAAAAAAAAAAPC/AAAAAAAACEAAAAAAAADwvwAAAAAAAAhAAAAAAAAABEAAAAAAAAD4PwAAAAAAAOA/HAAAAAIBBwwDCAUAHQ1mBXMcABsigioUSqkoEI5ElQoAAAAAAAAAAAAAAAAAAAAA"
)


def test_version_1_bytes_still_load() -> None:
    assert struct.unpack_from("<H", V1_MODEL, 4)[0] == 1
    m = ModelProfile.from_bytes(V1_MODEL)
    x = m.features["x"]
    assert (x.count, x.null_count, x.nonfinite_count, x.valid_count) == (7, 1, 1, 5)
    assert x.min == -1.0 and x.max == 3.0 and x.bin_edges is None and x.bin_counts is None
    assert m.features["c"].top_categories(1) == [("a", 3)]
    again = ModelProfile.from_bytes(m.to_bytes())  # rewritten as the current version
    assert again == m
    assert struct.unpack_from("<H", m.to_bytes(), 4)[0] == codec.FORMAT_VERSION == 2


def _binned_parts() -> tuple[dict[str, object], list[bytes]]:
    p = FeatureProfile.new(FeatureKind.NUMERIC, bin_edges=np.array([0.0, 10.0]))
    p.update(np.arange(20.0))
    meta, blobs = codec.unpack(p.to_bytes(), codec.MAGIC_FEATURE, "t")
    assert np.frombuffer(blobs[3], "<i8", offset=4 + 16).tolist() == [0, 10, 10]
    return meta, blobs


def test_bad_bin_counts_are_format_errors() -> None:
    meta, blobs = _binned_parts()
    FeatureProfile.from_bytes(codec.pack(codec.MAGIC_FEATURE, meta, blobs))
    bad_counts = blobs[3][:-8] + struct.pack("<q", 11)  # 21 counted for 20 values
    short = blobs[3][:-1]
    unsorted = struct.pack("<I", 2) + struct.pack("<2d", 1.0, 0.0) + blobs[3][20:]
    for bad, msg in [(bad_counts, "add up"), (short, "does not hold"), (unsorted, "increasing")]:
        data = codec.pack(codec.MAGIC_FEATURE, meta, [*blobs[:3], bad])
        with pytest.raises(ProfileFormatError, match=f"corrupt content.*{msg}"):
            FeatureProfile.from_bytes(data)
    v1_layout_v2_header = codec.pack(codec.MAGIC_FEATURE, meta, blobs[:3])
    with pytest.raises(ProfileFormatError, match="expected 4 blobs, found 3"):
        FeatureProfile.from_bytes(v1_layout_v2_header)
    v2_layout_v1_header = codec.pack(codec.MAGIC_FEATURE, meta, blobs, version=1)
    with pytest.raises(ProfileFormatError, match="expected 3 blobs, found 4"):
        FeatureProfile.from_bytes(v2_layout_v1_header)
    future = codec.pack(codec.MAGIC_FEATURE, meta, blobs)
    future = future[:4] + struct.pack("<H", 3) + future[6:]
    with pytest.raises(ProfileFormatError, match=r"version 3 is not supported.*upgrade"):
        FeatureProfile.from_bytes(future)
