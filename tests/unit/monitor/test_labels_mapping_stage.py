"""The labels stage with a ``[labels_mapping]``: business events keyed by order id become
label events for the join; non-label events are counted, never dead-lettered; rejects
are dead-lettered once with their reason."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from streamproc.config import config_from_mapping
from streamproc.core.model_profile import ModelProfile
from streamproc.labels.repartition import decode_labels
from streamproc.monitor import metrics as metrics_module
from streamproc.monitor.labels import LabelsLoop, LabelsSettings
from streamproc.monitor.references import ReferenceSet

T0_MS = 1_714_557_603_250


class _Msg:
    def __init__(self, value: bytes | None, key: bytes | None, ms: int, offset: int) -> None:
        self._v, self._k, self._ms, self._o = value, key, ms, offset

    def value(self) -> bytes | None:
        return self._v

    def key(self) -> bytes | None:
        return self._k

    def timestamp(self) -> tuple[int, int]:
        return (1, self._ms)

    def offset(self) -> int:
        return self._o

    def partition(self) -> int:
        return 0

    def topic(self) -> str:
        return "orders"

    def headers(self) -> None:
        return None

    def error(self) -> None:
        return None


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, Any, Any]] = []

    def produce(self, topic: str, value: Any, key: Any, headers: Any) -> None:
        self.sent.append((topic, key, value, headers))


def test_business_events_reach_the_join_as_labels() -> None:
    config = config_from_mapping(
        {
            "labels_mapping": {
                "model": "fraud",
                "request_id": "$key",
                "timestamp": "/at_ms",
                "label": {"from": "/type", "map": {"chargeback": 1, "settled": 0}},
            }
        }
    )
    mapping = config.labels_mapping.record_mapping()
    settings = LabelsSettings(
        "orders", "profiles", "dlq", "g-labels", 10_000, join_topic="join", mapping=mapping
    )
    rng = np.random.default_rng(1)
    reference = ModelProfile.build_reference("fraud", "1", {"x": rng.normal(size=500)})
    metrics = metrics_module.create()
    loop = LabelsLoop(settings, ReferenceSet.of([reference]), metrics)
    producer = _Producer()
    loop._producer = producer  # type: ignore[assignment]

    def order(kind: str, oid: str, **extra: Any) -> _Msg:
        body = {"order": {"id": oid}, "type": kind, "at_ms": T0_MS + 5, **extra}
        return _Msg(orjson.dumps(body), oid.encode(), T0_MS, len(oid))

    messages = [
        order("chargeback", "o1"),
        order("shipped", "o2"),
        order("settled", "o3"),
        _Msg(orjson.dumps({"type": "settled"}), b"o4", T0_MS, 4),  # no /at_ms
        order("settled", "o5", at_ms="yesterday"),
        order("created", "o6"),
    ]
    loop.process(messages)  # type: ignore[arg-type]
    forwarded = [s for s in producer.sent if s[0] == "join"]
    labels = decode_labels([v for _t, _k, v, _h in forwarded])
    assert labels.request_ids == ["o1", "o3"] and labels.labels == [1, 0]
    assert labels.models == ["fraud", "fraud"] and labels.label_ms == [T0_MS + 5] * 2
    dead = [dict(h)["streamproc.reason"].decode() for t, _k, _v, h in producer.sent if t == "dlq"]
    assert dead == ["missing_field", "bad_timestamp"]
    registry = metrics.registry
    assert registry.get_sample_value("streamproc_non_label_events_total") == 2
    assert registry.get_sample_value("streamproc_labels_forwarded_total") == 2
    not_dead = registry.get_sample_value("streamproc_deadletter_total", {"reason": "not_a_label"})
    assert not_dead is None
