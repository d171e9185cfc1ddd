"""Alertmanager's v2 alerts API, ``POST {base}/api/v2/alerts``, with the stdlib only.

One request posts a JSON list of postable alerts (labels, annotations, startsAt, endsAt,
generatorURL). Alertmanager stores every valid alert of the list and answers 400 if any
was invalid, so a 4xx is final for that batch (:class:`AlertsRejected`), while connection
errors, timeouts, 5xx, 408 and 429 are worth retrying (:class:`AlertmanagerError`).
See https://github.com/prometheus/alertmanager/blob/main/api/v2/openapi.yaml.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any, Final

from streamproc import __version__
from streamproc.errors import UsageError

API_PATH: Final = "/api/v2/alerts"
RETRYABLE_STATUS: Final = frozenset({408, 429})


class AlertmanagerError(Exception):
    """A post failed in a way that may succeed later (unreachable, timeout, 5xx, 408, 429)."""


class AlertsRejected(Exception):
    """Alertmanager refused the batch (4xx): retrying the same payload cannot help."""


def alerts_endpoint(url: str) -> str:
    """``http://am:9093`` (or ``.../prefix``, or the full ``.../api/v2/alerts``) → the
    alerts endpoint; raises :class:`UsageError` for anything but an http(s) URL with a host."""
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise UsageError(
            f"--alertmanager must be an http(s) URL such as http://alertmanager:9093, got {url!r}"
        )
    try:
        parsed.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise UsageError(f"--alertmanager has a bad port: {url!r}") from None
    if parsed.query or parsed.fragment:
        raise UsageError(f"--alertmanager must not have a query or fragment: {url!r}")
    path = parsed.path.rstrip("/")
    if not path.endswith(API_PATH):
        path += API_PATH
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, path, "", ""))


class AlertmanagerClient:
    """Posts lists of alerts to one Alertmanager; ``timeout_s`` bounds each request."""

    def __init__(self, url: str, *, timeout_s: float = 10.0) -> None:
        self.endpoint = alerts_endpoint(url)
        self.timeout_s = timeout_s

    @property
    def base_url(self) -> str:
        """The Alertmanager root (the endpoint without ``/api/v2/alerts``)."""
        return self.endpoint[: -len(API_PATH)]

    def probe(self) -> str | None:
        """``GET /-/ready`` once: None when Alertmanager is ready, else why not (one line)."""
        request = urllib.request.Request(f"{self.base_url}/-/ready", method="GET")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            return f"{self.base_url}/-/ready answered HTTP {exc.code}"
        except urllib.error.URLError as exc:
            return f"cannot reach {self.base_url}: {exc.reason}"
        except OSError as exc:
            return f"cannot reach {self.base_url}: {exc}"
        return None

    def post(self, alerts: Sequence[dict[str, Any]]) -> None:
        """POST ``alerts``; returns when Alertmanager answered 2xx."""
        body = json.dumps(list(alerts)).encode("utf-8")
        request = urllib.request.Request(
            self.endpoint,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": f"streamproc/{__version__}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            detail = _body(exc)
            message = f"{self.endpoint} answered HTTP {exc.code}: {detail or exc.reason}"
            if exc.code >= 500 or exc.code in RETRYABLE_STATUS:
                raise AlertmanagerError(message) from None
            raise AlertsRejected(message) from None
        except urllib.error.URLError as exc:
            raise AlertmanagerError(f"cannot reach {self.endpoint}: {exc.reason}") from None
        except OSError as exc:  # timeouts, resets
            raise AlertmanagerError(f"cannot reach {self.endpoint}: {exc}") from None


def _body(exc: urllib.error.HTTPError) -> str:
    try:
        text = exc.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return " ".join(text.split())[:300]
