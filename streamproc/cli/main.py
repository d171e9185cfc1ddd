"""The `streamproc` command line: one sub-command module per concern.

Each module in ``COMMAND_MODULES`` exposes ``register(subparsers)``, which adds its
sub-command(s) and sets ``func`` (a callable taking the parsed namespace and
returning an exit code) on the parser it adds.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from streamproc import __version__
from streamproc.errors import UsageError

COMMAND_MODULES: tuple[str, ...] = (
    "streamproc.cli.broker_cmd",
    "streamproc.cli.reference_cmd",
    "streamproc.cli.profile_cmd",
    "streamproc.cli.drift_cmd",
    "streamproc.cli.worker_cmd",
    "streamproc.cli.demo_cmd",
    "streamproc.cli.alerts_cmd",
    "streamproc.cli.inspect_cmd",
    "streamproc.cli.top_cmd",
    "streamproc.cli.attach_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="streamproc",
        description="Kafka-native monitoring for ML models in production.",
    )
    parser.add_argument("--version", action="version", version=f"streamproc {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 ok, 1 check failed, 2 usage/input error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code: int = args.func(args)
    except UsageError as exc:
        print(f"streamproc: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
