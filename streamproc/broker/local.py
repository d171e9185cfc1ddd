"""A single-node Apache Kafka 4.x broker in KRaft combined mode, for development and tests.

The broker runs from the official jars (see :mod:`streamproc.broker.jars`) as a child
process in its own process group. Everything it owns lives in one data directory:
``server.properties``, the log directories, ``broker.log`` and ``broker.json`` (the
pid, ports and paths of the running broker), so ``stop`` ends only what ``start``
started, and two brokers with different data directories never collide.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from streamproc.broker.jars import KAFKA_VERSION, BrokerSetupError, ensure_jars, require_tool

#: JVM heap for the dev broker: small, but enough for the log cleaner below.
BROKER_HEAP = "-Xmx768m"
STATE_FILE = "broker.json"


def default_data_dir() -> Path:
    """``$XDG_STATE_HOME/streamproc/broker`` (default ``~/.local/state/streamproc/broker``)."""
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "streamproc" / "broker"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    """True when something listens on (or holds the bind of) 127.0.0.1:port.

    Binds with ``SO_REUSEADDR``, as Kafka's own listener does: connections of a broker
    that just stopped linger in TIME_WAIT for about a minute, and they must not make a
    restart on the same port look taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@dataclass(frozen=True)
class BrokerInfo:
    """What ``broker.json`` records about a running broker."""

    pid: int
    port: int
    controller_port: int
    data_dir: str
    log_file: str
    version: str
    started_at: float

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"


ExtraProperties = Callable[[int, int], Mapping[str, str]]
"""``(port, controller_port) -> properties`` that add to or replace the defaults of
:func:`server_properties` (e.g. a secured listener block)."""


def server_properties(
    port: int, controller_port: int, log_dir: Path, extra: Mapping[str, str] | None = None
) -> str:
    """Broker config: one node, replication factor 1, a log cleaner sized for a small heap;
    ``extra`` adds to or replaces any of it (listeners, security, authorizer)."""
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": "1",
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "8",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        # Compacted topics (Faust changelogs) need the cleaner; its dedupe buffer
        # defaults to 128 MiB, which would not fit the small heap above.
        "log.cleaner.enable": "true",
        "log.cleaner.threads": "1",
        "log.cleaner.dedupe.buffer.size": str(32 * 1024 * 1024),
        "message.max.bytes": str(8 * 1024 * 1024),
        "log.retention.hours": "168",
        "log.segment.bytes": str(256 * 1024 * 1024),
    }
    props.update(extra or {})
    return "".join(f"{key}={value}\n" for key, value in props.items())


