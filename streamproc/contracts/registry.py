"""Avro, Protobuf and JSON Schema records through a Schema Registry (Confluent wire format).

A predictions topic whose ``[mapping]`` says ``format = "avro"`` (``"protobuf"``,
``"json_schema"``) and ``schema_registry_url = "http://…"`` carries values in the
Confluent wire format (:mod:`streamproc.contracts.wire_format`). :class:`WireDecoder`
decodes each with its writer schema, fetched from the registry by id with confluent-kafka's
own client (``SchemaRegistryClient``, ``AvroDeserializer``, ``JSONDeserializer``, and the
``ProtobufDeserializer``'s schema plumbing with the writer's message type: a monitor has no
generated classes) and re-encodes it as a JSON object, on which the ``[mapping]`` then
works exactly as on a JSON topic (:func:`~streamproc.contracts.mapped_decode.map_records`).
The default, ``format = "json"``, is the plain JSON of before: no registry, no framing.

Each record ends one of three ways (:class:`WireDecoded`):

* decoded: a JSON object, mapped and decoded like any record;
* rejected, dead-lettered once with a reason: :data:`~.wire_format.NOT_WIRE_FORMAT` (no
  magic byte 0 and schema id), :data:`~.wire_format.SCHEMA_UNKNOWN` (the registry has no
  schema of that id, or refuses it for good: HTTP 4xx other than 401/403/408/429),
  :data:`~.wire_format.UNDECODABLE` (the bytes do not decode with their writer schema, or
  not to an object), ``oversized`` (over ``limits.max_message_bytes``);
* unavailable: its schema is not cached and the registry cannot be reached (a transport
  error, HTTP 5xx, 408, 429, or 401/403 until the credentials are fixed). It is neither
  counted nor dead-lettered: the ingest stage puts it (and the records after it on its
  partition) back and reads them again once :attr:`WireDecoder.retry_at` has passed. Meanwhile
  the decoder asks the registry at most once per back-off (1 s doubling to
  :data:`MAX_BACKOFF_S`), so an outage costs neither a stall nor a flood of requests;
  records of schemas already fetched keep flowing, since schemas are cached by id for the
  life of the process (an id's schema never changes).

Schema evolution: when a topic's records use a schema id that topic has not used before,
:attr:`WireDecoded.changes` carries a :class:`~.wire_format.SchemaChange` (the fields
added and removed between the previous schema and the new one). A field that a new schema
removed is then absent from the decoded records: a feature mapped from it counts as
missing in the window's data-quality checks, as any absent feature does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

import numpy as np
import orjson

from streamproc.contracts.batch import Reject
from streamproc.contracts.limits import DecodeLimits, resolve_limits
from streamproc.contracts.mapped_decode import Mapped
from streamproc.contracts.mapping import RecordMapping
from streamproc.contracts.wire_format import (
    SCHEMA_UNKNOWN,
    UNDECODABLE,
    SchemaChange,
    json_default,
    schema_fields,
    schema_id_of,
)
from streamproc.errors import UsageError

__all__ = [
    "FORMATS",
    "MAX_BACKOFF_S",
    "RegistryMapping",
    "WireDecoded",
    "WireDecoder",
    "WireSettings",
    "client_settings_from_env",
    "compile_wire_mapping",
    "flatten_client_settings",
]

log = logging.getLogger(__name__)

FORMATS: Final = ("json", "avro", "protobuf", "json_schema")
"""``[mapping] format``: plain JSON (the default), or the Confluent wire format with an
Avro, Protobuf or JSON Schema writer schema from the registry."""

MAX_BACKOFF_S: Final = 30.0
"""Longest wait between two attempts to reach an unreachable registry (seconds)."""

CLIENT_DEFAULTS: Final[Mapping[str, Any]] = MappingProxyType(
    {"timeout": 5, "max.retries": 1, "retries.wait.ms": 200, "retries.max.wait.ms": 1000}
)
"""``SchemaRegistryClient`` settings unless ``[mapping.schema_registry]`` sets them: a fetch
fails within seconds (the decoder's own back-off retries it), instead of the client's
default of several retries of up to 20 s each inside the hot loop."""

_RETRIABLE_HTTP: Final = frozenset({401, 403, 408, 429})
"""Registry answers that a retry may cure (credentials fixed, load gone) besides 5xx."""

_UNKNOWN_TTL_S: Final = 30.0
"""How long an id the registry said it lacks is taken as unknown without asking again."""


@dataclass(frozen=True, slots=True)
class WireSettings:
    """Where and how a topic's records are decoded (``[mapping]`` format keys)."""

    format: str = "json"
    url: str = ""
    """``schema_registry_url``: one URL, or several separated by commas."""
    client: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """``[mapping.schema_registry]``: more ``SchemaRegistryClient`` settings, passed through
    (``basic.auth.user.info``, ``basic.auth.credentials.source``, ``ssl.ca.location``,
    ``timeout``, ...)."""

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format: {self.format!r} is none of {list(FORMATS)}")
        if self.format == "json":
            if self.url or self.client:
                raise ValueError(
                    "schema_registry_url and [mapping.schema_registry] go with a wire format"
                    ' (format = "avro", "protobuf" or "json_schema")'
                )
            return
        if not self.url:
            raise ValueError(f'format = "{self.format}" needs schema_registry_url')
        if "url" in self.client:
            raise ValueError("give the URL as schema_registry_url, not schema_registry.url")

    @property
    def uses_registry(self) -> bool:
        return self.format != "json"

    def client_config(self) -> dict[str, Any]:
        """The ``SchemaRegistryClient`` configuration."""
        return {**CLIENT_DEFAULTS, **self.client, "url": self.url}


@dataclass(frozen=True, slots=True)
class RegistryMapping(RecordMapping):
    """A compiled ``[mapping]`` of a topic in the wire format: the mapping, and how the
    records are decoded before it applies."""

    wire: WireSettings = field(default_factory=WireSettings)


@dataclass(slots=True)
class WireDecoded:
    """The outcome of :meth:`WireDecoder.decode`, per input position."""

    values: list[bytes]
    """JSON objects of the decoded records, in input order."""
    positions: np.ndarray
    """int64 input position of each of ``values``."""
    rejects: list[Reject] = field(default_factory=list)
    """Records to dead-letter (input positions)."""
    unavailable: list[int] = field(default_factory=list)
    """Input positions whose schema could not be fetched (registry unreachable): to be
    read again, neither counted nor dead-lettered."""
    changes: list[SchemaChange] = field(default_factory=list)
    """Schema ids the topic had not used before, in the order they first appeared."""
    schema_ids: list[int] = field(default_factory=list)
    """The schema id of each of ``values``."""

    def keep(self, mask: np.ndarray) -> WireDecoded:
        """Only the input positions where ``mask`` (bool, one per input) is true,
        renumbered as the positions of the kept inputs."""
        new_pos = np.cumsum(mask) - 1
        sel = mask[self.positions] if len(self.positions) else np.zeros(0, bool)
        return WireDecoded(
            [v for v, k in zip(self.values, sel, strict=True) if k],
            new_pos[self.positions[sel]].astype(np.int64),
            [
                Reject(int(new_pos[r.position]), r.reason, r.detail)
                for r in self.rejects
                if mask[r.position]
            ],
            [int(new_pos[i]) for i in self.unavailable if mask[i]],
            self.changes,
            [s for s, k in zip(self.schema_ids, sel, strict=True) if k],
        )

    def compose(self, mapped: Mapped) -> Mapped:
        """``mapped`` (of mapping :attr:`values`) in input positions, with this decode's
        rejects: ready for :meth:`Mapped.restore`."""
        pos = self.positions
        rejects = [Reject(int(pos[r.position]), r.reason, r.detail) for r in mapped.rejects]
        return Mapped(mapped.values, pos[mapped.positions], rejects + self.rejects)


class RegistryExtraMissing(UsageError):
    """confluent-kafka's schema registry dependencies are not installed."""


class RegistryUnavailable(Exception):
    """The registry could not be asked (transport error, 5xx, 401/403/408/429)."""


class WireDecoder:
    """Decodes wire-format values with their writer schemas (see the module docstring).

    ``client``: a ``SchemaRegistryClient`` (default: one built from ``settings``; a
    ``mock://`` URL gives confluent-kafka's in-memory stand-in). ``clock``: monotonic
    seconds, for the back-off. One decoder serves one consumer thread."""

    def __init__(
        self,
        settings: WireSettings,
        *,
        client: Any = None,
        limits: DecodeLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not settings.uses_registry:
            raise ValueError('format = "json" needs no WireDecoder')
        try:
            from confluent_kafka.schema_registry import SchemaRegistryClient

            self.client = client or SchemaRegistryClient.new_client(settings.client_config())
            self._deserialize = _deserializer(settings.format, self.client)
        except ImportError as exc:
            raise RegistryExtraMissing(
                f'[mapping] format = "{settings.format}" needs the registry extra: '
                f"pip install 'streamproc[registry]' ({exc})"
            ) from exc
        self.settings = settings
        self.max_bytes = resolve_limits(limits, None).max_message_bytes
        self._clock = clock
        self._fetch_fmt = "serialized" if settings.format == "protobuf" else None
        self._schemas: dict[int, frozenset[str] | None] = {}
        """Fetched schema ids → their top-level fields (None: not known)."""
        self._unknown: dict[int, tuple[float, str]] = {}
        """Ids the registry lacks → (until when that holds, why)."""
        self._last_id: dict[str, int] = {}
        self._seen: dict[str, set[int]] = {}
        self.retry_at = 0.0
        """Monotonic time before which an uncached schema is not fetched (the back-off)."""
        self._backoff = 1.0

    @property
    def registry_down(self) -> bool:
        """Whether the last fetch failed and its back-off has not passed."""
        return self._clock() < self.retry_at

    def decode(
        self, values: Sequence[bytes | bytearray | memoryview | None], topic: str
    ) -> WireDecoded:
        """Decode ``values`` of ``topic``; never raises on bad input or a failing registry."""
        out: list[bytes] = []
        where: list[int] = []
        ids: list[int] = []
        rejects: list[Reject] = []
        unavailable: list[int] = []
        changes: list[SchemaChange] = []
        dumps, max_bytes = orjson.dumps, self.max_bytes
        for i, raw in enumerate(values):
            sid = schema_id_of(raw)
            if type(sid) is tuple:
                rejects.append(Reject(i, *sid))
                continue
            assert raw is not None and type(sid) is int
            if len(raw) > max_bytes:
                rejects.append(Reject(i, "oversized", f"{len(raw)} bytes > limit {max_bytes}"))
                continue
            if sid not in self._schemas:
                why = self._fetch(sid)
                if why is RegistryUnavailable:
                    unavailable.append(i)
                    continue
                if why is not None:
                    rejects.append(Reject(i, SCHEMA_UNKNOWN, f"schema id {sid}: {why}"))
                    continue
            try:
                obj = self._deserialize(bytes(raw))
            except Exception as exc:  # the deserializers raise many kinds on bad bytes
                if _is_registry_error(exc):  # the client's cache lost it, and no registry
                    self._schemas.pop(sid, None)
                    self._unreachable(exc)
                    unavailable.append(i)
                else:
                    rejects.append(Reject(i, UNDECODABLE, f"schema id {sid}: {str(exc)[:160]}"))
                continue
            if type(obj) is not dict:
                rejects.append(
                    Reject(
                        i, UNDECODABLE, f"schema id {sid}: a {type(obj).__name__}, not an object"
                    )
                )
                continue
            try:
                out.append(dumps(obj, default=json_default, option=orjson.OPT_NON_STR_KEYS))
            except TypeError as exc:
                rejects.append(Reject(i, UNDECODABLE, f"schema id {sid}: {str(exc)[:160]}"))
                continue
            where.append(i)
            ids.append(sid)
            if self._last_id.get(topic) != sid:
                change = self._switch(topic, sid)
                if change is not None:
                    changes.append(change)
        return WireDecoded(out, np.array(where, dtype=np.int64), rejects, unavailable, changes, ids)

    def _fetch(self, sid: int) -> str | type[RegistryUnavailable] | None:
        """Fetch and cache schema ``sid``: None when cached now, else why it is unknown,
        or :class:`RegistryUnavailable`."""
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        now = self._clock()
        known_missing = self._unknown.get(sid)
        if known_missing is not None and now < known_missing[0]:
            return known_missing[1]
        if now < self.retry_at:
            return RegistryUnavailable
        try:
            schema = self.client.get_schema(sid, None, self._fetch_fmt)
        except SchemaRegistryError as exc:
            status = exc.http_status_code
            if status in _RETRIABLE_HTTP or status >= 500 or status < 0:
                return self._unreachable(exc)
            why = f"the registry answered {status}: {exc.error_message}"[:200]
            self._unknown[sid] = (now + _UNKNOWN_TTL_S, why)
            return why
        except Exception as exc:  # transport errors (httpx), a proxy's HTML page, ...
            return self._unreachable(exc)
        self._backoff = 1.0
        self.retry_at = 0.0
        self._unknown.pop(sid, None)
        fields = None
        if schema.schema_type in ("AVRO", "JSON") and schema.schema_str:
            fields = schema_fields(schema.schema_type, schema.schema_str)
        elif schema.schema_type == "PROTOBUF":
            fields = _protobuf_fields(self._deserialize, schema)
        self._schemas[sid] = fields
        return None

    def _unreachable(self, exc: BaseException) -> type[RegistryUnavailable]:
        wait = self._backoff
        self.retry_at = self._clock() + wait
        self._backoff = min(wait * 2, MAX_BACKOFF_S)
        log.warning(
            "schema registry %s unreachable (%s: %s); records of uncached schemas wait, "
            "next attempt in %.0f s",
            self.settings.url,
            type(exc).__name__,
            str(exc)[:200],
            wait,
        )
        return RegistryUnavailable

    def _switch(self, topic: str, sid: int) -> SchemaChange | None:
        """The topic's records moved to ``sid``: a change when the topic never used it."""
        previous = self._last_id.get(topic)
        self._last_id[topic] = sid
        seen = self._seen.setdefault(topic, set())
        if sid in seen:
            return None
        seen.add(sid)
        old = self._schemas.get(previous) if previous is not None else None
        return SchemaChange.between(
            topic, sid, previous, old, self._schemas.get(sid), self._subject_versions(sid)
        )

    def _subject_versions(self, sid: int) -> tuple[tuple[str, int], ...]:
        """(subject, version) of ``sid``; empty when the registry does not say."""
        if self.settings.url.startswith("mock://"):  # the stand-in lacks the endpoint
            return ()
        try:
            found = self.client.get_schema_versions(sid)
            return tuple((str(v.subject), int(v.version or 0)) for v in found)
        except Exception:  # optional information: an older registry lacks the endpoint
            return ()


def _is_registry_error(exc: BaseException) -> bool:
    """Whether ``exc`` came from asking the registry (not from decoding the bytes)."""
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    if isinstance(exc, SchemaRegistryError):
        return True
    return type(exc).__module__.split(".")[0] in {"httpx", "httpx2", "httpcore", "ssl"}


def _no_subject(ctx: Any, record_name: Any) -> None:
    return None


def _deserializer(fmt: str, client: Any) -> Callable[[bytes], Any]:
    """A callable: wire-format bytes → the decoded value (a dict for a record)."""
    if fmt == "avro":
        from confluent_kafka.schema_registry.avro import AvroDeserializer

        avro = AvroDeserializer(client)
        return lambda data: avro(data, None)
    if fmt == "json_schema":
        from confluent_kafka.schema_registry.json_schema import JSONDeserializer

        # the writer schema by id alone: no subject lookup per record (the default strategy
        # asks the registry for the topic's associations), no validation (the mapping and
        # the envelope rules check what is used)
        conf = {"validate": False, "subject.name.strategy": _no_subject}
        js = JSONDeserializer(None, schema_registry_client=client, conf=conf)
        return lambda data: js(data, None)
    return _ProtobufWriter(client)


class _ProtobufWriter:
    """Protobuf records decoded with the writer's message type, found through the message
    indexes in the writer schema, with the plumbing of confluent-kafka's
    ``ProtobufDeserializer`` (schema fetch, parsing, cache), which on its own decodes only
    into a generated class given in advance; then a dict (:func:`_message_dict`)."""

    def __init__(self, client: Any) -> None:
        from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
        from google.protobuf import struct_pb2

        self._base = ProtobufDeserializer(struct_pb2.Struct, {}, client)
        self._classes: dict[tuple[int, tuple[int, ...]], Any] = {}

    def message_class(self, sid: int, indexes: Sequence[int], schema: Any = None) -> Any:
        key = (sid, tuple(indexes))
        cls = self._classes.get(key)
        if cls is None:
            from google.protobuf.message_factory import GetMessageClass

            base = self._base
            if schema is None:
                schema = base._registry.get_schema(sid, None, "serialized")
            fd_proto, pool = base._get_parsed_schema(schema)
            desc = base._get_message_desc(pool, pool.FindFileByName(fd_proto.name), list(indexes))
            cls = self._classes[key] = GetMessageClass(desc)
        return cls

    def __call__(self, data: bytes) -> dict[str, Any]:
        from streamproc.contracts.wire_format import message_indexes

        indexes, start = message_indexes(data)
        msg = self.message_class(int.from_bytes(data[1:5], "big"), indexes)()
        msg.ParseFromString(data[start:])
        return _message_dict(msg)


def _protobuf_fields(deserialize: Any, schema: Any) -> frozenset[str] | None:
    """The fields of the first message type of a Protobuf schema (the usual one-message
    file; other messages of the file are not compared)."""
    try:
        base = deserialize._base
        fd_proto, pool = base._get_parsed_schema(schema)
        desc = base._get_message_desc(pool, pool.FindFileByName(fd_proto.name), [0])
        return frozenset(f.name for f in desc.fields)
    except Exception:
        return None


def _message_dict(msg: Any) -> dict[str, Any]:
    """A Protobuf message as a JSON-ready dict: every field of the writer's message type
    (proto3 scalars at their default value included: 0 on the wire is still 0), an unset
    message or ``optional`` field absent, enums by name, 64-bit integers as numbers (not
    the strings of the Protobuf JSON mapping), ``google.protobuf.Timestamp`` as RFC 3339."""
    out: dict[str, Any] = {}
    for fd in msg.DESCRIPTOR.fields:
        value = getattr(msg, fd.name)
        if _is_repeated(fd):
            if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
                vfd = fd.message_type.fields_by_name["value"]
                out[fd.name] = {str(k): _scalar(vfd, v) for k, v in value.items()}
            else:
                out[fd.name] = [_scalar(fd, v) for v in value]
            continue
        if fd.has_presence and not msg.HasField(fd.name):
            continue
        out[fd.name] = _scalar(fd, value)
    return out


def _is_repeated(fd: Any) -> bool:
    rep = getattr(fd, "is_repeated", None)  # protobuf >= 5.28; `label` is deprecated
    return bool(rep) if rep is not None else fd.label == fd.LABEL_REPEATED


def _scalar(fd: Any, value: Any) -> Any:
    if fd.message_type is not None:
        if fd.message_type.full_name == "google.protobuf.Timestamp":
            return value.ToJsonString()
        return _message_dict(value)
    if fd.enum_type is not None:
        named = fd.enum_type.values_by_number.get(value)
        return named.name if named is not None else value
    return value


def compile_wire_mapping(mapping: RecordMapping, wire: WireSettings) -> RegistryMapping:
    """``mapping`` (compiled) applied to records decoded as ``wire`` says."""
    return RegistryMapping(
        fields=mapping.fields,
        features=mapping.features,
        prediction=mapping.prediction,
        segment=mapping.segment,
        uses_key=mapping.uses_key,
        uses_timestamp=mapping.uses_timestamp,
        uses_headers=mapping.uses_headers,
        wire=wire,
    )


REGISTRY_ENV_PREFIX: Final = "STREAMPROC_SCHEMA_REGISTRY_"


def flatten_client_settings(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested TOML tables → dotted ``SchemaRegistryClient`` keys (``basic.auth.user.info =
    "u:p"`` is a nested table in TOML); values keep their types (the client checks that
    ``max.retries`` is a number)."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_client_settings(value, name + "."))
        elif isinstance(value, str | int | float | bool):
            out[name] = value
        else:
            raise ValueError(f"schema_registry.{name}: expected a string, number or boolean")
    return out


def client_settings_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """``STREAMPROC_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO=u:p`` → ``{"basic.auth.user.info":
    "u:p"}`` (``_`` becomes ``.``, ``__`` a literal ``_``; whole numbers become ints);
    ``..._URL`` gives ``url``."""
    out: dict[str, Any] = {}
    for name, value in env.items():
        if name.startswith(REGISTRY_ENV_PREFIX) and len(name) > len(REGISTRY_ENV_PREFIX):
            raw = name[len(REGISTRY_ENV_PREFIX) :].lower()
            key = raw.replace("__", "\0").replace("_", ".").replace("\0", "_")
            out[key] = int(value) if value.isdigit() else value
    return out
