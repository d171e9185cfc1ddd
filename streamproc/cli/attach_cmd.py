"""`streamproc attach --sample`: look at a topic, propose a ``[mapping]`` and a command.

Reads a few hundred records with a consumer of its own (a random group id, from the
earliest offset, never committing: the topic and its groups are left as they were),
guesses each field (:mod:`streamproc.contracts.inference`), and prints a table of the
guesses, a ``[mapping]`` section and the ``streamproc worker`` command that uses it.

Values in the Confluent wire format (magic byte 0, 4-byte schema id) are decoded through
the schema registry (``--schema-registry-url`` or ``[mapping] schema_registry_url``) by
the worker's own :class:`~streamproc.contracts.registry.WireDecoder`; the format
(``avro``, ``protobuf``, ``json_schema``) is the registry's type of the writer schemas.
Without a registry the command says which schema ids it saw and stops (exit 2).
``--labels``: the topic is a labels topic (label events, or business events a label is
derived from): a ``[labels_mapping]`` (:mod:`streamproc.contracts.label_inference`).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from streamproc.cli.config_args import add_config_arguments, config_from_args
from streamproc.config import MonitorConfig
from streamproc.contracts.registry import client_settings_from_env
from streamproc.contracts.wire_format import schema_id_of
from streamproc.errors import UsageError

_FORMAT_OF = {"AVRO": "avro", "PROTOBUF": "protobuf", "JSON": "json_schema"}
"""The registry's schema type → ``[mapping] format``."""


