"""Offline benchmark: reference building and drift, streamproc vs whylogs and Evidently.

One command::

    .venv/bin/python benchmarks/bench_offline.py            # 1e6 rows, 3 repeats
    .venv/bin/python benchmarks/bench_offline.py --rows 100000 --repeats 1 --no-peers

It generates (once) 1e6 rows x 25 features with ``benchmarks/gen_data.py`` and a
shifted current set, writes them as Parquet and CSV under ``benchmarks/data/``
(gitignored), then measures, median/min/max over ``--repeats`` runs:

- streamproc ``reference build`` rows/s from Parquet and from CSV, through
  ``streamproc.offline.reference.build_reference`` (the code path of the CLI);
- streamproc ``drift`` for the 25 features from two serialized profiles (load +
  compare), and the comparison alone;
- whylogs ``why.log(pandas_df)`` rows/s on the same reference data (the frame is
  read before the clock starts, so whylogs is not charged for I/O, we are);
- Evidently ``Report([DataDriftPreset()]).run(reference, current)`` on a sample
  (``--evidently-rows``) of both sets.

The peers run in their own venv (``benchmarks/data/.venv-peers``, created from
``benchmarks/requirements-peers.txt``) in a subprocess with a time limit, so they
never touch the project's dependencies. Results are appended to
``benchmarks/RESULTS.md`` as a dated section.

This file is also the peer runner: ``--peer whylogs|evidently`` (used inside the
peers venv) imports only the peer libraries.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
PEERS_VENV = DATA / ".venv-peers"
PEERS_REQ = HERE / "requirements-peers.txt"
RESULTS = HERE / "RESULTS.md"


# ----------------------------------------------------------------------------- timing


def timed(fn: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    """Run ``fn`` ``repeats`` times; return the wall times in seconds and the last result."""
    times: list[float] = []
    result: Any = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def summary(times: list[float]) -> dict[str, float]:
    """Median, min and max of ``times`` (seconds)."""
    return {"median": statistics.median(times), "min": min(times), "max": max(times)}


# ----------------------------------------------------------------------------- peers


def peer_whylogs(path: Path, repeats: int) -> dict[str, Any]:
    """Time ``why.log(df)`` on the Parquet file read into pandas beforehand."""
    import pandas as pd
    import whylogs as why

    df = pd.read_parquet(path)
    times, _ = timed(lambda: why.log(df), repeats)
    return {"rows": len(df), "times_s": times, "version": why.__version__}


def peer_evidently(ref: Path, cur: Path, rows: int, repeats: int) -> dict[str, Any]:
    """Time Evidently's DataDriftPreset report on ``rows``-row samples of both sets."""
    import evidently
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    ref_df = pd.read_parquet(ref)
    cur_df = pd.read_parquet(cur)
    if rows < len(ref_df):
        ref_df = ref_df.sample(rows, random_state=0)
        cur_df = cur_df.sample(rows, random_state=0)

    def run() -> Any:
        return Report([DataDriftPreset()]).run(ref_df, cur_df).dict()

    times, result = timed(run, repeats)
    drifted = []
    for metric in result.get("metrics", []):
        name = metric.get("metric_name", "")
        value = metric.get("value")
        if name.startswith("ValueDrift(") and isinstance(value, int | float):
            drifted.append((name, value))
    return {
        "rows": len(ref_df),
        "times_s": times,
        "version": evidently.__version__,
        "n_value_drift_metrics": len(drifted),
    }


def run_peer_main(args: argparse.Namespace) -> None:
    """Entry point inside the peers venv: print one JSON object."""
    if args.peer == "whylogs":
        out = peer_whylogs(Path(args.ref), args.repeats)
    else:
        out = peer_evidently(Path(args.ref), Path(args.cur), args.evidently_rows, args.repeats)
    import numpy
    import pandas

    out["pandas"] = pandas.__version__
    out["numpy"] = numpy.__version__
    print(json.dumps(out))


def ensure_peers_venv() -> Path:
    """Create/refresh the peers venv from requirements-peers.txt; return its python."""
    python = PEERS_VENV / "bin" / "python"
    stamp = PEERS_VENV / "requirements.stamp"
    wanted = PEERS_REQ.read_text()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"creating peers venv in {PEERS_VENV} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-r", str(PEERS_REQ)],
        check=True,
    )
    stamp.write_text(wanted)
    return python


