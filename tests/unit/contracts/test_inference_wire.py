"""`attach --sample` on records in the Confluent wire format: detected, decoded through
the registry with the worker's decoder, and the proposed ``[mapping]`` (with ``format``
and ``schema_registry_url``) fed back through the config, the decoder and the mapping.

The registry is confluent-kafka's in-memory ``mock://`` stand-in (tests/support/registry.py),
one store per URL within ``share_mock_registries``. Expected values come from the records
the test generates."""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from streamproc.cli.attach_cmd import _decode_wire, _wire_format
from streamproc.config import config_from_mapping
from streamproc.contracts.inference import infer, with_wire_format
from streamproc.contracts.mapped_decode import map_records
from streamproc.contracts.prediction import decode_predictions
from streamproc.contracts.registry import RegistryMapping, WireDecoder
from streamproc.errors import UsageError
from tests.support.registry import (
    FieldType,
    WireWriter,
    avro_record,
    client_for,
    proto_class,
    share_mock_registries,
)

NOW_S = 1_714_557_603.0
TOPIC = "shop.predictions"
COUNTRIES = ["de", "fr", "us", "uk", "es"]
AVRO = avro_record(
    "Prediction",
    [
        ("id", "string"),
        ("ts_ms", "long"),
        ("amount", "double"),
        ("country", "string"),
        ("score", "double"),
    ],
)
PROTO = proto_class(
    [
        ("id", FieldType.TYPE_STRING),
        ("ts_ms", FieldType.TYPE_INT64),
        ("amount", FieldType.TYPE_DOUBLE),
        ("country", FieldType.TYPE_STRING),
        ("score", FieldType.TYPE_DOUBLE),
    ],
    package="attach.v1",
)


@pytest.fixture
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    with share_mock_registries():
        yield f"mock://attach-{request.node.name[:40]}"


def rows(n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"r-{i}",
            "ts_ms": int(NOW_S * 1000) - 600_000 + i * 100,
            "amount": round(20.0 + (i * 7919 % 1000) / 10, 2),
            "country": COUNTRIES[i % 5],
            "score": (i * 104729 % 1000 + 0.5) / 1000,
        }
        for i in range(n)
    ]


def wire_values(url: str, fmt: str, recs: list[dict[str, Any]]) -> list[bytes]:
    writer = WireWriter(client_for(url), TOPIC)
    return writer.avro(AVRO, recs) if fmt == "avro" else writer.protobuf(PROTO, recs)


def args(**kw: Any) -> argparse.Namespace:
    return argparse.Namespace(
        **{"topic": TOPIC, "labels": False, "schema_registry_url": None, **kw}
    )


@pytest.mark.parametrize("fmt", ["avro", "protobuf"])
def test_wire_decoded_records_give_a_mapping_with_format_and_registry(url: str, fmt: str) -> None:
    recs = rows(300)
    values: list[bytes | None] = [*wire_values(url, fmt, recs)]
    keys: list[bytes | None] = [r["id"].encode() for r in recs]
    config = config_from_mapping({})
    wire = _wire_format(values, args(schema_registry_url=url), config)
    assert wire is not None and wire[:2] == (fmt, url)
    decoded, kept_keys, notes = _decode_wire(values, keys, TOPIC, *wire)
    assert decoded == recs  # the worker's decoder gives back what was produced
    assert kept_keys == keys and f"({fmt}, schema id" in notes[0] and url in notes[0]

    proposal = with_wire_format(infer(decoded, kept_keys, model="fraud", now_s=NOW_S), fmt, url)
    assert proposal.mapping == {
        "format": fmt,
        "schema_registry_url": url,
        "model": "fraud",
        "model_version": "1",
        "request_id": "/id",
        "timestamp": "/ts_ms",
        "prediction": {"score": "/score"},
        "features": "*",
    }
    # the proposal, through the config, the worker's decoder and the mapping
    mapping = config_from_mapping(tomllib.loads(proposal.toml())).mapping.record_mapping()
    assert isinstance(mapping, RegistryMapping) and mapping.wire.format == fmt
    out = WireDecoder(mapping.wire).decode(values, TOPIC)
    mapped = out.compose(map_records(mapping, out.values))
    result = mapped.restore(decode_predictions(mapped.values))
    assert result.rejects == [] and result.n_accepted == 300
    (batch,) = result.batches.values()
    assert list(batch.features["country"]) == [r["country"] for r in recs]
    assert sorted(batch.features) == ["amount", "country"]


def test_wire_format_without_a_registry_says_so_and_names_the_schema_ids(url: str) -> None:
    values: list[bytes | None] = [*wire_values(url, "avro", rows(20))]
    sid = int.from_bytes(values[0][1:5], "big")  # type: ignore[index]
    with pytest.raises(UsageError) as info:
        _wire_format(values, args(), config_from_mapping({}))
    text = str(info.value)
    assert "Confluent wire format" in text and f"schema id {sid}" in text
    assert "--schema-registry-url" in text and "20 of the 20 values" in text


def test_bad_values_among_wire_records_are_noted_and_unknown_ids_refused(url: str) -> None:
    good = wire_values(url, "avro", rows(10))
    values: list[bytes | None] = [*good, b'{"plain": 1}', good[0][:5] + b"\xff\xff"]
    wire = _wire_format(values, args(schema_registry_url=url), config_from_mapping({}))
    assert wire is not None
    decoded, _keys, notes = _decode_wire(values, [None] * 12, TOPIC, *wire)
    assert len(decoded) == 10
    assert any("1 sampled values would be dead-lettered as not_wire_format" in n for n in notes)
    assert any("as undecodable" in n for n in notes)
    unknown: list[bytes | None] = [b"\x00\x00\x0f\x42\x3f" + good[0][5:]] * 3  # id 999999
    with pytest.raises(UsageError, match="has none of them: schema id 999999"):
        _wire_format(unknown, args(schema_registry_url=url), config_from_mapping({}))


def test_plain_json_is_not_taken_for_the_wire_format_and_labels_refuse_it(url: str) -> None:
    plain: list[bytes | None] = [orjson.dumps(r) for r in rows(5)]
    assert _wire_format(plain, args(), config_from_mapping({})) is None
    wired: list[bytes | None] = [*wire_values(url, "avro", rows(5))]
    with pytest.raises(UsageError, match="labels stage reads label records as JSON"):
        _wire_format(wired, args(labels=True, schema_registry_url=url), config_from_mapping({}))


def test_an_unreachable_registry_is_a_usage_error_not_a_traceback(url: str) -> None:
    values: list[bytes | None] = [*wire_values(url, "avro", rows(5))]
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens there
    with pytest.raises(UsageError, match=r"schema registry http://127\.0\.0\.1:9 unreachable"):
        _wire_format(values, args(schema_registry_url=closed), config_from_mapping({}))
