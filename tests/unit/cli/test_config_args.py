"""The configuration flags of the sub-commands: CLI flags win over file and environment."""

from __future__ import annotations

import argparse
from pathlib import Path

from streamproc.cli.config_args import add_config_arguments, config_from_args


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_cli_flags_win(tmp_path: Path) -> None:
    path = write(tmp_path, "[kafka]\nbootstrap_servers = 'file:9092'\n[metrics]\nport = 1\n")
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    args = parser.parse_args(
        [
            "--config",
            str(path),
            "--bootstrap-servers",
            "cli:9092",
            "--group-id",
            "cli",
            "--metrics-port",
            "9300",
            "--replay",
        ]
    )
    c = config_from_args(args, env={"STREAMPROC_KAFKA_BOOTSTRAP_SERVERS": "env:1"})
    assert (c.kafka.bootstrap_servers, c.kafka.group_id) == ("cli:9092", "cli")
    assert c.metrics.port == 9300 and c.evaluation.replay is True
    # flags not given leave file/env values alone
    c = config_from_args(parser.parse_args(["--config", str(path)]), env={})
    assert c.kafka.bootstrap_servers == "file:9092" and c.metrics.port == 1
    assert c.evaluation.replay is False


def test_no_flags_no_file_gives_the_defaults() -> None:
    from streamproc.config import MonitorConfig

    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    assert config_from_args(parser.parse_args([]), env={}) == MonitorConfig()


def test_instance_id_from_file_env_and_flag_gives_stable_identities(tmp_path: Path) -> None:
    from streamproc.monitor.clients import stage_identity, static_membership

    path = write(tmp_path, "[kafka]\ninstance_id = 'from-file'\n")
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    c = config_from_args(parser.parse_args(["--config", str(path)]), env={})
    assert c.kafka.instance_id == "from-file"
    env = {"STREAMPROC_KAFKA_INSTANCE_ID": "worker-3"}
    assert config_from_args(parser.parse_args([]), env=env).kafka.instance_id == "worker-3"
    args = parser.parse_args(["--instance-id", "worker-7"])
    assert config_from_args(args, env=env).kafka.instance_id == "worker-7"
    # a slot keeps its transactional id across restarts; no slot: a fresh one per process
    assert stage_identity("g-ingest", "worker-7", "ingest") == "g-ingest-worker-7"
    assert stage_identity("g-ingest", "", "ingest") != stage_identity("g-ingest", "", "ingest")
    assert static_membership("worker-7") == {"group.instance.id": "worker-7"}
    assert static_membership("") == {}