def run_peer(peer: str, args: argparse.Namespace, ref: Path, cur: Path) -> dict[str, Any]:
    """Run one peer in the peers venv with a time limit; ``{"error": ...}`` on failure."""
    python = ensure_peers_venv()
    cmd = [
        str(python),
        "-W",
        "ignore",
        str(Path(__file__).resolve()),
        "--peer",
        peer,
        "--ref",
        str(ref),
        "--cur",
        str(cur),
        "--repeats",
        str(args.repeats),
        "--evidently-rows",
        str(args.evidently_rows),
    ]
    env = {**os.environ, "WHYLOGS_NO_ANALYTICS": "True", "DO_NOT_TRACK": "1"}
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=args.peer_timeout_s, env=env
        )
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish within {args.peer_timeout_s} s"}
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-3:]
        return {"error": " | ".join(tail)}
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


# ----------------------------------------------------------------------------- ours


def ensure_data(rows: int, regen: bool) -> dict[str, Path]:
    """Reference and shifted current sets as Parquet and CSV (generated once per size)."""
    sys.path.insert(0, str(HERE))
    from gen_data import generate_frame, write_files

    stem_ref, stem_cur = f"reference_{rows}", f"current_{rows}"
    paths = {
        "ref_parquet": DATA / f"{stem_ref}.parquet",
        "ref_csv": DATA / f"{stem_ref}.csv",
        "cur_parquet": DATA / f"{stem_cur}.parquet",
        "cur_csv": DATA / f"{stem_cur}.csv",
    }
    if regen or not all(p.exists() for p in paths.values()):
        print(f"generating {rows:,} rows x 25 features under {DATA} ...", file=sys.stderr)
        write_files(generate_frame(rows, seed=1), DATA, stem_ref, ("parquet", "csv"))
        write_files(generate_frame(rows, seed=2, shifted=True), DATA, stem_cur, ("parquet", "csv"))
    return paths


def bench_ours(paths: dict[str, Path], rows: int, repeats: int) -> dict[str, Any]:
    """Reference build from Parquet and CSV, then drift from serialized profiles."""
    from streamproc.core.drift import compare_profiles
    from streamproc.core.model_profile import ModelProfile
    from streamproc.offline.reference import build_reference, profile_like

    def build(path: Path) -> ModelProfile:
        return build_reference([path], model="bench", model_version="1", show_progress=False)

    out: dict[str, Any] = {}
    for fmt in ("parquet", "csv"):
        print(f"streamproc reference build from {fmt} x{repeats} ...", file=sys.stderr)
        times, ref = timed(lambda fmt=fmt: build(paths[f"ref_{fmt}"]), repeats)
        assert ref.row_count == rows
        out[f"build_{fmt}_s"] = times
    ref_bytes = ref.to_bytes()
    cur = profile_like(ModelProfile.from_bytes(ref_bytes), [paths["cur_parquet"]])
    cur_bytes = cur.to_bytes()
    out["reference_profile_bytes"] = len(ref_bytes)

    def drift_from_bytes() -> Any:
        r, c = ModelProfile.from_bytes(ref_bytes), ModelProfile.from_bytes(cur_bytes)
        return compare_profiles(r, c)

    r_loaded, c_loaded = ModelProfile.from_bytes(ref_bytes), ModelProfile.from_bytes(cur_bytes)
    drift_from_bytes()  # warm imports (scipy) outside the clock
    times, report = timed(drift_from_bytes, repeats)
    out["drift_load_compare_s"] = times
    out["drift_compare_only_s"], _ = timed(lambda: compare_profiles(r_loaded, c_loaded), repeats)
    out["n_features_compared"] = len(report.features)
    out["drifted_features"] = report.drifted_features
    return out


# ----------------------------------------------------------------------------- report


def machine() -> dict[str, str]:
    """nproc, CPU model, Python and library versions."""
    import datasketches
    import numpy
    import pyarrow

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        ds_version = importlib_version("datasketches")
    except Exception:
        ds_version = getattr(datasketches, "__version__", "?")
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "pyarrow": pyarrow.__version__,
        "numpy": numpy.__version__,
        "datasketches": ds_version,
    }


def importlib_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def _row(name: str, times: list[float] | None, rows: int | None, note: str = "") -> str:
    if not times:
        return f"| {name} | – | – | – | {note} |"
    s = summary(times)
    if rows:
        rate = f"{rows / s['median']:,.0f} (min {rows / s['max']:,.0f}, max {rows / s['min']:,.0f})"
    else:
        rate = "–"
    t = f"{s['median']:.3f} ({s['min']:.3f}–{s['max']:.3f})"
    if s["median"] < 1:
        t = f"{s['median'] * 1e3:.1f} ms ({s['min'] * 1e3:.1f}–{s['max'] * 1e3:.1f})"
    else:
        t += " s"
    return (
        f"| {name} | {rows or '–':,} | {t} | {rate} | {note} |"
        if rows
        else (f"| {name} | – | {t} | – | {note} |")
    )


