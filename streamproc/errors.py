"""Errors the CLI reports as one line (exit code 2) instead of a traceback."""

from __future__ import annotations


class UsageError(Exception):
    """Bad usage or unusable input; the message says what to do."""
