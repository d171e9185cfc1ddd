"""Model-service health on a real broker: latency, errors, fallbacks, unexpected versions."""

from __future__ import annotations

import time
from collections.abc import Callable

from streamproc.contracts import validate
from tests.integration.monitor_harness import (
    AlertWatcher,
    Feed,
    monitor_config,
    records,
    reference_profile,
    running_worker,
)


def test_service_health_checks_fire(
    bootstrap_servers: str, unique_topic: Callable[[str], str]
) -> None:
    prefix = unique_topic("service")
    config = monitor_config(
        bootstrap_servers,
        prefix,
        service={"expected_versions": {"credit": ["1"]}, "latency_sla_ms": 200.0},
    )
    watcher = AlertWatcher(bootstrap_servers, config.topics.alerts)
    wanted = {
        ("latency", "1"),
        ("error_rate", "1"),
        ("fallback_rate", "1"),
        ("model_version", "2"),
        ("model_version", "*"),
    }
    try:
        with running_worker(config, [reference_profile()]):
            feed = Feed(bootstrap_servers, config.topics.predictions)
            # Unhealthy from the first record, so every window is wholly unhealthy (a window
            # half healthy would show a 30 % fallback rate: critical, but no open breaker).
            for i in range(10):
                start = time.time()
                bad = records(
                    2_000,
                    start_s=start,
                    rate=2_000,
                    seed=80 + i,
                    latency_scale=6.0,
                    fallback_share=0.6,
                    error_share=0.1,
                )
                other = records(200, start_s=start, rate=200, seed=90 + i, version="2")
                feed.paced(bad + other, 2_200)
                got = {(a["check"], a["model_version"]) for a in watcher.alerts}
                if wanted <= got:
                    break
    finally:
        watcher.close()
    firing = {
        (a["check"], a["model_version"]): a for a in watcher.alerts if a["status"] == "firing"
    }
    assert wanted <= set(firing), sorted(firing)
    assert firing[("fallback_rate", "1")]["severity"] == "critical"
    assert "circuit breaker" in firing[("fallback_rate", "1")]["summary"]
    assert firing[("latency", "1")]["severity"] == "critical"  # p95 ≈ 6× the reference
    assert firing[("error_rate", "1")]["severity"] == "critical"  # 10 % > 5 %
    for alert in watcher.alerts:
        validate("alert", alert)