def write_results(args: argparse.Namespace, ours: dict[str, Any], peers: dict[str, Any]) -> str:
    """Append a dated Markdown section to RESULTS.md and return it."""
    m = machine()
    rows = args.rows
    wl, ev = peers.get("whylogs", {}), peers.get("evidently", {})
    lines = [
        f"## Offline: reference build and drift — {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {m['nproc']} cores, {m['cpu']}; Python {m['python']}; pyarrow "
        f"{m['pyarrow']}, numpy {m['numpy']}, datasketches {m['datasketches']}. Peers in their "
        f"own venv: whylogs {wl.get('version', '?')}, Evidently {ev.get('version', '?')}, "
        f"pandas {wl.get('pandas') or ev.get('pandas') or '?'}, numpy "
        f"{wl.get('numpy') or ev.get('numpy') or '?'}.",
        "",
        f"Data: `benchmarks/gen_data.py`, {rows:,} rows × 25 features (20 numeric of mixed "
        "shapes, 5 categorical with 5 / 50 / 1,000 / 10,000 categories and a Zipf tail; 2% "
        "nulls); current set with 5 numeric features shifted by 0.5 sd and 2 categoricals "
        f"re-weighted. Median (min–max) of {args.repeats} runs. Command: "
        f"`.venv/bin/python benchmarks/bench_offline.py --rows {rows} --repeats {args.repeats}`.",
        "",
        "| what | rows | time | rows/s | note |",
        "| --- | ---: | ---: | ---: | --- |",
        _row(
            "streamproc reference build, Parquet",
            ours["build_parquet_s"],
            rows,
            "file → profile, incl. reading",
        ),
        _row("streamproc reference build, CSV", ours["build_csv_s"], rows, "file → profile"),
        _row(
            f"streamproc drift, {ours['n_features_compared']} features",
            ours["drift_load_compare_s"],
            None,
            "deserialize both profiles + compare",
        ),
        _row("streamproc drift, compare only", ours["drift_compare_only_s"], None, ""),
    ]
    if "error" in wl:
        lines.append(f"| whylogs `why.log(df)` | {rows:,} | – | – | {wl['error']} |")
    elif wl:
        lines.append(
            _row("whylogs `why.log(df)`", wl["times_s"], wl["rows"], "pandas frame in memory")
        )
    if "error" in ev:
        lines.append(f"| Evidently DataDriftPreset | – | – | – | {ev['error']} |")
    elif ev:
        lines.append(
            _row(
                "Evidently `Report([DataDriftPreset()])`",
                ev["times_s"],
                2 * ev["rows"],
                f"sample of {ev['rows']:,} rows per side; rows/s counts both sides",
            )
        )
    lines.append("")
    wl_rate = rows / summary(wl["times_s"])["median"] if wl.get("times_s") else None
    our_rate = rows / summary(ours["build_parquet_s"])["median"]
    csv_rate = rows / summary(ours["build_csv_s"])["median"]
    drift_ms = summary(ours["drift_load_compare_s"])["median"] * 1e3
    if wl_rate:
        lines.append(
            f"Profile building vs whylogs: {our_rate / wl_rate:.1f}× (Parquet), "
            f"{csv_rate / wl_rate:.1f}× (CSV); target ≥ 5×."
        )
    lines.append(f"Drift for 25 features from profiles: {drift_ms:.1f} ms; target < 50 ms.")
    lines.append(
        f"Reference profile size: {ours['reference_profile_bytes']:,} bytes. Drifted features "
        f"reported: {', '.join(ours['drifted_features'])}."
    )
    lines.append("")
    section = "\n".join(lines)
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\n")
    with RESULTS.open("a") as fh:
        fh.write("\n" + section)
    return section


def main() -> None:
    """Parse arguments; run the whole benchmark, or one peer inside the peers venv."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--evidently-rows", type=int, default=100_000)
    parser.add_argument("--peer-timeout-s", type=int, default=600)
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--regen", action="store_true", help="regenerate the data files")
    parser.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--peer", choices=("whylogs", "evidently"), help=argparse.SUPPRESS)
    parser.add_argument("--ref", help=argparse.SUPPRESS)
    parser.add_argument("--cur", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        run_peer_main(args)
        return
    paths = ensure_data(args.rows, args.regen)
    ours = bench_ours(paths, args.rows, args.repeats)
    peers: dict[str, Any] = {}
    if not args.no_peers:
        for peer in ("whylogs", "evidently"):
            print(f"{peer} x{args.repeats} (limit {args.peer_timeout_s} s) ...", file=sys.stderr)
            peers[peer] = run_peer(peer, args, paths["ref_parquet"], paths["cur_parquet"])
    if args.no_write:
        print(json.dumps({"ours": ours, "peers": peers}, indent=2, default=str))
    else:
        print(write_results(args, ours, peers))


if __name__ == "__main__":
    main()
