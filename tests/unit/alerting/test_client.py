"""The Alertmanager client against a local HTTP server: what is sent, how errors split."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from streamproc.alerting import (
    AlertmanagerClient,
    AlertmanagerError,
    AlertsRejected,
    Backoff,
    alerts_endpoint,
)
from streamproc.broker.local import free_port
from streamproc.errors import UsageError


class FakeAlertmanager(ThreadingHTTPServer):
    status = 200
    body = b""
    received: list[tuple[str, str, dict[str, str], Any]]


class Handler(BaseHTTPRequestHandler):
    server: FakeAlertmanager

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        payload = json.loads(self.rfile.read(length))
        self.server.received.append(("POST", self.path, dict(self.headers), payload))
        self._answer()

    def do_GET(self) -> None:
        self.server.received.append(("GET", self.path, dict(self.headers), None))
        self._answer()

    def _answer(self) -> None:
        self.send_response(self.server.status)
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[FakeAlertmanager]:
    srv = FakeAlertmanager(("127.0.0.1", 0), Handler)
    srv.received = []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def url(srv: FakeAlertmanager, path: str = "") -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}{path}"


@pytest.mark.parametrize(
    ("given", "endpoint"),
    [
        ("http://alertmanager:9093", "http://alertmanager:9093/api/v2/alerts"),
        ("http://alertmanager:9093/", "http://alertmanager:9093/api/v2/alerts"),
        ("https://am.example.com/prefix/", "https://am.example.com/prefix/api/v2/alerts"),
        ("http://am:9093/api/v2/alerts", "http://am:9093/api/v2/alerts"),
        (" http://[::1]:9093 ", "http://[::1]:9093/api/v2/alerts"),
    ],
)
def test_endpoint_from_base_url(given: str, endpoint: str) -> None:
    assert alerts_endpoint(given) == endpoint


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("alertmanager:9093", "must be an http(s) URL"),
        ("ftp://am:21", "must be an http(s) URL"),
        ("http://", "must be an http(s) URL"),
        ("http://am:99999", "bad port"),
        ("http://am:9093/?x=1", "query or fragment"),
    ],
)
def test_bad_urls_are_usage_errors(bad: str, says: str) -> None:
    with pytest.raises(UsageError, match=says.replace("(", r"\(").replace(")", r"\)")):
        alerts_endpoint(bad)


def test_post_sends_the_json_list(server: FakeAlertmanager) -> None:
    alerts = [{"labels": {"alertname": "X"}, "startsAt": "2024-05-01T10:00:00Z"}]
    AlertmanagerClient(url(server)).post(alerts)
    ((method, path, headers, payload),) = server.received
    assert (method, path, payload) == ("POST", "/api/v2/alerts", alerts)
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("streamproc/")


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
def test_server_errors_are_retryable(server: FakeAlertmanager, status: int) -> None:
    server.status, server.body = status, b"try later"
    with pytest.raises(AlertmanagerError, match=f"answered HTTP {status}: try later"):
        AlertmanagerClient(url(server)).post([])


@pytest.mark.parametrize("status", [400, 404, 422])
def test_client_errors_are_final(server: FakeAlertmanager, status: int) -> None:
    server.status, server.body = status, b'{"code":400,\n "message":"bad"}'
    with pytest.raises(AlertsRejected, match=f'HTTP {status}: {{"code":400, "message":"bad"}}'):
        AlertmanagerClient(url(server)).post([])


def test_unreachable_is_retryable_with_one_line() -> None:
    client = AlertmanagerClient(f"http://127.0.0.1:{free_port()}", timeout_s=2)
    with pytest.raises(AlertmanagerError, match=r"cannot reach http://127\.0\.0\.1:\d+/api/v2"):
        client.post([])
    problem = client.probe()
    assert problem is not None and problem.startswith("cannot reach http://127.0.0.1:")
    assert "\n" not in problem


def test_probe_asks_ready(server: FakeAlertmanager) -> None:
    client = AlertmanagerClient(url(server, "/am"))
    assert client.base_url == url(server, "/am")
    assert client.probe() is None
    assert server.received[0][:2] == ("GET", "/am/-/ready")
    server.status = 503
    assert client.probe() == f"{url(server, '/am')}/-/ready answered HTTP 503"


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    backoff = Backoff(initial_s=0.5, cap_s=30.0, rng=random.Random(1))
    delays = [backoff.delay_s(n) for n in range(12)]
    for n, d in enumerate(delays):
        ceiling = min(30.0, 0.5 * 2**n)
        assert ceiling / 2 <= d <= ceiling
    assert max(delays) <= 30.0
    assert backoff.delay_s(10_000) <= 30.0  # no overflow after a long outage
    with pytest.raises(ValueError):
        Backoff(initial_s=0)
    with pytest.raises(ValueError):
        Backoff(initial_s=5, cap_s=1)
