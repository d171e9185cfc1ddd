"""The worker's metrics: declared once on an injected registry, Prometheus-style names."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from streamproc.monitor.metrics import create


def test_metrics_live_on_the_given_registry_only() -> None:
    registry = CollectorRegistry()
    metrics = create(registry)
    metrics.events_total.labels("m").inc(3)
    metrics.deadletter_total.labels("malformed_json").inc()
    assert registry.get_sample_value("streamproc_events_total", {"model": "m"}) == 3
    assert (
        registry.get_sample_value("streamproc_deadletter_total", {"reason": "malformed_json"}) == 1
    )
    assert create().registry is not registry  # a fresh registry each time, never the global


def test_names_follow_prometheus_conventions() -> None:
    metrics = create(CollectorRegistry())
    text = generate_latest(metrics.registry).decode()
    names = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    for name in names:
        assert name.startswith("streamproc_")
    counters = {
        line.split()[2]
        for line in text.splitlines()
        if line.startswith("# TYPE") and "counter" in line
    }
    assert all(n.endswith("_total") or n + "_total" in text for n in counters)
    for metric in metrics.registry.collect():
        for label in ("request_id", "value"):
            assert all(label not in s.labels for s in metric.samples)
