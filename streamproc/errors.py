"""Errors the CLI reports as one line (exit code 2) instead of a traceback.

At the bottom of the layers (docs/LAYERS.md): config, monitor, alerting and demo raise
:class:`UsageError`; the CLI catches it.
"""

from __future__ import annotations


class UsageError(Exception):
    """Bad usage or unusable input; the message says what to do."""
