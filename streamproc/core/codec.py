"""Versioned binary container shared by feature and model profiles.

Layout (little-endian)::

    magic      4 bytes   b"SPFP" feature profile, b"SPMP" model profile
    version    u16       FORMAT_VERSION (2; 1 is still read)
    flags      u16       reserved, must be 0
    body_len   u32       bytes after the header
    crc32      u32       zlib.crc32 of the body
    body:
      meta_len u32, meta (orjson: counts, moments, kinds, metadata)
      n_blobs  u32, then per blob: len u32, bytes (datasketches' own serialize())

The checksum turns silent corruption into a ProfileFormatError, and the explicit
body length tells truncation apart from corruption in the message.

Versions: 1 — a feature profile has 3 blobs (KLL, HLL, categories). 2 — a fourth
blob, the exact bin counts on the reference's PSI edges (empty when the profile has
none; see :class:`streamproc.core.feature_profile.FeatureProfile`). A model profile's
own layout is the same in both (its blobs are feature profiles, each with its own
header), so version-1 model and feature bytes still load. Unknown versions raise
ProfileFormatError ("upgrade streamproc" when newer than this build).
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import orjson

from streamproc.core.errors import ProfileFormatError

FORMAT_VERSION = 2
SUPPORTED_VERSIONS = frozenset({1, 2})
MAGIC_FEATURE = b"SPFP"
MAGIC_MODEL = b"SPMP"

_HEADER = struct.Struct("<4sHHII")
_U32 = struct.Struct("<I")


def pack(
    magic: bytes, meta: dict[str, Any], blobs: list[bytes], *, version: int = FORMAT_VERSION
) -> bytes:
    """Frame ``meta`` (JSON-able) and ``blobs`` under ``magic``."""
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"cannot write format version {version}")
    meta_bytes = orjson.dumps(meta, option=orjson.OPT_SERIALIZE_NUMPY)
    parts = [_U32.pack(len(meta_bytes)), meta_bytes, _U32.pack(len(blobs))]
    for blob in blobs:
        parts.append(_U32.pack(len(blob)))
        parts.append(blob)
    body = b"".join(parts)
    header = _HEADER.pack(magic, version, 0, len(body), zlib.crc32(body))
    return header + body


def unpack(data: bytes, magic: bytes, what: str) -> tuple[dict[str, Any], list[bytes]]:
    """Inverse of :func:`pack`; raise ProfileFormatError naming what is wrong."""
    meta, blobs, _version = unpack_versioned(data, magic, what)
    return meta, blobs


def unpack_versioned(
    data: bytes, magic: bytes, what: str
) -> tuple[dict[str, Any], list[bytes], int]:
    """:func:`unpack` plus the format version the bytes were written with."""
    data = bytes(data)
    if len(data) < _HEADER.size:
        raise ProfileFormatError(
            f"{what}: truncated, {len(data)} bytes is shorter than the {_HEADER.size}-byte header"
        )
    got_magic, version, _flags, body_len, crc = _HEADER.unpack_from(data)
    if got_magic != magic:
        raise ProfileFormatError(
            f"{what}: wrong magic bytes {got_magic!r} (expected {magic!r}); "
            "not a streamproc profile of this type"
        )
    if version not in SUPPORTED_VERSIONS:
        newest = max(SUPPORTED_VERSIONS)
        hint = "upgrade streamproc to read it" if version > newest else "unknown version"
        raise ProfileFormatError(
            f"{what}: format version {version} is not supported "
            f"(this build reads versions {sorted(SUPPORTED_VERSIONS)}); {hint}"
        )
    if _flags != 0:
        raise ProfileFormatError(f"{what}: corrupt, reserved header flags are {_flags:#06x}")
    body = data[_HEADER.size :]
    if len(body) < body_len:
        raise ProfileFormatError(f"{what}: truncated, body has {len(body)} of {body_len} bytes")
    if len(body) > body_len:
        raise ProfileFormatError(
            f"{what}: {len(body) - body_len} unexpected trailing bytes after the body"
        )
    if zlib.crc32(body) != crc:
        raise ProfileFormatError(f"{what}: corrupt, checksum mismatch")
    try:
        pos = 0
        (meta_len,) = _U32.unpack_from(body, pos)
        pos += 4
        meta = orjson.loads(body[pos : pos + meta_len])
        pos += meta_len
        (n_blobs,) = _U32.unpack_from(body, pos)
        pos += 4
        blobs = []
        for _ in range(n_blobs):
            (blob_len,) = _U32.unpack_from(body, pos)
            pos += 4
            if pos + blob_len > len(body):
                raise ProfileFormatError(f"{what}: corrupt, blob runs past the body")
            blobs.append(body[pos : pos + blob_len])
            pos += blob_len
    except (struct.error, orjson.JSONDecodeError) as exc:
        raise ProfileFormatError(f"{what}: corrupt body ({exc})") from exc
    if not isinstance(meta, dict):
        raise ProfileFormatError(f"{what}: corrupt, metadata is not an object")
    return meta, blobs, int(version)
