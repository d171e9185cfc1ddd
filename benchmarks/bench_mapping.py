"""What a field mapping costs the decoder: mapped flat JSON vs the native envelope.

The same 100k records (25 features, ~700 bytes) in two shapes: the envelope
(``schemas/prediction_log.schema.json``) and a flat record of the user's own shape
(top-level features, ``score``, ``decision``, ``ts``; model a constant, request id the
Kafka key) read through ``[mapping]``. Each is decoded in ingest-sized batches (10k) by
the pyarrow fast path (falling back to the orjson decoder where it declines, as the
ingest does) and by the orjson decoder alone; a mapped batch first goes through
``map_records`` (one orjson parse + the mapping + one orjson encode per record).

    .venv/bin/python benchmarks/bench_mapping.py [--rows 100000] [--repeats 3] [--no-write]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import MODEL, EventFactory, append_results, fmt_stats, log, machine

from streamproc.contracts.batch import DecodeResult
from streamproc.contracts.fast_decode import FastPathDeclined, fast_decode
from streamproc.contracts.mapped_decode import map_records
from streamproc.contracts.mapping_config import compile_mapping
from streamproc.contracts.prediction import decode_predictions

BATCH = 10_000
MAPPING = {
    "model": MODEL,
    "model_version": "1",
    "request_id": "$key",
    "timestamp": "/ts",
    "features": "*",
    "prediction": {"label": "/decision", "score": "/score"},
}


def flat(envelope: bytes) -> tuple[bytes, bytes]:
    """(key, value) of the same record in a flat shape of its own."""
    rec = orjson.loads(envelope)
    pred = rec["prediction"]
    value = {
        "ts": rec["timestamp"],
        **rec["features"],
        "score": pred["score"],
        "decision": pred["label"],
        "latency_ms": rec["latency_ms"],
    }
    return rec["request_id"].encode(), orjson.dumps(value)


def run(batches: list[Any], decode: Callable[[Any], DecodeResult]) -> tuple[float, int]:
    began = time.perf_counter()
    accepted = sum(decode(b).n_accepted for b in batches)
    return time.perf_counter() - began, accepted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    factory = EventFactory(pool=10_000)
    kinds = {name: kind for name, kind in factory.reference(rows=20_000).learn_schema().items()}
    kinds = {name: schema.kind for name, schema in kinds.items()}
    envelopes = factory.batch(0, args.rows, time.time() - 3600, 1_000.0)
    pairs = [flat(e) for e in envelopes]
    mapping = compile_mapping(MAPPING)
    mb = sum(map(len, envelopes)) / args.rows, sum(len(v) for _, v in pairs) / args.rows
    log(f"{args.rows} records: envelope {mb[0]:.0f} B, flat {mb[1]:.0f} B")

    def kinds_for(model: str, version: str) -> Any:
        return kinds if model == MODEL else None

    def fast_then_orjson(values: list[bytes]) -> DecodeResult:
        result = fast_decode(values, kinds_for=kinds_for)
        if isinstance(result, FastPathDeclined):
            return decode_predictions(values, known_models={MODEL})
        return result

    def orjson_only(values: list[bytes]) -> DecodeResult:
        return decode_predictions(values, known_models={MODEL})

    def mapped(decode: Callable[[list[bytes]], DecodeResult]) -> Callable[[Any], DecodeResult]:
        def run_mapped(batch: tuple[list[bytes], list[bytes]]) -> DecodeResult:
            keys, values = batch
            m = map_records(mapping, values, keys=keys)
            return m.restore(decode(m.values))

        return run_mapped

    ident = [envelopes[i : i + BATCH] for i in range(0, args.rows, BATCH)]
    flats = [
        ([k for k, _ in pairs[i : i + BATCH]], [v for _, v in pairs[i : i + BATCH]])
        for i in range(0, args.rows, BATCH)
    ]
    first = map_records(mapping, flats[0][1], keys=flats[0][0])
    fast_taken = not isinstance(fast_decode(first.values, kinds_for=kinds_for), FastPathDeclined)
    variants = {
        "identity, fast path": (ident, fast_then_orjson),
        "identity, orjson decoder": (ident, orjson_only),
        "mapped, fast path": (flats, mapped(fast_then_orjson)),
        "mapped, orjson decoder": (flats, mapped(orjson_only)),
        "mapping alone (map_records)": (
            flats,
            lambda b: DecodeResult({}, []) if map_records(mapping, b[1], keys=b[0]) else None,
        ),
    }
    rows = []
    for name, (batches, decode) in variants.items():
        rates = []
        for _ in range(args.repeats):
            seconds, accepted = run(batches, decode)  # type: ignore[arg-type]
            assert accepted in (0, args.rows), (name, accepted)
            rates.append(args.rows / seconds)
        rows.append(f"| {name} | {fmt_stats(rates)} | {1e6 / sorted(rates)[len(rates) // 2]:.1f} |")
        log(rows[-1])
    body = "\n".join(
        [
            f"`python benchmarks/bench_mapping.py --rows {args.rows} --repeats {args.repeats}`"
            f" on {machine()}.",
            "",
            f"{args.rows} records of 25 features: envelope {mb[0]:.0f} B, flat {mb[1]:.0f} B; "
            f"batches of {BATCH}; mapped envelopes taken by the fast path: {fast_taken}.",
            "",
            "| decode | events/s median (min–max) | µs/event |",
            "|---|---|---|",
            *rows,
        ]
    )
    append_results("Decode cost of a field mapping (bench_mapping.py)", body, not args.no_write)


if __name__ == "__main__":
    main()
