"""`streamproc attach --sample`: look at a topic, propose a ``[mapping]`` and a command.

Reads a few hundred records with a consumer of its own (a random group id, from the
earliest offset, never committing: the topic and its groups are left as they were),
guesses each field (:mod:`streamproc.contracts.inference`), and prints a table of the
guesses, a ``[mapping]`` section and the ``streamproc worker`` command that uses it.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from streamproc.cli.config_args import add_config_arguments, config_from_args
from streamproc.errors import UsageError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "attach",
        help="look at a topic of your own record shape and propose a [mapping] for it",
        description=(
            "Read a sample of a topic (a throwaway consumer group, from the earliest "
            "offset, nothing committed), guess ids, event times, scores, class "
            "probabilities, categorical and numeric features, and print a [mapping] "
            "section and the `streamproc worker` command that uses it."
        ),
    )
    parser.add_argument("--sample", action="store_true", required=True, help="sample the topic")
    parser.add_argument("--topic", required=True, help="the predictions topic")
    parser.add_argument("--count", type=int, default=300, help="records to read (default 300)")
    parser.add_argument(
        "--timeout", type=float, default=15.0, help="give up reading after this many seconds"
    )
    parser.add_argument("--model", help="model name when no field names it (default: topic)")
    parser.add_argument("--write", type=Path, metavar="FILE", help="also write the [mapping]")
    add_config_arguments(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from streamproc.contracts.inference import infer

    if args.count < 1:
        raise UsageError("--count must be at least 1")
    config = config_from_args(args)
    keys, values = sample(
        {**config.kafka.connection_settings()}, args.topic, args.count, args.timeout
    )
    if not values:
        raise UsageError(f"no records read from {args.topic!r} within {args.timeout:g} s")
    decoded = []
    for value in values:
        try:
            decoded.append(orjson.loads(value) if value is not None else None)
        except orjson.JSONDecodeError:
            decoded.append(None)
    model = args.model or _model_name(args.topic)
    proposal = infer(decoded, keys, model=model, now_s=time.time())
    console = Console(file=sys.stdout, width=max(Console().width, 100))
    _print(console, proposal, args, config.kafka.bootstrap_servers)
    return 0


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
        console.print(f"note: {note}")
    text = proposal.toml()
    if args.write:
        args.write.write_text(text, encoding="utf-8")
    console.print("\nProposed mapping" + (f" (written to {args.write}):" if args.write else ":"))
    console.print(text, markup=False, highlight=False)
    config = str(args.write) if args.write else "mapping.toml"
    command = [
        "streamproc",
        "worker",
        "--bootstrap-servers",
        bootstrap,
        "--predictions-topic",
        args.topic,
        "--config",
        config,
        "--reference",
        "REFERENCE.profile",
    ]
    console.print("Run:", markup=False)
    console.print("  " + shlex.join(command), markup=False, highlight=False, soft_wrap=True)
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
    console.print("  " + shlex.join(reference), markup=False, highlight=False, soft_wrap=True)
