"""Label mappings: records of any shape on the labels topic → label events, including
labels derived from a business event; every record is a label, a counted non-label
event, or a reject — once."""

from __future__ import annotations

import tomllib
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.config import ConfigError, MonitorConfig, config_from_mapping
from streamproc.contracts.label import LabelDecodeResult, decode_labels
from streamproc.contracts.label_mapping import (
    LABEL_IDENTITY,
    NOT_A_LABEL,
    compile_label_mapping,
    decode_mapped_labels,
    is_label_identity,
)
from streamproc.contracts.mapped_decode import timestamps_ms

T0_MS = 1_714_557_603_250  # 2024-05-01T10:00:03.250Z

BUSINESS = {
    "model": "fraud",
    "request_id": "$key",
    "timestamp": "$timestamp",
    "label": {"from": "/type", "map": {"chargeback": 1, "refund_fraud": 1, "settled": 0}},
}


def decode(table: dict[str, Any], values: list[Any], **kw: Any) -> LabelDecodeResult:
    return decode_mapped_labels(compile_label_mapping(table), values, **kw)


def event(kind: Any, **extra: Any) -> bytes:
    return orjson.dumps({"order": {"id": "o"}, "type": kind, **extra})


def test_identity_is_the_default_and_equals_the_plain_decoder() -> None:
    assert MonitorConfig().labels_mapping.record_mapping() is None
    assert is_label_identity({}) and is_label_identity({"label": "/label"})
    assert not is_label_identity({"model": "fraud"})
    assert not is_label_identity({"label": {"from": "/label", "map": {"a": 1}}})
    ms = T0_MS + 60_000
    values = [
        orjson.dumps({"model": "m", "request_id": "r1", "timestamp": ms / 1000, "label": "y"}),
        orjson.dumps(
            {
                "model": "m",
                "request_id": "r2",
                "timestamp": "2024-05-01T10:01:00Z",
                "label": 0,
                "prediction": {"label": 1, "score": 0.8, "timestamp": T0_MS / 1000},
                "extra": [1, 2],
            }
        ),
        orjson.dumps({"model": "m", "request_id": "r3", "label": "y"}),  # no timestamp
        b"[1]",
        None,
        orjson.dumps({"model": "x", "request_id": "r4", "timestamp": 1.7e9, "label": True}),
        orjson.dumps({"model": "m", "request_id": 5, "timestamp": 1.7e9, "label": "y"}),
    ]
    known = frozenset({"m"})
    plain = decode_labels(values, known_models=known)
    mapped = decode_mapped_labels(compile_label_mapping(LABEL_IDENTITY), values, known_models=known)
    assert [r.position for r in mapped.rejects] == [r.position for r in plain.rejects]
    assert [r.reason for r in mapped.rejects] == [r.reason for r in plain.rejects]
    a, b = plain.batch, mapped.batch
    assert a.positions.tolist() == b.positions.tolist() == [0, 1]
    assert (a.models, a.request_ids, a.labels) == (b.models, b.request_ids, b.labels)
    np.testing.assert_array_equal(a.label_ms, b.label_ms)
    np.testing.assert_array_equal(a.has_prediction, b.has_prediction)
    np.testing.assert_array_equal(a.prediction_ms, b.prediction_ms)
    assert a.prediction_label == b.prediction_label == [None, 1]
    assert mapped.not_labels == []


def test_labels_derived_from_business_events() -> None:
    kinds = ["chargeback", "settled", "shipped", "refund_fraud", "created", "settled"]
    values = [event(k) for k in kinds]
    keys = [f"o{i}".encode() for i in range(len(kinds))]
    stamps = [T0_MS + i * 1000 for i in range(len(kinds))]
    result = decode(BUSINESS, values, keys=keys, timestamps_ms=stamps)
    assert result.rejects == []
    b = result.batch
    assert b.positions.tolist() == [0, 1, 3, 5]
    assert b.labels == [1, 0, 1, 0]
    assert b.models == ["fraud"] * 4
    assert b.request_ids == ["o0", "o1", "o3", "o5"]  # the Kafka key
    assert np.abs(b.label_ms - np.array(stamps)[[0, 1, 3, 5]]).max() <= 1  # record timestamp
    assert not b.has_prediction.any()
    assert [(r.position, r.reason) for r in result.not_labels] == [
        (2, NOT_A_LABEL),
        (4, NOT_A_LABEL),
    ]
    assert "'shipped'" in result.not_labels[0].detail


def test_a_default_labels_every_other_event_value() -> None:
    table = {**BUSINESS, "label": {**BUSINESS["label"], "default": 0}}  # type: ignore[dict-item]
    result = decode(
        table,
        [event("shipped"), event("chargeback"), event(7)],
        keys=[b"a", b"b", b"c"],
        timestamps_ms=[T0_MS] * 3,
    )
    assert result.rejects == [] and result.not_labels == []
    assert result.batch.labels == [0, 1, 0]


def test_numbers_and_booleans_select_by_their_json_text() -> None:
    table = {
        "model": "fraud",
        "request_id": "/order/id",
        "timestamp": "/at_ms",
        "label": {"from": "/status", "map": {"3": "fraud", "true": "fraud", "0": "ok"}},
    }
    values = [
        orjson.dumps({"order": {"id": f"o{i}"}, "status": s, "at_ms": T0_MS})
        for i, s in enumerate([3, True, 0, False, 3.5, "3", [3]])
    ]
    result = decode(table, values)
    assert result.rejects == []
    assert result.batch.labels == ["fraud", "fraud", "ok", "fraud"]
    assert result.batch.request_ids == ["o0", "o1", "o2", "o5"]
    assert [r.position for r in result.not_labels] == [3, 4, 6]


