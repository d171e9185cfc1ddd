"""``streamproc drift``: compare current data (or a profile) with a reference profile.

Verdicts are the worker's: the current profile is judged by
:func:`~streamproc.checks.evaluate.evaluate_window` — the same checks, gates,
small-sample rules and thresholds — with the policy ``--config`` gives the model
(``MonitorConfig.evaluation_policy``, per-model and per-feature ``[thresholds]``). A
feature's status is the worst severity of its checks (``feature_drift``,
``prediction_drift``, ``cardinality``, ``range``, ``completeness``, ``schema``; "ok" when
evaluated clean, "insufficient_data" when none had enough values); the overall status
also counts the model-level checks (``dataset_drift``, ``degenerate_output``). The
statistics are those of ``compare_profiles``; every verdict is listed under ``checks``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from streamproc.checks.evaluate import evaluate_window
from streamproc.checks.result import CheckResult
from streamproc.cli.config_args import add_config_arguments, config_from_args
from streamproc.core.drift import compare_profiles
from streamproc.core.model_profile import ModelProfile
from streamproc.errors import UsageError
from streamproc.offline.drift_output import STATUS_RANK, drift_json, exit_code_for
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
    add_config_arguments(p)
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
    policy = config_from_args(args).evaluation_policy(reference.model)
    report = compare_profiles(reference, current, policy.thresholds)
    doc = drift_json(report, reference, current, fail_on=args.fail_on)
    start, end = _span_ms(current)
    results = evaluate_window(
        reference, current, None, policy, window_start_ms=start, window_end_ms=end
    )
    apply_verdicts(doc, results)
    if args.format == "json":
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(render_drift_table(doc))
    return exit_code_for(doc["status"], args.fail_on)


def _span_ms(current: ModelProfile) -> tuple[int, int]:
    """The current data's event-time span, epoch ms (0, 1 without event times)."""
    lo, hi = current.event_time_min, current.event_time_max
    if lo is None or hi is None:
        return 0, 1
    return int(lo * 1000), int(hi * 1000) + 1


def apply_verdicts(doc: dict[str, Any], results: list[CheckResult]) -> None:
    """Replace the statuses and breaches of ``doc`` with the checks' verdicts."""
    features: dict[str, Any] = doc["features"]
    status = {name: "insufficient_data" for name in features}
    breaches: dict[str, list[dict[str, Any]]] = {name: [] for name in features}
    overall = "insufficient_data"
    for r in results:
        sev = r.severity if r.breached else "ok"
        sev = sev or "warning"
        if STATUS_RANK[sev] > STATUS_RANK[overall]:
            overall = sev
        if r.feature not in features:
            continue
        if STATUS_RANK[sev] > STATUS_RANK[status[r.feature]]:
            status[r.feature] = sev
        if r.breached:
            breaches[r.feature].append(
                {
                    "check": r.check,
                    "statistic": r.statistic,
                    "value": r.value,
                    "threshold": r.threshold,
                    "severity": sev,
                }
            )
    for name, feature in features.items():
        feature["status"], feature["breaches"] = status[name], breaches[name]
    bad = [n for n in features if status[n] in ("warning", "critical")]
    bad.sort(key=lambda n: (-STATUS_RANK[status[n]], n))
    doc["status"], doc["drifted_features"] = overall, bad
    fail_on = doc.get("fail_on")
    doc["failed"] = fail_on is not None and STATUS_RANK[overall] >= STATUS_RANK[fail_on]
    doc["checks"] = [
        {
            "check": r.check,
            "feature": r.feature,
            "breached": r.breached,
            "severity": r.severity,
            "statistic": r.statistic,
            "value": r.value,
            "threshold": r.threshold,
            "summary": r.summary,
        }
        for r in results
    ]
