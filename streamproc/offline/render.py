"""Plain-text rendering: aligned tables and the ``profile show`` summary."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

from streamproc.core.feature_profile import FeatureProfile
from streamproc.core.kinds import FeatureKind
from streamproc.core.model_profile import ModelProfile
from streamproc.core.small_sample import LONG_TAIL_UNSEEN, good_turing_unseen


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """Columns padded to their widest cell; indices in ``right`` are right-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        out = [
            c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells)
        ]
        return "  ".join(out).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def fmt_num(x: float | None, digits: int = 4) -> str:
    """Compact number: '-' for missing, general format with ``digits`` significant digits."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}g}"


def fmt_int(n: int | float | None) -> str:
    """Integer with thousands separators ('-' for missing)."""
    return "-" if n is None else f"{round(n):,}"


def fmt_pct(x: float | None) -> str:
    """Share as a percentage with two decimals."""
    return "-" if x is None else f"{100 * x:.2f}%"


def fmt_bytes(n: int) -> str:
    """Bytes with a binary unit: '617,917 B (603.4 KiB)'."""
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n:,} B ({n / scale:.1f} {unit})"
    return f"{n:,} B"


def fmt_time(epoch_s: float | None) -> str:
    """Epoch seconds as ISO 8601 UTC."""
    if epoch_s is None:
        return "-"
    stamp = dt.datetime.fromtimestamp(epoch_s, tz=dt.UTC)
    return stamp.isoformat(timespec="seconds").replace("+00:00", "Z")


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def feature_summary(prof: FeatureProfile, top_n: int = 3) -> str:
    """Quantiles p1/p50/p99 for numeric features, top categories with shares otherwise."""
    if prof.kind is FeatureKind.NUMERIC:
        p1, p50, p99 = prof.quantiles([0.01, 0.5, 0.99]).tolist()
        return f"p1 {fmt_num(p1)}  p50 {fmt_num(p50)}  p99 {fmt_num(p99)}"
    total = max(prof.valid_count, 1)
    tops = prof.top_categories(top_n)
    parts = [f"{_shorten(c, 24)} {100 * n / total:.1f}%" for c, n in tops]
    return ", ".join(parts) if parts else "-"


def feature_rows(features: dict[str, FeatureProfile]) -> list[list[str]]:
    """One table row per feature for ``profile show``."""
    rows = []
    for name, prof in features.items():
        distinct = prof.distinct_estimate()
        exact = prof.kind is FeatureKind.BOOLEAN or (
            prof.categories is not None and prof.categories.is_exact
        )
        rows.append(
            [
                name,
                prof.kind.value,
                fmt_int(prof.count),
                fmt_pct(prof.null_rate),
                fmt_int(prof.invalid_count + prof.nonfinite_count),
                fmt_num(prof.mean),
                feature_summary(prof),
                "-"
                if distinct is None
                else fmt_int(distinct)
                if exact
                else f"~{fmt_int(distinct)}",
            ]
        )
    return rows


def long_tails(profile: ModelProfile) -> dict[str, float]:
    """Categorical features whose reference is a sparse long tail, with their Good–Turing
    unseen mass (:data:`~streamproc.core.small_sample.LONG_TAIL_UNSEEN`)."""
    out = {}
    for name, prof in profile.features.items():
        cats = prof.categories
        if prof.kind is not FeatureKind.CATEGORICAL or cats is None or not cats.is_exact:
            continue
        unseen, _ = good_turing_unseen(list(cats.counts()[0].values()))
        if cats.total > 0 and unseen >= LONG_TAIL_UNSEEN:
            out[name] = unseen
    return out


def render_profile(profile: ModelProfile, size_bytes: int, path: str = "") -> str:
    """The ``streamproc profile show`` text: model metadata, then one row per feature."""
    meta = profile.metadata
    source = meta.get("source")
    sources = ", ".join(source) if isinstance(source, list) else str(source or "-")
    head = [
        ("profile", path or "-"),
        ("model", f"{profile.model}  version {profile.model_version or '-'}"),
        ("role", str(meta.get("role", "-"))),
        ("source", sources),
        ("rows", fmt_int(profile.row_count)),
        ("event time", f"{fmt_time(profile.event_time_min)} → {fmt_time(profile.event_time_max)}"),
        ("created", fmt_time(meta.get("created_at"))),
        ("size", fmt_bytes(size_bytes)),
        ("features", f"{len(profile.features)} ({_kind_counts(profile)})"),
        ("sketch k", str(profile.k)),
    ]
    for key in ("prediction_col", "label_col", "timestamp_col", "id_col"):
        if meta.get(key):
            head.append((key.replace("_col", " column"), str(meta[key])))
    if meta.get("skipped_columns"):
        head.append(("skipped", ", ".join(meta["skipped_columns"])))
    width = max(len(k) for k, _ in head)
    lines = [f"{k.ljust(width)}  {v}" for k, v in head]
    headers = ["feature", "kind", "count", "null %", "invalid", "mean", "summary", "distinct"]
    right = {2, 3, 4, 5, 7}
    lines += ["", format_table(headers, feature_rows(profile.features), right)]
    outputs = {
        "prediction (score)": profile.prediction,
        "predicted label": profile.predicted_label,
        "latency ms": profile.latency_ms,
    }
    present = {k: v for k, v in outputs.items() if v is not None}
    if present:
        lines += ["", format_table(headers, feature_rows(present), right)]
    for name, unseen in long_tails(profile).items():
        lines.append(
            f"note: {name} is a sparse long tail: {100 * unseen:.1f}% of its reference values "
            "occur once (Good–Turing), so windows will show about that share of new "
            "categories; cardinality alerts only on a share significantly above it"
        )
    return "\n".join(lines)


def _kind_counts(profile: ModelProfile) -> str:
    counts: dict[str, int] = {}
    for prof in profile.features.values():
        counts[prof.kind.value] = counts.get(prof.kind.value, 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))


def profile_to_dict(profile: ModelProfile, size_bytes: int) -> dict[str, Any]:
    """JSON-able summary for ``profile show --format json``."""
    return {
        "model": profile.model,
        "model_version": profile.model_version,
        "row_count": profile.row_count,
        "event_time_min": profile.event_time_min,
        "event_time_max": profile.event_time_max,
        "serialized_size": size_bytes,
        "metadata": profile.metadata,
        "features": {n: p.to_dict() for n, p in profile.features.items()},
        "prediction": profile.prediction.to_dict() if profile.prediction else None,
        "predicted_label": profile.predicted_label.to_dict() if profile.predicted_label else None,
        "sparse_long_tail": long_tails(profile),
    }


_STATUS_ORDER = {"critical": 0, "warning": 1, "insufficient_data": 2, "ok": 3}
_OUTPUT_NAMES = {"__prediction__": "(prediction)", "__predicted_label__": "(predicted label)"}


def _why(feature: dict[str, Any]) -> str:
    parts = []
    for b in feature.get("breaches", []):
        op = ">" if b["value"] is None or b["value"] > b["threshold"] else "="
        parts.append(f"{b['statistic']} {fmt_num(b['value'], 3)}{op}{fmt_num(b['threshold'], 3)}")
    return ", ".join(parts)


def render_drift_table(report: dict[str, Any]) -> str:
    """The ``streamproc drift`` table from a drift report dict (``drift_json``'s shape).

    Rows are ordered most severe first, then by name; model outputs come last.
    """
    headers = [
        "feature",
        "kind",
        "n_ref",
        "n_cur",
        "PSI",
        "KS",
        "JS",
        "chi2 p",
        "new-cat",
        "null ref→cur",
        "status",
        "breaches",
    ]
    feats: dict[str, dict[str, Any]] = report["features"]

    def order(item: tuple[str, dict[str, Any]]) -> tuple[int, int, str]:
        name, f = item
        return (name in _OUTPUT_NAMES, _STATUS_ORDER.get(f["status"], 9), name)

    rows = []
    for name, f in sorted(feats.items(), key=order):
        st = f["statistics"]
        null = f"{fmt_pct(f['null_rate_reference'])}→{fmt_pct(f['null_rate_current'])}"
        new_cat = st.get("new_category_share")
        rows.append(
            [
                _OUTPUT_NAMES.get(name, name),
                f["kind"],
                fmt_int(f["n_reference"]),
                fmt_int(f["n_current"]),
                fmt_num(st.get("psi"), 3),
                fmt_num(st.get("ks"), 3),
                fmt_num(st.get("js"), 3),
                fmt_num(st.get("chi2_pvalue"), 3),
                "-" if new_cat is None else fmt_pct(new_cat),
                null,
                f["status"].upper() if f["status"] in ("warning", "critical") else f["status"],
                _why(f),
            ]
        )
    table = format_table(headers, rows, right={2, 3, 4, 5, 6, 7, 8, 9})
    drifted = report["drifted_features"]
    head = (
        f"model {report['model']} {report.get('model_version') or ''}".rstrip()
        + f": reference {fmt_int(report['n_reference'])} rows, "
        f"current {fmt_int(report['n_current'])} rows"
    )
    verdict = f"status: {report['status']}"
    if drifted:
        verdict += f" — {len(drifted)} drifted: {', '.join(drifted)}"
    else:
        verdict += " — no drift"
    return "\n".join([head, "", table, "", verdict])
