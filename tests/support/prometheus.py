"""Run a real Prometheus server (Debian's ``prometheus`` package) for the ops tests.

``PrometheusServer.start(targets, rule_files)`` writes a config into a temporary
directory (JSON is YAML, so no YAML library is needed), starts ``prometheus`` on a free
127.0.0.1 port with its TSDB in that directory, and waits for ``/-/ready``. ``stop()``
ends only that process and removes the directory. ``query`` and friends are thin
wrappers over the HTTP API (``/api/v1/...``) that raise on a non-success status.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamproc.broker.local import free_port

PROMETHEUS_CANDIDATES = ("/usr/bin/prometheus",)
PROMTOOL_CANDIDATES = ("/usr/bin/promtool",)
INSTALL_HINT = "install it with `make system-deps` (Debian package `prometheus`)"


class PrometheusUnavailable(RuntimeError):
    """No Prometheus binary, or the server would not start."""


def prometheus_required() -> bool:
    """In CI (or when asked) a missing Prometheus fails the test instead of skipping it."""
    return os.environ.get("CI", "").lower() == "true" or os.environ.get(
        "STREAMPROC_REQUIRE_PROMETHEUS"
    ) in {"1", "true", "yes"}


def _binary(env: str, name: str, candidates: tuple[str, ...]) -> str | None:
    explicit = os.environ.get(env)
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    found = shutil.which(name)
    if found:
        return found
    return next((c for c in candidates if os.access(c, os.X_OK)), None)


def prometheus_binary() -> str | None:
    return _binary("PROMETHEUS_BIN", "prometheus", PROMETHEUS_CANDIDATES)


def promtool_binary() -> str | None:
    return _binary("PROMTOOL_BIN", "promtool", PROMTOOL_CANDIDATES)


class QueryError(AssertionError):
    """The HTTP API answered with an error (bad expression, unknown endpoint...)."""


@dataclass
class PrometheusServer:
    binary: str
    directory: Path
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    _log: Any = field(repr=False, default=None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(
        cls,
        targets: list[str],
        rule_files: list[Path],
        *,
        job: str = "streamproc",
        scrape_interval_s: int = 1,
        attempts: int = 3,
        ready_timeout_s: float = 30.0,
    ) -> PrometheusServer:
        binary = prometheus_binary()
        if binary is None:
            raise PrometheusUnavailable(f"no prometheus binary; {INSTALL_HINT}")
        directory = Path(tempfile.mkdtemp(prefix="streamproc-test-prometheus-"))
        rules = []
        for i, rule_file in enumerate(rule_files):
            copy = directory / f"rules-{i}-{rule_file.name}"
            shutil.copyfile(rule_file, copy)
            rules.append(str(copy))
        config = {
            "global": {
                "scrape_interval": f"{scrape_interval_s}s",
                "evaluation_interval": f"{scrape_interval_s}s",
                "scrape_timeout": f"{scrape_interval_s}s",
            },
            "rule_files": rules,
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}],
        }
        config_path = directory / "prometheus.yml"
        config_path.write_text(json.dumps(config, indent=2))
        last = "not started"
        for attempt in range(attempts):  # the free port can be taken before we bind it
            port = free_port()
            log_path = directory / f"prometheus-{attempt}.log"
            log = log_path.open("wb")
            process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=directory,
            )
            server = cls(binary, directory, port, process, log_path, log)
            if server._wait_ready(ready_timeout_s):
                return server
            last = server.log_tail()
            server._terminate()
        shutil.rmtree(directory, ignore_errors=True)
        raise PrometheusUnavailable(f"prometheus did not become ready: {last}")

    def _wait_ready(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        return False

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _terminate(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self._log is not None:
            self._log.close()

    def stop(self) -> None:
        self._terminate()
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- HTTP API ---------------------------------------------------------------------

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>``; returns ``data`` or raises QueryError with the reason."""
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # 400/422 carry the error as JSON
            body = json.loads(exc.read() or b"{}")
        if body.get("status") != "success":
            raise QueryError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query at now; the result list (vector or matrix)."""
        data = self.api("query", query=expr)
        result = data["result"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": result}]
        return list(result)

    def label_values(self, label: str, match: str) -> list[str]:
        return list(self.api(f"label/{label}/values", **{"match[]": match}))

    def targets(self) -> list[dict[str, Any]]:
        return list(self.api("targets")["activeTargets"])

    def rule_groups(self) -> list[dict[str, Any]]:
        return list(self.api("rules")["groups"])

    def wait_for(self, expr: str, timeout_s: float) -> list[dict[str, Any]]:
        """Until ``expr`` returns a non-empty result; that result (empty on timeout)."""
        deadline = time.monotonic() + timeout_s
        while True:
            result = self.query(expr)
            if result or time.monotonic() > deadline:
                return result
            time.sleep(0.25)
