"""Errors raised by the statistics core."""

from __future__ import annotations


class ProfileFormatError(ValueError):
    """Serialized profile bytes cannot be decoded.

    Raised for truncated or corrupt bytes, a wrong magic number (not a streamproc
    profile, or a profile of another type), and format versions this build does not
    know. The message says which, with the byte counts or versions involved.
    """
