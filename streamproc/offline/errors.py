"""Errors raised by the offline layer for input a person can fix."""

from __future__ import annotations


class InputError(ValueError):
    """Unusable input data or options; the message is one line saying what to do.

    The CLI turns it into ``UsageError`` (exit code 2); library callers can catch it
    without depending on the CLI.
    """
