"""`attach --sample --labels`: a [labels_mapping] guessed from label events or business
events, fed back through the config and the label decoder. Expected counts come from the
generated events, not from the code under test."""

from __future__ import annotations

import tomllib
from collections import Counter
from typing import Any

import numpy as np
import orjson

from streamproc.config import config_from_mapping
from streamproc.contracts.label_inference import infer_labels, outcome_of
from streamproc.contracts.label_mapping import decode_mapped_labels

NOW_S = 1_714_557_603.0
NOW_MS = int(NOW_S * 1000)


def business_events(
    n: int, kinds: list[str], seed: int = 3
) -> tuple[list[dict[str, Any]], list[bytes | None]]:
    """Order events keyed by order id; an order has one to three events."""
    rng = np.random.default_rng(seed)
    out, keys = [], []
    for i in range(n):
        oid = f"o{i // 2}"
        body = {"order": {"id": oid}, "at_ms": NOW_MS - 3_600_000 + i * 1_000}
        body["type"] = str(rng.choice(kinds))
        out.append(body)
        keys.append(oid.encode())
    return out, keys


def decoded(toml_text: str, records: list[Any], keys: list[bytes | None]) -> Any:
    """The label decoder's result of ``records`` under the proposed section."""
    config = config_from_mapping(tomllib.loads(toml_text))
    mapping = config.labels_mapping.record_mapping()
    assert mapping is not None
    values = [orjson.dumps(r) for r in records]
    return decode_mapped_labels(mapping, values, keys=keys, timestamps_ms=[NOW_MS] * len(values))


def test_outcome_of_event_types() -> None:
    assert outcome_of("chargeback") == 1
    assert outcome_of("ChargeBack") == 1
    assert outcome_of("refund_fraud") == 1
    assert outcome_of("not_fraud") == 0
    assert outcome_of("settled") == 0
    assert outcome_of("order.settled") == 0
    assert outcome_of("shipped") is None
    assert outcome_of("refund_requested") is None


def test_business_events_propose_a_derived_label_that_skips_neutral_events() -> None:
    kinds = ["shipped", "created", "refund_requested", "chargeback", "settled"]
    records, keys = business_events(300, kinds)
    proposal = infer_labels(records, keys, model="fraud", now_s=NOW_S)
    assert proposal.section == "labels_mapping"
    assert proposal.mapping == {
        "model": "fraud",
        "request_id": "/order/id",
        "timestamp": "/at_ms",
        "label": {"from": "/type", "map": {"chargeback": 1, "settled": 0}},
    }
    assert "default" not in proposal.mapping["label"]
    assert any("not label events" in n for n in proposal.notes)
    text = proposal.toml()
    assert text.startswith("[labels_mapping]\n")

    result = decoded(text, records, keys)
    kinds_seen = Counter(r["type"] for r in records)
    assert result.rejects == []
    assert result.batch.n == kinds_seen["chargeback"] + kinds_seen["settled"]
    assert len(result.not_labels) == 300 - result.batch.n
    want = [1 if r["type"] == "chargeback" else 0 for r in records if r["type"] in kinds[3:]]
    assert result.batch.labels == want
    assert (
        result.batch.request_ids[:3]
        == [r["order"]["id"] for r in records if r["type"] in kinds[3:]][:3]
    )


def test_only_a_positive_event_type_gets_a_default_of_zero_and_a_warning() -> None:
    records, keys = business_events(200, ["shipped", "chargeback", "delivered"], seed=4)
    proposal = infer_labels(records, keys, model="fraud", now_s=NOW_S)
    assert proposal.mapping["label"] == {"from": "/type", "map": {"chargeback": 1}, "default": 0}
    assert any("first label of a request counts" in n for n in proposal.notes)
    result = decoded(proposal.toml(), records, keys)
    assert result.batch.n == 200 and result.not_labels == [] and result.rejects == []
    positives = sum(r["type"] == "chargeback" for r in records)
    assert sum(int(x) for x in result.batch.labels) == positives


def test_a_label_field_is_the_proposal_and_an_event_type_a_commented_alternative() -> None:
    rng = np.random.default_rng(5)
    records = [
        {
            "request_id": f"req-{i}",
            "ts": NOW_S - 600 + i,
            "is_fraud": int(rng.random() < 0.2),
            "event_type": str(rng.choice(["chargeback", "settled"])),
        }
        for i in range(150)
    ]
    proposal = infer_labels(records, [None] * 150, model="fraud", now_s=NOW_S)
    assert proposal.mapping == {
        "model": "fraud",
        "request_id": "/request_id",
        "timestamp": "/ts",
        "label": "/is_fraud",
    }
    text = proposal.toml()
    assert '# label = { from = "/event_type", map = {' in text
    result = decoded(text, records, [None] * 150)
    assert result.batch.labels == [r["is_fraud"] for r in records]


def test_kafka_key_and_record_timestamp_when_the_event_has_neither() -> None:
    records = [{"outcome": "chargeback" if i % 3 == 0 else "settled"} for i in range(90)]
    keys: list[bytes | None] = [f"r{i}".encode() for i in range(90)]
    proposal = infer_labels(records, keys, model="churn", now_s=NOW_S)
    assert proposal.mapping["request_id"] == "$key"
    assert proposal.mapping["timestamp"] == "$timestamp"
    assert proposal.mapping["label"] == "/outcome"  # a label field of outcomes only
    assert "# or a label derived from /outcome:" in proposal.toml()
    result = decoded(proposal.toml(), records, keys)
    assert result.batch.n == 90 and result.batch.request_ids == [f"r{i}" for i in range(90)]


def test_label_events_need_no_mapping_and_unknown_types_are_left_to_the_user() -> None:
    events = [
        {"model": "m", "request_id": f"r{i}", "timestamp": NOW_S, "label": i % 2} for i in range(40)
    ]
    proposal = infer_labels(events, now_s=NOW_S)
    assert proposal.mapping == {} and "no [labels_mapping] needed" in proposal.notes[0]
    colours = [{"id": f"x{i}", "status": ["red", "green", "blue"][i % 3]} for i in range(60)]
    proposal = infer_labels(colours, now_s=NOW_S)
    assert proposal.mapping["label"] == "/label" and proposal.mapping["model"] == "model"
    assert any("--model NAME" in n for n in proposal.notes)
    assert any("no label found" in n for n in proposal.notes)
    assert '# label = { from = "/status", map = { ' in proposal.toml()
