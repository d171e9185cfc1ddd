"""Alert messages: schema-valid, human summary, redaction, Alertmanager form."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streamproc.checks import CheckResult, LifecyclePolicy, step, summarize, to_alertmanager
from streamproc.checks.alerts import alertname, build_alert, rfc3339
from streamproc.contracts import validate

MIN = 60_000
T0 = 1_714_557_600_000  # 2024-05-01T10:00:00Z


def drift(i: int = 0, breached: bool = True, **kw: Any) -> CheckResult:
    base: dict[str, Any] = {
        "check": "feature_drift",
        "model": "fraud",
        "model_version": "17",
        "feature": "car_value",
        "breached": breached,
        "severity": "warning" if breached else None,
        "statistic": "psi",
        "value": 0.41 if breached else 0.05,
        "threshold": 0.25,
        "n_reference": 120_000,
        "n_current": 2_310,
        "window_start_ms": T0 + 5 * MIN * i,
        "window_end_ms": T0 + 5 * MIN * (i + 1),
        "evidence": [
            {"bin": "[20000, 25000)", "reference": 0.12, "current": 0.31, "contribution": 0.18}
        ],
    }
    base.update(kw)
    return CheckResult(**base)


def lifecycle_messages(
    results: list[CheckResult], policy: LifecyclePolicy | None = None
) -> list[dict[str, Any]]:
    policy = policy or LifecyclePolicy()
    state = None
    out = []
    for r in results:
        state, msg = step(state, r, r.window_end_ms, policy)
        if msg:
            out.append(msg)
    return out


def full_cycle() -> list[dict[str, Any]]:
    flags: list[tuple[bool, str | None]] = [(True, "warning")] * 2 + [(True, "critical")] * 13
    flags += [(False, None)] * 3
    return lifecycle_messages([drift(i, b, severity=s) for i, (b, s) in enumerate(flags)])


def test_every_message_of_a_full_cycle_validates() -> None:
    msgs = full_cycle()
    assert [m["reason"] for m in msgs] == ["fired", "escalated", "renotify", "resolved"]
    for m in msgs:
        validate("alert", m)
        validate("alert", orjson.loads(orjson.dumps(m)))  # survives the wire


def test_alert_ids_unique_per_message_and_deterministic() -> None:
    first, second = full_cycle(), full_cycle()
    ids = [m["alert_id"] for m in first]
    assert len(set(ids)) == len(ids)
    assert ids == [m["alert_id"] for m in second]
    assert len({m["fingerprint"] for m in first}) == 1


def test_message_fields() -> None:
    fired = lifecycle_messages([drift(0), drift(1)])[0]
    assert fired["status"] == "firing"
    assert fired["window"] == {"start": "2024-05-01T10:05:00Z", "end": "2024-05-01T10:10:00Z"}
    assert fired["value"] == 0.41 and fired["threshold"] == 0.25
    assert fired["resolved_at"] is None
    assert fired["emitted_at"] == "2024-05-01T10:10:00Z"
    assert fired["runbook_url"] == "docs/RUNBOOK.md#feature-drift"
    assert fired["labels"] == {
        "alertname": "StreamprocFeatureDrift",
        "severity": "warning",
        "model": "fraud",
        "model_version": "17",
        "feature": "car_value",
        "check": "feature_drift",
    }
    assert fired["annotations"]["summary"] == fired["summary"]
    assert fired["annotations"]["runbook_url"] == fired["runbook_url"]
    assert "psi = 0.41 (threshold 0.25)" in fired["annotations"]["description"]


def test_summary_sentence() -> None:
    assert summarize(drift(0)) == (
        "car_value drifted: PSI 0.41 > 0.25 over 2,310 events in 10:00–10:05 UTC on 2024-05-01"
    )
    assert summarize(drift(0, breached=False), resolved=True).startswith(
        "car_value no longer drifts: PSI 0.05 ≤ 0.25"
    )
    late = drift(
        0,
        check="staleness",
        feature=None,
        statistic="seconds_since_last_event",
        value=1830.0,
        threshold=600.0,
    )
    assert summarize(late).startswith(
        "fraud has no new events: seconds since last event 1,830 > 600"
    )
    # a check's own summary wins
    own = drift(0, summary="car_value moved up by 3σ")
    assert (
        lifecycle_messages([own, drift(1, summary="car_value moved up by 3σ")])[0]["summary"]
        == "car_value moved up by 3σ"
    )


def test_summary_window_across_midnight() -> None:
    midnight = 1_714_608_000_000  # 2024-05-02T00:00:00Z
    r = drift(0, window_start_ms=midnight - 5 * MIN, window_end_ms=midnight)
    assert r and "23:55–00:00 UTC on 2024-05-01" in summarize(r)
    r = drift(0, window_start_ms=midnight - 5 * MIN, window_end_ms=midnight + 5 * MIN)
    assert "2024-05-01 23:55–2024-05-02 00:05 UTC" in summarize(r)


def test_non_finite_values_become_null() -> None:
    msgs = lifecycle_messages([drift(0, value=float("inf")), drift(1, value=float("nan"))])
    assert msgs[0]["value"] is None
    validate("alert", msgs[0])


CATEGORY_EVIDENCE = [
    {"category": "jane.doe@example.com", "reference": 0.0, "current": 0.02},
    {"categories": ["a@x.io", "b@y.io"], "count": 2},
]


def test_raw_category_values_are_redacted_by_default() -> None:
    results = [drift(i, check="cardinality", evidence=CATEGORY_EVIDENCE) for i in range(2)]
    msg = lifecycle_messages(results)[0]
    text = orjson.dumps(msg).decode()
    assert "jane.doe" not in text and "a@x.io" not in text
    first = msg["evidence"][0]
    assert first["category"].startswith("~") and first["current"] == 0.02
    assert all(c.startswith("~") for c in msg["evidence"][1]["categories"])
    # tokens are stable, so repeated alerts show the same category the same way
    again = lifecycle_messages(results)[0]
    assert again["evidence"] == msg["evidence"]
    validate("alert", msg)


def test_raw_values_kept_when_allowed() -> None:
    results = [drift(i, check="cardinality", evidence=CATEGORY_EVIDENCE) for i in range(2)]
    msg = lifecycle_messages(results, LifecyclePolicy(allow_raw_values=True))[0]
    assert msg["evidence"][0]["category"] == "jane.doe@example.com"


def test_evidence_is_capped() -> None:
    many = [{"bin": str(i), "contribution": 0.01} for i in range(50)]
    msg = lifecycle_messages([drift(0, evidence=many), drift(1, evidence=many)])[0]
    assert len(msg["evidence"]) == 10


def test_runbook_url_configurable_per_check() -> None:
    policy = LifecyclePolicy(
        runbook_base_url="https://wiki.example.com/streamproc",
        runbook_urls={"completeness": "https://wiki.example.com/nulls"},
    )
    drift_msg = lifecycle_messages([drift(0), drift(1)], policy)[0]
    assert drift_msg["runbook_url"] == "https://wiki.example.com/streamproc#feature-drift"
    nulls = [drift(i, check="completeness", statistic="null_rate") for i in range(2)]
    assert lifecycle_messages(nulls, policy)[0]["runbook_url"] == "https://wiki.example.com/nulls"


def test_model_level_alert_has_no_feature_label() -> None:
    results = [drift(i, check="degenerate_output", feature=None) for i in range(2)]
    msg = lifecycle_messages(results)[0]
    assert msg["feature"] is None and "feature" not in msg["labels"]
    assert msg["summary"].startswith("fraud predictions collapsed")
    validate("alert", msg)


def test_alertname() -> None:
    assert alertname("degenerate_output") == "StreamprocDegenerateOutput"


def test_rfc3339() -> None:
    assert rfc3339(T0) == "2024-05-01T10:00:00Z"
    assert rfc3339(T0 + 250) == "2024-05-01T10:00:00.250Z"


def test_to_alertmanager_firing_and_resolved() -> None:
    fired, _escalated, _renotify, resolved = full_cycle()
    (am,) = to_alertmanager(fired, firing_ttl_ms=2 * 3_600_000, generator_url="http://sp")
    assert am == {
        "labels": fired["labels"],
        "annotations": fired["annotations"],
        "startsAt": fired["started_at"],
        "endsAt": "2024-05-01T12:10:00Z",
        "generatorURL": "http://sp",
    }
    (am,) = to_alertmanager(resolved)
    assert am["endsAt"] == resolved["resolved_at"]
    assert am["labels"]["severity"] == "critical"


def test_to_alertmanager_escalation_resolves_previous_severity() -> None:
    _, escalated, _, _ = full_cycle()
    new, old = to_alertmanager(escalated)
    assert new["labels"]["severity"] == "critical"
    assert old["labels"] == {**new["labels"], "severity": "warning"}
    assert old["endsAt"] == escalated["emitted_at"]


@pytest.mark.parametrize("status", ["firing", "resolved"])
def test_build_alert_direct(status: str) -> None:
    msg = build_alert(
        drift(0),
        status=status,
        reason="fired" if status == "firing" else "resolved",
        severity="warning",
        started_at_ms=T0,
        resolved_at_ms=T0 + MIN if status == "resolved" else None,
        emitted_at_ms=T0 + MIN,
        runbook_url="docs/RUNBOOK.md#feature-drift",
    )
    validate("alert", msg)


def test_a_slice_alert_names_its_segment_and_is_its_own_alert() -> None:
    import dataclasses

    whole = drift(0)
    sliced = dataclasses.replace(whole, segment="country=DE&device=ios")
    msg = build_alert(
        sliced,
        status="firing",
        reason="fired",
        severity="warning",
        started_at_ms=T0,
        resolved_at_ms=None,
        emitted_at_ms=T0 + MIN,
        runbook_url="docs/RUNBOOK.md#segment-alerts",
    )
    validate("alert", msg)
    assert msg["segment"] == {"country": "DE", "device": "ios"}
    assert msg["labels"]["segment"] == "country=DE&device=ios"
    assert "segment country=DE&device=ios" in msg["annotations"]["description"]
    assert sliced.fingerprint != whole.fingerprint
    assert "segment" not in build_alert(
        whole,
        status="firing",
        reason="fired",
        severity="warning",
        started_at_ms=T0,
        resolved_at_ms=None,
        emitted_at_ms=T0 + MIN,
        runbook_url="",
    )
