"""Category values in alert evidence: raw when many records share them, tokenized when
rare, always tokenized for a sensitive feature; and the counts the checks attach.

Tokens are computed here from their definition (``"~"`` + the first 10 hex digits of
sha1 of the value's ``repr``), never by the code under test.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

import numpy as np
import pytest

from streamproc.checks import CheckResult, LifecyclePolicy, step
from streamproc.checks.alerts import build_alert, redact_evidence
from streamproc.config import ConfigError, config_from_mapping
from streamproc.contracts import validate
from streamproc.core.categorical_drift import OTHER
from streamproc.core.drift import compare_features
from streamproc.core.kinds import FeatureKind
from streamproc.core.model_profile import ModelProfile

MIN = 60_000
T0 = 1_714_557_600_000  # 2024-05-01T10:00:00Z


def token(value: object) -> str:
    return "~" + hashlib.sha1(repr(value).encode("utf-8")).hexdigest()[:10]


def result(i: int = 0, *, feature: str | None = "discount", **kw: Any) -> CheckResult:
    base: dict[str, Any] = {
        "check": "cardinality",
        "model": "credit",
        "model_version": "7",
        "feature": feature,
        "breached": True,
        "severity": "critical",
        "statistic": "new_category_share",
        "value": 0.12,
        "threshold": 0.05,
        "n_reference": 50_000,
        "n_current": 1_000,
        "window_start_ms": T0 + 5 * MIN * i,
        "window_end_ms": T0 + 5 * MIN * (i + 1),
        "evidence": [
            {"category": "50%", "count": 120, "share": 0.12},
            {"category": "jane.doe@example.com", "count": 1, "share": 0.001},
            {"distinct_reference": 4.0, "distinct_current": 6.0},
        ],
    }
    base.update(kw)
    return CheckResult(**base)


def fired(policy: LifecyclePolicy, **kw: Any) -> dict[str, Any]:
    state, msg = step(None, result(0, **kw), T0 + 5 * MIN, policy)
    state, msg = step(state, result(1, **kw), T0 + 10 * MIN, policy)
    assert msg is not None and msg["reason"] == "fired"
    validate("alert", msg)
    return dict(msg)


# ---------------------------------------------------------------- the rule


def test_a_value_many_records_carry_is_raw_a_rare_one_is_tokenized() -> None:
    msg = fired(LifecyclePolicy())
    common, rare, distinct = msg["evidence"]
    assert common == {"category": "50%", "count": 120, "share": 0.12}
    assert rare == {"category": token("jane.doe@example.com"), "count": 1, "share": 0.001}
    assert distinct == {"distinct_reference": 4.0, "distinct_current": 6.0}
    assert "jane.doe" not in str(msg)


@pytest.mark.parametrize(
    ("count", "shown"),
    [(4, False), (5, True), (6, True), (0, False)],
)
def test_the_default_threshold_is_five_records(count: int, shown: bool) -> None:
    out = redact_evidence([{"category": "gold", "count": count}])
    assert out[0]["category"] == ("gold" if shown else token("gold"))


def test_the_threshold_is_configurable() -> None:
    item = [{"category": "gold", "count": 3}]
    assert redact_evidence(item, min_records=3)[0]["category"] == "gold"
    assert redact_evidence(item, min_records=4)[0]["category"] == token("gold")


def test_a_category_common_in_the_reference_is_raw_even_if_gone_from_the_window() -> None:
    out = redact_evidence([{"category": "US", "count": 0, "reference_count": 9_000}])
    assert out[0]["category"] == "US"


def test_no_count_means_tokenized() -> None:
    out = redact_evidence([{"category": "gold", "share": 0.5}, {"value": 3.5}])
    assert out == [{"category": token("gold"), "share": 0.5}, {"value": token(3.5)}]


def test_a_list_of_values_is_tokenized_whatever_its_count() -> None:
    out = redact_evidence([{"categories": ["a@x.io", "b@y.io"], "count": 500}])
    assert out[0]["categories"] == [token("a@x.io"), token("b@y.io")]
    raw = redact_evidence([{"categories": ["a@x.io"], "count": 500}], allow_raw_values=True)
    assert raw[0]["categories"] == ["a@x.io"]


@pytest.mark.parametrize("count", [True, float("nan"), float("inf"), "500", None])
def test_a_count_that_is_no_number_of_records_is_no_count(count: object) -> None:
    assert redact_evidence({"category": "x", "count": count})["category"] == token("x")


def test_nested_items_are_judged_by_their_own_counts() -> None:
    out = redact_evidence({"top": {"category": "gold", "count": 50}, "count": 1})
    assert out == {"top": {"category": "gold", "count": 50}, "count": 1}


def test_sensitive_feature_is_tokenized_even_when_many_records_carry_the_value() -> None:
    policy = LifecyclePolicy(sensitive_features={"credit": frozenset({"discount"})})
    msg = fired(policy)
    assert msg["evidence"][0]["category"] == token("50%")
    assert msg["evidence"][1]["category"] == token("jane.doe@example.com")
    # another model's feature of the same name is not sensitive
    other = fired(policy, model="fraud")
    assert other["evidence"][0]["category"] == "50%"


def test_sensitive_for_every_model() -> None:
    policy = LifecyclePolicy(sensitive_features={"*": frozenset({"discount"})})
    assert fired(policy, model="fraud")["evidence"][0]["category"] == token("50%")
    assert policy.is_sensitive("any", "discount") and not policy.is_sensitive("any", "other")
    assert not policy.is_sensitive("any", None)


def test_allow_raw_values_shows_rare_values() -> None:
    msg = fired(LifecyclePolicy(allow_raw_values=True))
    assert [e.get("category") for e in msg["evidence"]] == ["50%", "jane.doe@example.com", None]


def test_sensitive_wins_over_allow_raw_values() -> None:
    policy = LifecyclePolicy(
        allow_raw_values=True, sensitive_features={"credit": frozenset({"discount"})}
    )
    msg = fired(policy)
    assert msg["evidence"][0]["category"] == token("50%")
    assert msg["evidence"][1]["category"] == token("jane.doe@example.com")


def test_build_alert_takes_the_rule_directly() -> None:
    kwargs: dict[str, Any] = {
        "status": "firing",
        "reason": "fired",
        "severity": "critical",
        "started_at_ms": T0,
        "resolved_at_ms": None,
        "emitted_at_ms": T0,
        "runbook_url": "docs/RUNBOOK.md#cardinality",
    }
    strict = build_alert(result(), raw_value_min_records=500, **kwargs)
    assert strict["evidence"][0]["category"] == token("50%")
    lax = build_alert(result(), raw_value_min_records=1, **kwargs)
    assert [e.get("category") for e in lax["evidence"][:2]] == ["50%", "jane.doe@example.com"]
    hidden = build_alert(result(), allow_raw_values=True, sensitive=True, **kwargs)
    assert hidden["evidence"][0]["category"] == token("50%")


def test_policy_rejects_a_threshold_below_one() -> None:
    with pytest.raises(ValueError, match="raw_value_min_records"):
        LifecyclePolicy(raw_value_min_records=0)


# ---------------------------------------------------------------- [alerts] settings


def test_alerts_settings_reach_the_policy() -> None:
    config = config_from_mapping(
        {
            "alerts": {
                "raw_value_min_records": 20,
                "sensitive_features": {"*": ["email"], "credit": ["zip", "discount"]},
            }
        }
    )
    policy = config.lifecycle_policy()
    assert policy.raw_value_min_records == 20
    assert policy.is_sensitive("credit", "zip") and policy.is_sensitive("fraud", "email")
    assert not policy.is_sensitive("fraud", "zip")
    msg = fired(policy, model="fraud")  # 120 records ≥ 20: raw; discount not sensitive here
    assert msg["evidence"][0]["category"] == "50%"
    assert fired(policy)["evidence"][0]["category"] == token("50%")


@pytest.mark.parametrize(
    ("alerts", "key"),
    [
        ({"raw_value_min_records": 0}, "alerts.raw_value_min_records"),
        ({"raw_value_min_records": "5"}, "alerts.raw_value_min_records"),
        ({"raw_value_min_records": True}, "alerts.raw_value_min_records"),
        ({"sensitive_features": ["email"]}, "alerts.sensitive_features"),
        ({"sensitive_features": {"credit": "zip"}}, "alerts.sensitive_features"),
        ({"sensitive_features": {"credit": [""]}}, "alerts.sensitive_features"),
    ],
)
def test_bad_alerts_settings_name_the_key(alerts: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        config_from_mapping({"alerts": alerts}, source="monitor.toml")


# ---------------------------------------------------------------- counts from the checks


def _profiles(
    ref_values: list[str], cur_values: list[str], max_categories: int | None = None
) -> tuple[ModelProfile, ModelProfile]:
    kw: dict[str, Any] = {"feature_kinds": {"plan": FeatureKind.CATEGORICAL}}
    if max_categories is not None:
        kw["max_categories"] = max_categories
    ref = ModelProfile.build_reference(
        "credit", "7", {"plan": np.array(ref_values, dtype=object)}, **kw
    )
    cur = ModelProfile.build_reference(
        "credit", "7", {"plan": np.array(cur_values, dtype=object)}, **kw
    )
    return ref, cur


def test_categorical_drift_evidence_carries_window_and_reference_counts() -> None:
    ref_values = ["basic"] * 600 + ["plus"] * 300 + ["gold"] * 100
    cur_values = ["basic"] * 200 + ["plus"] * 300 + ["gold"] * 497 + ["rare@x.io"] * 3
    ref, cur = _profiles(ref_values, cur_values)
    fd = compare_features(ref.features["plan"], cur.features["plan"], name="plan")
    ref_n, cur_n = Counter(ref_values), Counter(cur_values)
    assert fd.evidence
    for item in fd.evidence:
        cat = item["category"]
        assert item["count"] == cur_n[cat], cat
        assert item["reference_count"] == ref_n[cat], cat
    # and in the message: the common categories raw, the 3-record one tokenized
    shown = redact_evidence(fd.evidence)
    by_count = {e["count"]: e["category"] for e in shown}
    assert by_count[497] == "gold" and by_count[200] == "basic"
    assert by_count[3] == token("rare@x.io")


def test_sketched_counts_are_lower_bounds_and_the_folded_bin_counts_its_share() -> None:
    rng = np.random.default_rng(3)
    ref_values = [f"c{i}" for i in rng.zipf(1.5, 20_000) % 3_000]
    cur_values = [f"c{i}" for i in rng.zipf(1.5, 10_000) % 3_000]
    cur_values += [f"u{i}" for i in rng.integers(0, 5_000, 10_000)]  # a long new tail
    ref, cur = _profiles(ref_values, cur_values, max_categories=64)
    rf, cf = ref.features["plan"], cur.features["plan"]
    assert rf.categories is not None and not rf.categories.is_exact
    fd = compare_features(rf, cf, name="plan")
    ref_n, cur_n = Counter(ref_values), Counter(cur_values)
    assert {e["category"] for e in fd.evidence} > {OTHER}  # the fold and real categories
    for item in fd.evidence:
        cat = item["category"]
        if cat == OTHER:
            assert item["count"] == round(item["current_share"] * len(cur_values))
            assert item["reference_count"] == round(item["reference_share"] * len(ref_values))
        else:
            assert 0 <= item["count"] <= cur_n[cat], cat
            assert 0 <= item["reference_count"] <= ref_n[cat], cat


def test_degenerate_output_evidence_carries_counts() -> None:
    from streamproc.checks.context import Window
    from streamproc.checks.evaluate import EvaluationPolicy
    from streamproc.checks.quality_checks import degenerate_output_result

    n = 2_000
    rng = np.random.default_rng(5)
    ref = ModelProfile.build_reference(
        "credit",
        "7",
        {"x": rng.normal(size=n)},
        predictions=rng.random(n),
        predicted_labels=np.where(rng.random(n) < 0.3, "1", "0").astype(object),
    )
    cur = ModelProfile.build_reference(
        "credit",
        "7",
        {"x": rng.normal(size=n)},
        predictions=np.full(n, 0.5),
        predicted_labels=np.array(["1"] * n, dtype=object),
    )
    r = degenerate_output_result(
        Window("credit", "7", T0, T0 + 5 * MIN), ref, cur, EvaluationPolicy()
    )
    assert r is not None and r.breached
    assert isinstance(r.evidence, list)
    label, score = r.evidence
    assert label["category"] == "1" and label["count"] == n
    assert score["value"] == 0.5 and score["count"] == n
    shown = redact_evidence(r.evidence)
    assert shown[0]["category"] == "1" and shown[1]["value"] == 0.5