def test_constant_label_and_constants_that_look_like_sources() -> None:
    table = {"model": {"const": "$fraud"}, "request_id": "/id", "label": 1, "timestamp": "/ts"}
    values = [orjson.dumps({"id": "r", "ts": "2024-05-01T10:00:00Z"})]
    result = decode(table, values)
    assert result.rejects == [] and result.batch.models == ["$fraud"]
    assert result.batch.labels == [1] and result.batch.request_ids == ["r"]


def test_missing_sources_are_rejects_not_non_labels() -> None:
    values = [
        orjson.dumps({"order": {"id": "o"}}),  # no /type
        event(None),  # a null type
        event("chargeback"),  # no key
        event("chargeback"),  # no record timestamp (type 0)
        event("chargeback"),
    ]
    keys = [b"a", b"b", None, b"d", b"e"]
    stamps = timestamps_ms([(1, T0_MS), (1, T0_MS), (1, T0_MS), (0, -1), (1, T0_MS)])
    result = decode(BUSINESS, values, keys=keys, timestamps_ms=stamps)
    got = [(r.position, r.reason, r.detail.split(":")[0]) for r in result.rejects]
    assert got == [
        (0, "missing_field", "label"),
        (1, "missing_field", "label"),
        (2, "missing_field", "request_id"),
        (3, "missing_field", "timestamp"),
    ]
    assert result.not_labels == [] and result.batch.positions.tolist() == [4]


def test_header_sources_and_decoder_rules_after_mapping() -> None:
    table = {
        "model": "$header:model",
        "request_id": "$key",
        "timestamp": "$header:ts",
        "label": {"from": "$header:event", "map": {"chargeback": "fraud"}},
    }
    ok = [("model", b"fraud"), ("ts", str(T0_MS).encode()), ("event", b"chargeback")]
    values = [b"{}"] * 5
    headers = [
        ok,
        [*ok[:2], ("event", b"shipped")],
        [("model", b"other"), *ok[1:]],  # unknown model: the decoder's reject
        [ok[0], ("ts", b"4102444800000"), ok[2]],  # 2100: bad_timestamp (out of range)
        [*ok[:2], ("event", b"\xff")],  # not UTF-8
    ]
    result = decode(
        table,
        values,
        keys=[b"r"] * 5,
        headers=headers,
        known_models=frozenset({"fraud"}),
    )
    assert result.batch.positions.tolist() == [0] and result.batch.labels == ["fraud"]
    assert result.batch.label_ms.tolist() == [T0_MS]
    assert [r.position for r in result.not_labels] == [1]
    assert [(r.position, r.reason) for r in result.rejects] == [
        (2, "unknown_model"),
        (3, "bad_timestamp"),
        (4, "wrong_type"),
    ]


def test_the_section_parses_from_toml() -> None:
    text = """
[labels_mapping]
model = "fraud"
request_id = "$key"
timestamp = "/at_ms"
label = { from = "/type", map = { chargeback = 1, refund_fraud = 1, settled = 0 } }
"""
    config = config_from_mapping(tomllib.loads(text))
    mapping = config.labels_mapping.record_mapping()
    assert mapping is not None and mapping.uses_key and not mapping.uses_timestamp
    assert mapping.features is None and mapping.prediction is None
    result = decode_mapped_labels(
        mapping, [event("refund_fraud", at_ms=T0_MS), event("x", at_ms=T0_MS)], keys=[b"k1", b"k2"]
    )
    assert result.batch.labels == [1] and result.batch.label_ms.tolist() == [T0_MS]
    assert len(result.not_labels) == 1


@pytest.mark.parametrize(
    ("table", "match"),
    [
        ({"features": "/f"}, "unknown key"),
        ({"label": {"from": "/type"}}, "derived label"),
        ({"label": {"map": {"a": 1}}}, "derived label"),
        ({"label": {"from": "/type", "map": {"a": 1}, "else": 0}}, "derived label"),
        ({"label": {"from": "/type", "map": {}}}, "label.map"),
        ({"label": {"from": "/type", "map": {"a": [1]}}}, "label.map.a"),
        ({"label": {"from": "/type", "map": {"a": 1}, "default": {"x": 1}}}, "label.default"),
        ({"label": {"from": "$nope", "map": {"a": 1}}}, "label.from"),
        ({"request_id": "$keys"}, "request_id"),
    ],
)
def test_unusable_sections_are_config_errors(table: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match="labels_mapping") as info:
        config_from_mapping({"labels_mapping": table})
    assert match in str(info.value)


_RECORDS = st.one_of(
    st.sampled_from(["chargeback", "settled", "shipped", "refund_fraud"]).map(event),
    st.sampled_from([None, b"", b"{", b"[]", b'{"type": 1}', b'{"type":"settled","type":"x"}']),
    st.binary(max_size=40),
    st.dictionaries(
        st.sampled_from(["type", "order", "at"]), st.integers(-(2**40), 2**40) | st.text()
    ).map(orjson.dumps),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_RECORDS, st.none() | st.binary(max_size=4)), max_size=30))
def test_every_record_ends_up_exactly_once(records: list[tuple[Any, Any]]) -> None:
    values = [v for v, _ in records]
    keys = [k for _, k in records]
    result = decode(BUSINESS, values, keys=keys, timestamps_ms=[T0_MS] * len(values))
    places = [
        *result.batch.positions.tolist(),
        *(r.position for r in result.rejects),
        *(r.position for r in result.not_labels),
    ]
    assert sorted(places) == list(range(len(values)))
    assert all(r.reason == NOT_A_LABEL for r in result.not_labels)
    assert all(r.reason != NOT_A_LABEL for r in result.rejects)
    assert [r.position for r in result.rejects] == sorted(r.position for r in result.rejects)
