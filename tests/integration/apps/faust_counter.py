"""A minimal faust-streaming app (aiokafka transport) that counts the records of a topic."""

import os
from pathlib import Path

import faust

app = faust.App(
    os.environ["COUNTER_APP_ID"],
    broker="kafka://" + os.environ["COUNTER_BROKER"],
    datadir=os.environ["COUNTER_DATA_DIR"],
    store="memory://",
    topic_partitions=4,
    consumer_auto_offset_reset="earliest",
    web_enabled=False,
)
topic = app.topic(os.environ["COUNTER_TOPIC"], value_serializer="raw", key_serializer="raw")
out = Path(os.environ["COUNTER_OUT"])
state = {"count": 0}


@app.agent(topic)
async def count(stream):  # type: ignore[no-untyped-def]
    async for _value in stream:
        state["count"] += 1


@app.timer(interval=0.2)
async def report() -> None:
    out.write_text(str(state["count"]))


if __name__ == "__main__":
    app.main()
