"""The retraining trigger: 3 breaching closed windows fire one event, 3 clean ones
resolve it; the reasons are counted from the window's own verdicts."""

from __future__ import annotations

from typing import Any

from streamproc.checks import LifecyclePolicy, step
from streamproc.checks.result import CheckResult
from streamproc.checks.retrain import (
    REALIZED,
    RetrainPolicy,
    realized_retrain_result,
    retrain_event,
    retrain_result,
)
from streamproc.contracts import validate

WINDOW_MS = 300_000
FEATURES = [f"f{i}" for i in range(10)]


def _drift(i: int, feature: str, severity: str | None) -> CheckResult:
    return CheckResult(
        check="feature_drift", model="credit", model_version="7", feature=feature,
        breached=severity is not None, severity=severity,  # type: ignore[arg-type]
        statistic="psi", value=0.5 if severity else 0.01, threshold=0.25, n_reference=50_000,
        n_current=2_000, window_start_ms=i * WINDOW_MS, window_end_ms=(i + 1) * WINDOW_MS,
    )  # fmt: skip


def _window(i: int, critical: int, warning: int = 0, labeled: int = 0) -> CheckResult:
    results = [_drift(i, f, "critical") for f in FEATURES[:critical]]
    results += [_drift(i, f, "warning") for f in FEATURES[critical : critical + warning]]
    results += [_drift(i, f, None) for f in FEATURES[critical + warning :]]
    return retrain_result(
        results, model="credit", model_version="7", window_start_ms=i * WINDOW_MS,
        window_end_ms=(i + 1) * WINDOW_MS, n_features=len(FEATURES), n_reference=50_000,
        labeled=labeled, policy=RetrainPolicy(labeled_volume=10_000),
    )  # fmt: skip


def test_drift_share_decides_a_window() -> None:
    assert _window(0, critical=3).breached  # 30% >= 30%
    assert not _window(0, critical=2, warning=5).breached  # warnings do not count
    r = _window(0, critical=4)
    assert r.evidence["reasons"] == ["drift"] and r.evidence["drifted_count"] == 4  # type: ignore[index,call-overload]
    assert "4 of 10 features drifted critically (40% >= 30%)" in r.summary
    assert _window(0, critical=0, labeled=10_000).evidence["reasons"] == ["labeled_volume"]  # type: ignore[index,call-overload]


def test_three_in_a_row_fire_once_and_three_clean_resolve() -> None:
    policy = RetrainPolicy()
    lifecycle = policy.lifecycle(LifecyclePolicy())
    state, sent = None, []
    pattern = [4, 4, 0, 4, 4, 4, 5, 4, 0, 0, 0]  # critical features per closed window
    for i, critical in enumerate(pattern):
        state, message = step(state, _window(i, critical), (i + 1) * WINDOW_MS, lifecycle)
        if message is not None:
            sent.append((i, message))
    assert [(i, m["status"]) for i, m in sent] == [(5, "firing"), (10, "resolved")]
    events: list[dict[str, Any]] = [
        retrain_event(
            m, reference={"model_version": "7", "rows": 50_000}, window_ms=WINDOW_MS, policy=policy
        )
        for _i, m in sent
    ]
    for event in events:
        validate("retrain_event", event)
    firing = events[0]
    # the three breaching windows 3, 4, 5 are the range to retrain on
    assert firing["retrain_window"] == {
        "start": "1970-01-01T00:15:00Z",
        "end": "1970-01-01T00:30:00Z",
    }
    assert firing["evidence"]["drifted_features"] == ["f0", "f1", "f2", "f3"]


def _drop(i: int, severity: str | None) -> CheckResult:
    return CheckResult(
        check="performance_drop", model="credit", model_version="7", feature=None,
        breached=severity is not None, severity=severity,  # type: ignore[arg-type]
        statistic="accuracy_drop", value=0.3 if severity else 0.0, threshold=0.05,
        n_reference=50_000, n_current=400, window_start_ms=i * WINDOW_MS,
        window_end_ms=(i + 1) * WINDOW_MS, summary=f"window {i}",
    )  # fmt: skip


def _realized(pattern: list[str | bool | None], upto: int) -> CheckResult | None:
    """Window i: "critical" / "warning" / None (clean) / False (too few labels)."""
    run = [
        (i * WINDOW_MS, (i + 1) * WINDOW_MS, None if p is False else _drop(i, p))  # type: ignore[arg-type]
        for i, p in enumerate(pattern[: upto + 1])
    ]
    return realized_retrain_result(
        run, model="credit", model_version="7", n_reference=50_000, labeled=1_000,
        policy=RetrainPolicy(),
    )  # fmt: skip


def test_realized_drops_in_three_windows_in_a_row_fire_whenever_their_labels_come() -> None:
    pattern: list[str | bool | None] = [None, "critical", "critical", "critical", None]
    fired = _realized(pattern, 3)
    assert fired is not None and fired.breached and fired.feature == REALIZED
    assert fired.evidence["reasons"] == ["performance"]  # type: ignore[index,call-overload]
    assert [p["summary"] for p in fired.evidence["performance"]] == [  # type: ignore[index,union-attr]
        "window 1", "window 2", "window 3"
    ]  # fmt: skip
    assert (fired.window_start_ms, fired.window_end_ms) == (3 * WINDOW_MS, 4 * WINDOW_MS)
    assert _realized(pattern, 2) is None  # window 0 is clean, 1 and 2 critical: hold
    assert _realized(["critical", "critical", False, "critical"], 3) is None  # unjudged
    assert _realized(["critical", "warning", "critical"], 2) is None  # a warning is not critical
    clean = _realized([None, "warning", None], 2)
    assert clean is not None and not clean.breached
    # a gap in event time breaks "in a row"
    run = [(0, WINDOW_MS, _drop(0, "critical")), (WINDOW_MS, 2 * WINDOW_MS, _drop(1, "critical")),
           (3 * WINDOW_MS, 4 * WINDOW_MS, _drop(3, "critical"))]  # fmt: skip
    assert realized_retrain_result(
        run, model="credit", model_version="7", n_reference=1, labeled=0, policy=RetrainPolicy()
    ) is None  # fmt: skip


def test_the_realized_incident_fires_once_and_resolves_once_as_its_labels_arrive() -> None:
    policy = RetrainPolicy()
    lifecycle = policy.realized_lifecycle(LifecyclePolicy())
    pattern: list[str | bool | None] = [None] * 2 + ["critical"] * 4 + [None] * 4
    state, sent = None, []
    for k in range(len(pattern)):  # windows whose labels changed, oldest first
        result = _realized(pattern, k)
        if result is None:
            continue
        state, message = step(state, result, (k + 1) * WINDOW_MS, lifecycle)
        if message is not None:
            sent.append((k, message["status"]))
            reference = {"model_version": "7", "rows": 1}
            event = retrain_event(message, reference=reference, window_ms=WINDOW_MS, policy=policy)
            validate("retrain_event", event)
    assert sent == [(4, "firing"), (8, "resolved")]
