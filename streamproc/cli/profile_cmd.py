"""``streamproc profile show``: a readable summary of a profile file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from streamproc.errors import UsageError
from streamproc.offline.errors import InputError
from streamproc.offline.profile_io import load_profile
from streamproc.offline.render import profile_to_dict, render_profile


def register(subparsers: Any) -> None:
    """Add ``profile show``."""
    prof = subparsers.add_parser("profile", help="inspect profile files")
    sub = prof.add_subparsers(dest="profile_command", metavar="SUBCOMMAND")
    show = sub.add_parser(
        "show",
        help="summarize a profile: model metadata and one line per feature",
        description=(
            "Summarize a profile: model metadata, serialized size, and per feature its "
            "kind, count, null %, invalid/non-finite count, mean, quantiles p1/p50/p99 "
            "(numeric) or top categories (categorical, boolean) and distinct count "
            "('~' marks an HLL estimate)."
        ),
    )
    show.add_argument("file", metavar="FILE", help="profile file")
    show.add_argument("--format", choices=("table", "json"), default="table")
    show.set_defaults(func=run_show)
    prof.set_defaults(func=lambda _args: _missing_subcommand(prof))


def _missing_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_usage(sys.stderr)
    raise UsageError("name a sub-command: 'streamproc profile show FILE'")


def run_show(args: argparse.Namespace) -> int:
    """Print the summary."""
    try:
        profile = load_profile(args.file)
    except InputError as exc:
        raise UsageError(str(exc)) from exc
    size = Path(args.file).stat().st_size
    if args.format == "json":
        text = orjson.dumps(
            profile_to_dict(profile, size),
            option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY,
        ).decode()
        print(text)
    else:
        print(render_profile(profile, size, args.file))
    return 0