class LocalBroker:
    """Start, stop and inspect the broker whose files live in ``data_dir``.

    The keyword hooks are for variants such as the tests' secured broker
    (``tests/support/secure_kafka.py``); without them the broker is the plaintext one:
    ``extra_properties`` adds to or replaces :func:`server_properties`, ``format_args``
    are added to ``kafka-storage format`` (e.g. ``--add-scram ...``), and
    ``client_config`` is what the readiness check's admin client needs to connect
    (``security.protocol``, ``sasl.*``, ``ssl.*``)."""

    def __init__(
        self,
        data_dir: Path | None = None,
        version: str = KAFKA_VERSION,
        *,
        extra_properties: ExtraProperties | None = None,
        format_args: Sequence[str] = (),
        client_config: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir) if data_dir else default_data_dir()
        self.version = version
        self.extra_properties = extra_properties
        self.format_args = tuple(format_args)
        self.client_config = dict(client_config or {})

    @property
    def state_file(self) -> Path:
        return self.data_dir / STATE_FILE

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    def info(self) -> BrokerInfo | None:
        """The running broker's record, or None (a stale record is removed)."""
        try:
            info = BrokerInfo(**json.loads(self.state_file.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None
        if not _is_our_broker(info.pid, self.data_dir):
            self.state_file.unlink(missing_ok=True)
            return None
        return info

    def start(
        self, port: int = 9092, *, foreground: bool = False, timeout_s: float = 90.0
    ) -> BrokerInfo:
        """Start the broker and wait until it answers a metadata request."""
        running = self.info()
        if running is not None:
            return running
        java = require_tool("java", "to run the Apache Kafka broker (Java 17 or newer)")
        if port_in_use(port):
            raise BrokerSetupError(
                f"port {port} on 127.0.0.1 is already in use; pick another with --port "
                "or stop whatever listens there"
            )
        libs = ensure_jars(self.version)
        controller_port = free_port()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_dir = self.data_dir / "kraft-logs"
        props = self.data_dir / "server.properties"
        extra = self.extra_properties(port, controller_port) if self.extra_properties else None
        props.write_text(server_properties(port, controller_port, log_dir, extra))
        log4j = self.data_dir / "log4j2.properties"
        log4j.write_text(
            resources.files("streamproc.broker").joinpath("log4j2.properties").read_text()
        )
        classpath = f"{libs}/*"
        jvm_props = [
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dstreamproc.broker.log={self.log_file}",
            f"-Dstreamproc.broker.datadir={self.data_dir}",
        ]
        if not (log_dir / "meta.properties").exists():
            self._format(java, classpath, jvm_props, props)
        cmd = [
            java,
            BROKER_HEAP,
            "-Xms256m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            *jvm_props,
            "-cp",
            classpath,
            "kafka.Kafka",
            str(props),
        ]
        if foreground:
            self._record(os.getpid(), port, controller_port)
            print(f"Kafka {self.version} on 127.0.0.1:{port}; log: {self.log_file}", flush=True)
            os.execv(java, cmd)  # same pid; Ctrl-C stops the broker
        stdout = open(self.data_dir / "broker.stdout", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            cmd,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        stdout.close()
        info = self._record(proc.pid, port, controller_port)
        try:
            wait_ready(info.bootstrap_servers, timeout_s, proc=proc, config=self.client_config)
        except BrokerSetupError:
            self.stop()
            raise
        return info

    def _record(self, pid: int, port: int, controller_port: int) -> BrokerInfo:
        info = BrokerInfo(
            pid=pid,
            port=port,
            controller_port=controller_port,
            data_dir=str(self.data_dir),
            log_file=str(self.log_file),
            version=self.version,
            started_at=time.time(),
        )
        self.state_file.write_text(json.dumps(asdict(info), indent=2))
        return info

    def _format(self, java: str, classpath: str, jvm_props: list[str], props: Path) -> None:
        cmd = [
            java,
            *jvm_props,
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={_cluster_id()}",
            "-c",
            str(props),
            "--ignore-formatted",
            *self.format_args,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BrokerSetupError(
                f"formatting Kafka storage in {self.data_dir} failed: "
                + (proc.stdout + proc.stderr).strip()[-800:]
            )

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the broker this data dir started; True if one was running."""
        info = self.info()
        if info is None:
            return False
        _signal_group(info.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _alive(info.pid):
            time.sleep(0.1)
        if _alive(info.pid):
            _signal_group(info.pid, signal.SIGKILL)
            while _alive(info.pid):
                time.sleep(0.05)
        self.state_file.unlink(missing_ok=True)
        return True


def wait_ready(
    bootstrap_servers: str,
    timeout_s: float,
    proc: subprocess.Popen[bytes] | None = None,
    config: Mapping[str, str] | None = None,
) -> None:
    """Wait until the port answers and a metadata request lists a broker (``config``:
    the admin client's extra settings, e.g. SASL/SSL for a secured listener)."""
    from confluent_kafka.admin import AdminClient

    host, _, port = bootstrap_servers.rpartition(":")
    deadline = time.monotonic() + timeout_s
    last_error = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BrokerSetupError(
                f"the broker exited with code {proc.returncode} during start-up; see its log"
            )
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                pass
            admin = AdminClient(
                {**(config or {}), "bootstrap.servers": bootstrap_servers, "log_level": 0}
            )
            metadata = admin.list_topics(timeout=5)
            if metadata.brokers:
                return
        except Exception as exc:  # connection refused, metadata timeout: retry
            last_error = str(exc)
        time.sleep(0.25)
    raise BrokerSetupError(
        f"broker at {bootstrap_servers} not ready after {timeout_s:.0f}s ({last_error})"
    )


def _cluster_id() -> str:
    """A Kafka cluster id: a random UUID in URL-safe base64 without padding.

    It may start with "-", so pass it as ``--cluster-id=ID``, never as a separate argument.
    """
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def _is_our_broker(pid: int, data_dir: Path) -> bool:
    """True if ``pid`` is a live Kafka JVM started for ``data_dir`` (guards against pid reuse)."""
    if not _alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    marker = f"-Dstreamproc.broker.datadir={data_dir}".encode()
    return b"kafka.Kafka" in cmdline and marker in cmdline


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)
