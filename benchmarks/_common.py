"""Helpers shared by the streaming benchmarks (ingest, latency, state, scale-out).

Run as ``python benchmarks/bench_x.py`` from the repository root: this module puts the
repository root on ``sys.path``, so the benchmarks share the tests' helpers in
``tests/support/`` instead of copies.

- :func:`kafka` — a real broker for the run: ``KAFKA_BOOTSTRAP_SERVERS`` when set, else a
  throwaway :class:`~streamproc.broker.local.LocalBroker` (official jars) on a free port
  (``tests.support.kafka``).
- :func:`create_topic` (``tests.support.kafka``), :func:`fast_producer`,
  :func:`produce_all` — topics and a fast lz4/linger producer.
- :class:`EventFactory` — prediction-log records (20 numeric + 5 categorical features of
  ``gen_data.py``'s shapes, ~2% nulls, ~700 bytes) and a matching reference profile.
- :func:`machine`, :func:`loadavg`, :func:`stats`, :func:`append_results` — reporting.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data"
RESULTS = Path(os.environ.get("STREAMPROC_BENCH_RESULTS") or HERE / "RESULTS.md")
"""Where sections are appended; override to run a snapshot of a commit (see README)."""
PYTHON = sys.executable

if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# re-exported: the benchmarks call ``c.create_topic``
from tests.support.kafka import create_topic as create_topic  # noqa: E402
from tests.support.kafka import from_environment, from_local_jars  # noqa: E402

MODEL = "bench"
BROKER_PID: int | None = None
"""PID of the broker :func:`kafka` started (None for an external one)."""
VERSION = "1"


# ----------------------------------------------------------------------------- broker


@contextlib.contextmanager
def kafka() -> Iterator[str]:
    """Bootstrap servers of a real broker for the duration of the block; a broker it
    starts is stopped and its data deleted afterwards, and its pid is :data:`BROKER_PID`."""
    global BROKER_PID
    broker = from_environment() or from_local_jars(prefix="streamproc-bench-broker-")
    BROKER_PID = broker.pid
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


def fast_producer(bootstrap: str) -> Any:
    from confluent_kafka import Producer

    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 500_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "acks": "1",
        }
    )


def produce_all(producer: Any, topic: str, values: Sequence[bytes], partitions: int) -> None:
    """Produce ``values`` round-robin over ``partitions`` (no keys), waiting on back-pressure."""
    produce = producer.produce
    for i, value in enumerate(values):
        while True:
            try:
                produce(topic, value, partition=i % partitions)
                break
            except BufferError:
                producer.poll(0.01)
        if i % 10_000 == 0:
            producer.poll(0)


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-offsets"})
    try:
        meta = c.list_topics(topic, timeout=10).topics[topic]
        return {
            p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in meta.partitions
        }
    finally:
        c.close()


# ----------------------------------------------------------------------------- data


def _round(v: float) -> float:
    """Six significant digits, what logged features usually carry."""
    return float(f"{v:.6g}")


class EventFactory:
    """Prediction-log records of the 25 benchmark features.

    A pool of ``pool`` distinct rows from ``gen_data.generate_frame`` is pre-serialized
    without timestamp and request id; :meth:`batch` splices those two in front, so
    millions of records cost a bytes concatenation each. Float features are rounded to six
    significant digits (what logged features usually carry): a record is ~700 bytes.
    ``copies=8`` repeats the 25 features (suffixed ``_0`` … ``_7``, each copy reading other
    rows) for a 200-feature model.
    """

    def __init__(
        self,
        pool: int = 100_000,
        seed: int = 1,
        *,
        shift: dict[str, float] | None = None,
        features: Sequence[str] | None = None,
        model: str = MODEL,
        copies: int = 1,
    ) -> None:
        from gen_data import generate_frame

        table = generate_frame(pool, seed=seed, with_model_columns=True)
        self.table = table
        names = [n for n in table.column_names if n.startswith(("num_", "cat_"))]
        if features is not None:
            names = list(features)
        self.base_names = names
        self.copies = copies
        self.feature_names = (
            names if copies == 1 else [f"{n}_{r}" for r in range(copies) for n in names]
        )
        cols: dict[str, list[Any]] = {}
        for name in names:
            col = table.column(name)
            values = col.to_pylist()
            if name.startswith("num_"):
                import pyarrow.types as pa_types

                scale = shift.get(name, 0.0) if shift else 0.0
                arr = col.to_numpy(zero_copy_only=False).astype(np.float64)
                sd = float(np.nanstd(arr)) if scale else 0.0
                if scale or not pa_types.is_integer(col.type):
                    values = [None if v is None else _round(float(v) + scale * sd) for v in values]
            cols[name] = values
        scores = table.column("prediction").to_numpy()
        labels = np.where(table.column("label").to_numpy() == 1, "approve", "deny")
        self.tails: list[bytes] = []
        for j in range(pool):
            body = orjson.dumps(
                {
                    "model": model,
                    "model_version": VERSION,
                    "features": {
                        out: cols[name][(j + r * 7919) % pool]
                        for r in range(copies)
                        for name in names
                        for out in [name if copies == 1 else f"{name}_{r}"]
                    },
                    "prediction": {"label": str(labels[j]), "score": round(float(scores[j]), 5)},
                    "latency_ms": round(5.0 + 20.0 * float(scores[j]), 3),
                }
            )
            self.tails.append(body[1:])  # without the opening brace

    def record(self, i: int, ts: float) -> bytes:
        head = b'{"timestamp":%.3f,"request_id":"r%010d",' % (ts, i)
        return head + self.tails[i % len(self.tails)]

    def batch(self, start: int, n: int, t0: float, rate: float) -> list[bytes]:
        """``n`` records numbered from ``start``, event times ``t0 + i / rate``."""
        tails, pool = self.tails, len(self.tails)
        out = []
        for i in range(start, start + n):
            out.append(
                b'{"timestamp":%.3f,"request_id":"r%010d",' % (t0 + i / rate, i) + tails[i % pool]
            )
        return out

    def reference(self, rows: int = 200_000, seed: int = 11, model: str = MODEL) -> Any:
        """A reference profile of the same shapes (fresh rows, another seed)."""
        from gen_data import generate_frame

        from streamproc.core.model_profile import ModelProfile

        ref = generate_frame(rows, seed=seed, with_model_columns=True)
        columns = {
            (name if self.copies == 1 else f"{name}_{r}"): ref.column(name)
            for r in range(self.copies)
            for name in self.base_names
        }
        scores = ref.column("prediction").to_numpy()
        labels = np.where(ref.column("label").to_numpy() == 1, "approve", "deny").astype(object)
        return ModelProfile.build_reference(
            model, VERSION, columns, predictions=scores, predicted_labels=labels
        )


# ----------------------------------------------------------------------------- reporting


def loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> str:
    """One line: cores, CPU model, Python and library versions."""
    import confluent_kafka

    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} cores, {cpu}; Python {platform.python_version()}; "
        f"confluent-kafka {_version('confluent-kafka')}, "
        f"librdkafka {confluent_kafka.libversion()[0]}, "
        f"faust-streaming {_version('faust-streaming')}, aiokafka {_version('aiokafka')}, "
        f"datasketches {_version('datasketches')}, numpy {_version('numpy')}, "
        f"orjson {_version('orjson')}; Kafka broker {_broker_version()}"
    )


def _broker_version() -> str:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return f"at {os.environ['KAFKA_BOOTSTRAP_SERVERS']}"
    from streamproc.broker.jars import KAFKA_VERSION

    return f"{KAFKA_VERSION} (local, official jars, same machine)"


def stats(values: Sequence[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def fmt_stats(values: Sequence[float], fmt: str = "{:,.0f}") -> str:
    """``median (min–max)``."""
    med, lo, hi = stats(values)
    return f"{fmt.format(med)} ({fmt.format(lo)}–{fmt.format(hi)})"


def rss_kib(pid: int | str = "self") -> int:
    """VmRSS of a process in KiB (from /proc; psutil is not a dependency)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def git_head() -> str:
    if os.environ.get("STREAMPROC_BENCH_COMMIT"):
        return os.environ["STREAMPROC_BENCH_COMMIT"]
    with contextlib.suppress(Exception):
        return subprocess.check_output(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            text=True,
            stderr=subprocess.DEVNULL,
        ).strip()
    return "unknown"


def append_results(title: str, body: str, write: bool = True) -> str:
    """Append a dated ``## title`` section to RESULTS.md (and return it)."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = f"\n\n## {title} — {now}\n\n{body.strip()}\n"
    print(section)
    if write:
        with RESULTS.open("a") as fh:
            fh.write(section)
    return section
