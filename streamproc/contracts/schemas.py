"""Load the JSON Schemas in ``schemas/`` and validate documents against them.

For tests, tooling and cold paths (alerts, a few messages per minute). Do not call
``validate`` per record on the ingest hot path: jsonschema costs tens of microseconds per
document; :mod:`streamproc.contracts.prediction` checks the envelope in plain Python.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from streamproc.contracts.envelope import is_rfc3339

_PACKAGE_SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
#: The schemas shipped with the package (``streamproc/schemas``: package data in the
#: wheel; in a checkout, a symlink to ``<repo>/schemas``), else ``<repo>/schemas``.
SCHEMA_DIR = (
    _PACKAGE_SCHEMAS
    if _PACKAGE_SCHEMAS.is_dir()
    else Path(__file__).resolve().parents[2] / "schemas"
)
_SUFFIX = ".schema.json"


class SchemaError(ValueError):
    """A document does not match its schema; the message names the path and the problem."""


_FORMATS = FormatChecker()


@_FORMATS.checks("date-time")
def _is_rfc3339(value: object) -> bool:
    """RFC 3339 date-time with an explicit UTC offset: the string rule of the decoders
    (:func:`streamproc.contracts.envelope.is_rfc3339`; no ISO week or ordinal dates).

    jsonschema only checks ``date-time`` when an optional package is installed; this
    keeps the check on everywhere.
    """
    if not isinstance(value, str):
        return True  # format applies to strings only
    return is_rfc3339(value)


def schema_names() -> list[str]:
    """Names of all available schemas (file name without ``.schema.json``), sorted."""
    return sorted(p.name[: -len(_SUFFIX)] for p in SCHEMA_DIR.glob(f"*{_SUFFIX}"))


@cache
def load_schema(name: str) -> dict[str, Any]:
    """Return the parsed schema ``schemas/<name>.schema.json`` (cached; do not mutate)."""
    path = SCHEMA_DIR / f"{name}{_SUFFIX}"
    if not path.is_file():
        raise FileNotFoundError(
            f"no schema named {name!r} in {SCHEMA_DIR} (available: {', '.join(schema_names())})"
        )
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


@cache
def _validator(name: str) -> Draft202012Validator:
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=_FORMATS)


def validate(name: str, obj: object) -> None:
    """Raise :class:`SchemaError` if ``obj`` does not match schema ``name``.

    The error names every violation (JSON path and message), most specific first.
    """
    errors = sorted(_validator(name).iter_errors(obj), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]
        raise SchemaError(f"document does not match schema {name!r}: " + "; ".join(lines))
