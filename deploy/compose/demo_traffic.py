"""Demo traffic for the Docker Compose stack, from ``streamproc.demo`` (no code of its own).

``streamproc demo`` runs its own worker on run-unique topics; the stack instead runs a
real worker on the ``predictions`` topic, so it needs the demo's two other parts alone:

    python demo_traffic.py reference --out /var/lib/streamproc/reference/credit-risk.profile
    python demo_traffic.py produce --bootstrap-servers kafka:9092 --topic predictions

``reference`` writes the synthetic credit-risk model's reference profile (once: an
existing file is kept). ``produce`` plays the demo's standard script — normal traffic,
the incident (drift, nulls, a new category), a stall, recovery — over and over, until
SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from streamproc.demo.model import MODEL, build_reference
from streamproc.demo.script import STANDARD
from streamproc.demo.traffic import Traffic

log = logging.getLogger("demo_traffic")


def write_reference(out: Path) -> bool:
    """Write the demo model's reference profile to ``out``; False if it already exists."""
    if out.exists():
        return False
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(build_reference().to_bytes())
    tmp.replace(out)  # the worker never sees a half-written file
    return True


def produce(servers: str, topic: str, rate: float, stop: threading.Event) -> int:
    """Play the standard script in a loop until ``stop``; returns the records delivered."""
    delivered = 0
    cycle = 0
    while not stop.is_set():
        cycle += 1
        traffic = Traffic({"bootstrap.servers": servers}, topic, STANDARD, rate)
        done = threading.Event()
        thread = threading.Thread(target=traffic.run, args=(done, time.monotonic()))
        thread.start()
        log.info(
            "script cycle %d: %s (%.0f s) at %g events/s", cycle, topic, STANDARD.seconds, rate
        )
        stop.wait(STANDARD.seconds)
        done.set()
        thread.join()
        delivered += traffic.produced
        if traffic.failed:
            log.warning("%d records failed: %s", traffic.failed, traffic.last_error)
    return delivered


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo_traffic.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ref = sub.add_parser("reference", help=f"write the {MODEL} reference profile")
    ref.add_argument("--out", type=Path, required=True)
    prod = sub.add_parser("produce", help="produce the demo script's traffic, looping")
    prod.add_argument("--bootstrap-servers", default="kafka:9092")
    prod.add_argument("--topic", default="predictions")
    prod.add_argument("--rate", type=float, default=1000.0, help="events/s (default 1000)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.command == "reference":
        wrote = write_reference(args.out)
        log.info("%s %s", "wrote" if wrote else "kept existing", args.out)
        return 0
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    produce(args.bootstrap_servers, args.topic, args.rate, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
