"""`streamproc worker`: attach to a prediction-log topic and monitor the models in it."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from streamproc.cli.config_args import add_config_arguments, config_from_args
from streamproc.config import parse_duration_ms
from streamproc.errors import UsageError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="monitor prediction logs on Kafka: windows, drift and quality checks, alerts",
        description=(
            "Consume the predictions topic, sketch every feature per event-time window, "
            "compare windows with the reference profiles, publish alerts to the alerts "
            "topic and metrics on /metrics. Start more workers with the same --group-id "
            "to scale out."
        ),
    )
    parser.add_argument(
        "--reference",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="reference profile (repeat for several models); adds to [references] in --config",
    )
    parser.add_argument("--predictions-topic", help="input topic (default: predictions)")
    parser.add_argument("--alerts-topic", help="output topic (default: streamproc-alerts)")
    parser.add_argument("--window", help="event-time window size, e.g. 5m (default: 5m)")
    parser.add_argument(
        "--labels-topic",
        nargs="?",
        const="",
        metavar="TOPIC",
        help="consume label events from TOPIC (alone: [topics] labels) and compute realized "
        "performance per window; without it no labels stage runs",
    )
    parser.add_argument(
        "--start-from",
        metavar="WHEN",
        help="first start of the group (partitions without a committed offset): earliest, "
        "latest, an RFC 3339 time or '<duration> ago' (default: [kafka] start_from, '1h ago')",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    add_config_arguments(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from streamproc.monitor.authorization import principal_of, refusal_of
    from streamproc.monitor.references import ReferenceSet
    from streamproc.monitor.worker import Worker

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = config_from_args(args)
    topics = config.topics
    if args.predictions_topic:
        topics = dataclasses.replace(topics, predictions=args.predictions_topic)
    if args.alerts_topic:
        topics = dataclasses.replace(topics, alerts=args.alerts_topic)
    windows = config.windows
    if args.window:
        windows = dataclasses.replace(windows, size_ms=parse_duration_ms(args.window))
    kafka = config.kafka
    if args.start_from:
        kafka = dataclasses.replace(kafka, start_from=args.start_from)
    config = dataclasses.replace(config, topics=topics, windows=windows, kafka=kafka)
    paths = [*config.references.values(), *args.reference]
    if not paths:
        raise UsageError("no reference profile: pass --reference FILE (see `reference build`)")
    references = ReferenceSet.load(paths)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    labels_topic = None
    if args.labels_topic is not None:
        labels_topic = args.labels_topic or config.topics.labels
        topics = dataclasses.replace(topics, labels=labels_topic)
        config = dataclasses.replace(config, topics=topics)
    worker = Worker(config, references, labels_topic=labels_topic)
    logging.getLogger("streamproc").info(
        "worker: %s → alerts on %s, metrics on :%d, models %s",
        topics.predictions,
        topics.alerts,
        config.metrics.port,
        sorted(references.by_model),
    )
    try:
        worker.run(stop)
    except Exception as exc:
        refused = refusal_of(exc)
        if refused is None:
            raise
        # one line that says who was refused what (the README lists the ACLs)
        print(refused.line(principal_of(config.kafka.client)), file=sys.stderr, flush=True)
        return 2
    if worker.abandoned:
        # stages blocked inside librdkafka (Kafka unreachable) would hold up interpreter
        # shutdown: leave now, as kill -9 would, with nothing uncommitted kept
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)
    return 0
