"""``[models.<model>]``: slices, fairness and rollout sections."""

from __future__ import annotations

import pytest

from streamproc.checks.model_settings import ModelConfigError, parse_models, settings_for
from streamproc.config import ConfigError, config_from_mapping


def test_sections_parse_into_specs() -> None:
    models = parse_models(
        {
            "credit": {
                "slices": {
                    "dimensions": ["country"],
                    "crossings": [["country", "device"]],
                    "top_k": 5,
                    "key_features": ["amount"],
                    "fdr": 0.1,
                },
                "fairness": {"protected": ["gender"], "positive": True, "min_group_size": 50},
            },
            "*": {"rollout": {"champion": "1", "challenger": "2", "mode": "shadow"}},
        },
        "test",
    )
    credit = models["credit"]
    spec = credit.slice_spec()
    assert spec is not None and spec.policy.top_k == 5 and spec.positive == "true"
    assert spec.policy.crossings == (("country", "device"),) and spec.protected == ("gender",)
    assert credit.fdr == 0.1 and credit.fairness.min_group_size == 50
    other = settings_for(models, "fraud")
    assert other.rollout is not None and other.rollout.mode == "shadow"
    assert other.slice_spec() is None


def test_fairness_alone_counts_groups_without_slice_profiles() -> None:
    spec = parse_models({"m": {"fairness": {"protected": ["g"]}}}, "t")["m"].slice_spec()
    assert spec is not None and not spec.profile_slices and spec.policy.dimensions == ("g",)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"m": {"slice": {}}}, "unknown section"),
        ({"m": {"slices": {"top_k": "x"}}}, "bad value"),
        ({"m": {"slices": {"top_k": 0}}}, "top_k"),
        ({"m": {"fairness": {}}}, "needs protected"),
        ({"m": {"rollout": {"champion": "1"}}}, "champion and challenger"),
        ({"m": {"rollout": {"champion": "1", "challenger": "1"}}}, "same version"),
        ({"m": {"rollout": {"champion": "1", "challenger": "2", "mode": "x"}}}, "mode"),
        (
            {
                "m": {
                    "rollout": {
                        "champion": "1",
                        "challenger": "2",
                        "mode": "shadow",
                        "primary_metric": "f1",
                    }
                }
            },
            "accuracy or roc_auc",
        ),
    ],
)
def test_bad_sections_say_what_is_wrong(table: dict[str, object], message: str) -> None:
    with pytest.raises(ModelConfigError, match=message):
        parse_models(table, "t")
    with pytest.raises(ConfigError, match=message):
        config_from_mapping({"models": table})


def test_config_exposes_shadow_pairs_for_the_join() -> None:
    c = config_from_mapping(
        {
            "models": {
                "risk": {"rollout": {"champion": "1", "challenger": "2", "mode": "shadow"}},
                "ab": {"rollout": {"champion": "1", "challenger": "2"}},
            }
        }
    )
    assert c.shadow_pairs() == {"risk": ("1", "2")}
