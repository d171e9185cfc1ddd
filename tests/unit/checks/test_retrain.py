"""The retraining trigger: 3 breaching closed windows fire one event, 3 clean ones
resolve it; the reasons are counted from the window's own verdicts."""

from __future__ import annotations

from typing import Any

from streamproc.checks import LifecyclePolicy, step
from streamproc.checks.result import CheckResult
from streamproc.checks.retrain import RetrainPolicy, retrain_event, retrain_result
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
