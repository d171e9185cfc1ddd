"""Alert messages (``schemas/alert.schema.json``) and their Prometheus Alertmanager form.

A message is an :class:`AlertMessage`: a plain dict at run time, ready for
``orjson.dumps``, typed key by key after the schema. Its ``labels`` and ``annotations``
follow Alertmanager's v2 API, so a forwarder can POST it to ``/api/v2/alerts`` via
:func:`to_alertmanager` without knowing streamproc.

Privacy: evidence may name categories (e.g. an unseen value of ``email_domain``); an
unseen category seen a few times is effectively one record's raw value, while a value
many records share is not any one person's data. So a value under a raw-value key
(:data:`RAW_VALUE_KEYS`) is shown as it is only when its evidence item says that at
least ``min_records`` records carry it (:data:`COUNT_KEYS`: ``count``, the records of
the window, or ``reference_count``, those of the reference profile; default
:data:`DEFAULT_RAW_VALUE_MIN_RECORDS`). Every other one — rarer, without a count, or in a
list (one count cannot vouch for each value of a list) — is replaced by a short stable
token (``"~" + sha1[:10]``), so repeated alerts still show *which* category moved
without revealing it. ``allow_raw_values`` shows every value; a ``sensitive`` feature's
values are always tokenized, even then (sensitivity is declared per feature and wins
over the blanket switch).
"""

# No ``from __future__ import annotations`` here: on Python 3.11 it hides ``NotRequired``
# from TypedDict, which would then count every key as required.
import hashlib
import math
import uuid
from datetime import UTC, datetime
from typing import Any, Final, Literal, NotRequired, TypedDict, cast, get_args

from streamproc.checks.result import CheckResult, Severity
from streamproc.core.segments import parse_slice_key

AlertStatus = Literal["firing", "resolved"]
AlertReason = Literal["fired", "escalated", "renotify", "resolved"]
_STATUSES: Final[frozenset[str]] = frozenset(get_args(AlertStatus))
_REASONS: Final[frozenset[str]] = frozenset(get_args(AlertReason))


class AlertWindow(TypedDict):
    """The event-time window evaluated, RFC 3339 UTC."""

    start: str
    end: str


class AlertLabels(TypedDict):
    """Alertmanager labels; ``feature`` only for a per-feature alert."""

    alertname: str
    severity: Severity
    model: str
    model_version: str
    check: str
    feature: NotRequired[str]
    segment: NotRequired[str]


class AlertAnnotations(TypedDict):
    summary: str
    runbook_url: str
    description: str


class AlertMessage(TypedDict):
    """One alert message, key for key ``schemas/alert.schema.json``: the keys the schema
    requires are required here, the others (``previous_severity``, ``reason``,
    ``feature``) are :data:`~typing.NotRequired`."""

    alert_id: str
    fingerprint: str
    status: AlertStatus
    severity: Severity
    previous_severity: NotRequired[Severity]
    reason: NotRequired[AlertReason]
    check: str
    model: str
    model_version: str
    feature: NotRequired[str | None]
    segment: NotRequired[dict[str, str]]
    window: AlertWindow
    statistic: str
    value: float | None
    threshold: float | None
    n_reference: int
    n_current: int
    summary: str
    evidence: list[Any] | dict[str, Any]
    runbook_url: str
    started_at: str
    resolved_at: str | None
    emitted_at: str
    labels: AlertLabels
    annotations: AlertAnnotations


Alert = AlertMessage
"""Short name for :class:`AlertMessage`."""

ALERT_ID_NAMESPACE: Final = uuid.UUID("8d3b4f8e-4c7a-5b8e-9f8e-2f6a9c1d7e51")
RAW_VALUE_KEYS: Final = frozenset(
    {"category", "categories", "value", "values", "example", "examples", "raw"}
)
COUNT_KEYS: Final = ("count", "reference_count")
"""Keys of an evidence item giving how many records carry its raw value(s): ``count`` in
the evaluated window, ``reference_count`` in the reference profile."""
DEFAULT_RAW_VALUE_MIN_RECORDS: Final = 5
MAX_EVIDENCE_ITEMS: Final = 10

