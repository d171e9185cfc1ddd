"""The label join's pending-prediction store on RocksDB: bytes per entry, puts/s,
label matches/s and RSS, on one core.

One command::

    .venv/bin/python benchmarks/bench_label_store.py                 # 1,000,000 pending
    .venv/bin/python benchmarks/bench_label_store.py --n 10000000 --labels 1000000

It drives :class:`streamproc.labels.join.LabelJoin` exactly as the worker will: batches
of ``--batch`` predictions (UUID request ids, one model, a version, a score, event
times spread over a day) through ``apply_predictions`` — each batch one transaction,
one atomic RocksDB write batch, changelog records built — then ``--labels`` labels for
random pending ids (UUIDs recomputed from their index), in random order, through
``apply_labels`` (every one a match: random point reads), then one ``advance`` sweep of
retention. The process is pinned to
one CPU (``os.sched_setaffinity``); RSS (``VmRSS``) is sampled after every batch, and
bytes on disk are the RocksDB directory's size after a flush (``du``; SST files are
LZ4-compressed) and RocksDB's own live-SST estimate.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from streamproc.labels.join import DAY_MS, JoinPolicy, LabelJoin, PredictionRows
from streamproc.labels.kv import RocksKV
from streamproc.labels.store import PendingStore

T0 = 1_714_000_000_000


def request_id(i: int) -> str:
    """The i-th request id: a UUID from a hash of i (no list of ids held in memory, so RSS
    measures the store, not the benchmark)."""
    return str(uuid.UUID(bytes=hashlib.blake2b(i.to_bytes(8, "little"), digest_size=16).digest()))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def dir_bytes(path: Path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="pending predictions to put")
    ap.add_argument("--labels", type=int, default=200_000, help="labels to match")
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--dir", type=Path, default=None, help="RocksDB directory (default: temp)")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    root = Path(args.dir or tempfile.mkdtemp(prefix="bench_label_store_"))
    path = root / "pending"
    rng = np.random.default_rng(0)
    kv = RocksKV(path)
    join = LabelJoin(PendingStore(kv), JoinPolicy(budget=max(args.n * 2, 1)))
    rss: list[tuple[int, float]] = [(0, rss_mb())]
    changelog_bytes = 0
    t_put = 0.0
    for start in range(0, args.n, args.batch):
        m = min(args.batch, args.n - start)
        batch_ids = [request_id(i) for i in range(start, start + m)]
        times = (T0 + rng.integers(0, DAY_MS, m)).tolist()
        rows = PredictionRows(
            ["fraud"] * m, batch_ids, times, [t // 60_000 * 60_000 for t in times],
            ["v12"] * m, [None] * m, rng.random(m).tolist(),
        )  # fmt: skip
        t = time.perf_counter()
        out = join.apply_predictions(rows)
        t_put += time.perf_counter() - t
        changelog_bytes += sum(len(k) + len(v or b"") for k, v in out.changelog)
        rss.append((start + m, rss_mb()))
    kv.flush()
    disk = dir_bytes(path)
    sst = kv.disk_bytes()
    pick = rng.choice(args.n, min(args.labels, args.n), replace=False)
    t_lab = 0.0
    matched = 0
    for s in range(0, len(pick), args.batch):
        chunk = pick[s : s + args.batch].tolist()
        lab_ids = [request_id(i) for i in chunk]
        t = time.perf_counter()
        out = join.apply_labels(
            ["fraud"] * len(chunk), lab_ids, [T0 + DAY_MS] * len(chunk), [1] * len(chunk)
        )
        t_lab += time.perf_counter() - t
        matched += len(out.matched)
    rss.append((args.n, rss_mb()))
    before = int(join.store.meta["pending"])
    t = time.perf_counter()
    out = join.advance(T0 + 32 * DAY_MS)  # one bounded retention step (max_work entries)
    t_adv = time.perf_counter() - t
    deleted = before - out.pending
    kv.close()
    rss_values = [r for _, r in rss]
    half = len(rss_values) // 2
    result = {
        "pending": args.n,
        "disk_bytes_du": disk,
        "bytes_per_pending_du": disk / args.n,
        "sst_bytes_estimate": sst,
        "bytes_per_pending_sst": sst / args.n,
        "changelog_bytes_per_pending": changelog_bytes / args.n,
        "puts_per_s": args.n / t_put,
        "labels": len(pick),
        "matched": matched,
        "matches_per_s": len(pick) / t_lab if t_lab else float("nan"),
        "retention_deletes_per_s": deleted / t_adv if t_adv else float("nan"),
        "retention_deleted_in_one_advance": deleted,
        "rss_mb_start": rss_values[0],
        "rss_mb_at_10pct": rss_values[len(rss_values) // 10],
        "rss_mb_half": rss_values[half],
        "rss_mb_after_puts": rss_values[-2],
        "rss_mb_after_labels": rss_values[-1],
        "rss_mb_max": max(rss_values),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.dir is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
