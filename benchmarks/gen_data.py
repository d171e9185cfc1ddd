"""Synthetic model-input data shared by the benchmarks and the demo.

``generate_frame(n_rows, seed, shifted=False)`` returns a ``pyarrow.Table`` with 25
feature columns: 20 numeric of mixed shapes and 5 categorical of growing
cardinality, each with about 2% nulls. With ``shifted=True`` the numeric
features in ``SHIFTED_NUMERIC`` move by half their standard deviation and the
categoricals in ``SHIFTED_CATEGORICAL`` are re-weighted; everything else keeps
its distribution, so a drift detector should flag exactly ``SHIFTED_FEATURES``.

``with_model_columns=True`` adds ``row_id``, ``event_time`` (timestamp[ms]),
``prediction`` (a score in [0, 1]) and ``label`` (0/1) for model-log demos.

Run as a script to write Parquet/CSV files:
``python benchmarks/gen_data.py --rows 1000000 --out benchmarks/data``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

NULL_SHARE = 0.02

Sampler = Callable[[np.random.Generator, int], np.ndarray]


def _bimodal(rng: np.random.Generator, n: int, a: float, b: float, w: float) -> np.ndarray:
    pick = rng.random(n) < w
    return np.where(pick, rng.normal(a, 1.0, n), rng.normal(b, 1.5, n))


NUMERIC: dict[str, Sampler] = {
    "num_normal": lambda r, n: r.normal(0.0, 1.0, n),
    "num_normal_wide": lambda r, n: r.normal(100.0, 15.0, n),
    "num_lognormal": lambda r, n: r.lognormal(0.0, 0.75, n),
    "num_lognormal_wide": lambda r, n: r.lognormal(3.0, 1.5, n),
    "num_uniform": lambda r, n: r.uniform(-5.0, 5.0, n),
    "num_exponential": lambda r, n: r.exponential(2.0, n),
    "num_poisson": lambda r, n: r.poisson(3.0, n).astype(np.int64),
    "num_poisson_large": lambda r, n: r.poisson(40.0, n).astype(np.int64),
    "num_binomial": lambda r, n: r.binomial(10, 0.3, n).astype(np.int64),
    "num_uniform_int": lambda r, n: r.integers(0, 100, n).astype(np.int64),
    "num_bimodal": lambda r, n: _bimodal(r, n, -2.0, 3.0, 0.4),
    "num_bimodal_skew": lambda r, n: _bimodal(r, n, 0.0, 8.0, 0.85),
    "num_student_t3": lambda r, n: r.standard_t(3.0, n),
    "num_cauchy": lambda r, n: r.standard_cauchy(n),
    "num_pareto": lambda r, n: r.pareto(2.5, n),
    "num_gamma": lambda r, n: r.gamma(2.0, 2.0, n),
    "num_beta": lambda r, n: r.beta(2.0, 5.0, n),
    "num_laplace": lambda r, n: r.laplace(0.0, 1.0, n),
    "num_weibull": lambda r, n: r.weibull(1.5, n),
    "num_normal_small": lambda r, n: r.normal(0.001, 0.0002, n),
}

SHIFTED_NUMERIC: tuple[str, ...] = (
    "num_normal",
    "num_lognormal",
    "num_uniform",
    "num_bimodal",
    "num_gamma",
)
"""Numeric features moved by +0.5 standard deviation in the shifted frame."""

CATEGORICAL_CARDINALITY: dict[str, int] = {
    "cat_5": 5,
    "cat_50": 50,
    "cat_1k": 1_000,
    "cat_10k": 10_000,
}
CAT_LONGTAIL = "cat_longtail"
"""Zipf-like (a=1.3) over an unbounded vocabulary: a few heavy hitters, a long tail."""

SHIFTED_CATEGORICAL: tuple[str, ...] = ("cat_5", "cat_50")
"""Categoricals whose category weights are changed in the shifted frame."""

SHIFTED_FEATURES: tuple[str, ...] = SHIFTED_NUMERIC + SHIFTED_CATEGORICAL
FEATURES: tuple[str, ...] = (*NUMERIC, *CATEGORICAL_CARDINALITY, CAT_LONGTAIL)


def _weights(cardinality: int, shifted: bool) -> np.ndarray:
    """Category probabilities: mildly skewed (Zipf s=0.8); shifted reverses the order."""
    w = 1.0 / np.arange(1, cardinality + 1) ** 0.8
    if shifted:
        w = w[::-1]
    return w / w.sum()


def _with_nulls(rng: np.random.Generator, values: np.ndarray) -> pa.Array:
    mask = rng.random(len(values)) < NULL_SHARE
    return pa.array(values, mask=mask)


def _categorical(
    rng: np.random.Generator, name: str, codes: np.ndarray, vocab: list[str]
) -> pa.Array:
    mask = rng.random(len(codes)) < NULL_SHARE
    indices = pa.array(codes.astype(np.int32), mask=mask)
    dictionary = pa.array(vocab, type=pa.string())
    return pa.DictionaryArray.from_arrays(indices, dictionary).dictionary_decode()


def generate_frame(
    n_rows: int, seed: int, shifted: bool = False, *, with_model_columns: bool = False
) -> pa.Table:
    """``n_rows`` rows of the 25 benchmark features (see module docstring)."""
    rng = np.random.default_rng(seed)
    columns: dict[str, pa.Array] = {}
    for name, sample in NUMERIC.items():
        values = sample(rng, n_rows)
        if shifted and name in SHIFTED_NUMERIC:
            values = values + 0.5 * float(np.std(values))
        columns[name] = _with_nulls(rng, values)
    for name, card in CATEGORICAL_CARDINALITY.items():
        p = _weights(card, shifted and name in SHIFTED_CATEGORICAL)
        codes = rng.choice(card, size=n_rows, p=p)
        vocab = [f"{name}_v{i}" for i in range(card)]
        columns[name] = _categorical(rng, name, codes, vocab)
    tail = rng.zipf(1.3, n_rows)
    tail_codes, tail_index = np.unique(tail, return_inverse=True)
    vocab = [f"t{v}" for v in tail_codes.tolist()]
    columns[CAT_LONGTAIL] = _categorical(rng, CAT_LONGTAIL, tail_index, vocab)
    if with_model_columns:
        base = np.datetime64("2024-01-01T00:00:00", "ms").astype(np.int64)
        step_ms = 86_400_000 // max(n_rows, 1)
        columns["row_id"] = pa.array(np.arange(n_rows, dtype=np.int64) + seed * 10**9)
        columns["event_time"] = pa.array(
            base + np.arange(n_rows, dtype=np.int64) * max(step_ms, 1), type=pa.timestamp("ms")
        )
        logit = 0.8 * np.nan_to_num(columns["num_normal"].to_numpy(zero_copy_only=False))
        score = 1.0 / (1.0 + np.exp(-logit + rng.normal(0, 0.5, n_rows)))
        columns["prediction"] = pa.array(score)
        columns["label"] = pa.array((rng.random(n_rows) < score).astype(np.int64))
    return pa.table(columns)


def write_files(table: pa.Table, out_dir: Path, stem: str, formats: tuple[str, ...]) -> list[Path]:
    """Write ``table`` as ``stem.parquet`` / ``stem.csv`` / ``stem.jsonl`` under ``out_dir``."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for fmt in formats:
        path = out_dir / f"{stem}.{fmt}"
        if fmt == "parquet":
            pq.write_table(table, path, row_group_size=262_144)
        elif fmt == "csv":
            pacsv.write_csv(table, path)
        elif fmt == "jsonl":
            import json

            with path.open("w") as fh:
                for row in table.to_pylist():
                    fh.write(json.dumps(row, default=str) + "\n")
        else:
            raise ValueError(f"unknown format {fmt}")
        paths.append(path)
    return paths


def main() -> None:
    """Write a reference and a shifted current data set."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    parser.add_argument("--formats", default="parquet,csv")
    parser.add_argument("--model-columns", action="store_true")
    args = parser.parse_args()
    formats = tuple(args.formats.split(","))
    ref = generate_frame(args.rows, seed=1, with_model_columns=args.model_columns)
    cur = generate_frame(args.rows, seed=2, shifted=True, with_model_columns=args.model_columns)
    for path in write_files(ref, args.out, "reference", formats):
        print(path)
    for path in write_files(cur, args.out, "current", formats):
        print(path)


if __name__ == "__main__":
    main()