_VERB: Final = {
    "feature_drift": "drifted",
    "prediction_drift": "drifted",
    "completeness": "has too many nulls",
    "schema": "breaks the expected schema",
    "cardinality": "shows new or too many categories",
    "freshness": "is late",
    "staleness": "has no new events",
    "degenerate_output": "collapsed",
    "dataset_drift": "drifted",
    "slow_drift": "drifted",
    "latency": "is slow",
    "error_rate": "fails too often",
    "fallback_rate": "falls back too often",
    "volume": "traffic volume moved",
    "model_version": "serves an unexpected version mix",
    "range": "has values out of range",
    "joint_drift": "drifted jointly (relations between features changed)",
    "performance_drop": "performs worse than its reference (labels)",
    "calibration_drift": "is less well calibrated than its reference",
    "label_drift": "sees a shifted class prior (label drift)",
    "estimated_performance_drop": "is estimated to perform worse than its reference (CBPE)",
    "performance_gap": "performs worse in production than in training (rolling horizon)",
    "label_staleness": "receives no labels",
    "label_coverage": "has too few labeled predictions",
    "fairness": "treats protected groups unequally",
    "rollout": "rollout needs a decision",
    "retrain": "should be retrained",
}
_RESOLVED_VERB: Final = {
    "feature_drift": "no longer drifts",
    "prediction_drift": "no longer drifts",
    "completeness": "null rate is back to normal",
    "schema": "matches the expected schema again",
    "cardinality": "categories are back to normal",
    "freshness": "is on time again",
    "staleness": "is receiving events again",
    "degenerate_output": "varies normally again",
    "dataset_drift": "no longer drifts",
    "slow_drift": "no longer drifts",
    "latency": "latency is back to normal",
    "error_rate": "error rate is back to normal",
    "fallback_rate": "fallback rate is back to normal",
    "volume": "traffic volume is back to normal",
    "model_version": "serves the expected versions again",
    "range": "values are back in range",
    "joint_drift": "no longer drifts jointly",
    "performance_drop": "performance is back to its reference",
    "calibration_drift": "calibration is back to normal",
    "label_drift": "class prior is back to normal",
    "estimated_performance_drop": "estimated performance is back to its reference",
    "performance_gap": "production performance is back to its training reference",
    "label_staleness": "is receiving labels again",
    "label_coverage": "label coverage is back to normal",
    "fairness": "group disparity is back within bounds",
    "rollout": "rollout guardrails hold again",
    "retrain": "no longer needs retraining",
}
_ABBREVIATIONS: Final = {"psi": "PSI", "ks": "KS", "js": "JS", "jsd": "JSD", "kl": "KL"}


def rfc3339(epoch_ms: int) -> str:
    """Epoch milliseconds as RFC 3339 UTC with a ``Z`` suffix (milliseconds if non-zero)."""
    dt = datetime.fromtimestamp(epoch_ms / 1000.0, tz=UTC)
    text = dt.isoformat(timespec="milliseconds" if epoch_ms % 1000 else "seconds")
    return text.replace("+00:00", "Z")


def _num(x: float) -> str:
    """A value for humans: 3 significant digits, thousands separators for big numbers."""
    if not math.isfinite(x):
        return str(x)
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def _statistic_name(statistic: str) -> str:
    return _ABBREVIATIONS.get(statistic.lower(), statistic.replace("_", " "))


def _window_text(start_ms: int, end_ms: int) -> str:
    start = datetime.fromtimestamp(start_ms / 1000.0, tz=UTC)
    end = datetime.fromtimestamp(end_ms / 1000.0, tz=UTC)
    last = datetime.fromtimestamp(max(start_ms, end_ms - 1) / 1000.0, tz=UTC)
    if start.date() == last.date():  # a window ending at midnight is still "that day"
        return f"{start:%H:%M}–{end:%H:%M} UTC on {start:%Y-%m-%d}"
    return f"{start:%Y-%m-%d %H:%M}–{end:%Y-%m-%d %H:%M} UTC"


def _subject(result: CheckResult) -> str:
    if result.feature is not None:
        return result.feature
    if result.check in ("prediction_drift", "degenerate_output"):
        return f"{result.model} predictions"
    return result.model


def summarize(result: CheckResult, *, resolved: bool = False) -> str:
    """One human sentence about an evaluation.

    E.g. ``"car_value drifted: PSI 0.41 > 0.25 over 2,310 events in 10:00–10:05 UTC on
    2024-05-01"``; with ``resolved=True`` the sentence says the condition cleared.
    """
    verbs = _RESOLVED_VERB if resolved else _VERB
    verb = verbs.get(result.check, "resolved" if resolved else "breached")
    op = ">" if result.breached else "≤"
    return (
        f"{_subject(result)} {verb}: {_statistic_name(result.statistic)} "
        f"{_num(result.value)} {op} {_num(result.threshold)} "
        f"over {result.n_current:,} events in "
        f"{_window_text(result.window_start_ms, result.window_end_ms)}"
    )


