"""``streamproc reference build --from-topic``: read a period of a topic (the Kafka part).

A consumer of its own (a random group id, never committing: the topic and its groups are
left as they were) looks up, per partition, the first offset at or after ``--from``
(``offsets_for_times``) and the end offset as the read begins, assigns those offsets and
reads each partition up to the first record past ``--to`` or that end
(:class:`~streamproc.offline.topic_reference.PartitionSpan`). Records go in chunks to
:class:`~streamproc.offline.topic_reference.TopicReference`, which decodes, filters and
profiles them; a second read of the same offsets fills the fenced co-moments.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable

from streamproc.errors import UsageError
from streamproc.offline.errors import InputError
from streamproc.offline.profile_io import save_profile
from streamproc.offline.progress import Progress
from streamproc.offline.render import fmt_bytes, fmt_int
from streamproc.offline.topic_reference import (
    CHUNK_RECORDS,
    Chunk,
    PartitionSpan,
    Period,
    TopicReference,
    parse_period,
    plan_spans,
    production_warning,
)

LOOKUP_TIMEOUT_S = 30.0


def _consumer(settings: dict[str, str]) -> object:
    from confluent_kafka import Consumer

    return Consumer(
        {
            **settings,
            "group.id": f"streamproc-reference-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
        }
    )


def find_spans(settings: dict[str, str], topic: str, period: Period) -> list[PartitionSpan]:
    """Per partition of ``topic``: the offsets to read for ``period``."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = _consumer(settings)
    assert isinstance(consumer, Consumer)
    try:
        try:
            meta = consumer.list_topics(topic, timeout=LOOKUP_TIMEOUT_S)
        except KafkaException as exc:
            raise UsageError(f"cannot reach Kafka to read {topic!r}: {exc}") from None
        info = meta.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            why = info.error.str() if info is not None and info.error is not None else "missing"
            raise UsageError(f"topic {topic!r} cannot be read ({why}); check --from-topic")
        partitions = sorted(info.partitions)
        watermarks = {
            p: consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=LOOKUP_TIMEOUT_S, cached=False
            )
            for p in partitions
        }
        query = [TopicPartition(topic, p, period.start_ms) for p in partitions]
        looked_up: dict[int, int | None] = {}
        for tp in consumer.offsets_for_times(query, timeout=LOOKUP_TIMEOUT_S):
            if tp.error is not None:
                raise UsageError(f"looking up offsets of {topic!r} by time: {tp.error.str()}")
            looked_up[tp.partition] = tp.offset
    finally:
        consumer.close()
    return plan_spans(looked_up, {p: (int(lo), int(hi)) for p, (lo, hi) in watermarks.items()})


