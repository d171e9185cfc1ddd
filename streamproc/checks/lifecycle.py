"""Alert lifecycle: from a stream of check evaluations to few, meaningful messages.

``step(state, result, now_ms, policy)`` is a pure function. It never reads a clock: the
caller passes ``now_ms`` (event time when replaying, so a replay of last year's data emits
the same messages; wall time when live, if preferred).

Rules, per fingerprint (check, model, version, feature):

* **Fire** when at least ``fire_after`` (M) of the last ``fire_window`` (N) evaluations
  breached and the current one breaches (default 2 of 3): one noisy window is not enough.
* **Resolve** after ``resolve_after`` (K) consecutive clean evaluations (default 3), so
  an alert hovering at its threshold does not flap. The breach history is then cleared:
  firing again needs M fresh breaches.
* While firing: **escalate** warning→critical with one update message (critical is not
  downgraded until resolution), and **re-notify** at most every ``renotify_ms`` (default
  1 h). Nothing else: repeated evaluations of a firing alert are silent.
* **Non-overlapping evaluation units.** An evaluation counts toward M-of-N and K only
  when its event-time span ``[window_start_ms, window_end_ms)`` starts at or after the
  end of the last counted one. The live worker evaluates the last 5 s of event time
  every 0.5 s; those provisional spans overlap, and counting each would make "2 of the
  last 3" one noisy observation counted several times. So at most one provisional
  verdict per 5 s of event time counts, a closed window counts when no counted
  provisional span overlaps it (replays: every window), and a re-delivered or
  re-evaluated window never counts twice. ``slow_drift`` and ``performance_gap`` (a
  rolling horizon, overlapping by design), ``staleness``, ``label_staleness`` and
  ``model_version`` (a clock and a serving set, not a sample) count whenever
  ``window_end_ms`` advances. An evaluation that
  does not count can still escalate or re-notify.

This is the debounce/hysteresis scheme of Prometheus' ``for:`` clause and Alertmanager's
``repeat_interval``, with M-of-N in place of "for all of the last N", as in Datadog's
"recovery/trigger windows" and Nagios' soft/hard states.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from types import MappingProxyType
from typing import Any, Final, Literal

from streamproc.checks.alerts import DEFAULT_RAW_VALUE_MIN_RECORDS, Alert, build_alert
from streamproc.checks.result import CheckResult, Severity, fingerprint

Status = Literal["firing", "resolved"]

DEFAULT_RUNBOOK_BASE_URL: Final = "docs/RUNBOOK.md"
_RANK: Final = {"warning": 1, "critical": 2}


@dataclass(frozen=True, slots=True)
class LifecyclePolicy:
    """How evaluations become messages, and how messages are dressed.

    ``runbook_urls`` overrides the runbook link per check; otherwise it is
    ``runbook_base_url + "#" + check.replace("_", "-")`` (the docs/RUNBOOK.md anchors).
    Evidence values (see :func:`~streamproc.checks.alerts.redact_evidence`): a category
    value is shown raw when at least ``raw_value_min_records`` records carry it, and as
    a stable token otherwise; ``allow_raw_values`` shows every value raw; the features
    in ``sensitive_features`` (model name, or ``"*"`` for every model → feature names)
    are always tokenized, even with ``allow_raw_values``.
    These defaults are the only copy: [lifecycle] and [alerts] of :mod:`streamproc.config`
    take theirs from them.
    """

    fire_after: int = 2
    fire_window: int = 3
    resolve_after: int = 3
    renotify_ms: int = 3_600_000
    runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL
    runbook_urls: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    allow_raw_values: bool = False
    raw_value_min_records: int = DEFAULT_RAW_VALUE_MIN_RECORDS
    sensitive_features: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def __post_init__(self) -> None:
        if not 1 <= self.fire_after <= self.fire_window:
            raise ValueError(
                f"need 1 <= fire_after (M={self.fire_after}) <= fire_window (N={self.fire_window})"
            )
        if self.resolve_after < 1:
            raise ValueError(f"resolve_after (K) must be >= 1, got {self.resolve_after}")
        if self.renotify_ms <= 0:
            raise ValueError(f"renotify_ms must be > 0, got {self.renotify_ms}")
        if self.raw_value_min_records < 1:
            raise ValueError(
                f"raw_value_min_records must be >= 1, got {self.raw_value_min_records}"
            )

    def is_sensitive(self, model: str, feature: str | None) -> bool:
        """Whether ``feature`` of ``model`` is declared sensitive (for this model or
        under ``"*"``); a model-level result (no feature) is not."""
        if feature is None:
            return False
        return any(feature in self.sensitive_features.get(m, ()) for m in (model, "*"))

    def runbook_url(self, check: str) -> str:
        """Runbook link for ``check``."""
        url = self.runbook_urls.get(check)
        if url:
            return url
        return f"{self.runbook_base_url}#{check.replace('_', '-')}"


@dataclass(frozen=True, slots=True)
class AlertState:
    """Lifecycle state of one fingerprint; plain data, round-trips through ``to_dict``.

    ``status`` is ``resolved`` both for an alert that never fired (``started_at_ms`` is
    None) and for one that fired and cleared. ``history`` holds the breach flags of the
    last N counted evaluations, oldest first.
    """

    fingerprint: str
    check: str
    model: str
    model_version: str
    feature: str | None
    status: Status = "resolved"
    severity: Severity | None = None
    history: tuple[bool, ...] = ()
    clean_streak: int = 0
    started_at_ms: int | None = None
    resolved_at_ms: int | None = None
    last_sent_ms: int | None = None
    last_window_end_ms: int | None = None

    @classmethod
    def initial(cls, result: CheckResult) -> AlertState:
        """The state of a fingerprint before its first evaluation."""
        return cls(
            fingerprint=result.fingerprint,
            check=result.check,
            model=result.model,
            model_version=result.model_version,
            feature=result.feature,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``history`` as a list)."""
        out = asdict(self)
        out["history"] = list(self.history)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertState:
        """Inverse of :meth:`to_dict`; rejects unknown keys and a wrong fingerprint."""
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown AlertState keys: {sorted(unknown)}")
        kwargs = dict(data)
        kwargs["history"] = tuple(bool(b) for b in kwargs.get("history", ()))
        state = cls(**kwargs)
        expected = fingerprint(state.check, state.model, state.model_version, state.feature)
        if state.fingerprint != expected:
            raise ValueError(f"fingerprint {state.fingerprint} does not match its parts")
        return state


