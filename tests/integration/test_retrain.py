"""The retraining trigger on a real broker: three features of eight (37.5 % >= 30 %)
drift critically for five closed windows, then traffic is normal again — the retrain
topic receives one firing event (the drifted features named, the reference, the range
to retrain on inside the drift) and one resolved event, and the alerts topic none."""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson

from streamproc.contracts import validate
from tests.integration.monitor_harness import (
    Feed,
    monitor_config,
    records,
    reference_profile,
    running_worker,
    wait_until,
)
from tests.support.kafka import consume_n

WINDOW_S = 10
RATE = 200.0
SHIFTED = {"num_0": 2.0, "num_1": 2.0, "num_2": 2.0}
PHASES = [(3, None), (5, SHIFTED), (6, None)]  # (closed windows, shift)


def test_sustained_drift_sends_one_retrain_event_and_its_resolution(
    bootstrap_servers: str, unique_topic: Callable[[str], str]
) -> None:
    prefix = unique_topic("retrain")
    config = monitor_config(
        bootstrap_servers, prefix, evaluation={"replay": True}, topics={"retrain": f"{prefix}.rt"}
    )
    start_s = (time.time() - 3_600) // WINDOW_S * WINDOW_S  # an hour ago: a replay
    recs, t, drift = [], start_s, (0.0, 0.0)
    for i, (windows, shift) in enumerate(PHASES):
        n = int(RATE * WINDOW_S * windows)
        recs += records(n, start_s=t, rate=RATE, seed=40 + i, shift=shift)
        if shift:
            drift = (t, t + windows * WINDOW_S)
        t += windows * WINDOW_S
    with running_worker(config, [reference_profile()]) as run:
        Feed(bootstrap_servers, config.topics.predictions).send(recs)
        registry = run.worker.metrics.registry

        def sent(status: str) -> float:
            return (
                registry.get_sample_value("streamproc_retrain_events_total", {"status": status})
                or 0
            )

        assert wait_until(lambda: sent("resolved") >= 1, 120), (sent("firing"), sent("resolved"))
    events = [
        orjson.loads(m.value())
        for m in consume_n(bootstrap_servers, f"{prefix}.rt", f"{prefix}.rt.read", 2, linger_s=2)
    ]
    assert [e["status"] for e in events] == ["firing", "resolved"]
    for e in events:
        validate("retrain_event", e)
    firing = events[0]
    assert firing["evidence"]["reasons"] == ["drift"]
    assert set(firing["evidence"]["drifted_features"]) == set(SHIFTED)
    assert firing["reference"]["model_version"] == "1" and firing["reference"]["rows"] == 50_000
    window = firing["retrain_window"]
    lo, hi = (_epoch(window["start"]), _epoch(window["end"]))
    assert drift[0] <= lo < hi <= drift[1], (window, drift)
    assert hi - lo == 3 * WINDOW_S
    alerts = consume_n(bootstrap_servers, config.topics.alerts, f"{prefix}.al.read", 1_000,
                       timeout_s=5, linger_s=1)  # fmt: skip
    assert all(orjson.loads(m.value())["check"] != "retrain" for m in alerts)


def _epoch(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
