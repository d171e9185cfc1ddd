"""librdkafka's log lines through Python logging, with its outage chatter throttled.

While a broker is away every client reports every failed reconnect (one line per
client and broker about twice a second: 4,519 lines from one worker in a 2-minute
outage). Routed through the ``streamproc.kafka`` logger (confluent-kafka's ``logger``
setting), the first line of each kind passes and then one per :data:`EVERY_S`, saying
how many like it were held back; what the worker does about the outage is logged by
the stages themselves (:mod:`.txn`, :mod:`.supervisor`).
"""

from __future__ import annotations

import logging
import re
import threading
import time

EVERY_S = 60.0
"""One line of a kind per this many seconds (seconds)."""

MAX_KINDS = 1_000
"""Distinct kinds remembered (bounded memory); the oldest are forgotten first."""

_VARYING = re.compile(r"\d+(\.\d+)?")


def kind_of(record: logging.LogRecord) -> str:
    """What makes two lines "the same": facility and text with numbers blanked
    (confluent-kafka logs ``"%s [%s] %s" % (facility, client name, message)``)."""
    args = record.args if isinstance(record.args, tuple) else ()
    if len(args) == 3:
        facility, _client, message = args
        return f"{facility} {_VARYING.sub('#', str(message))[:120]}"
    return _VARYING.sub("#", record.getMessage())[:160]


class Throttle(logging.Filter):
    """Pass the first record of each kind, then at most one per ``every_s``."""

    def __init__(self, every_s: float = EVERY_S) -> None:
        super().__init__()
        self.every_s = every_s
        self._seen: dict[str, tuple[float, int]] = {}  # kind → (last passed, held back)
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = kind_of(record)
        now = time.monotonic()
        with self._lock:
            last, held = self._seen.get(key, (float("-inf"), 0))
            if now - last < self.every_s:
                self._seen[key] = (last, held + 1)
                return False
            if len(self._seen) >= MAX_KINDS and key not in self._seen:
                self._seen.pop(next(iter(self._seen)))
            self._seen[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} ({held} like it in the last {self.every_s:.0f} s held back)"
        return True


KAFKA_LOG = logging.getLogger("streamproc.kafka")
"""The logger handed to every Kafka client (throttled)."""
KAFKA_LOG.addFilter(Throttle())
