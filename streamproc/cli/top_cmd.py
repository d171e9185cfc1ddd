"""`streamproc top`: a live view of a running deployment, from its state and alerts topics.

Every refresh reads the compacted state topic (as ``streamproc inspect`` does: windows
and alert lifecycle states, read_committed, latest per key) and the tail of the alerts
topic (the latest message of each alert, for its summary), and redraws
:func:`streamproc.cli.top_view.render`; ``--once`` prints
:func:`streamproc.cli.top_view.plain_text` once and exits. The view is pure
(:mod:`streamproc.cli.top_view`); this module reads.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from streamproc.cli.config_args import config_from_args
from streamproc.cli.inspect_cmd import read_state, state_topic
from streamproc.config import MonitorConfig, parse_duration_ms
from streamproc.errors import UsageError

ALERTS_TAIL = 2000
"""Messages read back from the end of each alerts-topic partition."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "top",
        help="live view of a running deployment: models, windows, drift, alerts firing",
        description=(
            "Read the workers' state topic (<[topics] profiles>-state) and the alerts "
            "topic every few seconds and show, per model, its latest windows (start, rows, "
            "open or final), the drift of each feature (against --reference when given, "
            "else the alert states) and the alerts firing. --once prints it once as plain "
            "text (for scripts)."
        ),
    )
    parser.add_argument("--model", metavar="M", help="only this model")
    parser.add_argument(
        "--reference",
        action="append",
        default=[],
        type=Path,
        metavar="PROFILE",
        help="reference profile (repeatable; adds to [references] in --config): show each "
        "window's drift per feature against it",
    )
    parser.add_argument(
        "--windows", type=int, default=3, metavar="N", help="latest windows per model (default 3)"
    )
    parser.add_argument(
        "--interval", default="5s", metavar="DURATION", help="refresh every (default: 5s)"
    )
    parser.add_argument("--once", action="store_true", help="print once as plain text and exit")
    parser.add_argument("--state-topic", metavar="TOPIC", help="default: <[topics] profiles>-state")
    parser.add_argument(
        "--timeout",
        default="60s",
        metavar="DURATION",
        help="give up reading a topic after this long (default: 60s)",
    )
    group = parser.add_argument_group("configuration")
    group.add_argument("--config", metavar="FILE", help="TOML file (default: $STREAMPROC_CONFIG)")
    group.add_argument("--bootstrap-servers", metavar="HOST:PORT[,...]")
    parser.set_defaults(func=_run)


def read_alerts_tail(
    config: MonitorConfig, topic: str, timeout_s: float, tail: int = ALERTS_TAIL
) -> dict[str, dict[str, Any]]:
    """The latest message of each alert (by fingerprint) among the last ``tail`` of each
    partition of ``topic``; empty when the topic does not exist (yet)."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    from streamproc.monitor.state_reader import reader_settings, topic_partitions, watermarks

    settings = reader_settings(
        config.kafka.connection_settings(),
        f"{config.kafka.group_id}-top-{uuid.uuid4().hex[:8]}",
    )
    consumer = Consumer({"log_level": 0, **settings})
    latest: dict[str, dict[str, Any]] = {}
    try:
        partitions = topic_partitions(consumer, topic, timeout_s=min(timeout_s, 30.0)) or []
        ends: dict[int, int] = {}
        starts = []
        for p in partitions:
            lo, hi = watermarks(consumer, TopicPartition(topic, p))
            if hi > lo:
                ends[p] = hi
                starts.append(TopicPartition(topic, p, max(lo, hi - tail)))
        if not starts:
            return latest
        consumer.assign(starts)
        done: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(done) < len(ends) and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=500, timeout=0.5):
                if msg.error() or not msg.value():
                    continue
                try:
                    alert = orjson.loads(msg.value() or b"")
                    latest[str(alert["fingerprint"])] = alert
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    pass
            for p, end in ends.items():
                pos = consumer.position([TopicPartition(topic, p)])
                if pos and pos[0].offset >= end:
                    done.add(p)
    except KafkaException as exc:
        raise UsageError(f"cannot read {topic}: {exc}") from None
    finally:
        consumer.close()
    return latest


def snapshot_view(args: argparse.Namespace, config: MonitorConfig, timeout_s: float) -> Any:
    """Read both topics once and build the view."""
    from streamproc.cli.top_view import build
    from streamproc.monitor.references import ReferenceSet
    from streamproc.monitor.state import WindowKey, WindowState
    from streamproc.monitor.state_reader import WindowRow, decode_state
    from streamproc.monitor.store import window_record_key

    topic = state_topic(config, args.state_topic)
    latest = read_state(config, topic, timeout_s)
    paths = [*config.references.values(), *args.reference]
    references = ReferenceSet.load(paths) if paths else None

    def profile_of(w: WindowRow) -> Any:
        record = latest.get(window_record_key(WindowKey(w.model, w.model_version, w.start_ms)))
        return WindowState.from_bytes(record[1]).profile if record and record[1] else None

    return build(
        decode_state(latest),
        state_topic=topic,
        alerts_topic=config.topics.alerts,
        profile_of=profile_of,
        reference_of=references.get if references is not None else lambda _m, _v: None,
        thresholds_of=lambda m: config.evaluation_policy(m).thresholds,
        latest_alerts=read_alerts_tail(config, config.topics.alerts, timeout_s),
        model=args.model,
        windows=args.windows,
    )


def _duration(text: str, flag: str) -> float:
    try:
        seconds = parse_duration_ms(text) / 1000
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None
    if seconds <= 0:
        raise UsageError(f"{flag} must be positive")
    return seconds


def _run(args: argparse.Namespace) -> int:
    from streamproc.cli.top_view import plain_text, render

    timeout_s = _duration(args.timeout, "--timeout")
    interval_s = _duration(args.interval, "--interval")
    if args.windows < 0:
        raise UsageError("--windows must be 0 or more")
    config = config_from_args(args)
    if args.once:
        sys.stdout.write(plain_text(snapshot_view(args, config, timeout_s)))
        return 0
    from rich.console import Console
    from rich.live import Live

    console = Console()
    if not console.is_terminal:  # a pipe: one plain snapshot per refresh
        while True:
            sys.stdout.write(plain_text(snapshot_view(args, config, timeout_s)) + "\n")
            sys.stdout.flush()
            time.sleep(interval_s)
    with Live(console=console, auto_refresh=False, screen=False) as live:
        try:
            while True:
                view = snapshot_view(args, config, timeout_s)
                stamp = time.strftime("%H:%M:%S") + f"  every {interval_s:g} s, Ctrl-C quits"
                live.update(render(view, stamp), refresh=True)
                time.sleep(interval_s)
        except KeyboardInterrupt:
            return 0
