"""Alert lifecycle: M-of-N firing, K-clean resolve, re-notify, escalation, dedup."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from streamproc.checks import AlertState, LifecyclePolicy, fingerprint, step
from streamproc.checks.result import CHECK_NAMES
from tests.support.alerts import MIN, T0, window_result

HOUR = 3_600_000


result = window_result
"""Evaluation number i of the 5-minute window [T0 + 5i min, T0 + 5(i+1) min)."""


def run(
    flags: list[bool | str], policy: LifecyclePolicy | None = None
) -> tuple[AlertState | None, list[tuple[int, dict[str, Any]]]]:
    """Feed evaluations (True/False, or 'critical'); return final state and (i, message)."""
    policy = policy or LifecyclePolicy()
    state: AlertState | None = None
    out = []
    for i, flag in enumerate(flags):
        sev = flag if isinstance(flag, str) else None
        r = result(i, bool(flag), sev)
        state, msg = step(state, r, r.window_end_ms, policy)
        if msg is not None:
            out.append((i, msg))
    return state, out


def reasons(messages: list[tuple[int, dict[str, Any]]]) -> list[tuple[int, str]]:
    return [(i, m["reason"]) for i, m in messages]


def test_one_breach_does_not_fire() -> None:
    _, msgs = run([True, False, False, True, False, False, True])
    assert msgs == []


def test_fires_after_two_of_three() -> None:
    state, msgs = run([True, False, True])
    assert reasons(msgs) == [(2, "fired")]
    assert state is not None and state.status == "firing"
    assert msgs[0][1]["status"] == "firing"
    assert msgs[0][1]["started_at"] == "2024-05-01T10:15:00Z"


def test_m_of_n_is_configurable() -> None:
    policy = LifecyclePolicy(fire_after=3, fire_window=5)
    _, msgs = run([True, False, True, False, False, True, True], policy)
    assert reasons(msgs) == [(6, "fired")]
    _, msgs = run([True], LifecyclePolicy(fire_after=1, fire_window=1))
    assert reasons(msgs) == [(0, "fired")]


def test_resolve_after_one_clean_when_k_is_one() -> None:
    policy = LifecyclePolicy(fire_after=2, fire_window=3, resolve_after=1)
    _, msgs = run([True, True, False], policy)
    assert reasons(msgs) == [(1, "fired"), (2, "resolved")]


def test_resolves_after_k_consecutive_clean() -> None:
    state, msgs = run([True, True, False, False, True, False, False, False])
    assert reasons(msgs) == [(1, "fired"), (7, "resolved")]
    assert state is not None and state.status == "resolved"
    resolved = msgs[-1][1]
    assert resolved["status"] == "resolved"
    assert resolved["resolved_at"] == "2024-05-01T10:40:00Z"
    assert resolved["started_at"] == msgs[0][1]["started_at"]


def test_refiring_needs_fresh_breaches() -> None:
    policy = LifecyclePolicy(resolve_after=1)
    _, msgs = run([True, True, False, True, False, True, True], policy)
    # after resolving at 2 the history is cleared: 3 does not fire (without the reset
    # the window 1..3 would hold 2 breaches), 3+5 do
    assert reasons(msgs) == [(1, "fired"), (2, "resolved"), (5, "fired")]


def test_no_duplicate_messages_while_firing() -> None:
    _, msgs = run([True] * 11)  # 55 minutes of breaching windows
    assert reasons(msgs) == [(1, "fired")]


def test_renotify_interval() -> None:
    _, msgs = run([True] * 30)  # 2.5 hours
    assert reasons(msgs) == [(1, "fired"), (13, "renotify"), (25, "renotify")]
    policy = LifecyclePolicy(renotify_ms=15 * MIN)
    _, msgs = run([True] * 8, policy)
    assert reasons(msgs) == [(1, "fired"), (4, "renotify"), (7, "renotify")]


def test_renotify_also_while_clearing() -> None:
    # firing, then clean but fewer than K in a row: still firing, so re-notified
    policy = LifecyclePolicy(renotify_ms=10 * MIN, resolve_after=5)
    _, msgs = run([True, True, False, False, False], policy)
    assert reasons(msgs) == [(1, "fired"), (3, "renotify")]


def test_escalation_emits_one_update() -> None:
    state, msgs = run([True, True, True, "critical", "critical", True, "critical"])
    assert reasons(msgs) == [(1, "fired"), (3, "escalated")]
    escalated = msgs[1][1]
    assert escalated["severity"] == "critical"
    assert escalated["previous_severity"] == "warning"
    assert escalated["labels"]["severity"] == "critical"
    assert escalated["started_at"] == msgs[0][1]["started_at"]
    assert state is not None and state.severity == "critical"


def test_fires_at_the_current_severity() -> None:
    _, msgs = run([True, "critical"])
    assert msgs[0][1]["severity"] == "critical"
    assert "previous_severity" not in msgs[0][1]


def test_resolution_keeps_the_firing_severity_labels() -> None:
    _, msgs = run([True, "critical", False, False, False])
    fired, resolved = msgs[0][1], msgs[1][1]
    assert resolved["labels"] == fired["labels"]


def test_repeated_identical_evaluations_are_idempotent() -> None:
    policy = LifecyclePolicy()
    state: AlertState | None = None
    messages = []
    for i in range(3):
        r = result(i, True)
        for _ in range(4):  # the same window evaluated 4 times (redelivery, timer, replay)
            state, msg = step(state, r, r.window_end_ms, policy)
            if msg:
                messages.append((i, msg["reason"]))
    assert messages == [(1, "fired")]
    # a single breached window repeated never fires by itself
    state = None
    for _ in range(5):
        state, msg = step(state, result(0, True), T0, policy)
        assert msg is None
    assert state is not None and state.history == (True,)


def test_older_window_does_not_count() -> None:
    policy = LifecyclePolicy()
    state, _ = step(None, result(5, True), 0, policy)
    state, msg = step(state, result(4, True), 0, policy)
    assert msg is None and state.history == (True,)


def test_now_is_passed_in_not_read() -> None:
    policy = LifecyclePolicy()
    state, _ = step(None, result(0, True), 123_000, policy)
    state, msg = step(state, result(1, True), 456_000, policy)
    assert msg is not None
    assert msg["emitted_at"] == "1970-01-01T00:07:36Z"
    assert state.started_at_ms == 456_000


def test_fingerprints_are_deterministic_and_distinct() -> None:
    fp = fingerprint("feature_drift", "fraud", "17", "car_value")
    assert fp == fingerprint("feature_drift", "fraud", "17", "car_value")
    assert len(fp) == 40 and int(fp, 16) >= 0
    others = {
        fingerprint("feature_drift", "fraud", "17", None),
        fingerprint("feature_drift", "fraud", "18", "car_value"),
        fingerprint("feature_drift", "fraud17", "", "car_value"),
        fingerprint("completeness", "fraud", "17", "car_value"),
    }
    assert fp not in others and len(others) == 4
    assert result(0, True).fingerprint == fp


def test_fingerprint_is_stable_across_processes() -> None:
    import hashlib

    expected = hashlib.sha1(b"feature_drift\x00fraud\x0017\x00car_value").hexdigest()
    assert fingerprint("feature_drift", "fraud", "17", "car_value") == expected


def test_state_round_trips_through_json() -> None:
    state, _ = run([True, True, "critical", False])
    assert state is not None
    data = orjson.loads(orjson.dumps(state.to_dict()))
    assert AlertState.from_dict(data) == state
    # and continuing from the restored state behaves identically
    policy = LifecyclePolicy()
    nxt = result(4, False)
    assert step(AlertState.from_dict(data), nxt, 1, policy) == step(state, nxt, 1, policy)


def test_state_from_dict_rejects_garbage() -> None:
    state, _ = run([True])
    assert state is not None
    with pytest.raises(ValueError, match="unknown"):
        AlertState.from_dict({**state.to_dict(), "colour": "red"})
    with pytest.raises(ValueError, match="fingerprint"):
        AlertState.from_dict({**state.to_dict(), "feature": "other"})


def test_state_for_another_fingerprint_is_refused() -> None:
    state, _ = step(None, result(0, True), 0, LifecyclePolicy())
    with pytest.raises(ValueError, match="another fingerprint"):
        step(state, result(1, True, feature="age"), 0, LifecyclePolicy())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fire_after": 0},
        {"fire_after": 4, "fire_window": 3},
        {"resolve_after": 0},
        {"renotify_ms": 0},
    ],
)
def test_policy_validation(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        LifecyclePolicy(**kwargs)


def test_check_result_validation() -> None:
    with pytest.raises(ValueError, match="unknown check"):
        result(0, True, check="vibes")
    with pytest.raises(ValueError, match="severity"):
        result(0, True, severity="page")
    with pytest.raises(ValueError, match="window"):
        result(0, True, window_start_ms=T0 + HOUR, window_end_ms=T0)


def test_state_is_immutable() -> None:
    state, _ = run([True])
    assert state is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.status = "firing"  # type: ignore[misc]


@pytest.mark.parametrize("check", CHECK_NAMES)
def test_every_check_runs_through_the_lifecycle(check: str) -> None:
    policy = LifecyclePolicy()
    state = None
    msgs = []
    for i, flag in enumerate([True, True, False, False, False]):
        r = result(i, flag, check=check, feature=None)
        state, msg = step(state, r, r.window_end_ms, policy)
        if msg:
            msgs.append(msg)
    assert [m["status"] for m in msgs] == ["firing", "resolved"]
    assert msgs[0]["runbook_url"] == f"docs/RUNBOOK.md#{check.replace('_', '-')}"