def step(
    state: AlertState | None, result: CheckResult, now_ms: int, policy: LifecyclePolicy
) -> tuple[AlertState, Alert | None]:
    """Advance one fingerprint's lifecycle by one evaluation; return (state, message).

    ``state`` is the previous state of ``result.fingerprint`` (None the first time).
    The message, when not None, is the alert to publish (see ``schemas/alert.schema.json``).

    Two breaching windows of three fire the alert, three clean ones resolve it:

    >>> policy = LifecyclePolicy(
    ...     fire_after=2, fire_window=3, resolve_after=3, renotify_ms=3_600_000
    ... )
    >>> def psi(i: int, value: float) -> CheckResult:  # window i: [5i, 5i + 5) minutes
    ...     return CheckResult(
    ...         check="feature_drift", model="credit", model_version="7", feature="income",
    ...         breached=value > 0.25, severity="warning" if value > 0.25 else None,
    ...         statistic="psi", value=value, threshold=0.25, n_reference=50_000,
    ...         n_current=2_000, window_start_ms=i * 300_000, window_end_ms=(i + 1) * 300_000,
    ...     )
    >>> state = None
    >>> for i, value in enumerate([0.41, 0.05, 0.52, 0.48, 0.02, 0.03, 0.01]):
    ...     state, message = step(state, psi(i, value), (i + 1) * 300_000, policy)
    ...     sent = message and (message["status"], message.get("reason"), message["started_at"])
    ...     print(i, state.status, sent)
    0 resolved None
    1 resolved None
    2 firing ('firing', 'fired', '1970-01-01T00:15:00Z')
    3 firing None
    4 firing None
    5 firing None
    6 resolved ('resolved', 'resolved', '1970-01-01T00:15:00Z')
    """
    if state is None:
        state = AlertState.initial(result)
    elif state.fingerprint != result.fingerprint:
        raise ValueError(
            f"state {state.fingerprint} belongs to another fingerprint than the result "
            f"({result.check}, {result.model}, {result.model_version}, {result.feature})"
        )

    counted = _counts(state, result)
    if counted:
        state = replace(
            state,
            history=(*state.history, result.breached)[-policy.fire_window :],
            clean_streak=0 if result.breached else state.clean_streak + 1,
            last_window_end_ms=result.window_end_ms,
        )

    if state.status == "resolved":
        if counted and result.breached and sum(state.history) >= policy.fire_after:
            severity = result.effective_severity
            state = replace(
                state,
                status="firing",
                severity=severity,
                started_at_ms=now_ms,
                resolved_at_ms=None,
                last_sent_ms=now_ms,
            )
            return state, _message(state, result, now_ms, policy, "fired")
        return state, None

    # firing
    current: Severity | None = state.severity
    assert current is not None and state.started_at_ms is not None
    if counted and not result.breached and state.clean_streak >= policy.resolve_after:
        state = replace(
            state,
            status="resolved",
            resolved_at_ms=now_ms,
            last_sent_ms=now_ms,
            history=(),
            clean_streak=0,
        )
        return state, _message(state, result, now_ms, policy, "resolved")
    if result.breached and _RANK[result.effective_severity] > _RANK[current]:
        state = replace(state, severity=result.effective_severity, last_sent_ms=now_ms)
        return state, _message(state, result, now_ms, policy, "escalated", current)
    if state.last_sent_ms is None or now_ms - state.last_sent_ms >= policy.renotify_ms:
        state = replace(state, last_sent_ms=now_ms)
        return state, _message(state, result, now_ms, policy, "renotify")
    return state, None


OVERLAPPING_CHECKS: Final = frozenset(
    {"slow_drift", "staleness", "model_version", "performance_gap", "label_staleness"}
)
"""Checks whose successive spans overlap by design (a horizon, a clock, a serving set):
they count whenever their end advances."""


def _counts(state: AlertState, result: CheckResult) -> bool:
    """Whether ``result`` is a new, non-overlapping evaluation unit (module docstring)."""
    last = state.last_window_end_ms
    if last is None:
        return True
    if result.check in OVERLAPPING_CHECKS:
        return result.window_end_ms > last
    return result.window_start_ms >= last and result.window_end_ms > last


def _message(
    state: AlertState,
    result: CheckResult,
    now_ms: int,
    policy: LifecyclePolicy,
    reason: str,
    previous_severity: Severity | None = None,
) -> Alert:
    assert state.severity is not None and state.started_at_ms is not None
    return build_alert(
        result,
        status=state.status,
        reason=reason,
        severity=state.severity,
        started_at_ms=state.started_at_ms,
        resolved_at_ms=state.resolved_at_ms,
        emitted_at_ms=now_ms,
        runbook_url=policy.runbook_url(result.check),
        allow_raw_values=policy.allow_raw_values,
        raw_value_min_records=policy.raw_value_min_records,
        sensitive=policy.is_sensitive(result.model, result.feature),
        previous_severity=previous_severity,
    )
