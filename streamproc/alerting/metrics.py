"""The forwarder's Prometheus metrics, declared once on an injected registry."""

from __future__ import annotations

from typing import NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX = "streamproc_forwarder"


class ForwarderMetrics(NamedTuple):
    """Build with :func:`create`."""

    registry: CollectorRegistry
    messages_total: Counter
    alerts_posted_total: Counter
    post_failures_total: Counter
    rejected_total: Counter
    invalid_messages_total: Counter
    post_seconds: Histogram
    alertmanager_up: Gauge
    last_success_timestamp_seconds: Gauge


def create(registry: CollectorRegistry | None = None, prefix: str = PREFIX) -> ForwarderMetrics:
    """Declare all metrics on ``registry`` (a fresh one when None)."""
    reg = registry if registry is not None else CollectorRegistry()

    def name(s: str) -> str:
        return f"{prefix}_{s}"

    return ForwarderMetrics(
        registry=reg,
        messages_total=Counter(
            name("messages"), "Alert messages consumed from the alerts topic", registry=reg
        ),
        alerts_posted_total=Counter(
            name("alerts_posted"),
            "Postable alerts Alertmanager accepted (an escalation posts two)",
            registry=reg,
        ),
        post_failures_total=Counter(
            name("post_failures"),
            "Failed posts that were retried (unreachable, timeout, 5xx, 408, 429)",
            registry=reg,
        ),
        rejected_total=Counter(
            name("rejected"),
            "Batches Alertmanager refused with a 4xx (logged, not retried)",
            registry=reg,
        ),
        invalid_messages_total=Counter(
            name("invalid_messages"),
            "Messages on the alerts topic that are not valid alerts (logged, skipped)",
            registry=reg,
        ),
        post_seconds=Histogram(
            name("post_seconds"), "Duration of one successful post", registry=reg
        ),
        alertmanager_up=Gauge(
            name("alertmanager_up"), "1 if the last post reached Alertmanager, else 0", registry=reg
        ),
        last_success_timestamp_seconds=Gauge(
            name("last_success_timestamp_seconds"),
            "Unix time of the last successful post",
            registry=reg,
        ),
    )
