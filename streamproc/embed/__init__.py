"""Profiling inside an application that already consumes the stream (a Faust service).

:class:`~streamproc.embed.profiler.StreamProfiler` decodes prediction-log records with
ingest's decoder, buffers them per event-time window and ships the same profile deltas
ingest ships to the profiles topic, so a streamproc worker's aggregate stage merges
them unchanged. :mod:`streamproc.embed.faust` wires it into a faust-streaming app
(manual acks: a record's offset is committed only after its delta was delivered).
"""

from streamproc.embed.profiler import DeliveryFailed, ProfilerStats, StreamProfiler

__all__ = ["DeliveryFailed", "ProfilerStats", "StreamProfiler"]
