"""`streamproc demo`: a local broker, a worker and a live model with a scripted incident."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from streamproc.errors import UsageError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="watch streamproc catch a scripted incident live (local Kafka, ~4 minutes)",
        description=(
            "Start a local Kafka broker (unless --bootstrap-servers or "
            "$KAFKA_BOOTSTRAP_SERVERS names one), build a reference profile for a "
            "synthetic credit-risk model, run a worker and produce live prediction traffic "
            "and delayed labels through a scripted incident: normal traffic, then a concept "
            "drift (inputs unchanged, the outcomes change: accuracy falls), then drift, a "
            "null spike and a new category, then a stall, then recovery. On a terminal a "
            "live view shows "
            "throughput, alerts and the incident timeline in place; otherwise alerts print "
            "as lines as they fire and resolve; /metrics serves the worker's Prometheus "
            "metrics. Ctrl-C stops it cleanly."
        ),
    )
    parser.add_argument(
        "--duration",
        type=float,
        metavar="SECONDS",
        help="stop after this many seconds (default: run the script once, then exit)",
    )
    parser.add_argument(
        "--rate", type=float, default=1000.0, help="events per second (default: 1000)"
    )
    parser.add_argument(
        "--bootstrap-servers",
        metavar="HOST:PORT[,...]",
        help="use this Kafka instead of starting one (default: $KAFKA_BOOTSTRAP_SERVERS)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=9464,
        help="Prometheus /metrics port on localhost (default: 9464; 0 picks a free one)",
    )
    parser.add_argument(
        "--fast",
        action="store_true",
        help="compressed script (10 s windows, staleness after 6 s; about 80 s in all)",
    )
    parser.add_argument(
        "--reference-dir",
        type=Path,
        metavar="DIR",
        help="write the reference profile here (default: a new temporary directory)",
    )
    parser.add_argument(
        "--plain",
        action="store_true",
        help="print plain status and alert lines even on a terminal (the default when "
        "stdout is not a terminal; on one, a live view updates in place)",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from streamproc.demo.display import Console
    from streamproc.demo.run import DemoOptions, run_demo
    from streamproc.demo.script import FAST, STANDARD

    if args.rate <= 0 or args.rate > 100_000:
        raise UsageError(f"--rate must be in (0, 100000] events/s, got {args.rate:g}")
    if args.duration is not None and args.duration <= 0:
        raise UsageError(f"--duration must be positive, got {args.duration:g}")
    if not 0 <= args.metrics_port <= 65535:
        raise UsageError(f"--metrics-port must be a TCP port, got {args.metrics_port}")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    options = DemoOptions(
        duration_s=args.duration,
        rate=args.rate,
        bootstrap_servers=args.bootstrap_servers,
        metrics_port=args.metrics_port,
        script=FAST if args.fast else STANDARD,
        reference_dir=args.reference_dir,
    )
    stop = threading.Event()
    previous = _on_interrupt(stop)
    console = Console(sys.stdout)
    if console.tty and not args.plain:
        from streamproc.demo.terminal import LiveConsole

        console = LiveConsole(sys.stdout)
    try:
        run_demo(options, console, stop)
    finally:
        console.finish()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _on_interrupt(stop: threading.Event) -> dict[signal.Signals, Any]:
    """First Ctrl-C (or SIGTERM) ends the demo cleanly; a second one interrupts."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous: dict[signal.Signals, Any] = {}

    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        print("\nstopping… (Ctrl-C again to interrupt)", file=sys.stderr, flush=True)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    return previous
