"""``streamproc reference build``: a reference profile from training data files."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from streamproc.cli.reference_topic import add_topic_arguments, run_from_topic
from streamproc.errors import UsageError
from streamproc.offline.errors import InputError
from streamproc.offline.profile_io import save_profile
from streamproc.offline.reference import build_reference
from streamproc.offline.render import fmt_bytes, fmt_int

EPILOG = """\
Reads CSV (.csv, .tsv, optionally .gz/.zst), Parquet (.parquet) and JSON Lines
(.jsonl, .ndjson, .json) in batches, so files larger than memory work. Feature
kinds come from the first file's column types: strings are categorical, booleans
boolean, numbers numeric; --categorical overrides (e.g. integer codes). The id,
timestamp, label and prediction columns are not features. A numeric prediction
column is profiled as the model's score, a string/boolean one as its predicted
label. A progress line is shown on stderr when it is a terminal.

example:
  streamproc reference build --model fraud --model-version 3 \\
      --data train.parquet --prediction-col score --id-col txn_id --out fraud.profile

Without a training set, --from-topic profiles a period of the live stream itself,
decoded as the worker decodes it (the [mapping] of --config or --mapping):
  streamproc reference build --model fraud --from-topic predictions \\
      --from 2024-05-01T00:00:00Z --to 2024-05-08T00:00:00Z -o fraud.profile
A reference taken from production hides the drift that was already there: it says
so on stderr, with the rows it took and the records it skipped.
"""


def register(subparsers: Any) -> None:
    """Add ``reference build``."""
    ref = subparsers.add_parser("reference", help="build reference profiles from data files")
    sub = ref.add_subparsers(dest="reference_command", metavar="SUBCOMMAND")
    build = sub.add_parser(
        "build",
        help="profile training data into a reference profile file",
        description="Profile training data into a reference profile file.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    build.add_argument("--model", required=True, help="model name")
    build.add_argument(
        "--model-version",
        default=None,
        help="model version (default: empty; with --from-topic, the one version in the period)",
    )
    build.add_argument(
        "--data",
        action="append",
        metavar="FILE",
        help="data file; repeat for several files with the same columns",
    )
    build.add_argument("-o", "--out", required=True, metavar="FILE", help="profile file to write")
    build.add_argument("--prediction-col", metavar="COL", help="column holding the prediction")
    build.add_argument(
        "--label-col",
        metavar="COL",
        help="ground-truth column (not a feature): stores the reference performance",
    )
    build.add_argument(
        "--positive-class",
        metavar="V",
        help="binary task: the positive class (the score is its probability)",
    )
    build.add_argument("--timestamp-col", metavar="COL", help="event-time column")
    build.add_argument("--id-col", metavar="COL", help="row id column (not a feature)")
    build.add_argument(
        "--features", action="append", metavar="A,B", help="profile only these columns"
    )
    build.add_argument(
        "--categorical", action="append", metavar="C,D", help="treat these columns as categorical"
    )
    build.add_argument("--exclude", action="append", metavar="X", help="leave these columns out")
    build.add_argument("--no-progress", action="store_true", help="never show the progress line")
    add_topic_arguments(build)
    build.set_defaults(func=run_build)
    ref.set_defaults(func=lambda _args: _missing_subcommand(ref))


def _missing_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_usage(sys.stderr)
    raise UsageError("name a sub-command: 'streamproc reference build --help'")


def run_build(args: argparse.Namespace) -> int:
    """Build the profile, write it, print a one-line summary."""
    start = time.perf_counter()
    if getattr(args, "from_topic", None):
        if args.data:
            raise UsageError("give --data FILE or --from-topic TOPIC, not both")
        return run_from_topic(args)
    if not args.data:
        raise UsageError("name the training data: --data FILE (or --from-topic TOPIC)")
    try:
        profile = build_reference(
            args.data,
            model=args.model,
            model_version=args.model_version or "",
            features=args.features,
            categorical=args.categorical,
            exclude=args.exclude,
            prediction_col=args.prediction_col,
            label_col=args.label_col,
            timestamp_col=args.timestamp_col,
            id_col=args.id_col,
            positive_class=args.positive_class,
            show_progress=False if args.no_progress else None,
        )
        size = save_profile(profile, args.out)
    except InputError as exc:
        raise UsageError(str(exc)) from exc
    elapsed = time.perf_counter() - start
    rate = profile.row_count / elapsed if elapsed > 0 else 0.0
    print(
        f"wrote {args.out}: model {profile.model} {profile.model_version}".rstrip()
        + f", {fmt_int(profile.row_count)} rows, {len(profile.features)} features, "
        f"{fmt_bytes(size)}, {elapsed:.1f} s ({fmt_int(rate)} rows/s)"
    )
    return 0
