"""The configuration flags a sub-command shares: ``--config`` and the essential overrides.

CLI flags are the top of the precedence order of :mod:`streamproc.config` (defaults <
TOML file < environment < flags); the config layer itself knows nothing of argparse.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping

from streamproc.config import MonitorConfig, load_config


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` and the essential overrides to a sub-command's parser."""
    group = parser.add_argument_group("configuration")
    group.add_argument("--config", metavar="FILE", help="TOML file (default: $STREAMPROC_CONFIG)")
    group.add_argument("--bootstrap-servers", metavar="HOST:PORT[,...]")
    group.add_argument("--group-id")
    group.add_argument(
        "--instance-id",
        help="this worker's slot, e.g. its pod name: static membership, fast restarts",
    )
    group.add_argument("--metrics-port", type=int)
    group.add_argument(
        "--replay",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="evaluate by event time as fast as input allows (backfill)",
    )


def config_from_args(
    args: argparse.Namespace, *, env: Mapping[str, str] | None = None
) -> MonitorConfig:
    """Load file and environment, then apply the CLI flags set in ``args``."""
    config = load_config(getattr(args, "config", None), env=env)
    kafka = config.kafka
    if getattr(args, "bootstrap_servers", None):
        kafka = dataclasses.replace(kafka, bootstrap_servers=args.bootstrap_servers)
    if getattr(args, "group_id", None):
        kafka = dataclasses.replace(kafka, group_id=args.group_id)
    if getattr(args, "instance_id", None):
        kafka = dataclasses.replace(kafka, instance_id=args.instance_id)
    metrics = config.metrics
    if getattr(args, "metrics_port", None) is not None:
        metrics = dataclasses.replace(metrics, port=args.metrics_port)
    evaluation = config.evaluation
    if getattr(args, "replay", None) is not None:
        evaluation = dataclasses.replace(evaluation, replay=args.replay)
    return dataclasses.replace(config, kafka=kafka, metrics=metrics, evaluation=evaluation)