def _token(value: object) -> str:
    digest = hashlib.sha1(repr(value).encode("utf-8"), usedforsecurity=False).hexdigest()
    return "~" + digest[:10]


def _redact(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_token(v) for v in value]
    return _token(value)


def _records(item: dict[str, Any]) -> int:
    """How many records the item says carry its value: the largest of its counts."""
    counts = [item.get(k) for k in COUNT_KEYS]
    return max(
        (
            int(c)
            for c in counts
            if isinstance(c, int | float) and not isinstance(c, bool) and math.isfinite(c)
        ),
        default=0,
    )


def redact_evidence(
    evidence: Any,
    allow_raw_values: bool = False,
    *,
    min_records: int = DEFAULT_RAW_VALUE_MIN_RECORDS,
    sensitive: bool = False,
) -> Any:
    """Evidence for a message: top :data:`MAX_EVIDENCE_ITEMS` items, rare values tokenized.

    Works on a list of dicts or a dict (nested dicts and lists are walked; each dict is
    judged by its own counts). A scalar under a :data:`RAW_VALUE_KEYS` key stays raw when
    the dict's largest :data:`COUNT_KEYS` count is at least ``min_records``, or
    ``allow_raw_values`` is set; lists of values stay raw only with ``allow_raw_values``.
    ``sensitive`` tokenizes every such value regardless.

    >>> items = [{"category": "50%", "count": 812}, {"category": "jane@x.io", "count": 1}]
    >>> [item["category"] for item in redact_evidence(items)]
    ['50%', '~4e5b9946d3']
    >>> [item["category"] for item in redact_evidence(items, sensitive=True)][0]
    '~073a4e59ea'
    """
    if isinstance(evidence, list):
        return [
            redact_evidence(item, allow_raw_values, min_records=min_records, sensitive=sensitive)
            for item in evidence[:MAX_EVIDENCE_ITEMS]
        ]
    if isinstance(evidence, dict):
        common = _records(evidence) >= min_records
        out: dict[str, Any] = {}
        for k, v in evidence.items():
            if k in RAW_VALUE_KEYS:
                scalar = not isinstance(v, list | tuple | dict)
                raw = not sensitive and (allow_raw_values or (scalar and common))
                if not raw:
                    out[k] = _redact(v)
                    continue
            out[k] = redact_evidence(
                v, allow_raw_values, min_records=min_records, sensitive=sensitive
            )
        return out
    if isinstance(evidence, float) and not math.isfinite(evidence):
        return None
    return evidence


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def alert_id(fp: str, status: str, reason: str, severity: str, emitted_at_ms: int) -> str:
    """Deterministic per-message id (UUIDv5): replays emit the same ids, so consumers of
    an at-least-once topic can drop duplicates."""
    name = f"{fp}|{status}|{reason}|{severity}|{emitted_at_ms}"
    return str(uuid.uuid5(ALERT_ID_NAMESPACE, name))


def alertname(check: str) -> str:
    """Alertmanager ``alertname`` for a check: ``feature_drift`` → ``StreamprocFeatureDrift``."""
    return "Streamproc" + "".join(part.capitalize() for part in check.split("_"))


