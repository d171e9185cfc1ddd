"""``streamproc drift``: compare current data (or a profile) with a reference profile."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from streamproc.core.drift import compare_profiles
from streamproc.core.model_profile import ModelProfile
from streamproc.core.thresholds import DEFAULT_THRESHOLDS
from streamproc.errors import UsageError
from streamproc.offline.drift_output import drift_json, exit_code_for
from streamproc.offline.errors import InputError
from streamproc.offline.profile_io import is_profile_file, load_profile, save_profile
from streamproc.offline.reference import profile_like
from streamproc.offline.render import render_drift_table

EPILOG = """\
The current side is a profile file (detected by its magic bytes) or data files
(CSV, Parquet, JSON Lines) read with the reference's features and kinds; its
prediction and timestamp columns are the ones the reference was built with.

exit codes: 0 no failure (or no --fail-on), 1 the overall status reached
--fail-on, 2 usage or input error (message on stderr).

status per feature: ok, warning, critical, or insufficient_data (fewer valid values
than the minimum sample size). The overall status is the worst feature status.

JSON output (--format json), format_version 1; full description in docs/DRIFT_JSON.md:
  {"format_version": 1, "model": str, "model_version": str,
   "n_reference": int, "n_current": int,          # rows in each profile
   "reference_source": [str], "current_source": [str],
   "status": "ok"|"warning"|"critical"|"insufficient_data",
   "fail_on": null|"warning"|"critical", "failed": bool,
   "drifted_features": [str],                     # warning/critical, worst first
   "features": {NAME: {
       "kind": "numeric"|"categorical"|"boolean",
       "n_reference": int, "n_current": int,      # valid values compared
       "count_reference": int, "count_current": int,
       "null_rate_reference": float, "null_rate_current": float,
       "statistics": {"psi", "ks", "ks_critical_value", "ks_error_bound", "js",
                      "wasserstein", "mean_shift", "out_of_range_share", "chi2",
                      "chi2_pvalue", "chi2_dof", "new_category_share",
                      "distinct_ratio", "null_rate_ratio", ...: float|null},
       "status": str,
       "breaches": [{"statistic", "value", "threshold", "severity"}],
       "evidence": [...], "top_new_categories": [[str, int]]}}}
  The model's outputs appear as features "__prediction__" / "__predicted_label__".

example:
  streamproc drift --reference fraud.profile --current today.parquet --fail-on critical
"""


def register(subparsers: Any) -> None:
    """Add ``drift``."""
    p = subparsers.add_parser(
        "drift",
        help="compare current data or a profile with a reference profile",
        description="Compare current data (or a profile) with a reference profile.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--reference", required=True, metavar="PROFILE", help="reference profile")
    p.add_argument(
        "--current",
        required=True,
        action="append",
        metavar="FILE_OR_PROFILE",
        help="current data file(s) or one profile; repeat for several data files",
    )
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument(
        "--fail-on",
        choices=("warning", "critical"),
        help="exit 1 when the overall status is at least this severe",
    )
    p.add_argument(
        "--save-current",
        metavar="FILE",
        help="also write the profile built from current data files to FILE",
    )
    p.add_argument("--no-progress", action="store_true", help="never show the progress line")
    p.set_defaults(func=run_drift)


def _current_profile(args: argparse.Namespace, reference: ModelProfile) -> ModelProfile:
    paths: list[str] = args.current
    profiles = [p for p in paths if is_profile_file(p)]
    if profiles:
        if len(paths) > 1:
            raise InputError("give either one current profile or data files, not both")
        current = load_profile(profiles[0])
        if current.model != reference.model:
            print(
                f"streamproc: warning: comparing model {current.model!r} with a reference "
                f"of model {reference.model!r}",
                file=sys.stderr,
            )
        return current
    current = profile_like(reference, paths, show_progress=False if args.no_progress else None)
    if args.save_current:
        save_profile(current, args.save_current)
    return current


def run_drift(args: argparse.Namespace) -> int:
    """Print the drift table or JSON; exit 1 if --fail-on is reached."""
    try:
        reference = load_profile(args.reference)
        current = _current_profile(args, reference)
    except InputError as exc:
        raise UsageError(str(exc)) from exc
    report = compare_profiles(reference, current, DEFAULT_THRESHOLDS)
    doc = drift_json(report, reference, current, fail_on=args.fail_on)
    if args.format == "json":
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(render_drift_table(doc))
    return exit_code_for(report.status, args.fail_on)
