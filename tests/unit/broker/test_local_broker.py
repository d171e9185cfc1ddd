"""The dev broker's configuration and its errors, without starting Kafka."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from streamproc.broker import jars
from streamproc.broker.jars import BrokerSetupError, require_tool
from streamproc.broker.local import LocalBroker, port_in_use, server_properties
from streamproc.cli.main import main


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_server_properties_single_node_kraft(tmp_path: Path) -> None:
    props = _props(server_properties(19092, 19093, tmp_path / "logs"))
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["log.dirs"] == str(tmp_path / "logs")
    # The cleaner must run (compacted changelogs) with a buffer that fits the small heap.
    assert props["log.cleaner.enable"] == "true"
    assert int(props["log.cleaner.dedupe.buffer.size"]) <= 64 * 1024 * 1024


def test_extra_properties_replace_the_listener_block_and_default_is_plaintext(
    tmp_path: Path,
) -> None:
    secured = {"listeners": "SASL_SSL://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"}
    props = _props(server_properties(19092, 19093, tmp_path / "logs", secured))
    assert props["listeners"] == secured["listeners"]
    assert props["process.roles"] == "broker,controller"  # the rest is kept
    broker = LocalBroker(tmp_path)
    assert broker.extra_properties is None and broker.format_args == ()
    assert broker.client_config == {}


def test_port_in_use_detects_a_listener() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert port_in_use(port)
    assert not port_in_use(port)


def test_connections_left_in_time_wait_do_not_make_the_port_look_taken() -> None:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Kafka's listener (JVM)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = server.accept()
    conn.close()  # the server side closes first: its end of the connection is in TIME_WAIT
    client.recv(1)
    client.close()
    server.close()
    assert not port_in_use(port)  # a broker restart on this port must not be refused


def test_start_on_a_taken_port_says_so(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(BrokerSetupError, match=f"port {port} .* already in use"):
            LocalBroker(tmp_path).start(port)


def test_missing_tool_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BrokerSetupError, match="apt-get install maven"):
        require_tool("mvn", "to fetch jars")
    with pytest.raises(BrokerSetupError, match="openjdk"):
        require_tool("java", "to run Kafka")


def test_cli_reports_missing_java_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    code = main(["broker", "start", "--data-dir", str(tmp_path), "--port", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("streamproc: error: `java` was not found")
    assert "Traceback" not in err


def test_jar_cache_is_keyed_by_version(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STREAMPROC_CACHE_DIR", str(tmp_path))
    assert jars.jar_dir("4.1.1") == tmp_path / "kafka" / "4.1.1" / "libs"
    assert jars.jar_dir("4.2.0") != jars.jar_dir("4.1.1")


def test_status_and_stop_without_a_broker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["broker", "status", "--data-dir", str(tmp_path)]) == 3
    assert "stopped" in capsys.readouterr().out
    assert main(["broker", "stop", "--data-dir", str(tmp_path)]) == 0
    assert "no broker running" in capsys.readouterr().out


def test_stale_state_file_is_not_trusted(tmp_path: Path) -> None:
    # pid 1 is alive but is not a Kafka broker for this data dir: never signal it.
    (tmp_path / "broker.json").write_text(
        '{"pid": 1, "port": 1, "controller_port": 2, "data_dir": "x", "log_file": "y",'
        ' "version": "4.1.1", "started_at": 0}'
    )
    broker = LocalBroker(tmp_path)
    assert broker.info() is None
    assert broker.stop() is False
    assert not (tmp_path / "broker.json").exists()


def test_cluster_ids_are_16_byte_base64_even_when_they_start_with_a_dash() -> None:
    import base64

    from streamproc.broker.local import _cluster_id

    ids = [_cluster_id() for _ in range(500)]
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
    assert any(i.startswith("-") for i in ids)  # why --cluster-id=ID is used
