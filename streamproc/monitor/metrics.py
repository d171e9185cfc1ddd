"""Every Prometheus metric of the worker, declared once on an injected registry.

Label cardinality is bounded: models × features × statistics at most, never request
ids or raw values. Names follow Prometheus conventions (``_total``, ``_seconds``,
``_ratio``).
"""

from __future__ import annotations

from typing import NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary

from streamproc.monitor.model_gauges import ModelGauges

PREFIX = "streamproc"


class Metrics(NamedTuple):
    """The worker's metrics; build with :func:`create`."""

    registry: CollectorRegistry
    events_total: Counter
    deadletter_total: Counter
    fast_path_declined_total: Counter
    late_events_total: Counter
    deltas_published_total: Counter
    deltas_applied_total: Counter
    deltas_duplicate_total: Counter
    unreadable_deltas_total: Counter
    labels_total: Counter
    performance_deltas_published_total: Counter
    performance_deltas_applied_total: Counter
    performance_deltas_duplicate_total: Counter
    join_events_total: Counter
    labels_forwarded_total: Counter
    non_label_events_total: Counter
    join_pending: Gauge
    join_waiting_labels: Gauge
    join_sample_rate: Gauge
    join_restore_seconds: Gauge
    truncated_values_total: Counter
    future_features_as_of_total: Counter
    ingest_batch_seconds: Histogram
    ingest_flush_seconds: Histogram
    evaluation_seconds: Summary
    consumer_lag: Gauge
    alerts_firing: Gauge
    alerts_emitted_total: Counter
    retrain_events_total: Counter
    rollout_comparisons_total: Counter
    commit_waiting_seconds: Gauge
    stage_restarts_total: Counter
    last_commit_timestamp_seconds: Gauge
    schema_id: Gauge
    schema_changes_total: Counter
    registry_waits_total: Counter
    model_gauges: ModelGauges
    """Per-model gauges replaced on every evaluation (see :mod:`.model_gauges`)."""


def create(registry: CollectorRegistry | None = None, prefix: str = PREFIX) -> Metrics:
    """Declare all metrics on ``registry`` (a fresh one when None)."""
    reg = registry if registry is not None else CollectorRegistry()

    def name(s: str) -> str:
        return f"{prefix}_{s}"

    model_gauges = ModelGauges(prefix)
    reg.register(model_gauges)
    return Metrics(
        registry=reg,
        model_gauges=model_gauges,
        events_total=Counter(
            name("events"), "Prediction records accepted into windows", ["model"], registry=reg
        ),
        deadletter_total=Counter(
            name("deadletter"), "Records sent to the dead-letter topic", ["reason"], registry=reg
        ),
        fast_path_declined_total=Counter(
            name("fast_path_declined"),
            "Consumed batches the pyarrow fast path left to the orjson decoder",
            ["reason"],
            registry=reg,
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
        unreadable_deltas_total=Counter(
            name("unreadable_deltas"),
            "Profile deltas the aggregate could not decode (skipped; must stay 0)",
            registry=reg,
        ),
        labels_total=Counter(
            name("labels"),
            "Label events counted into window performance (labels stage)",
            ["model"],
            registry=reg,
        ),
        performance_deltas_published_total=Counter(
            name("performance_deltas_published"),
            "Performance deltas published by the labels stage",
            registry=reg,
        ),
        performance_deltas_applied_total=Counter(
            name("performance_deltas_applied"),
            "Performance deltas merged into windows by the aggregate stage",
            registry=reg,
        ),
        performance_deltas_duplicate_total=Counter(
            name("performance_deltas_duplicate"),
            "Performance deltas skipped as already applied (or past retention)",
            registry=reg,
        ),
        join_events_total=Counter(
            name("join_events"),
            "Label-join outcomes other than a match (a match counts in streamproc_labels_total; "
            "an unmatched label is dead-lettered): duplicate_label, correction, "
            "duplicate_prediction, late_prediction, sampled_out_prediction, "
            "sampled_out_label, expired_unlabeled, swept",
            ["outcome"],
            registry=reg,
        ),
        labels_forwarded_total=Counter(
            name("labels_forwarded"),
            "Label events without an embedded prediction sent to the label join",
            registry=reg,
        ),
        non_label_events_total=Counter(
            name("non_label_events"),
            "Records of the labels topic that [labels_mapping] maps to no label (a business "
            "event whose value is not in label.map): committed, not dead-lettered",
            registry=reg,
        ),
        join_pending=Gauge(
            name("join_pending_predictions"),
            "Predictions held by this worker's label join, waiting for (or holding) a label",
            registry=reg,
        ),
        join_waiting_labels=Gauge(
            name("join_waiting_labels"),
            "Labels held by this worker's label join, waiting for their prediction (grace)",
            registry=reg,
        ),
        join_sample_rate=Gauge(
            name("join_sample_rate"),
            "Share of request ids the label join keeps (lowest over its partitions; 1 = all)",
            registry=reg,
        ),
        join_restore_seconds=Gauge(
            name("join_restore_seconds"),
            "Seconds the last rebuild of the label join's store from its changelog took",
            registry=reg,
        ),
        truncated_values_total=Counter(
            name("truncated_values"),
            "Category values longer than [limits] max_category_bytes, cut and hashed",
            registry=reg,
        ),
        future_features_as_of_total=Counter(
            name("future_features_as_of"),
            "Accepted records whose features_as_of was ahead of the wall clock (taken as absent)",
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
        alerts_firing=Gauge(
            name("alerts_firing"),
            "Alerts currently firing",
            ["model", "check", "severity"],
            registry=reg,
        ),
        alerts_emitted_total=Counter(
            name("alerts_emitted"), "Alert messages published", ["status"], registry=reg
        ),
        retrain_events_total=Counter(
            name("retrain_events"),
            "Retraining triggers published to the retrain topic (firing, resolved)",
            ["status"],
            registry=reg,
        ),
        rollout_comparisons_total=Counter(
            name("rollout_comparisons"),
            "Rollout comparisons published to the rollouts topic",
            registry=reg,
        ),
        commit_waiting_seconds=Gauge(
            name("commit_waiting_seconds"),
            "Age of the stage's commit in progress (0: none; it grows while Kafka is away)",
            ["stage"],
            registry=reg,
        ),
        stage_restarts_total=Counter(
            name("stage_restarts"),
            "Times a stage rebuilt its Kafka clients after a Kafka fault",
            ["stage", "reason"],
            registry=reg,
        ),
        last_commit_timestamp_seconds=Gauge(
            name("last_commit_timestamp_seconds"),
            "Unix time of the stage's last committed transaction",
            ["stage"],
            registry=reg,
        ),
        schema_id=Gauge(
            name("schema_id"),
            "Registry schema id of the newest decoded record of a wire-format topic",
            ["topic"],
            registry=reg,
        ),
        schema_changes_total=Counter(
            name("schema_changes"),
            "Times a wire-format topic's records began to use a schema id new to the topic "
            "(schema evolution; the log line lists the fields added and removed)",
            ["topic"],
            registry=reg,
        ),
        registry_waits_total=Counter(
            name("registry_waits"),
            "Records put back to be read again because the schema registry was unreachable "
            "for their uncached schema (a record can count more than once)",
            registry=reg,
        ),
    )
