"""False-alarm simulation: windows drawn from the reference distribution itself.

Every window is a fresh sample of the same distributions the reference was built from, so
every breach is a false alarm. For each window size (100 … 1e6 records, fewer repetitions
at large sizes) and feature shape the script runs the pure window evaluation the worker
uses (:func:`streamproc.checks.evaluate.evaluate_window`, default policy, windows built
against the reference like the streaming deltas) and prints the share of windows in which
each (check, shape) breached, as ``warning+critical %``, plus the projected false alerts
per model per week at 100 features (docs/STATISTICS.md, *False-alarm budget*).

Shapes (features of one model, reference ``--ref-rows`` rows; ``long_tail`` is a second
model whose reference has 5,000 rows, as in issue #14):

normal N(0, 1) · heavy_tail Student-t df = 3 · lognormal LogN(0, 1) · discrete Poisson(3) ·
near_constant 99.5% exactly 0, the rest U(0, 1) · one_class categorical, 99% one value ·
sparse_cat 300 Zipf(1.1) categories · long_tail 2,000 Zipf(1.5) values, 5,000 reference
rows · outputs: score Beta(2, 5), predicted label 98.5% "legit".

Run: ``make sim-false-alarms`` or ``.venv/bin/python benchmarks/sim_false_alarms.py
[--scale 1.0] [--sizes 100,500] [--out FILE.json]``. ``--scale`` multiplies every
repetition count; ``--sizes`` runs some of the window sizes (to run them in parallel).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from streamproc.checks.evaluate import evaluate_window  # noqa: E402
from streamproc.core.kinds import FeatureKind  # noqa: E402
from streamproc.core.model_profile import ModelProfile  # noqa: E402

SIZES = (100, 500, 1_000, 10_000, 100_000, 1_000_000)
REPS = {100: 500, 500: 20_000, 1_000: 8_000, 10_000: 1_500, 100_000: 150, 1_000_000: 12}
"""Windows per size (× ``--scale``)."""

UNITS_PER_WEEK = 7 * 86_400 // 5 + 7 * 86_400 // 300
"""Counted evaluations per (check, feature) a week: one non-overlapping 5-s provisional
unit every 5 s (live) plus one closed 5-minute window every 5 minutes."""
FEATURES = 100


def _zipf_probs(k: int, s: float) -> np.ndarray:
    w = 1.0 / np.arange(1, k + 1, dtype=np.float64) ** s
    return w / w.sum()


SPARSE_P = _zipf_probs(300, 1.1)
LONG_P = _zipf_probs(2000, 1.5)
SPARSE_CATS = np.array([f"s{i}" for i in range(300)], dtype=object)
LONG_CATS = np.array([f"v{i}" for i in range(2000)], dtype=object)
ONE_CATS = np.array(["a", "b", "c", "d", "e"], dtype=object)
ONE_P = np.array([0.99, 0.004, 0.003, 0.002, 0.001])

SHAPES = {
    "normal": FeatureKind.NUMERIC,
    "heavy_tail": FeatureKind.NUMERIC,
    "lognormal": FeatureKind.NUMERIC,
    "discrete": FeatureKind.NUMERIC,
    "near_constant": FeatureKind.NUMERIC,
    "one_class": FeatureKind.CATEGORICAL,
    "sparse_cat": FeatureKind.CATEGORICAL,
}


def draw(rng: np.random.Generator, n: int) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """(feature columns, scores, predicted labels) of ``n`` rows."""
    near = np.where(rng.random(n) < 0.995, 0.0, rng.random(n))
    cols: dict[str, Any] = {
        "normal": rng.standard_normal(n),
        "heavy_tail": rng.standard_t(3, n),
        "lognormal": rng.lognormal(0.0, 1.0, n),
        "discrete": rng.poisson(3.0, n).astype(np.float64),
        "near_constant": near,
        "one_class": ONE_CATS[rng.choice(5, n, p=ONE_P)],
        "sparse_cat": SPARSE_CATS[rng.choice(300, n, p=SPARSE_P)],
    }
    scores = rng.beta(2.0, 5.0, n)
    labels = np.where(rng.random(n) < 0.985, "legit", "fraud").astype(object)
    return cols, scores, labels


def draw_long(rng: np.random.Generator, n: int) -> dict[str, Any]:
    return {"long_tail": LONG_CATS[rng.choice(2000, n, p=LONG_P)]}


def window(reference: ModelProfile, cols: dict[str, Any], **outputs: Any) -> ModelProfile:
    kinds = {n: p.kind for n, p in reference.features.items()}
    cur = ModelProfile.new(
        reference.model,
        reference.model_version,
        kinds,
        bin_edges=reference.psi_edges(),
        joint_features=reference.joint_features(),
        joint_bounds=reference.joint_bounds(),
    )
    step = 10_000  # streaming deltas are small: build the window from chunks
    n = len(next(iter(cols.values())))
    for lo in range(0, n, step):
        part = {k: v[lo : lo + step] for k, v in cols.items()}
        extra = {k: v[lo : lo + step] for k, v in outputs.items()}
        cur.update_columns(part, **extra)
    return cur


def evaluate(reference: ModelProfile, current: ModelProfile) -> list[tuple[str, str, str]]:
    """(check, feature, severity) of every breach."""
    out = []
    for r in evaluate_window(reference, current, None, window_start_ms=0, window_end_ms=1):
        if r.breached:
            out.append((r.check, r.feature or "-", r.severity or "warning"))
    return out


def run(scale: float, seed: int, ref_rows: int, sizes: tuple[int, ...] = SIZES) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    cols, scores, labels = draw(rng, ref_rows)
    ref = ModelProfile.build_reference(
        "sim", "1", cols, feature_kinds=SHAPES, predictions=scores, predicted_labels=labels
    )
    ref_long = ModelProfile.build_reference("sim_long", "1", draw_long(rng, 5000))
    rows: dict[str, dict[str, Any]] = {}
    for size in sizes:
        reps = max(2, round(REPS[size] * scale))
        counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        evaluated: dict[tuple[str, str], int] = defaultdict(int)
        began = time.perf_counter()
        for _ in range(reps):
            c, s, lab = draw(rng, size)
            results = evaluate_window(
                ref,
                window(ref, c, predictions=s, predicted_labels=lab),
                None,
                window_start_ms=0,
                window_end_ms=1,
            )
            results += evaluate_window(
                ref_long,
                window(ref_long, draw_long(rng, size)),
                None,
                window_start_ms=0,
                window_end_ms=1,
            )
            for r in results:
                key = (r.check, r.feature or "-")
                evaluated[key] += 1
                if r.breached:
                    counts[key][1 if r.severity == "critical" else 0] += 1
        rows[str(size)] = {
            "windows": reps,
            "seconds": round(time.perf_counter() - began, 1),
            "checks": {
                f"{k[0]}|{k[1]}": {
                    "evaluated": n,
                    "warning": counts[k][0],
                    "critical": counts[k][1],
                }
                for k, n in sorted(evaluated.items())
            },
        }
        print(f"size {size:>9,}: {reps} windows in {rows[str(size)]['seconds']} s", flush=True)
    return {"seed": seed, "ref_rows": ref_rows, "scale": scale, "sizes": rows}


def alerts_per_week(p: float, m: int = 2, n: int = 3) -> float:
    """Expected false alerts a week for one (check, feature) breaching independently with
    probability ``p`` per counted evaluation under "M of N": a unit fires when it breaches
    and at least M − 1 of the previous N − 1 did, ≈ C(N−1, M−1)·p^M for small p."""
    fire = p * sum(math.comb(n - 1, j) * p**j * (1 - p) ** (n - 1 - j) for j in range(m - 1, n))
    return UNITS_PER_WEEK * fire


def table(doc: dict[str, Any]) -> str:
    keys = sorted({k for s in doc["sizes"].values() for k in s["checks"]})
    head = "| check | feature | " + " | ".join(f"{int(s):,}" for s in doc["sizes"]) + " |"
    lines = [head, "|" + " --- |" * (2 + len(doc["sizes"]))]
    for key in keys:
        check, feature = key.split("|")
        cells = []
        for s in doc["sizes"].values():
            c = s["checks"].get(key)
            if c is None:
                cells.append("–")
                continue
            w, cr, n = c["warning"], c["critical"], c["evaluated"]
            cells.append("0" if w + cr == 0 else f"{100 * w / n:.2g}+{100 * cr / n:.2g}%")
        lines.append(f"| {check} | {feature} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def budget(doc: dict[str, Any], size: str = "500") -> str:
    """Projected false alerts a week per check at 100 features, from the ``size`` row:
    per-unit breach rate p (or its 95% upper bound 3/n when none was seen)."""
    if size not in doc["sizes"]:
        return f"(no {size}-record windows in this run: no projection)"
    s = doc["sizes"][size]
    per_check: dict[str, float] = defaultdict(float)
    for key, c in s["checks"].items():
        check, feature = key.split("|")
        n, k = c["evaluated"], c["warning"] + c["critical"]
        p = k / n if k else 3.0 / n
        copies = 1 if feature == "-" or feature.startswith("__") else FEATURES / len(SHAPES)
        per_check[check] = max(per_check[check], 0.0) + copies * alerts_per_week(p)
    lines = [
        "| check | alerts / week at 100 features (upper bound when none seen) |",
        "| --- | --- |",
    ]
    lines += [f"| {c} | {v:.3g} |" for c, v in sorted(per_check.items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every repetition count")
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--ref-rows", type=int, default=100_000)
    ap.add_argument("--out", help="also write the raw counts as JSON to this file")
    ap.add_argument(
        "--sizes",
        default=",".join(map(str, SIZES)),
        help="comma-separated window sizes (of %(default)s), e.g. to run them in parallel",
    )
    args = ap.parse_args(argv)
    sizes = tuple(int(x) for x in args.sizes.split(","))
    if not set(sizes) <= set(SIZES):
        ap.error(f"--sizes: choose from {SIZES}")
    began = time.perf_counter()
    doc = run(args.scale, args.seed, args.ref_rows, sizes)
    doc["seconds"] = round(time.perf_counter() - began, 1)
    if args.out:
        Path(args.out).write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    print()
    print("False-alarm rate per window (warning+critical), by window size:")
    print(table(doc))
    print()
    print(budget(doc))
    print(f"\n{doc['seconds']} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