def read_spans(
    settings: dict[str, str],
    topic: str,
    spans: list[PartitionSpan],
    end_ms: int,
    sink: Callable[[Chunk], object],
    *,
    progress: Progress | None = None,
    chunk_records: int = CHUNK_RECORDS,
    idle_timeout_s: float = 30.0,
) -> None:
    """Read every span (mutated: where each stopped) and hand chunks of records to
    ``sink``; nothing is committed."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    by_partition = {s.partition: s for s in spans}
    todo = [s for s in spans if not s.done]
    if not todo:
        return
    consumer = _consumer(settings)
    assert isinstance(consumer, Consumer)
    total = sum(s.end - s.start for s in spans)
    chunk = Chunk()
    rows = 0
    unassigned: set[int] = set()
    try:
        consumer.assign([TopicPartition(topic, s.partition, s.start) for s in todo])
        last_seen = time.monotonic()
        while not all(s.done for s in todo):
            messages = consumer.consume(chunk_records, timeout=0.5)
            if messages:
                last_seen = time.monotonic()
            elif time.monotonic() - last_seen > idle_timeout_s:
                stuck = sorted(s.partition for s in todo if not s.done)
                raise UsageError(
                    f"no records from {topic!r} partitions {stuck} for {idle_timeout_s:g} s "
                    "before their end offsets; is the broker reachable?"
                )
            finished = []
            for msg in messages:
                err = msg.error()
                span = by_partition.get(msg.partition())  # type: ignore[arg-type]
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        if span is not None:
                            span.reached_end()
                            finished.append(span)
                        continue
                    raise UsageError(f"reading {topic!r}: {err.str()}")
                if span is None or span.done:
                    continue
                kind, ms = msg.timestamp()
                ts = ms if kind != 0 else None  # 0: TIMESTAMP_NOT_AVAILABLE
                offset = msg.offset()
                assert offset is not None
                if span.admit(offset, ts, end_ms):
                    chunk.append(msg.value(), msg.key(), ts, msg.headers())
                    if len(chunk) >= chunk_records:
                        sink(chunk)
                        rows += len(chunk)
                        chunk = Chunk()
                if span.done:
                    finished.append(span)
            gone = sorted({s.partition for s in finished} - unassigned)
            if gone:  # stop fetching what is read to its end
                consumer.incremental_unassign([TopicPartition(topic, p) for p in gone])
                unassigned.update(gone)
            if progress is not None:
                progress.update(rows + len(chunk), sum(s.position - s.start for s in spans))
        if len(chunk):
            sink(chunk)
            rows += len(chunk)
    finally:
        consumer.close()
    if progress is not None:
        progress.update(rows, total)
        progress.close()


_FILE_ONLY = ("prediction_col", "label_col", "timestamp_col", "id_col", "positive_class")


def add_topic_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--from-topic`` options of ``reference build``."""
    group = parser.add_argument_group(
        "from production (no training set at hand)",
        "profile a period of the live stream, decoded as the worker decodes it; such a "
        "reference hides the drift that was already there",
    )
    group.add_argument("--from-topic", metavar="TOPIC", help="read this predictions topic")
    group.add_argument(
        "--from",
        dest="from_time",
        metavar="T1",
        help="start of the period (event time, inclusive): RFC 3339 or '<duration> ago'",
    )
    group.add_argument(
        "--to",
        dest="to_time",
        metavar="T2",
        help="end of the period (exclusive; default: now): RFC 3339 or '<duration> ago'",
    )
    group.add_argument(
        "--mapping",
        metavar="FILE",
        help="TOML file whose [mapping] says where the envelope fields come from "
        "(e.g. written by `streamproc attach --sample --write`); default: that of --config",
    )
    group.add_argument("--config", metavar="FILE", help="TOML file (default: $STREAMPROC_CONFIG)")
    group.add_argument("--bootstrap-servers", metavar="HOST:PORT[,...]")


def run_from_topic(args: argparse.Namespace) -> int:
    """Build a reference from a period of ``--from-topic``, write it, warn, summarize."""
    from streamproc.cli.config_args import config_from_args
    from streamproc.config import load_config

    began = time.perf_counter()
    given = [f"--{name.replace('_', '-')}" for name in _FILE_ONLY if getattr(args, name, None)]
    if given:
        raise UsageError(f"{given[0]} names a file column; with --from-topic use a [mapping]")
    if not args.from_time:
        raise UsageError("--from-topic needs --from T1 (RFC 3339 or '<duration> ago')")
    config = config_from_args(args)
    mapping_config = load_config(args.mapping, env={}).mapping if args.mapping else config.mapping
    topic = args.from_topic
    try:
        period = parse_period(args.from_time, args.to_time, now_ms=int(time.time() * 1000))
        builder = TopicReference(
            model=args.model,
            model_version=args.model_version,
            period=period,
            source=f"kafka:{topic}",
            mapping=mapping_config.record_mapping(),
            limits=config.limits.decode_limits(),
            max_future_skew_ms=config.limits.max_future_skew_ms,
            features=args.features,
            categorical=args.categorical,
            exclude=args.exclude,
        )
        settings = config.kafka.connection_settings()
        spans = find_spans(settings, topic, period)
        show = False if args.no_progress else None
        progress = Progress(sum(s.end - s.start for s in spans), label=topic, enabled=show)
        read_spans(settings, topic, spans, period.end_ms, builder.add, progress=progress)
        if builder.profile is not None and builder.start_joint_pass():
            again = [s.replay() for s in spans]
            progress = Progress(
                sum(s.end - s.start for s in again), label=f"{topic} (joint)", enabled=show
            )
            read_spans(settings, topic, again, period.end_ms, builder.add, progress=progress)
            if not builder.finish_joint_pass():
                print(
                    "warning: the second read of the period saw other records than the first "
                    "(retention?); the joint co-moments are not clipped at their fences",
                    file=sys.stderr,
                )
        try:
            profile = builder.finish()
        finally:
            print(production_warning(builder, topic), file=sys.stderr)
        size = save_profile(profile, args.out)
    except InputError as exc:
        raise UsageError(str(exc)) from exc
    elapsed = time.perf_counter() - began
    print(
        f"wrote {args.out}: model {profile.model} {profile.model_version}".rstrip()
        + f", {fmt_int(profile.row_count)} rows of {topic} ({period.describe()}), "
        f"{len(profile.features)} features, {fmt_bytes(size)}, {elapsed:.1f} s"
    )
    return 0