def build_alert(
    result: CheckResult,
    *,
    status: str,
    reason: str,
    severity: Severity,
    started_at_ms: int,
    resolved_at_ms: int | None,
    emitted_at_ms: int,
    runbook_url: str,
    allow_raw_values: bool = False,
    raw_value_min_records: int = DEFAULT_RAW_VALUE_MIN_RECORDS,
    sensitive: bool = False,
    previous_severity: Severity | None = None,
) -> AlertMessage:
    """The alert message for ``result`` in the given lifecycle state.

    ``status`` is ``firing`` or ``resolved``; ``reason`` says why the message exists
    (``fired``, ``escalated``, ``renotify``, ``resolved``); anything else is a
    ``ValueError``. The summary is the check's own ``result.summary`` when set, else
    :func:`summarize`. The evidence goes through :func:`redact_evidence` with
    ``allow_raw_values``, ``raw_value_min_records`` and ``sensitive`` (whether the
    result's feature is declared sensitive).
    """
    if status not in _STATUSES:
        raise ValueError(f"alert status must be one of {sorted(_STATUSES)}, got {status!r}")
    if reason not in _REASONS:
        raise ValueError(f"alert reason must be one of {sorted(_REASONS)}, got {reason!r}")
    fp = result.fingerprint
    resolved = status == "resolved"
    summary = result.summary or summarize(result, resolved=resolved)
    window: AlertWindow = {
        "start": rfc3339(result.window_start_ms),
        "end": rfc3339(result.window_end_ms),
    }
    where = f"{result.model}/{result.model_version}"
    if result.segment is not None:
        where += f" segment {result.segment}"
    if result.feature is not None:
        where += f" feature {result.feature}"
    description = (
        f"{result.check} on {where}: {result.statistic} = {_num(result.value)} "
        f"(threshold {_num(result.threshold)}), {result.n_current} current vs "
        f"{result.n_reference} reference events, window {window['start']} to {window['end']}."
    )
    labels: AlertLabels = {
        "alertname": alertname(result.check),
        "severity": severity,
        "model": result.model,
        "model_version": result.model_version,
        "check": result.check,
    }
    if result.feature is not None:
        labels["feature"] = result.feature
    if result.segment is not None:
        labels["segment"] = result.segment
    message: AlertMessage = {
        "alert_id": alert_id(fp, status, reason, severity, emitted_at_ms),
        "fingerprint": fp,
        "status": cast(AlertStatus, status),
        "severity": severity,
        "reason": cast(AlertReason, reason),
        "check": result.check,
        "model": result.model,
        "model_version": result.model_version,
        "feature": result.feature,
        "window": window,
        "statistic": result.statistic,
        "value": _finite(result.value),
        "threshold": _finite(result.threshold),
        "n_reference": int(result.n_reference),
        "n_current": int(result.n_current),
        "summary": summary,
        "evidence": redact_evidence(
            result.evidence,
            allow_raw_values,
            min_records=raw_value_min_records,
            sensitive=sensitive,
        ),
        "runbook_url": runbook_url,
        "started_at": rfc3339(started_at_ms),
        "resolved_at": rfc3339(resolved_at_ms) if resolved_at_ms is not None else None,
        "emitted_at": rfc3339(emitted_at_ms),
        "labels": labels,
        "annotations": {
            "summary": summary,
            "runbook_url": runbook_url,
            "description": description,
        },
    }
    if previous_severity is not None:
        message["previous_severity"] = previous_severity
    if result.segment is not None:
        message["segment"] = parse_slice_key(result.segment)
    return message


DEFAULT_FIRING_TTL_MS: Final = 3 * 3_600_000


def to_alertmanager(
    alert: AlertMessage, *, firing_ttl_ms: int = DEFAULT_FIRING_TTL_MS, generator_url: str = ""
) -> list[dict[str, Any]]:
    """Postable alerts for Alertmanager's ``POST /api/v2/alerts``.

    ``startsAt`` is ``started_at``. ``endsAt`` is ``resolved_at`` for a resolved alert;
    for a firing one it is ``emitted_at + firing_ttl_ms``, which must exceed the
    re-notify interval (otherwise Alertmanager resolves the alert between re-sends) and
    bounds how long an alert outlives a dead streamproc. Alertmanager identifies alerts by
    their label set, which includes ``severity``: an escalation message therefore also
    yields a resolution of the alert under the previous severity.
    """
    emitted = datetime.fromisoformat(alert["emitted_at"])
    if alert["status"] == "resolved":
        ends_at = alert["resolved_at"]
    else:
        ends_ms = int(emitted.timestamp() * 1000) + firing_ttl_ms
        ends_at = rfc3339(ends_ms)
    postable: dict[str, Any] = {
        "labels": dict(alert["labels"]),
        "annotations": dict(alert["annotations"]),
        "startsAt": alert["started_at"],
        "endsAt": ends_at,
    }
    if generator_url:
        postable["generatorURL"] = generator_url
    out = [postable]
    previous = alert.get("previous_severity")
    if previous is not None and previous != alert["severity"]:
        out.append(
            {
                **postable,
                "labels": {**postable["labels"], "severity": previous},
                "endsAt": alert["emitted_at"],
            }
        )
    return out
