"""Consumer lag per partition (messages between the position and the partition end)."""

from __future__ import annotations

from confluent_kafka import Consumer
from prometheus_client import Gauge


def report_lag(consumer: Consumer, stage: str, gauge: Gauge) -> int:
    """Set ``gauge{stage, topic, partition}`` for every assigned partition; returns the sum.

    Uses the high watermarks librdkafka cached from its last fetch (no broker round trip).
    """
    total = 0
    assignment = consumer.assignment()
    if not assignment:
        return 0
    for tp in consumer.position(assignment):
        _low, high = consumer.get_watermark_offsets(tp, cached=True)
        if high < 0 or tp.offset < 0:
            continue
        lag = max(0, high - tp.offset)
        gauge.labels(stage, tp.topic, str(tp.partition)).set(lag)
        total += lag
    return total
