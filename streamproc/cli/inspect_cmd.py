"""`streamproc inspect windows|alerts`: what the workers have checkpointed.

Reads the compacted state topic (``<[topics] profiles>-state``) read_committed from the
beginning to its end offsets, keeps the latest record per key, and prints the windows or
the alert lifecycle states in it. The read is :mod:`streamproc.monitor.state_reader`;
everything from the decoded snapshot to the printed text is pure (:func:`document`,
:func:`table`, :func:`plain_text`), so it is tested without a broker.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from typing import Any

import orjson

from streamproc.checks.alerts import rfc3339
from streamproc.cli.config_args import config_from_args
from streamproc.config import MonitorConfig, parse_duration_ms
from streamproc.errors import UsageError
from streamproc.monitor.state_reader import (
    AlertRow,
    LatestRecords,
    StateSnapshot,
    WindowRow,
)

KINDS = ("windows", "alerts")
STATE_SUFFIX = "-state"

WINDOWS_JSON = """\
--format json prints one JSON document:

  {"state_topic": str, "model": str | null (the --model filter),
   "windows": [{"model": str, "model_version": str,
                "start": str, "end": str (RFC 3339 UTC), "start_ms": int, "end_ms": int,
                "rows": int, "final": bool (closed and finally evaluated),
                "applied": {"<topic>:<partition>": last source offset merged},
                "partition": int (of the state topic)}, ...],
   "purged": int (windows purged past retention: tombstones),
   "unreadable": [str (records that did not decode)]}
"""
ALERTS_JSON = """\
--format json prints one JSON document:

  {"state_topic": str, "model": str | null (the --model filter),
   "alerts": [{"fingerprint": str, "model": str, "model_version": str, "check": str,
               "feature": str | null (null: a model-level check),
               "status": "firing" | "resolved", "severity": str | null,
               "started_at", "resolved_at", "last_window_end": str | null (RFC 3339 UTC),
               "partition": int (of the state topic)}, ...],
   "unreadable": [str (records that did not decode)]}

