"""Checks and the alert lifecycle: pure functions, no Kafka, no clocks.

``result``: what one check evaluation produced (:class:`CheckResult`), the check names and
fingerprints. ``lifecycle``: M-of-N firing, K-clean resolving, re-notify and escalation
(:func:`step`). ``alerts``: the alert message (``schemas/alert.schema.json``) and its
Alertmanager form.
"""

from streamproc.checks.alerts import Alert, build_alert, summarize, to_alertmanager
from streamproc.checks.lifecycle import AlertState, LifecyclePolicy, step
from streamproc.checks.result import CHECK_NAMES, CheckResult, Severity, fingerprint

__all__ = [
    "CHECK_NAMES",
    "Alert",
    "AlertState",
    "CheckResult",
    "LifecyclePolicy",
    "Severity",
    "build_alert",
    "fingerprint",
    "step",
    "summarize",
    "to_alertmanager",
]
