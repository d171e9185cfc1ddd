"""Message contracts: JSON Schemas for every message that crosses a topic, and fast decoders.

``schemas/*.schema.json`` (repo root) are the reference contracts; ``load_schema`` and
``validate`` check documents against them (tests, tooling, cold paths). The hot path uses
:mod:`streamproc.contracts.prediction`, which enforces the same envelope in plain Python.
"""

from streamproc.contracts.schemas import (
    SCHEMA_DIR,
    SchemaError,
    load_schema,
    schema_names,
    validate,
)

__all__ = ["SCHEMA_DIR", "SchemaError", "load_schema", "schema_names", "validate"]
