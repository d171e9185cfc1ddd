"""``--start-from``: parsing, which offset a first start takes, and the ingest seek."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from streamproc.config import ConfigError, MonitorConfig, config_from_mapping
from streamproc.contracts.start_from import (
    OFFSET_BEGINNING,
    OFFSET_END,
    StartFrom,
    choose_offset,
    parse_start_from,
)
from streamproc.monitor.ingest import IngestLoop, IngestSettings
from streamproc.monitor.metrics import create
from streamproc.monitor.references import ReferenceSet


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("earliest", StartFrom("earliest")),
        (" LATEST ", StartFrom("latest")),
        ("1h ago", StartFrom("ago", 3_600_000)),
        ("1h30m ago", StartFrom("ago", 5_400_000)),
        ("7d ago", StartFrom("ago", 7 * 86_400_000)),
        ("500ms ago", StartFrom("ago", 500)),
        (
            "2024-05-01T10:00:00Z",
            StartFrom("time", int(datetime(2024, 5, 1, 10, tzinfo=UTC).timestamp() * 1000)),
        ),
        (
            "2024-05-01T12:00:00.250+02:00",
            StartFrom("time", int(datetime(2024, 5, 1, 10, tzinfo=UTC).timestamp() * 1000) + 250),
        ),
    ],
)
def test_parse(text: str, expected: StartFrom) -> None:
    assert parse_start_from(text) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "1h", "ago", "2024-05-01T10:00:00", "-1h ago"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="start position"):
        parse_start_from(text)


def test_config_default_and_errors() -> None:
    assert MonitorConfig().kafka.start_position() == StartFrom("ago", 3_600_000)
    config = config_from_mapping({"kafka": {"start_from": "earliest"}})
    assert config.kafka.start_position() == StartFrom("earliest")
    with pytest.raises(ConfigError, match="start_from"):
        config_from_mapping({"kafka": {"start_from": "soon"}})


def test_instants() -> None:
    now = 1_714_557_603_000
    assert StartFrom("ago", 60_000).timestamp_ms(now) == now - 60_000
    assert StartFrom("time", 5).timestamp_ms(now) == 5
    assert StartFrom("earliest").timestamp_ms(now) is None


@pytest.mark.parametrize(
    ("committed", "looked_up", "start", "expected"),
    [
        (42, 7, StartFrom("time", 1), None),  # committed offsets always win
        (0, None, StartFrom("latest"), None),
        (-1001, None, StartFrom("earliest"), OFFSET_BEGINNING),
        (-1001, None, StartFrom("latest"), OFFSET_END),
        (-1001, 17, StartFrom("time", 1), 17),
        (-1001, -1, StartFrom("ago", 1), OFFSET_END),  # no record that late: the end
        (-1001, None, StartFrom("ago", 1), OFFSET_END),
    ],
)
def test_choose_offset(
    committed: int, looked_up: int | None, start: StartFrom, expected: Any
) -> None:
    assert choose_offset(committed, looked_up, start) == expected


class FakeConsumer:
    """What the ingest's on_assign asks of a consumer."""

    def __init__(self, committed: dict[int, int], by_time: dict[int, int]) -> None:
        self._committed, self._by_time = committed, by_time
        self.queries: list[tuple[int, int]] = []
        self.assigned: list[tuple[int, int]] | None = None

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [
            TopicPartition(p.topic, p.partition, self._committed.get(p.partition, -1001))
            for p in partitions
        ]

    def offsets_for_times(
        self, partitions: list[TopicPartition], timeout: float
    ) -> list[TopicPartition]:
        self.queries += [(p.partition, p.offset) for p in partitions]
        return [
            TopicPartition(p.topic, p.partition, self._by_time[p.partition]) for p in partitions
        ]

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = [(p.partition, p.offset) for p in partitions]
        self.seeks: list[tuple[int, int]] = []

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float) -> tuple[int, int]:
        return 0, 77  # the end of every partition

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition("p", p) for p, _ in self.assigned or []]

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append((tp.partition, tp.offset))


def loop(start: StartFrom) -> IngestLoop:
    settings = IngestSettings("p", "pr", "dlq", "g", 10_000, 1_000, start_from=start)
    return IngestLoop(settings, ReferenceSet.of([]), create())


def test_on_assign_seeks_only_partitions_without_a_commit() -> None:
    consumer = FakeConsumer(committed={0: 120}, by_time={1: 33, 2: -1})
    parts = [TopicPartition("p", i) for i in range(3)]
    loop(StartFrom("time", 1_000))._on_assign(consumer, parts)  # type: ignore[arg-type]
    assert consumer.queries == [(1, 1_000), (2, 1_000)]
    # nothing that late on partition 2: its end, as a concrete offset
    assert consumer.assigned == [(0, -1001), (1, 33), (2, 77)]


def test_an_aborted_first_transaction_rewinds_to_the_first_start_not_to_zero() -> None:
    consumer = FakeConsumer(committed={0: 120}, by_time={1: 33, 2: -1})
    ingest = loop(StartFrom("time", 1_000))
    ingest._on_assign(consumer, [TopicPartition("p", i) for i in range(3)])  # type: ignore[arg-type]
    ingest._consumer = consumer  # type: ignore[assignment]
    ingest._rewind()
    assert consumer.seeks == [(0, 120), (1, 33), (2, 77)]


def test_on_assign_leaves_a_fully_committed_group_alone() -> None:
    consumer = FakeConsumer(committed={0: 5, 1: 0}, by_time={})
    loop(StartFrom("latest"))._on_assign(consumer, [TopicPartition("p", 0), TopicPartition("p", 1)])  # type: ignore[arg-type]
    assert consumer.assigned is None and consumer.queries == []


class GrowingConsumer(FakeConsumer):
    """A partition that receives a record while the first start is being placed: its end
    is 77 until the time lookup has answered, 78 after."""

    def offsets_for_times(
        self, partitions: list[TopicPartition], timeout: float
    ) -> list[TopicPartition]:
        answer = super().offsets_for_times(partitions, timeout)
        self.grown = True
        return answer

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float) -> tuple[int, int]:
        return 0, 78 if getattr(self, "grown", False) else 77


def test_a_record_arriving_during_the_lookup_is_not_skipped() -> None:
    # the lookup saw nothing at or after the instant, then record 77 arrived (its
    # timestamp is later than the instant): the start is 77, not the end after it
    consumer = GrowingConsumer(committed={}, by_time={0: -1})
    loop(StartFrom("time", 1_000))._on_assign(consumer, [TopicPartition("p", 0)])  # type: ignore[arg-type]
    assert consumer.assigned == [(0, 77)]
