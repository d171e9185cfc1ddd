"""Profile a stream inside a faust-streaming app (needs ``faust-streaming``).

Either let streamproc own an agent that only profiles::

    app = faust.App("scoring", broker="kafka://kafka:9092")
    predictions = app.topic("predictions", value_serializer="raw")
    profiler = StreamProfiler(
        bootstrap_servers="kafka:9092",
        profiles_topic="streamproc.profiles",
        references=["credit.profile"],
        source_topic="predictions",
        window="5m",
    )
    profile_stream(app, predictions, profiler)

or profile inside an agent of your own, which sees every event after it was observed::

    faust_profiler = FaustProfiler(app, profiler)

    @app.agent(predictions)
    async def score(stream):
        async for event in faust_profiler.events(stream):
            ...  # your processing of event.value

The events are read with manual acks (``stream.noack()``): an event is acked only after
your loop body finished with it *and* a flush delivered the delta holding it; then the
consumer's offsets are committed at once. A flush runs every ``flush_interval_s`` from
an app timer (so an idle stream still ships what it holds) and before a rebalance
completes (Faust waits for unacked events before it commits and gives partitions up).
So no record's offset is committed before its delta is on the profiles topic (no record
is lost), and a record is profiled twice only when the app dies between a delivered
flush and the commit after it; see :mod:`streamproc.embed.profiler` for exactly what the
aggregate then counts once and what twice.

Blocking: a flush sketches and waits for delivery on the event loop (typically tens of
milliseconds for a one-second flush); keep ``flush_interval_s`` well below the consumer
session timeout. One profiler per source topic; one :class:`FaustProfiler` per profiler.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import cast

import faust
from faust.streams import Stream
from faust.types import AgentT, EventT, StreamT, TopicT

from streamproc.embed.profiler import DeliveryFailed, StreamProfiler

log = logging.getLogger(__name__)


class FaustProfiler:
    """Feeds a :class:`StreamProfiler` from Faust streams and acks after delivery."""

    def __init__(self, app: faust.App, profiler: StreamProfiler, *, commit: bool = True) -> None:
        """``commit``: commit the consumer's offsets right after each delivered flush
        (else Faust commits the acked offsets on its own ``broker_commit_interval``)."""
        self.app = app
        self.profiler = profiler
        self.commit = commit
        self._pending: list[tuple[StreamT, EventT]] = []
        app.timer(
            interval=profiler.flush_interval_s,
            name=f"streamproc.embed.flush.{profiler.source_topic}.{id(self)}",
        )(self._tick)

    def observe(self, event: EventT) -> None:
        """Observe one event (its value, partition, offset and timestamp)."""
        msg = event.message
        self.profiler.observe(
            event.value, partition=msg.partition, offset=msg.offset, timestamp_s=msg.timestamp
        )

    async def events(self, stream: StreamT) -> AsyncIterator[EventT]:
        """The events of ``stream``, each observed before it is yielded; acked once the
        loop asks for the next one and a flush has delivered it."""
        noack = cast(Stream, stream).noack()  # StreamT does not declare noack
        async for event in noack.events():
            self.observe(event)
            yield event
            self._pending.append((noack, event))
            if self.profiler.flush_due():
                await self.flush()

    async def flush(self) -> bool:
        """Flush the profiler; on delivery ack the events it covered (and commit). False
        when the delivery failed (nothing acked: the next flush sends the deltas again)."""
        pending, self._pending = self._pending, []
        try:
            self.profiler.flush()
        except DeliveryFailed as exc:
            log.warning("streamproc profile deltas not delivered, retrying: %s", exc)
            self._pending = pending + self._pending
            return False
        for stream, event in pending:
            await stream.ack(event)
        if self.commit and pending:
            await self.app.consumer.commit()
        return True

    async def _tick(self) -> None:
        if self.profiler.flush_due() or self._pending:
            await self.flush()


def profile_stream(
    app: faust.App,
    topic: TopicT | str,
    profiler: StreamProfiler,
    *,
    name: str | None = None,
    commit: bool = True,
) -> AgentT:
    """Register an agent on ``topic`` (a name: a raw-bytes topic) that profiles every
    record with ``profiler``; the agent, for ``app.agents``."""
    channel = (
        app.topic(topic, value_serializer="raw", key_serializer="raw")
        if isinstance(topic, str)
        else topic
    )
    faust_profiler = FaustProfiler(app, profiler, commit=commit)

    async def profile(stream: StreamT) -> None:
        async for _event in faust_profiler.events(stream):
            pass

    agent_name = name or f"streamproc.embed.profile.{profiler.source_topic}"
    agent: AgentT = app.agent(channel, name=agent_name)(profile)
    return agent


__all__ = ["FaustProfiler", "profile_stream"]
