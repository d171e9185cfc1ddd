"""`streamproc broker start` → produce/consume from another process → `stop` leaves nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from streamproc.broker.local import free_port
from tests.support.kafka import consume_n, create_topic, produce_all


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamproc", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _kafka_pids(data_dir: Path) -> list[int]:
    marker = f"-Dstreamproc.broker.datadir={data_dir}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if marker in cmdline.split(b"\0"):
            pids.append(int(proc.name))
    return pids


def test_broker_cli_lifecycle(tmp_path: Path) -> None:
    data_dir = tmp_path / "broker"
    port = free_port()
    started = _cli("broker", "start", "--port", str(port), "--data-dir", str(data_dir))
    assert started.returncode == 0, started.stderr
    assert f"ready at 127.0.0.1:{port}" in started.stdout
    try:
        status = _cli("broker", "status", "--data-dir", str(data_dir))
        assert status.returncode == 0
        assert f"running at 127.0.0.1:{port}" in status.stdout
        log_file = data_dir / "broker.log"
        assert f"log {log_file}" in status.stdout
        assert log_file.stat().st_size > 0
        assert len(_kafka_pids(data_dir)) == 1

        # A second start on the same data dir reports the running broker, starts nothing.
        again = _cli("broker", "start", "--port", str(port), "--data-dir", str(data_dir))
        assert "already running" in again.stdout
        assert len(_kafka_pids(data_dir)) == 1

        bootstrap = f"127.0.0.1:{port}"
        create_topic(bootstrap, "cli-check", partitions=2)
        produce_all(bootstrap, "cli-check", [(b"k%d" % i, b"v%d" % i) for i in range(100)])
        got = consume_n(bootstrap, "cli-check", "cli-check.g", n=100, timeout_s=30)
        assert sorted(m.value() for m in got) == sorted(b"v%d" % i for i in range(100))
    finally:
        stopped = _cli("broker", "stop", "--data-dir", str(data_dir))
    assert stopped.returncode == 0
    assert "stopped the broker" in stopped.stdout
    assert _kafka_pids(data_dir) == []
    assert _cli("broker", "status", "--data-dir", str(data_dir)).returncode == 3
