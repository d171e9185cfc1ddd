"""`streamproc alerts forward`: post the alerts topic to Prometheus Alertmanager."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from typing import Any

from streamproc.config import load_config, parse_duration_ms
from streamproc.errors import UsageError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "alerts",
        help="work with the alerts topic (forward it to Alertmanager)",
        description="Commands for the alerts topic.",
    )
    sub = parser.add_subparsers(dest="alerts_command", metavar="COMMAND")
    parser.set_defaults(func=lambda _args: _no_subcommand(parser))
    forward = sub.add_parser(
        "forward",
        help="post every alert to Prometheus Alertmanager (POST /api/v2/alerts)",
        description=(
            "Consume the alerts topic in a consumer group and post each alert to "
            "Alertmanager's v2 API; a resolved alert posts its endsAt, so Alertmanager "
            "resolves it. Offsets are committed only after Alertmanager accepted the "
            "batch: while it is unreachable the forwarder logs, retries with backoff and "
            "holds the batch, and a restart re-reads whatever was not posted."
        ),
    )
    forward.add_argument(
        "--alertmanager",
        required=True,
        metavar="URL",
        help="Alertmanager base URL, e.g. http://alertmanager:9093",
    )
    forward.add_argument("--alerts-topic", help="topic to read (default: [topics] alerts)")
    group = forward.add_argument_group("configuration")
    group.add_argument("--config", metavar="FILE", help="TOML file (default: $STREAMPROC_CONFIG)")
    group.add_argument("--bootstrap-servers", metavar="HOST:PORT[,...]")
    group.add_argument(
        "--group-id",
        help="consumer group (default: streamproc-alerts-forwarder; not the worker's)",
    )
    forward.add_argument(
        "--firing-ttl",
        metavar="DURATION",
        help="endsAt of a firing alert = emitted_at + this (default: 3 × the re-notify "
        "interval, 3h); must exceed the re-notify interval",
    )
    forward.add_argument(
        "--batch-size", type=int, default=500, help="alerts per post at most (default: 500)"
    )
    forward.add_argument(
        "--metrics-port",
        type=int,
        help="serve the forwarder's Prometheus metrics on this port (default: off; "
        "$STREAMPROC_METRICS_PORT)",
    )
    forward.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    forward.set_defaults(func=_forward)


def _no_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _forward(args: argparse.Namespace) -> int:
    from prometheus_client import start_http_server

    from streamproc.alerting import Forwarder, ForwarderSettings, alerts_endpoint
    from streamproc.alerting.forwarder import DEFAULT_GROUP_ID

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    alerts_endpoint(args.alertmanager)  # a bad URL is a usage error, before anything starts
    config = load_config(args.config)
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    renotify_ms = config.lifecycle.renotify_ms
    ttl_ms = 3 * renotify_ms
    if args.firing_ttl:
        try:
            ttl_ms = parse_duration_ms(args.firing_ttl)
        except ValueError as exc:
            raise UsageError(f"--firing-ttl: {exc}") from None
    if ttl_ms <= renotify_ms:
        raise UsageError(
            f"--firing-ttl ({ttl_ms} ms) must exceed the re-notify interval ({renotify_ms} ms), "
            "or Alertmanager resolves firing alerts between re-sends"
        )
    settings = ForwarderSettings(
        alertmanager_url=args.alertmanager,
        bootstrap_servers=args.bootstrap_servers or config.kafka.bootstrap_servers,
        alerts_topic=args.alerts_topic or config.topics.alerts,
        group_id=args.group_id or DEFAULT_GROUP_ID,
        kafka_client=config.kafka.client,
        batch_size=args.batch_size,
        firing_ttl_ms=ttl_ms,
    )
    forwarder = Forwarder(settings)
    port = args.metrics_port
    if port is None and "STREAMPROC_METRICS_PORT" in os.environ:
        port = config.metrics.port
    server = None
    if port is not None:
        server, _thread = start_http_server(port, config.metrics.host, forwarder.metrics.registry)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        forwarder.run(stop)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
    return 0