An alert state whose started_at is null never fired (its status is "resolved").
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="show the windows and alert states the workers checkpointed",
        description=(
            "Read the compacted state topic (<[topics] profiles>-state) from the "
            "beginning to its end, read_committed, and print the latest state of every "
            "window or alert."
        ),
    )
    sub = parser.add_subparsers(dest="inspect_command", metavar="WHAT")
    parser.set_defaults(func=lambda _args: _no_subcommand(parser))
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", metavar="M", help="only this model")
    common.add_argument(
        "--format",
        choices=("table", "json"),
        default="table",
        help="table (default; a rich table on a terminal, aligned text otherwise) or json",
    )
    common.add_argument("--state-topic", metavar="TOPIC", help="default: <[topics] profiles>-state")
    common.add_argument(
        "--timeout",
        default="60s",
        metavar="DURATION",
        help="give up reading the topic after this long (default: 60s)",
    )
    group = common.add_argument_group("configuration")
    group.add_argument("--config", metavar="FILE", help="TOML file (default: $STREAMPROC_CONFIG)")
    group.add_argument("--bootstrap-servers", metavar="HOST:PORT[,...]")
    for kind, what, shape in (
        ("windows", "model, version, start/end, rows, finality, applied offsets", WINDOWS_JSON),
        ("alerts", "model, version, check, feature, status, severity, times", ALERTS_JSON),
    ):
        p = sub.add_parser(
            kind,
            parents=[common],
            help=f"one line per {kind[:-1]}: {what}",
            description=f"One line per checkpointed {kind[:-1]}:\n{what}.",
            epilog=shape,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(func=_run, kind=kind)


def _no_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


# ----------------------------------------------------------------------------- pure


def _time(ms: int | None) -> str | None:
    return rfc3339(ms) if ms is not None else None


def window_dict(w: WindowRow) -> dict[str, Any]:
    return {
        "model": w.model,
        "model_version": w.model_version,
        "start": rfc3339(w.start_ms),
        "end": rfc3339(w.end_ms),
        "start_ms": w.start_ms,
        "end_ms": w.end_ms,
        "rows": w.rows,
        "final": w.final,
        "applied": dict(w.applied),
        "partition": w.partition,
    }


def alert_dict(a: AlertRow) -> dict[str, Any]:
    return {
        "fingerprint": a.fingerprint,
        "model": a.model,
        "model_version": a.model_version,
        "check": a.check,
        "feature": a.feature,
        "status": a.status,
        "severity": a.severity,
        "started_at": _time(a.started_at_ms),
        "resolved_at": _time(a.resolved_at_ms),
        "last_window_end": _time(a.last_window_end_ms),
        "partition": a.partition,
    }


def document(
    kind: str, snapshot: StateSnapshot, state_topic: str, model: str | None = None
) -> dict[str, Any]:
    """The ``--format json`` document (shapes: :data:`WINDOWS_JSON`, :data:`ALERTS_JSON`)."""
    doc: dict[str, Any] = {"state_topic": state_topic, "model": model}
    if kind == "windows":
        doc["windows"] = [
            window_dict(w) for w in snapshot.windows if model is None or w.model == model
        ]
        doc["purged"] = sum(1 for m, _v, _s in snapshot.purged if model is None or m == model)
    else:
        doc["alerts"] = [
            alert_dict(a) for a in snapshot.alerts if model is None or a.model == model
        ]
    doc["unreadable"] = list(snapshot.unreadable)
    return doc


WINDOW_COLUMNS = ("MODEL", "VERSION", "START", "END", "ROWS", "STATE", "APPLIED")
ALERT_COLUMNS = (
    "MODEL",
    "VERSION",
    "CHECK",
    "FEATURE",
    "STATUS",
    "SEVERITY",
    "STARTED",
    "RESOLVED",
)


def _applied_text(applied: dict[str, int], profiles_topic: str) -> str:
    """``{"streamproc-profiles:0": 41}`` → ``p0=41`` (another topic keeps its name)."""
    parts = []
    for source, offset in applied.items():
        topic, _, partition = source.rpartition(":")
        where = f"p{partition}" if topic == profiles_topic else source
        parts.append(f"{where}={offset}")
    return " ".join(parts) or "-"


def table(doc: dict[str, Any]) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """(column names, rows of text) for the table of a :func:`document`."""
    topic = str(doc["state_topic"]).removesuffix(STATE_SUFFIX)
    if "windows" in doc:
        return WINDOW_COLUMNS, [
            (
                w["model"],
                w["model_version"],
                w["start"],
                w["end"],
                f"{w['rows']:,}",
                "final" if w["final"] else "open",
                _applied_text(w["applied"], topic),
            )
            for w in doc["windows"]
        ]
    return ALERT_COLUMNS, [
        (
            a["model"],
            a["model_version"],
            a["check"],
            a["feature"] or "-",
            a["status"] if a["started_at"] is not None else "never fired",
            a["severity"] or "-",
            a["started_at"] or "-",
            a["resolved_at"] or "-",
        )
        for a in doc["alerts"]
    ]


def _caption(doc: dict[str, Any]) -> str:
    """``"3 windows of model credit in streamproc-profiles-state (1 purged)"``."""
    if "windows" in doc:
        n = len(doc["windows"])
        what = "window" if n == 1 else "windows"
    else:
        n = len(doc["alerts"])
        what = "alert state" if n == 1 else "alert states"
    of = f" of model {doc['model']}" if doc["model"] is not None else ""
    text = f"{n} {what}{of} in {doc['state_topic']}"
    if doc.get("purged"):
        text += f" ({doc['purged']} purged)"
    return text


def plain_text(doc: dict[str, Any]) -> str:
    """The table as aligned plain text (columns separated by two spaces), then a caption
    line; just the caption when there is nothing to show."""
    columns, rows = table(doc)
    if not rows:
        return _caption(doc) + "\n"
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    numeric = {"ROWS"}
    lines = []
    for cells in [columns, *rows]:
        out = [
            cell.rjust(w) if col in numeric else cell.ljust(w)
            for col, cell, w in zip(columns, cells, widths, strict=True)
        ]
        lines.append("  ".join(out).rstrip())
    lines.append(_caption(doc))
    return "\n".join(lines) + "\n"


def _print_rich(doc: dict[str, Any], console: Any = None) -> bool:
    """Print ``doc`` as a rich table (on ``console``, default: stdout's); False when rich
    is not installed. Cells too wide for the terminal fold onto more lines, never cut."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a dependency
        return False
    columns, rows = table(doc)
    t = Table(caption=_caption(doc), show_edge=False)
    for c in columns:
        t.add_column(c, justify="right" if c == "ROWS" else "left", overflow="fold")
    for r in rows:
        t.add_row(*r)
    (console or Console()).print(t)
    return True


def render(doc: dict[str, Any], fmt: str, *, terminal: bool) -> str | None:
    """The text to print for ``fmt``; None when a rich table should be printed instead."""
    if fmt == "json":
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"
    if terminal:
        return None
    return plain_text(doc)


# ----------------------------------------------------------------------------- I/O


def state_topic(config: MonitorConfig, override: str | None = None) -> str:
    return override or f"{config.topics.profiles}{STATE_SUFFIX}"


def read_state(config: MonitorConfig, topic: str, timeout_s: float) -> LatestRecords:
    """The latest records of ``topic``; a missing topic, an unreachable broker or a read
    that does not reach the end in time is a :class:`UsageError`."""
    from confluent_kafka import Consumer, KafkaException

    from streamproc.monitor.state_reader import (
        StateReadTimeout,
        read_latest,
        reader_settings,
        topic_partitions,
    )

    servers = config.kafka.bootstrap_servers
    settings = reader_settings(
        config.kafka.connection_settings(),
        f"{config.kafka.group_id}-inspect-{uuid.uuid4().hex[:8]}",
    )
    # librdkafka's own log lines (a retry per connection attempt) would bury the one-line
    # error this command ends with; an explicit client setting still wins.
    settings = {"log_level": 0, **settings}
    try:
        consumer = Consumer(settings)
    except KafkaException as exc:
        raise UsageError(f"bad Kafka client settings: {exc}") from None
    try:
        partitions = topic_partitions(consumer, topic, timeout_s=min(timeout_s, 30.0))
        if partitions is None:
            raise UsageError(
                f"state topic {topic!r} not found at {servers} (the worker creates it; "
                "check [topics] profiles, --state-topic or --bootstrap-servers)"
            )
        return read_latest(consumer, topic, partitions, timeout_s=timeout_s)
    except KafkaException as exc:
        raise UsageError(f"cannot read {topic} from {servers}: {exc}") from None
    except StateReadTimeout as exc:
        raise UsageError(f"{exc} (raise --timeout)") from None
    finally:
        consumer.close()


def _run(args: argparse.Namespace) -> int:
    from streamproc.monitor.state_reader import decode_state

    try:
        timeout_s = parse_duration_ms(args.timeout) / 1000
    except ValueError as exc:
        raise UsageError(f"--timeout: {exc}") from None
    if timeout_s <= 0:
        raise UsageError("--timeout must be positive")
    config = config_from_args(args)
    topic = state_topic(config, args.state_topic)
    snapshot = decode_state(read_state(config, topic, timeout_s))
    for line in snapshot.unreadable:
        print(f"streamproc: warning: unreadable state record {line}", file=sys.stderr)
    doc = document(args.kind, snapshot, topic, args.model)
    text = render(doc, args.format, terminal=sys.stdout.isatty())
    if text is None and not _print_rich(doc):
        text = plain_text(doc)  # pragma: no cover - rich is a dependency
    if text is not None:
        sys.stdout.write(text)
    return 0
