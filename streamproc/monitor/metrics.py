"""Every Prometheus metric of the worker, declared once on an injected registry.

Label cardinality is bounded: models × features × statistics at most, never request
ids or raw values. Names follow Prometheus conventions (``_total``, ``_seconds``,
``_ratio``).
"""

from __future__ import annotations

from typing import NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary

PREFIX = "streamproc"


class Metrics(NamedTuple):
    """The worker's metrics; build with :func:`create`."""

    registry: CollectorRegistry
    events_total: Counter
    deadletter_total: Counter
    late_events_total: Counter
    deltas_published_total: Counter
    deltas_applied_total: Counter
    deltas_duplicate_total: Counter
    ingest_batch_seconds: Histogram
    ingest_flush_seconds: Histogram
    evaluation_seconds: Summary
    consumer_lag: Gauge
    drift_value: Gauge
    null_rate: Gauge
    unseen_category_share: Gauge
    event_lag_seconds: Gauge
    staleness_seconds: Gauge
    window_events: Gauge
    alerts_firing: Gauge
    alerts_emitted_total: Counter
    replaying: Gauge
    latency_ms: Gauge
    error_rate: Gauge
    fallback_rate: Gauge
    model_versions: Gauge


def create(registry: CollectorRegistry | None = None, prefix: str = PREFIX) -> Metrics:
    """Declare all metrics on ``registry`` (a fresh one when None)."""
    reg = registry if registry is not None else CollectorRegistry()

    def name(s: str) -> str:
        return f"{prefix}_{s}"

    return Metrics(
        registry=reg,
        events_total=Counter(
            name("events"), "Prediction records accepted into windows", ["model"], registry=reg
        ),
        deadletter_total=Counter(
            name("deadletter"), "Records sent to the dead-letter topic", ["reason"], registry=reg
        ),
        late_events_total=Counter(
            name("late_events"),
            "Records later than the allowed lateness (dead-lettered as late_event)",
            ["model"],
            registry=reg,
        ),
        deltas_published_total=Counter(
            name("deltas_published"), "Profile deltas produced by ingest", registry=reg
        ),
        deltas_applied_total=Counter(
            name("deltas_applied"), "Profile deltas merged into windows", registry=reg
        ),
        deltas_duplicate_total=Counter(
            name("deltas_duplicate"),
            "Profile deltas skipped because their offsets were already applied",
            registry=reg,
        ),
        ingest_batch_seconds=Histogram(
            name("ingest_batch_seconds"),
            "Time to decode and buffer one consumed batch",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=reg,
        ),
        ingest_flush_seconds=Histogram(
            name("ingest_flush_seconds"),
            "Time to sketch, publish and commit one flush (transaction)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=reg,
        ),
        evaluation_seconds=Summary(
            name("evaluation_seconds"), "Time to evaluate one model's checks", registry=reg
        ),
        consumer_lag=Gauge(
            name("consumer_lag_messages"),
            "Messages between the consumer position and the end of the partition",
            ["stage", "topic", "partition"],
            registry=reg,
        ),
        drift_value=Gauge(
            name("drift_value"),
            "Latest drift statistic of the open window vs the reference",
            ["model", "feature", "statistic"],
            registry=reg,
        ),
        null_rate=Gauge(
            name("null_rate_ratio"),
            "Share of null values in the open window",
            ["model", "feature"],
            registry=reg,
        ),
        unseen_category_share=Gauge(
            name("unseen_category_share_ratio"),
            "Share of values in categories unseen in the reference (open window)",
            ["model", "feature"],
            registry=reg,
        ),
        event_lag_seconds=Gauge(
            name("event_lag_seconds"),
            "Event-time lag quantiles of the open window",
            ["model", "lag", "quantile"],
            registry=reg,
        ),
        staleness_seconds=Gauge(
            name("staleness_seconds"),
            "Wall-clock seconds since the newest event time seen for the model",
            ["model"],
            registry=reg,
        ),
        window_events=Gauge(
            name("window_events"),
            "Records in the newest (open) window",
            ["model", "model_version"],
            registry=reg,
        ),
        alerts_firing=Gauge(
            name("alerts_firing"),
            "Alerts currently firing",
            ["model", "check", "severity"],
            registry=reg,
        ),
        alerts_emitted_total=Counter(
            name("alerts_emitted"), "Alert messages published", ["status"], registry=reg
        ),
        replaying=Gauge(
            name("replaying"),
            "1 while the model's data is historical (wall-clock checks paused)",
            ["model"],
            registry=reg,
        ),
        latency_ms=Gauge(
            name("latency_ms"),
            "Inference latency quantiles of the open window, milliseconds",
            ["model", "quantile"],
            registry=reg,
        ),
        error_rate=Gauge(
            name("error_rate_ratio"),
            "Share of records with the error flag in the open window",
            ["model"],
            registry=reg,
        ),
        fallback_rate=Gauge(
            name("fallback_rate_ratio"),
            "Share of records served by the fallback in the open window",
            ["model"],
            registry=reg,
        ),
        model_versions=Gauge(
            name("model_version_serving"),
            "1 for each model version seen serving recently",
            ["model", "model_version"],
            registry=reg,
        ),
    )
