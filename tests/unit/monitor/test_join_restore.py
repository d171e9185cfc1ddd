"""The join's changelog restore reads its own partition to its end, whatever else its
reader delivers (an end-of-partition event of another partition once ended a restore
early: a store missing its latest writes counted a duplicate label as a first one)."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, TopicPartition

from streamproc.labels.kv import MemoryKV
from streamproc.labels.store import PendingStore
from streamproc.monitor.join_stage import _read_changelog


class _Msg:
    def __init__(self, topic: str, partition: int, key: bytes | None = None, eof: bool = False):
        self._topic, self._partition, self._key, self._eof = topic, partition, key, eof

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def error(self) -> Any:
        return KafkaError(KafkaError._PARTITION_EOF) if self._eof else None

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes:
        return b"v"


class _Reader:
    """Delivers ``batches`` one per consume call; its position is the records given."""

    def __init__(self, batches: list[list[_Msg]], high: int) -> None:
        self.batches, self.high, self.given = batches, high, 0

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float) -> tuple[int, int]:
        return 0, self.high

    def assign(self, parts: list[TopicPartition]) -> None:
        pass

    def unassign(self) -> None:
        pass

    def consume(self, num_messages: int, timeout: float) -> list[_Msg]:
        batch = self.batches.pop(0) if self.batches else []
        self.given += sum(1 for m in batch if not m._eof and m.partition() == 1)
        return batch

    def position(self, parts: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(parts[0].topic, parts[0].partition, self.given)]


def test_an_end_of_another_partition_does_not_end_the_restore() -> None:
    batches = [
        [_Msg("cl", 0, eof=True), _Msg("cl", 0, b"Pother")],  # not task 1's
        [_Msg("cl", 1, b"Pa"), _Msg("cl", 1, b"Pb")],
        [_Msg("cl", 1, eof=True)],
    ]
    kv = MemoryKV()
    restored = _read_changelog(_Reader(batches, high=2), "cl", 1, PendingStore(kv))  # type: ignore[arg-type]
    assert restored == 2
    assert kv.get(b"Pa") == b"v" and kv.get(b"Pb") == b"v" and kv.get(b"Pother") is None
