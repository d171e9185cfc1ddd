"""Records in the Confluent wire format through a schema registry (issue #10 item 2): the
framing, the decoders, schema evolution, a registry outage, and the mapping afterwards.

The registry here is confluent-kafka's in-memory ``mock://`` registry, a stand-in (see
tests/support/registry.py); the integration tests run the same decoders in the worker.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson
import pytest

from streamproc.config import ConfigError, apply_env, config_from_mapping
from streamproc.contracts.mapped_decode import map_records
from streamproc.contracts.mapping_config import compile_mapping
from streamproc.contracts.prediction import decode_predictions
from streamproc.contracts.registry import (
    RegistryMapping,
    WireDecoder,
    WireSettings,
    client_settings_from_env,
    flatten_client_settings,
)
from streamproc.contracts.wire_format import (
    NOT_WIRE_FORMAT,
    SCHEMA_UNKNOWN,
    UNDECODABLE,
    SchemaChange,
    message_indexes,
    schema_fields,
    schema_id_of,
)
from tests.support.registry import FieldType, Outage, WireWriter, avro_record, proto_class

TOPIC = "predictions"
V1 = avro_record(
    "Prediction",
    [
        ("id", "string"),
        ("ts_ms", "long"),
        ("amount", "double"),
        ("country", "string"),
        ("score", "double"),
    ],
)
V2 = avro_record(  # device added, country removed
    "Prediction",
    [
        ("id", "string"),
        ("ts_ms", "long"),
        ("amount", "double"),
        ("device", "string"),
        ("score", "double"),
    ],
)
MAPPING = {
    "model": "fraud",
    "model_version": "1",
    "request_id": "/id",
    "timestamp": "/ts_ms",
    "features": ["amount", "country", "device"],
    "prediction": {"score": "/score"},
}
T0 = 1_767_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def mock_client() -> Any:
    from confluent_kafka.schema_registry import SchemaRegistryClient

    return SchemaRegistryClient.new_client({"url": "mock://unit"})


def v1(i: int) -> dict[str, Any]:
    return {"id": f"r{i}", "ts_ms": T0 + i, "amount": 1.5 * i, "country": "de", "score": 0.25}


def v2(i: int) -> dict[str, Any]:
    return {"id": f"r{i}", "ts_ms": T0 + i, "amount": 2.0, "device": "ios", "score": 0.5}


def decoder(fmt: str, client: Any, clock: Clock | None = None) -> WireDecoder:
    return WireDecoder(WireSettings(fmt, "mock://unit"), client=client, clock=clock or Clock())


# ------------------------------------------------------------------------------ framing


def test_schema_id_of_reads_the_magic_byte_and_the_big_endian_id() -> None:
    assert schema_id_of(b"\x00\x00\x00\x01\x02payload") == 258
    assert schema_id_of(None) == (NOT_WIRE_FORMAT, "empty value (tombstone)")
    assert schema_id_of(b'{"a":1}')[0] == NOT_WIRE_FORMAT  # type: ignore[index]
    assert schema_id_of(b"\x00\x00\x00\x01")[0] == NOT_WIRE_FORMAT  # type: ignore[index]
    assert schema_id_of(b"\x00\x00\x00\x00\x07") == 7


def test_protobuf_message_indexes_are_zigzag_varints_and_zero_means_the_first() -> None:
    head = b"\x00\x00\x00\x00\x01"
    assert message_indexes(head + b"\x00rest") == ([0], 6)
    assert message_indexes(head + b"\x04\x02\x06rest") == ([1, 3], 8)  # count 2: 1, 3
    with pytest.raises(ValueError):
        message_indexes(head + b"\x04\x02")  # cut short
    with pytest.raises(ValueError):
        message_indexes(head + b"\x80")


def test_schema_fields_and_the_change_between_two_schemas() -> None:
    old, new = schema_fields("AVRO", V1), schema_fields("AVRO", V2)
    assert old == {"id", "ts_ms", "amount", "country", "score"}
    js = json.dumps({"type": "object", "properties": {"a": {}, "b": {}}})
    assert schema_fields("JSON", js) == {"a", "b"}
    assert schema_fields("AVRO", '"string"') is None and schema_fields("AVRO", "{") is None
    change = SchemaChange.between("t", 2, 1, old, new, (("t-value", 2),))
    assert change.added == ("device",) and change.removed == ("country",)
    text = change.describe()
    assert "schema id 2 (t-value v2)" in text and "was 1" in text
    assert "fields added ['device']" in text and "fields removed ['country']" in text


# ------------------------------------------------------------------------------ avro


def test_avro_records_decode_with_their_writer_schema_and_evolution_is_reported() -> None:
    client = mock_client()
    writer = WireWriter(client, TOPIC)
    first = writer.avro(V1, [v1(i) for i in range(3)])
    second = writer.avro(V2, [v2(i) for i in range(3, 5)])
    dec = decoder("avro", client)
    out = dec.decode(first, TOPIC)
    assert [orjson.loads(v) for v in out.values] == [v1(i) for i in range(3)]
    assert out.positions.tolist() == [0, 1, 2] and not out.rejects and not out.unavailable
    assert [(c.schema_id, c.previous_id) for c in out.changes] == [(out.schema_ids[0], None)]
    # a new schema: fields added and removed, once; back and forth adds no event
    out = dec.decode([*second, first[0], second[0]], TOPIC)
    assert [orjson.loads(v) for v in out.values][:2] == [v2(3), v2(4)]
    (change,) = out.changes
    assert change.added == ("device",) and change.removed == ("country",)
    assert change.previous_id == out.schema_ids[2] and change.schema_id == out.schema_ids[0]
    assert dec.decode(second + first, TOPIC).changes == []


def test_bad_records_are_rejected_once_each_with_a_reason() -> None:
    client = mock_client()
    good = WireWriter(client, TOPIC).avro(V1, [v1(0)])[0]
    unknown_id = b"\x00\x00\x00\x03\xe7" + good[5:]  # id 999
    corrupt = good[:5] + b"\xff\xff\xff"
    string_schema = WireWriter(client, "other").avro('"string"', ["just text"])[0]
    values = [b'{"plain": "json"}', None, unknown_id, corrupt, good, string_schema, b"\x00\x00"]
    out = decoder("avro", client).decode(values, TOPIC)
    assert out.positions.tolist() == [4]
    reasons = {r.position: r.reason for r in out.rejects}
    assert reasons == {
        0: NOT_WIRE_FORMAT,
        1: NOT_WIRE_FORMAT,
        2: SCHEMA_UNKNOWN,
        3: UNDECODABLE,
        5: UNDECODABLE,
        6: NOT_WIRE_FORMAT,
    }
    assert "999" in next(r.detail for r in out.rejects if r.position == 2)


def test_oversized_wire_records_are_rejected_before_decoding() -> None:
    from streamproc.contracts.limits import DecodeLimits

    client = mock_client()
    big = WireWriter(client, TOPIC).avro(V1, [{**v1(0), "country": "x" * 2000}])[0]
    dec = WireDecoder(
        WireSettings("avro", "mock://unit"),
        client=client,
        limits=DecodeLimits(max_message_bytes=1024),
    )
    (reject,) = dec.decode([big], TOPIC).rejects
    assert reject.reason == "oversized"


# ------------------------------------------------------------------------------ protobuf


def test_protobuf_records_decode_with_the_writers_message_type() -> None:
    client = mock_client()
    fields = [("id", FieldType.TYPE_STRING), ("ts_ms", FieldType.TYPE_INT64)]
    fields += [("amount", FieldType.TYPE_DOUBLE), ("country", FieldType.TYPE_STRING)]
    fields += [("clicks", FieldType.TYPE_INT64), ("score", FieldType.TYPE_FLOAT)]
    p1 = proto_class(fields)
    p2 = proto_class([*fields[:3], ("device", FieldType.TYPE_STRING), fields[5]], package="v2")
    writer = WireWriter(client, TOPIC)
    rec = {"id": "a", "ts_ms": T0, "amount": 0.0, "country": "fr", "clicks": 2**40, "score": 0.5}
    first = writer.protobuf(p1, [rec])
    second = writer.protobuf(p2, [{"id": "b", "ts_ms": T0, "device": "web", "score": 0.25}])
    dec = decoder("protobuf", client)
    out = dec.decode(first + second, TOPIC)
    got = [orjson.loads(v) for v in out.values]
    # proto3 zeros are values (amount 0.0), 64-bit integers stay numbers
    assert got[0] == rec
    assert got[1] == {"id": "b", "ts_ms": T0, "amount": 0.0, "device": "web", "score": 0.25}
    assert "country" not in got[1]  # removed: a missing feature downstream
    change = out.changes[-1]
    assert change.added == ("device",) and change.removed == ("clicks", "country")


def test_protobuf_nested_repeated_map_and_enum_fields_become_json() -> None:
    from google.protobuf import descriptor_pb2, descriptor_pool
    from google.protobuf.message_factory import GetMessageClass

    fdp = descriptor_pb2.FileDescriptorProto(name="n.proto", package="n", syntax="proto3")
    enum = fdp.enum_type.add(name="Tier")
    enum.value.add(name="FREE", number=0)
    enum.value.add(name="GOLD", number=1)
    inner = fdp.message_type.add(name="Meta")
    inner.field.add(name="name", number=1, type=FieldType.TYPE_STRING, label=1)
    outer = fdp.message_type.add(name="Rec")
    entry = outer.nested_type.add(name="ProbsEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=FieldType.TYPE_STRING, label=1)
    entry.field.add(name="value", number=2, type=FieldType.TYPE_DOUBLE, label=1)
    outer.field.add(name="meta", number=1, type=FieldType.TYPE_MESSAGE, type_name=".n.Meta")
    outer.field.add(name="tags", number=2, type=FieldType.TYPE_STRING, label=3)
    outer.field.add(
        name="probs", number=3, type=FieldType.TYPE_MESSAGE, label=3, type_name=".n.Rec.ProbsEntry"
    )
    outer.field.add(name="tier", number=4, type=FieldType.TYPE_ENUM, type_name=".n.Tier")
    outer.field.add(name="other", number=5, type=FieldType.TYPE_MESSAGE, type_name=".n.Meta")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    rec_cls = GetMessageClass(pool.FindMessageTypeByName("n.Rec"))
    meta_cls = GetMessageClass(pool.FindMessageTypeByName("n.Meta"))
    client = mock_client()
    msg = {"meta": meta_cls(name="m"), "tags": ["x", "y"], "probs": {"cat": 0.75}, "tier": 1}
    (value,) = WireWriter(client, TOPIC).protobuf(rec_cls, [msg])
    assert value[5] != 0  # Rec is message 1 of the file: the index is on the wire
    (got,) = decoder("protobuf", client).decode([value], TOPIC).values
    assert orjson.loads(got) == {
        "meta": {"name": "m"},
        "tags": ["x", "y"],
        "probs": {"cat": 0.75},
        "tier": "GOLD",
    }  # `other` is unset: absent


# ------------------------------------------------------------------------------ json schema


def test_json_schema_records_decode() -> None:
    from confluent_kafka.schema_registry.json_schema import JSONSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    client = mock_client()
    schema = json.dumps(
        {"type": "object", "properties": {"id": {"type": "string"}, "x": {"type": "number"}}}
    )
    ser = JSONSerializer(schema, client)
    value = ser({"id": "j", "x": 1.25}, SerializationContext(TOPIC, MessageField.VALUE))
    out = decoder("json_schema", client).decode([value, b'{"id": "plain"}'], TOPIC)
    assert [orjson.loads(v) for v in out.values] == [{"id": "j", "x": 1.25}]
    assert [r.reason for r in out.rejects] == [NOT_WIRE_FORMAT]


# ------------------------------------------------------------------------------ outage


def test_an_unreachable_registry_holds_records_back_with_a_back_off() -> None:
    client = mock_client()
    writer = WireWriter(client, TOPIC)
    known = writer.avro(V1, [v1(0)])
    fresh = writer.avro(V2, [v2(1)])
    clock = Clock()
    dec = decoder("avro", client, clock)
    with Outage(client) as outage:
        assert dec.decode(known, TOPIC).values  # schema 1 is cached now
        outage.begin()
        outage.calls = 0
        out = dec.decode([*known, *fresh, *known], TOPIC)
        # the cached schema keeps decoding; the new one waits: not counted, not rejected
        assert out.positions.tolist() == [0, 2] and out.unavailable == [1] and not out.rejects
        assert dec.registry_down and outage.calls == 3  # known twice (cache), fresh once
        calls = outage.calls
        for _ in range(5):  # within the back-off: the registry is not asked again
            assert dec.decode(fresh, TOPIC).unavailable == [0]
        assert outage.calls == calls
        clock.now += 1.0  # first back-off: 1 s; still down: 2 s next
        assert dec.decode(fresh, TOPIC).unavailable == [0]
        assert dec.retry_at == pytest.approx(clock.now + 2.0)
        outage.end()
        clock.now += 2.0
        out = dec.decode(fresh, TOPIC)
        assert out.unavailable == [] and [orjson.loads(v) for v in out.values] == [v2(1)]
        assert not dec.registry_down


def test_a_registry_that_refuses_for_good_dead_letters_and_asks_again_later() -> None:
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    class Refusing:
        def __init__(self, status: int) -> None:
            self.status, self.calls = status, 0

        def get_schema(self, *args: Any) -> Any:
            self.calls += 1
            raise SchemaRegistryError(self.status, self.status * 100, "no")

    value = b"\x00\x00\x00\x00\x05\x02"
    gone = Refusing(404)
    clock = Clock()
    dec = decoder("avro", gone, clock)
    for _ in range(3):
        (reject,) = dec.decode([value], TOPIC).rejects
        assert reject.reason == SCHEMA_UNKNOWN and "404" in reject.detail
    assert gone.calls == 1  # remembered for a while
    clock.now += 31
    dec.decode([value], TOPIC)
    assert gone.calls == 2
    for status in (401, 403, 429, 500, 503):  # may be cured: wait, never dead-letter
        out = decoder("avro", Refusing(status)).decode([value], TOPIC)
        assert out.unavailable == [0] and not out.rejects


# ------------------------------------------------------------------------------ with the mapping


def test_each_record_ends_once_in_a_batch_row_or_a_reject_after_the_mapping() -> None:
    client = mock_client()
    writer = WireWriter(client, TOPIC)
    recs = [v1(i) for i in range(6)] + [v2(i) for i in range(6, 10)]
    values: list[bytes | None] = [
        *writer.avro(V1, recs[:6]),
        *writer.avro(V2, recs[6:]),
    ]
    no_id = writer.avro(
        avro_record("Bare", [("ts_ms", "long"), ("score", "double")]), [{"ts_ms": T0, "score": 0.5}]
    )
    values += [b"not wire", *no_id, None]
    fresh = writer.avro(avro_record("Late", [("id", "string")]), [{"id": "z"}])
    values.insert(3, fresh[0])
    mapping = compile_mapping(MAPPING)
    dec = decoder("avro", client)
    with Outage(client) as outage:
        dec.decode(values[:3], TOPIC)  # warm the cache of schema 1
        outage.begin()
        wire = dec.decode(values, TOPIC)
    assert wire.unavailable == [3, 7, 8, 9, 10, 12]  # every record of an uncached schema
    keep = np.ones(len(values), dtype=bool)
    keep[3:] = False  # as the ingest stage holds back its partition from there
    wire = wire.keep(keep)
    assert wire.unavailable == [] and wire.positions.tolist() == [0, 1, 2]
    # the rest, once the registry answers: every position in a row or a reject, once
    dec = decoder("avro", client)
    wire = dec.decode(values, TOPIC)
    mapped = wire.compose(map_records(mapping, wire.values))
    result = mapped.restore(decode_predictions(mapped.values, known_models=lambda m: True))
    rows = sorted(int(i) for b in result.batches.values() for i in b.indices)
    rejected = sorted(r.position for r in result.rejects)
    assert sorted(rows + rejected) == list(range(len(values)))
    reasons = {r.position: r.reason for r in result.rejects}
    assert reasons == {3: "missing_field", 11: NOT_WIRE_FORMAT, 12: "missing_field"} | {
        13: NOT_WIRE_FORMAT
    }
    (batch,) = result.batches.values()
    assert batch.n == 10
    # the removed field is a missing feature of the new schema's records, the added one
    # of the old schema's: what the data-quality checks count
    assert batch.missing["country"] == 4 and batch.missing["device"] == 6
    assert list(batch.features["country"]) == ["de"] * 6 + [None] * 4


# ------------------------------------------------------------------------------ config


def config(**mapping: Any) -> Any:
    return config_from_mapping({"mapping": mapping})


def test_the_format_keys_of_the_mapping_section() -> None:
    plain = config()
    assert plain.mapping.record_mapping() is None  # today's envelope, no registry
    avro = config(format="avro", schema_registry_url="http://registry:8081")
    wire = avro.mapping.record_mapping()
    assert isinstance(wire, RegistryMapping)  # the identity mapping, on decoded records
    assert wire.wire.client_config()["url"] == "http://registry:8081"
    mapped = config(
        format="protobuf",
        schema_registry_url="http://r",
        schema_registry={"basic": {"auth": {"user": {"info": "u:p"}}}, "max.retries": 4},
        **MAPPING,
    ).mapping.record_mapping()
    assert isinstance(mapped, RegistryMapping) and mapped.wire.format == "protobuf"
    conf = mapped.wire.client_config()
    assert conf["basic.auth.user.info"] == "u:p" and conf["max.retries"] == 4
    assert conf["timeout"] == 5  # the fail-fast default
    for bad in (
        {"format": "avro"},
        {"format": "xml", "schema_registry_url": "http://r"},
        {"schema_registry_url": "http://r"},
        {"format": "avro", "schema_registry_url": "http://r", "schema_registry": {"url": "x"}},
    ):
        with pytest.raises(ConfigError, match=r"\[mapping\]"):
            config(**bad)


def test_registry_settings_from_the_environment() -> None:
    env = {
        "STREAMPROC_SCHEMA_REGISTRY_URL": "https://sr:8081",
        "STREAMPROC_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO": "key:secret",
        "STREAMPROC_SCHEMA_REGISTRY_MAX_RETRIES": "2",
    }
    assert client_settings_from_env(env) == {
        "url": "https://sr:8081",
        "basic.auth.user.info": "key:secret",
        "max.retries": 2,
    }
    base = config(format="avro", schema_registry_url="http://file")
    wire = apply_env(base, env).mapping.wire_settings()
    assert wire.url == "https://sr:8081" and wire.client["basic.auth.user.info"] == "key:secret"
    assert flatten_client_settings({"ssl": {"ca": {"location": "/ca.pem"}}}) == {
        "ssl.ca.location": "/ca.pem"
    }
    # set for a whole deployment, they leave a plain-JSON worker as it is
    plain = apply_env(config(), env).mapping
    assert plain.format == "json" and plain.schema_registry_url == ""


def test_a_registry_url_nobody_listens_on_is_an_outage_not_a_reject() -> None:
    """The real HTTP client against a closed port (no mock): a transport error."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends
    dec = WireDecoder(WireSettings("avro", f"http://127.0.0.1:{port}"))
    out = dec.decode([b"\x00\x00\x00\x00\x01\x02ab"], TOPIC)
    assert out.unavailable == [0] and not out.rejects and dec.registry_down
