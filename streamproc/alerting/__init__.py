"""Forward alerts from the alerts topic to Prometheus Alertmanager (``streamproc alerts forward``).

* :mod:`~streamproc.alerting.client`: ``POST /api/v2/alerts`` with the stdlib, errors
  split into retryable (connection, 5xx, 408, 429) and rejected (other 4xx).
* :mod:`~streamproc.alerting.backoff`: capped exponential backoff with jitter.
* :mod:`~streamproc.alerting.forwarder`: the consumer loop — consume a batch, convert
  with :func:`streamproc.checks.alerts.to_alertmanager`, post until it succeeds, then
  commit the batch's offsets synchronously (at-least-once: a restart never loses an alert).
* :mod:`~streamproc.alerting.metrics`: the forwarder's Prometheus metrics.
"""

from streamproc.alerting.backoff import Backoff
from streamproc.alerting.client import (
    AlertmanagerClient,
    AlertmanagerError,
    AlertsRejected,
    alerts_endpoint,
)
from streamproc.alerting.forwarder import Forwarder, ForwarderSettings

__all__ = [
    "AlertmanagerClient",
    "AlertmanagerError",
    "AlertsRejected",
    "Backoff",
    "Forwarder",
    "ForwarderSettings",
    "alerts_endpoint",
]
