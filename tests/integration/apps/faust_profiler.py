"""A faust-streaming app that profiles a predictions topic with streamproc.embed and ships
the deltas to a streamproc worker's profiles topic (tests/integration/test_embed_faust.py).
Its profiler's stats go to PROFILER_OUT as JSON every 0.2 s."""

import dataclasses
import json
import os
from pathlib import Path

import faust

from streamproc.embed.faust import profile_stream
from streamproc.embed.profiler import StreamProfiler

env = os.environ
app = faust.App(
    env["PROFILER_APP_ID"],
    broker="kafka://" + env["PROFILER_BROKER"],
    datadir=env["PROFILER_DATA_DIR"],
    store="memory://",
    topic_partitions=4,
    consumer_auto_offset_reset="earliest",
    web_enabled=False,
)
profiler = StreamProfiler(
    bootstrap_servers=env["PROFILER_BROKER"],
    profiles_topic=env["PROFILER_PROFILES_TOPIC"],
    references=[env["PROFILER_REFERENCE"]],
    source_topic=env["PROFILER_TOPIC"],
    window=env["PROFILER_WINDOW"],
    allowed_lateness=env["PROFILER_LATENESS"],
    flush_interval_s=0.5,
    producer_id=env["PROFILER_APP_ID"],
)
profile_stream(app, env["PROFILER_TOPIC"], profiler)
out = Path(env["PROFILER_OUT"])


@app.timer(interval=0.2)
async def report() -> None:
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(dataclasses.asdict(profiler.stats)))
    tmp.replace(out)


if __name__ == "__main__":
    app.main()
