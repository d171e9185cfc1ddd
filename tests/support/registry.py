"""A schema registry for the tests, and helpers to produce records in the Confluent wire
format (Avro, Protobuf) with confluent-kafka's own serializers.

Registry, in order of preference (``schema_registry_url`` in tests/conftest.py):

* ``STREAMPROC_TEST_SCHEMA_REGISTRY_URL``: a real registry that the environment runs (a
  Confluent Schema Registry, Apicurio Registry's ``/apis/ccompat/v7``, Karapace). When it
  is set and does not answer, the tests fail; they never fall back.
* otherwise Apicurio Registry 2.6.13.Final, fetched once with Maven and started for the
  session (:mod:`tests.support.apicurio`); in CI a failure to start it fails the tests.

confluent-kafka's in-memory ``mock://`` registry is used only where a real registry
cannot serve: to simulate an outage. It keeps one mock store per client object, so
:func:`share_mock_registries` makes every client of one ``mock://`` URL in this process
(the test's serializers, the worker's decoder) use one store, as clients of one real
registry would.

A registry outage is simulated on the mock by :class:`Outage` (its fetches raise the
transport error an unreachable registry gives).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message_factory import GetMessageClass

REAL_REGISTRY_ENV = "STREAMPROC_TEST_SCHEMA_REGISTRY_URL"

FieldType = descriptor_pb2.FieldDescriptorProto


def real_registry_url() -> str | None:
    """The real registry the environment names, if any."""
    return os.environ.get(REAL_REGISTRY_ENV) or None


def registry_url(name: str) -> str:
    """The real registry's URL, else a ``mock://`` stand-in URL private to ``name``."""
    return real_registry_url() or f"mock://streamproc-test-{name}"


_MOCKS: dict[str, Any] = {}
_ORIGINAL_NEW_CLIENT = SchemaRegistryClient.new_client


def _shared_new_client(conf: dict[str, Any]) -> SchemaRegistryClient:
    url = conf.get("url")
    if isinstance(url, str) and url.startswith("mock://"):
        if url not in _MOCKS:
            _MOCKS[url] = _ORIGINAL_NEW_CLIENT(conf)
        return _MOCKS[url]
    return _ORIGINAL_NEW_CLIENT(conf)


@contextmanager
def share_mock_registries() -> Iterator[None]:
    """Within: one mock store per ``mock://`` URL in this process (see the module doc)."""
    SchemaRegistryClient.new_client = staticmethod(_shared_new_client)  # type: ignore[method-assign]
    try:
        yield
    finally:
        SchemaRegistryClient.new_client = staticmethod(_ORIGINAL_NEW_CLIENT)  # type: ignore[method-assign]
        _MOCKS.clear()


def client_for(url: str) -> SchemaRegistryClient:
    """The registry client of ``url`` (the shared mock store within
    :func:`share_mock_registries`)."""
    return SchemaRegistryClient.new_client({"url": url})


def check_reachable(url: str) -> None:
    """Raise unless the registry at ``url`` answers (a real one must, when named)."""
    if url.startswith("mock://"):
        return
    SchemaRegistryClient({"url": url, "timeout": 5}).get_subjects()


class Outage:
    """Makes a mock registry behave as an unreachable one while active: a fetch of a
    schema id not fetched before raises the transport error (``httpx.ConnectError``) a
    real client raises then (a real client answers ids it fetched from its cache)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.active = False
        self.calls = 0
        self._get_schema = client.get_schema  # the patch is in place from __enter__ on

    def __enter__(self) -> Outage:
        from confluent_kafka.schema_registry.common._httpx_compat import httpx

        fetched: set[int] = set()

        def get_schema(schema_id: int, *args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.active and schema_id not in fetched:  # a real client caches by id
                raise httpx.ConnectError("[Errno 111] Connection refused (simulated outage)")
            found = self._get_schema(schema_id, *args, **kwargs)
            fetched.add(schema_id)
            return found

        self.client.get_schema = get_schema
        return self

    def begin(self) -> None:
        """The registry goes away (ids fetched since :meth:`__enter__` stay cached)."""
        self.active = True

    def end(self) -> None:
        """The registry is back."""
        self.active = False

    def __exit__(self, *exc: object) -> None:
        self.client.get_schema = self._get_schema


# ---------------------------------------------------------------------------- serializers


def avro_record(name: str, fields: Sequence[tuple[str, Any]]) -> str:
    """An Avro record schema (JSON text) of (name, type) fields."""
    return json.dumps(
        {"type": "record", "name": name, "fields": [{"name": n, "type": t} for n, t in fields]}
    )


def proto_class(
    fields: Sequence[tuple[str, int] | tuple[str, int, int]],
    *,
    package: str = "shop",
    message: str = "Prediction",
) -> Any:
    """A Protobuf message class built at run time (no protoc): proto3, each field (name,
    ``FieldType.TYPE_…``[, number]; numbered in order when no number is given); its own
    descriptor pool, so two versions of one message name can coexist."""
    fdp = descriptor_pb2.FileDescriptorProto(
        name=f"{package}/{message.lower()}.proto", package=package, syntax="proto3"
    )
    msg = fdp.message_type.add(name=message)
    for i, spec in enumerate(fields, start=1):
        name, kind = spec[0], spec[1]
        number = spec[2] if len(spec) > 2 else i  # type: ignore[misc]
        msg.field.add(name=name, number=number, type=kind, label=FieldType.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return GetMessageClass(pool.FindMessageTypeByName(f"{package}.{message}"))


class WireWriter:
    """Serializes records for one topic as a producer would (the subject is
    ``<topic>-value``; each new schema is registered on first use)."""

    def __init__(self, client: SchemaRegistryClient, topic: str) -> None:
        self.client = client
        self.ctx = SerializationContext(topic, MessageField.VALUE)

    def avro(self, schema: str, records: Sequence[dict[str, Any]]) -> list[bytes]:
        ser = AvroSerializer(self.client, schema)
        return [ser(r, self.ctx) for r in records]

    def protobuf(self, cls: Any, records: Sequence[dict[str, Any]]) -> list[bytes]:
        ser = ProtobufSerializer(cls, self.client, {"use.deprecated.format": False})
        return [ser(cls(**r), self.ctx) for r in records]
