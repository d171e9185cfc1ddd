"""A real Prometheus Alertmanager for the tests: Debian's ``prometheus-alertmanager``
binary (installed by ``scripts/install-system-deps.sh``) on a free loopback port, with
``deploy/alertmanager/alertmanager.yml`` and a temporary storage directory, clustering off.

``ALERTMANAGER_BIN`` overrides the binary's path. In CI (``kafka_required()``) a missing
binary fails the test instead of skipping it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamproc.broker.local import free_port

DEFAULT_BIN = "/usr/bin/prometheus-alertmanager"

#: The deployment's own config (docker-compose.yml mounts the same file): its receiver has
#: no integrations, and the tests read the API only.
CONFIG_FILE = Path(__file__).resolve().parents[2] / "deploy" / "alertmanager" / "alertmanager.yml"


def alertmanager_binary() -> str | None:
    path = os.environ.get("ALERTMANAGER_BIN") or DEFAULT_BIN
    if Path(path).is_file() and os.access(path, os.X_OK):
        return path
    return shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


@dataclass
class Alertmanager:
    """One running Alertmanager; :meth:`stop` ends it and removes its directory."""

    binary: str
    port: int = field(default_factory=free_port)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="streamproc-am-")))
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.workdir / "alertmanager.log"

    def start(self, timeout_s: float = 30.0) -> Alertmanager:
        config = CONFIG_FILE
        (self.workdir / "data").mkdir(exist_ok=True)
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={config}",
                    f"--storage.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--cluster.listen-address=",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"alertmanager exited: {self.log_tail()}")
            if self.ready():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"alertmanager not ready in {timeout_s}s: {self.log_tail()}")

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def pause(self) -> None:
        """Stop the process but keep its port and directory (restart with :meth:`start`)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def stop(self) -> None:
        self.pause()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def alerts(self) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts``: the alerts Alertmanager holds as not resolved."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as response:
            data: list[dict[str, Any]] = json.loads(response.read())
        return data

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:])
