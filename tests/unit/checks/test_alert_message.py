"""``AlertMessage`` is the alert schema as a TypedDict, and built alerts match both."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from streamproc.checks.alerts import (
    AlertAnnotations,
    AlertLabels,
    AlertMessage,
    AlertWindow,
    build_alert,
)
from streamproc.contracts import validate
from tests.support.alerts import flag_results, lifecycle_messages, window_result

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[3] / "schemas" / "alert.schema.json").read_text()
)


def _keys(typed: Any) -> tuple[frozenset[str], frozenset[str]]:
    return typed.__required_keys__, typed.__optional_keys__


@pytest.mark.parametrize(
    ("typed", "schema"),
    [
        (AlertMessage, SCHEMA),
        (AlertWindow, SCHEMA["properties"]["window"]),
        (AlertLabels, SCHEMA["properties"]["labels"]),
        (AlertAnnotations, SCHEMA["properties"]["annotations"]),
    ],
    ids=["message", "window", "labels", "annotations"],
)
def test_typeddict_keys_are_the_schema_keys(typed: Any, schema: dict[str, Any]) -> None:
    required, optional = _keys(typed)
    assert required == set(schema["required"])
    named = set(schema.get("properties", {})) or set(schema["required"])
    assert required | optional == named


def _cycle(feature: str | None) -> list[AlertMessage]:
    flags: list[bool | str] = [True, True, "critical", *([True] * 12), False, False, False]
    return lifecycle_messages(flag_results(flags, feature=feature))


def _assert_matches(message: AlertMessage) -> None:
    validate("alert", message)
    validate("alert", orjson.loads(orjson.dumps(message)))
    for typed, value in (
        (AlertMessage, message),
        (AlertWindow, message["window"]),
        (AlertLabels, message["labels"]),
        (AlertAnnotations, message["annotations"]),
    ):
        required, optional = _keys(typed)
        assert set(value) <= required | optional, set(value) - (required | optional)
        assert required <= set(value), required - set(value)


@pytest.mark.parametrize("feature", ["car_value", None])
def test_lifecycle_messages_validate_and_have_exactly_the_typed_keys(feature: str | None) -> None:
    messages = _cycle(feature)
    assert [m.get("reason") for m in messages] == ["fired", "escalated", "renotify", "resolved"]
    for message in messages:
        _assert_matches(message)
    escalated = messages[1]
    assert escalated.get("previous_severity") == "warning"
    assert ("feature" in messages[0]["labels"]) is (feature is not None)


def test_build_alert_rejects_a_status_or_reason_outside_the_schema() -> None:
    kwargs: dict[str, Any] = {
        "severity": "warning",
        "started_at_ms": 0,
        "resolved_at_ms": None,
        "emitted_at_ms": 0,
        "runbook_url": "docs/RUNBOOK.md#feature-drift",
    }
    result = window_result(0, True)
    _assert_matches(build_alert(result, status="firing", reason="fired", **kwargs))
    with pytest.raises(ValueError, match="status"):
        build_alert(result, status="pending", reason="fired", **kwargs)
    with pytest.raises(ValueError, match="reason"):
        build_alert(result, status="firing", reason="again", **kwargs)
