"""Every schema is valid 2020-12, its examples validate, and known-bad documents fail."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from streamproc.contracts import SchemaError, load_schema, schema_names, validate

EXPECTED = {
    "alert",
    "deadletter",
    "label_event",
    "prediction_log",
    "profile_delta",
    "retrain_event",
    "rollout",
}


def test_all_contracts_present() -> None:
    assert set(schema_names()) == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_schema_is_valid_and_examples_validate(name: str) -> None:
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["examples"], f"{name} has no examples"
    for example in schema["examples"]:
        validate(name, example)


def _example(name: str, i: int = 0) -> dict[str, Any]:
    return copy.deepcopy(load_schema(name)["examples"][i])


def _drop(doc: dict[str, Any], key: str) -> dict[str, Any]:
    doc.pop(key)
    return doc


def _set(doc: dict[str, Any], key: str, value: object) -> dict[str, Any]:
    doc[key] = value
    return doc


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("prediction_log", _drop(_example("prediction_log"), "timestamp"), "timestamp"),
    ("prediction_log", _set(_example("prediction_log"), "timestamp", "yesterday"), "timestamp"),
    ("prediction_log", _set(_example("prediction_log"), "timestamp", "2024-05-01T10:00:00"), ""),
    ("prediction_log", _set(_example("prediction_log"), "timestamp", "2024-W18-3T00:00:00Z"), ""),
    ("prediction_log", _set(_example("prediction_log"), "features_as_of", "2024-122T00:00Z"), ""),
    ("alert", _set(_example("alert"), "emitted_at", "2024-05-01 10:05:00Z"), "emitted_at"),
    ("prediction_log", _set(_example("prediction_log"), "features", [1, 2]), "features"),
    ("prediction_log", _set(_example("prediction_log"), "features", {"x": {"a": 1}}), "x"),
    ("prediction_log", _set(_example("prediction_log"), "prediction", {}), ""),
    ("prediction_log", _set(_example("prediction_log"), "prediction", {"label": None}), ""),
    ("prediction_log", _set(_example("prediction_log"), "latency_ms", -1), "latency_ms"),
    ("prediction_log", _set(_example("prediction_log"), "fallback", "no"), "fallback"),
    ("prediction_log", _set(_example("prediction_log"), "segment", {"c": 1}), "segment"),
    ("label_event", _drop(_example("label_event"), "label"), "label"),
    ("label_event", _set(_example("label_event"), "label", None), "label"),
    ("profile_delta", _set(_example("profile_delta"), "format_version", 2), "format_version"),
    ("profile_delta", _drop(_example("profile_delta"), "source"), "source"),
    ("profile_delta", _set(_example("profile_delta"), "extra", 1), "extra"),
    ("deadletter", _set(_example("deadletter"), "streamproc.reason", "because"), "reason"),
    ("deadletter", _drop(_example("deadletter"), "streamproc.source.offset"), "offset"),
    ("alert", _set(_example("alert"), "status", "pending"), "status"),
    ("alert", _set(_example("alert"), "check", "vibes"), "check"),
    ("alert", _set(_example("alert"), "alert_id", "not-a-uuid"), "alert_id"),
    ("alert", _set(_example("alert"), "emitted_at", "10:05"), "emitted_at"),
    ("alert", _drop(_example("alert"), "labels"), "labels"),
    ("alert", _set(_example("alert"), "labels", {"alertname": "X"}), "labels"),
    ("alert", _set(_example("alert"), "severity", "info"), "severity"),
]


@pytest.mark.parametrize(("name", "doc", "mentions"), INVALID)
def test_invalid_documents_fail(name: str, doc: dict[str, Any], mentions: str) -> None:
    with pytest.raises(SchemaError) as err:
        validate(name, doc)
    assert name in str(err.value)
    assert mentions in str(err.value)


def test_unknown_schema_name_lists_the_available_ones() -> None:
    with pytest.raises(FileNotFoundError, match="prediction_log"):
        load_schema("nope")
