"""schemas/rollout.schema.json: its examples and the messages rollout_message builds."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import orjson
import pytest
from jsonschema import Draft202012Validator

from streamproc.checks.model_settings import RolloutSpec
from streamproc.checks.version_checks import (
    ArmStats,
    RolloutPolicy,
    guardrails,
    judge_ab,
    judge_shadow,
)
from streamproc.contracts import SchemaError, load_schema, schema_names, validate
from streamproc.core.shadow import ShadowPairs
from streamproc.monitor.rollout_eval import rollout_message

START_MS = 1_714_557_600_000  # 2024-05-01T10:00:00Z
END_MS = START_MS + 3_600_000


def _extra(champion: str, challenger: str, n_a: int = 500, n_b: int = 500) -> dict[str, Any]:
    return {
        "arms": {
            "champion": {"version": champion, "records": n_a, "windows": 12},
            "challenger": {"version": challenger, "records": n_b, "windows": 12},
        },
        "predictions": {},
    }


def _wire(message: dict[str, Any]) -> Any:
    """What a consumer of the rollouts topic reads (orjson: NaN and inf become null)."""
    return orjson.loads(orjson.dumps(message))


def test_schema_is_registered_valid_and_its_examples_validate() -> None:
    assert "rollout" in schema_names()
    schema = load_schema("rollout")
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert len(schema["examples"]) >= 2
    for example in schema["examples"]:
        validate("rollout", example)
    modes = {e["mode"] for e in schema["examples"]}
    assert modes == {"ab", "shadow"}


def test_an_ab_message_validates() -> None:
    spec = RolloutSpec("v1", "v2")
    finding = judge_ab(450, 500, 400, 500, RolloutPolicy())
    message = rollout_message("fraud", spec, finding, _extra("v1", "v2"), START_MS, END_MS)
    validate("rollout", message)
    validate("rollout", _wire(message))
    assert message["verdict"] == "kill"  # the challenger's 0.8 against the champion's 0.9
    assert message["shadow"] is None
    assert message["window"] == {"start": "2024-05-01T10:00:00Z", "end": "2024-05-01T11:00:00Z"}


def test_an_ab_message_with_guardrails_validates() -> None:
    spec = RolloutSpec("v1", "v2")
    guards = guardrails(
        ArmStats(500, 5, 2, 500, 40.0, 25.0), ArmStats(500, 6, 1, 500, 41.0, 30.0), spec.policy
    )
    finding = judge_ab(400, 500, 450, 500, spec.policy, guards)
    message = rollout_message("fraud", spec, finding, _extra("v1", "v2"), START_MS, END_MS)
    assert message["verdict"] == "investigate"
    assert message["degraded_guardrails"] == ["latency_mean_ms"]
    validate("rollout", _wire(message))


def test_an_ab_message_before_labels_validates_on_the_wire() -> None:
    """No labeled rows: the rates are NaN in Python, null on the wire; no interval."""
    spec = RolloutSpec("v1", "v2")
    guards = guardrails(ArmStats(0), ArmStats(0), spec.policy)  # an arm without rows: NaN
    finding = judge_ab(0, 0, 0, 0, spec.policy, guards)
    message = rollout_message("fraud", spec, finding, _extra("v1", "v2", 0, 0), START_MS, START_MS)
    wire = _wire(message)
    validate("rollout", wire)
    assert wire["verdict"] == "extend"
    assert wire["primary"]["a"] is None and "low" not in wire["primary"]


def test_a_shadow_message_validates() -> None:
    rng = np.random.default_rng(7)
    n = 1000
    y = rng.random(n) < 0.3
    a = np.clip(np.where(y, 0.62, 0.38) + rng.normal(0, 0.2, n), 0, 1)
    b = np.clip(np.where(y, 0.68, 0.33) + rng.normal(0, 0.2, n), 0, 1)
    pairs = ShadowPairs()
    pairs.update(a, b)
    pairs.update_labeled([f"r{i}" for i in range(n)], a, b, y)
    for metric in ("accuracy", "roc_auc"):
        spec = RolloutSpec("17", "18", "shadow", RolloutPolicy(primary_metric=metric))
        finding = judge_shadow(pairs, spec.policy)
        assert finding is not None
        message = rollout_message("fraud", spec, finding, _extra("17", "18"), START_MS, END_MS)
        validate("rollout", message)
        validate("rollout", _wire(message))
        assert message["shadow"]["pairs"] == n
        assert set(message["shadow"]) == {
            "pairs",
            "labeled_pairs",
            "agreement",
            "correlation",
            "score_difference",
        }


def _example(i: int = 0) -> dict[str, Any]:
    return copy.deepcopy(load_schema("rollout")["examples"][i])


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda m: m.update(verdict="maybe"), "verdict"),
        (lambda m: m.update(mode="canary"), "mode"),
        (lambda m: m.update(schema_version=2), "schema_version"),
        (lambda m: m.pop("arms"), "arms"),
        (lambda m: m["window"].update(end="11:00"), "end"),
        (lambda m: m["primary"].update(test="t_test"), "test"),
        (lambda m: m["guardrails"][0].pop("degraded"), "degraded"),
        (lambda m: m.update(extra=1), "extra"),
    ],
)
def test_bad_messages_fail(change: Any, where: str) -> None:
    doc = _example()
    change(doc)
    with pytest.raises(SchemaError, match=where):
        validate("rollout", doc)