class WireSample(NamedTuple):
    """A sample in the Confluent wire format: its format, registry and a client of it."""

    format: str
    url: str
    client: Any
    settings: dict[str, Any]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "attach",
        help="look at a topic of your own record shape and propose a [mapping] for it",
        description=(
            "Read a sample of a topic (a throwaway consumer group, from the earliest "
            "offset, nothing committed), guess ids, event times, scores, class "
            "probabilities, categorical and numeric features, and print a [mapping] "
            "section and the `streamproc worker` command that uses it. Records in the "
            "Confluent wire format (Avro, Protobuf, JSON Schema) are decoded through the "
            "schema registry; --labels proposes a [labels_mapping] for a labels topic."
        ),
    )
    parser.add_argument("--sample", action="store_true", required=True, help="sample the topic")
    parser.add_argument("--topic", required=True, help="the predictions (or labels) topic")
    parser.add_argument(
        "--labels",
        action="store_true",
        help="the topic carries labels (or business events): propose a [labels_mapping]",
    )
    parser.add_argument(
        "--predictions-topic",
        help="with --labels: the predictions topic, for the worker command printed",
    )
    parser.add_argument(
        "--schema-registry-url",
        metavar="URL",
        help="the schema registry of a topic in the Confluent wire format (Avro, Protobuf, "
        "JSON Schema); default: [mapping] schema_registry_url",
    )
    parser.add_argument("--count", type=int, default=300, help="records to read (default 300)")
    parser.add_argument(
        "--timeout", type=float, default=15.0, help="give up reading after this many seconds"
    )
    parser.add_argument(
        "--model",
        help="model name when no field names it (default: from the topic; with --labels: "
        '"model", to be replaced by the predictions\' model name)',
    )
    parser.add_argument(
        "--write",
        type=Path,
        metavar="FILE",
        help="also write the [mapping] (--labels: [labels_mapping])",
    )
    add_config_arguments(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from streamproc.contracts.inference import infer, with_wire_format
    from streamproc.contracts.label_inference import infer_labels

    if args.count < 1:
        raise UsageError("--count must be at least 1")
    config = config_from_args(args)
    keys, values = sample(
        {**config.kafka.connection_settings()}, args.topic, args.count, args.timeout
    )
    if not values:
        raise UsageError(f"no records read from {args.topic!r} within {args.timeout:g} s")
    wire = _wire_format(values, args, config)
    notes: list[str] = []
    if wire is None:
        decoded = [_json(v) for v in values]
        framed = sum(type(schema_id_of(v)) is int for v in values)
        if framed:
            notes.append(f"{framed} values look like the Confluent wire format, the rest JSON")
        elif args.schema_registry_url:
            notes.append("--schema-registry-url unused: the values are plain JSON")
    else:
        decoded, keys, notes = _decode_wire(values, keys, args.topic, *wire)
    if args.labels:  # the topic's name says nothing of the model the labels judge
        proposal = infer_labels(decoded, keys, model=args.model, now_s=time.time())
    else:
        model = args.model or _model_name(args.topic)
        proposal = infer(decoded, keys, model=model, now_s=time.time())
        if wire is not None:
            with_wire_format(proposal, wire.format, wire.url)
            if config.mapping.schema_registry:
                notes.append("keep the [mapping.schema_registry] settings of your config")
    proposal.notes[:0] = notes
    console = Console(file=sys.stdout, width=max(Console().width, 100))
    _print(console, proposal, args, config.kafka.bootstrap_servers)
    return 0


def _json(value: bytes | None) -> Any:
    try:
        return orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError:
        return None


def _wire_format(
    values: Sequence[bytes | None], args: argparse.Namespace, config: MonitorConfig
) -> WireSample | None:
    """The wire format of the sample when most values are in the Confluent wire format,
    else None; UsageError when they cannot be decoded here. The format is the registry's
    type of their writer schemas."""
    ids = Counter(sid for v in values if type(sid := schema_id_of(v)) is int)
    wired, present = sum(ids.values()), sum(v is not None for v in values)
    if not ids or 2 * wired < present:
        return None
    seen = ", ".join(str(i) for i in sorted(ids))
    what = (
        f"{wired} of the {len(values)} values sampled from {args.topic!r} are in the "
        f"Confluent wire format (magic byte 0, schema id{'s' if len(ids) > 1 else ''} {seen})"
    )
    if args.labels:
        raise UsageError(f"{what}: the labels stage reads label records as JSON only")
    # a JSON [mapping] takes no STREAMPROC_SCHEMA_REGISTRY_* settings (config.py), but the
    # sample needs them before any format is known: the same variables, read the same way
    env = client_settings_from_env(os.environ) if config.mapping.format == "json" else {}
    env_url = str(env.pop("url", ""))
    url = args.schema_registry_url or config.mapping.schema_registry_url or env_url
    if not url:
        raise UsageError(
            f"{what}: decoding them needs their schema registry: pass "
            "--schema-registry-url URL (or set [mapping] schema_registry_url in --config)"
        )
    settings = {**config.mapping.schema_registry, **env}
    client = _registry_client(url, settings)
    formats: dict[int, str] = {}
    unknown: list[str] = []
    for sid in sorted(ids):
        schema_type = _schema_type(client, url, sid, unknown)
        if schema_type is not None:
            formats[sid] = _FORMAT_OF.get(schema_type.upper(), schema_type)
    if not formats:
        raise UsageError(f"{what}, but the registry {url} has none of them: {'; '.join(unknown)}")
    found = set(formats.values())
    if len(found) > 1 or not found <= set(_FORMAT_OF.values()):
        raise UsageError(f"{what} of several or unknown schema types: {formats}")
    return WireSample(found.pop(), url, client, settings)


def _registry_client(url: str, settings: dict[str, Any]) -> Any:
    from streamproc.contracts.registry import WireSettings

    try:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        config = WireSettings("avro", url, settings).client_config()
        return SchemaRegistryClient.new_client(config)
    except ImportError as exc:
        raise UsageError(
            f"decoding the wire format needs the registry extra: pip install "
            f"'streamproc[registry]' ({exc})"
        ) from exc
    except ValueError as exc:  # a setting the client refuses
        raise UsageError(f"schema registry {url}: {exc}") from exc


def _schema_type(client: Any, url: str, sid: int, unknown: list[str]) -> str | None:
    """The registry's type of schema ``sid`` (``AVRO``, ``PROTOBUF``, ``JSON``); None (and
    why, in ``unknown``) when the registry lacks it; UsageError when it cannot be asked."""
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    try:
        schema = client.get_schema(sid)
    except SchemaRegistryError as exc:
        if 400 <= exc.http_status_code < 500 and exc.http_status_code not in (401, 403):
            unknown.append(f"schema id {sid}: {exc.error_message}")
            return None
        raise UsageError(f"schema registry {url}: {exc}") from None
    except Exception as exc:  # transport errors (httpx), a proxy's page, ...
        raise UsageError(
            f"schema registry {url} unreachable: {type(exc).__name__}: {exc}"
        ) from None
    return str(schema.schema_type or "AVRO")


def _decode_wire(
    values: Sequence[bytes | None],
    keys: Sequence[bytes | None],
    topic: str,
    fmt: str,
    url: str,
    client: Any,
    settings: dict[str, Any],
) -> tuple[list[Any], list[bytes | None], list[str]]:
    """The decoded records (the worker's decoder), their keys, and notes on the rest."""
    from streamproc.contracts.registry import WireDecoder, WireSettings

    decoder = WireDecoder(WireSettings(fmt, url, settings), client=client)
    out = decoder.decode(values, topic)
    ids = sorted(set(out.schema_ids))
    notes = [
        f"values in the Confluent wire format ({fmt}, schema id{'s' if len(ids) > 1 else ''} "
        f"{', '.join(map(str, ids))}), decoded through {url}"
    ]
    reasons = Counter(r.reason for r in out.rejects)
    for reason, n in sorted(reasons.items()):
        detail = next(r.detail for r in out.rejects if r.reason == reason)
        notes.append(f"{n} sampled values would be dead-lettered as {reason} ({detail})")
    if out.unavailable:
        notes.append(f"{len(out.unavailable)} values not decoded: the registry went away")
    decoded = [orjson.loads(v) for v in out.values]
    return decoded, [keys[int(i)] for i in out.positions], notes


def sample(
    settings: dict[str, str], topic: str, count: int, timeout_s: float
) -> tuple[list[bytes | None], list[bytes | None]]:
    """(keys, values) of up to ``count`` records of ``topic``, earliest first."""
    from confluent_kafka import Consumer, KafkaError

    consumer = Consumer(
        {
            **settings,
            "group.id": f"streamproc-attach-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
        }
    )
    keys: list[bytes | None] = []
    values: list[bytes | None] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout_s
        while len(values) < count and time.monotonic() < deadline:
            for msg in consumer.consume(min(500, count - len(values)), timeout=0.5):
                err = msg.error()
                if err is None:
                    keys.append(msg.key())
                    values.append(msg.value())
                elif err.code() != KafkaError._PARTITION_EOF:
                    raise UsageError(f"reading {topic!r}: {err.str()}")
    finally:
        consumer.close()
    return keys[:count], values[:count]


def _model_name(topic: str) -> str:
    name = topic.rsplit(".", 1)[-1] if topic.endswith(".predictions") else topic
    return name.removesuffix("-predictions").removesuffix("_predictions") or "model"


def _print(console: Any, proposal: Any, args: argparse.Namespace, bootstrap: str) -> None:
    from rich.table import Table

    table = Table(title=f"{args.topic}: {proposal.records} records sampled")
    for column in ("field", "types", "present", "distinct", "example", "looks like"):
        table.add_column(column, overflow="fold")
    n = max(proposal.records - proposal.not_objects, 1)
    for g in proposal.fields:
        role = f"{g.role} ({g.detail})" if g.detail else g.role
        types = "/".join(sorted(g.types)) + (" +null" if g.nulls else "")
        table.add_row(g.pointer, types, f"{g.present / n:.0%}", str(g.distinct), g.example, role)
    console.print(table)
    if proposal.not_objects:
        console.print(f"{proposal.not_objects} values were not JSON objects (dead-lettered).")
    for note in proposal.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    text = proposal.toml()
    if args.write:
        args.write.write_text(text, encoding="utf-8")
    what = f"[{proposal.section}]"
    written = f" (written to {args.write}):" if args.write else ":"
    console.print(f"\nProposed {what}{written}", markup=False, highlight=False)
    console.print(text, markup=False, highlight=False)
    if args.labels:
        _print_labels_command(console, args, bootstrap)
    else:
        _print_commands(console, args, bootstrap)


def _print_run(console: Any, bootstrap: str, topics: list[str], config: str) -> None:
    """``Run:`` and the ``streamproc worker`` command of ``topics`` (its topic flags)."""
    command = ["streamproc", "worker", "--bootstrap-servers", bootstrap, *topics]
    command += ["--config", config, "--reference", "REFERENCE.profile"]
    console.print("Run:", markup=False)
    _print_command(console, command)


def _print_command(console: Any, command: list[str]) -> None:
    console.print("  " + shlex.join(command), markup=False, highlight=False, soft_wrap=True)


def _print_labels_command(console: Any, args: argparse.Namespace, bootstrap: str) -> None:
    predictions = args.predictions_topic or "PREDICTIONS_TOPIC"
    topics = ["--predictions-topic", predictions, "--labels-topic", args.topic]
    _print_run(console, bootstrap, topics, str(args.write) if args.write else "labels.toml")
    console.print(
        "(one config holds the predictions topic's [mapping], if it needs one, and this "
        "[labels_mapping]; the labels meet their predictions by (model, request_id))",
        markup=False,
    )


def _print_commands(console: Any, args: argparse.Namespace, bootstrap: str) -> None:
    config = str(args.write) if args.write else "mapping.toml"
    _print_run(console, bootstrap, ["--predictions-topic", args.topic], config)
    console.print(
        "(REFERENCE.profile: a reference profile of the model's features, see `streamproc "
        "reference build`; a first start reads from [kafka] start_from, default 1h ago)",
        markup=False,
    )
    reference = [
        "streamproc",
        "reference",
        "build",
        "--model",
        args.model or _model_name(args.topic),
        "--from-topic",
        args.topic,
        "--from",
        "7d ago",
        "--to",
        "1d ago",
        "--mapping",
        config,
        "--bootstrap-servers",
        bootstrap,
        "-o",
        "REFERENCE.profile",
    ]
    console.print(
        "No training set at hand? Take the reference from a period of this topic you trust "
        "(it hides whatever drift that period already had):",
        markup=False,
    )
    _print_command(console, reference)
