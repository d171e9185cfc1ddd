"""`streamproc broker start|stop|status`: a local Apache Kafka broker for development."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from streamproc.broker.jars import KAFKA_VERSION, BrokerSetupError
from streamproc.broker.local import LocalBroker, default_data_dir
from streamproc.errors import UsageError


def register(subparsers: Any) -> None:
    """Add the ``broker`` command group."""
    broker = subparsers.add_parser(
        "broker",
        help="run a local single-node Apache Kafka broker (KRaft) for development",
        description=(
            f"A single-node Apache Kafka {KAFKA_VERSION} broker in KRaft mode, run from the "
            "official jars (fetched once with Maven from Maven Central into ~/.cache/streamproc)."
        ),
    )
    actions = broker.add_subparsers(dest="broker_command", metavar="ACTION", required=True)
    data_dir_help = f"broker state, logs and data (default: {default_data_dir()})"

    start = actions.add_parser("start", help="start the broker and wait until it is ready")
    start.add_argument("--port", type=int, default=9092, help="client port (default: 9092)")
    start.add_argument("--data-dir", type=Path, default=None, help=data_dir_help)
    start.add_argument(
        "--foreground", action="store_true", help="run in this terminal; Ctrl-C stops it"
    )
    start.set_defaults(func=_start)

    stop = actions.add_parser("stop", help="stop the broker started from --data-dir")
    stop.add_argument("--data-dir", type=Path, default=None, help=data_dir_help)
    stop.set_defaults(func=_stop)

    status = actions.add_parser("status", help="show whether the broker runs, where, and its log")
    status.add_argument("--data-dir", type=Path, default=None, help=data_dir_help)
    status.set_defaults(func=_status)


def _start(args: argparse.Namespace) -> int:
    broker = LocalBroker(args.data_dir)
    running = broker.info()
    if running is not None:
        print(f"already running: {running.bootstrap_servers} (pid {running.pid})")
        return 0
    began = time.monotonic()
    try:
        info = broker.start(args.port, foreground=args.foreground)
    except BrokerSetupError as exc:
        raise UsageError(str(exc)) from exc
    print(
        f"Kafka {info.version} ready at {info.bootstrap_servers} in {time.monotonic() - began:.1f}s"
    )
    print(f"  pid {info.pid}, data {info.data_dir}")
    print(f"  log {info.log_file}")
    print(f"  export KAFKA_BOOTSTRAP_SERVERS={info.bootstrap_servers}")
    return 0


def _stop(args: argparse.Namespace) -> int:
    broker = LocalBroker(args.data_dir)
    if broker.stop():
        print(f"stopped the broker in {broker.data_dir}")
    else:
        print(f"no broker running from {broker.data_dir}")
    return 0


def _status(args: argparse.Namespace) -> int:
    broker = LocalBroker(args.data_dir)
    info = broker.info()
    if info is None:
        print(f"stopped (data dir {broker.data_dir})")
        print(f"  log {broker.log_file}")
        return 3
    uptime = time.time() - info.started_at
    print(
        f"running at {info.bootstrap_servers} "
        f"(pid {info.pid}, Kafka {info.version}, up {uptime:.0f}s)"
    )
    print(f"  data {info.data_dir}")
    print(f"  log {info.log_file}")
    return 0
