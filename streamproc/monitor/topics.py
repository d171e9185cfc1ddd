"""Create the topics streamproc owns, if missing, with fitting partitions and cleanup."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streamproc.monitor.authorization import raise_if_refused

log = logging.getLogger(__name__)

DAY_MS = 86_400_000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def owned_topics(
    *, profiles: str, state: str, alerts: str, deadletter: str, partitions: int = 4
) -> list[TopicSpec]:
    """The service's own topics.

    - profiles: deltas, keyed by model; kept 1 day (they are folded into state).
    - state: compacted window/alert checkpoints, same partitioning as profiles.
    - alerts: keyed by fingerprint, kept 7 days for downstream consumers.
    - dead-letter: original bytes + reason headers, kept 7 days.
    """
    big = str(32 * 1024 * 1024)
    return [
        TopicSpec(profiles, partitions, {"retention.ms": str(DAY_MS), "max.message.bytes": big}),
        TopicSpec(
            state,
            partitions,
            {
                "cleanup.policy": "compact",
                "max.message.bytes": big,
                "segment.ms": str(3_600_000),
                "min.cleanable.dirty.ratio": "0.2",
            },
        ),
        TopicSpec(alerts, 1, {"retention.ms": str(7 * DAY_MS)}),
        TopicSpec(deadletter, partitions, {"retention.ms": str(7 * DAY_MS)}),
    ]


def retrain_topic(name: str) -> TopicSpec:
    """The retraining triggers: one partition (one ordered stream of incidents), keyed by
    fingerprint, kept 30 days for the pipelines that act on them."""
    return TopicSpec(name, 1, {"retention.ms": str(30 * DAY_MS)})


def join_topics(
    predictions: str, labels: str, changelog: str, partitions: int = 4
) -> list[TopicSpec]:
    """The label join's topics: both repartition topics with one partition count (a
    prediction and its label meet on one partition number), kept 7 days (a restarted
    join resumes from its committed offsets); the changelog of its stores compacted."""
    keep = {"retention.ms": str(7 * DAY_MS)}
    return [
        TopicSpec(predictions, partitions, keep),
        TopicSpec(labels, partitions, keep),
        TopicSpec(
            changelog,
            partitions,
            {"cleanup.policy": "compact", "segment.ms": str(3_600_000)},
        ),
    ]


def ensure_topics(admin: AdminClient, specs: list[TopicSpec], timeout_s: float = 30) -> list[str]:
    """Create the missing topics with the broker's default replication factor; returns
    the names created. Existing ones are left as they are (the operator's choice)."""
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [s for s in specs if s.name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(s.name, s.partitions, -1, config=s.config) for s in missing]
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
            created.append(name)
        except KafkaException as exc:
            raise_if_refused(exc.args[0], operation="CREATE", topic=name)
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    _await_metadata(admin, [s.name for s in missing], timeout_s)
    log.info("created topics: %s", ", ".join(created) or "none")
    return created


def _await_metadata(admin: AdminClient, names: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        topics = admin.list_topics(timeout=5).topics
        for n in names:
            if n not in topics:  # a full listing leaves out what the principal may not see
                meta = admin.list_topics(n, timeout=5).topics.get(n)
                if meta is not None and meta.error is not None:
                    raise_if_refused(meta.error, operation="DESCRIBE", topic=n)
        if all(
            n in topics
            and topics[n].error is None
            and topics[n].partitions
            and all(p.leader >= 0 and p.error is None for p in topics[n].partitions.values())
            for n in names
        ):
            return
        time.sleep(0.1)
