"""The container image and the Compose stack, checked without a Docker engine.

There is no Docker engine (and no hadolint) on the test machines, so these tests read the
Dockerfile and docker-compose.yml and check what matters: a slim, pinned, multi-stage,
non-root image with a health check on /metrics; a stack whose services, ports, topic
names and mounted files are the ones the tests without Docker prove
(deploy/compose/monitor.toml, deploy/alertmanager/alertmanager.yml, deploy/prometheus,
deploy/grafana). When the `docker compose` plugin is installed, its own validation runs too.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from streamproc.config import MetricsConfig, load_config
from streamproc.demo.model import MODEL
from streamproc.demo.script import STANDARD

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "docker-compose.yml"
MONITOR_TOML = REPO / "deploy" / "compose" / "monitor.toml"


# --- Dockerfile ----------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    """Instructions per build stage (the first list holds the global ARGs)."""
    out: list[list[tuple[str, str]]] = [[]]
    for instr in instructions():
        if instr[0] == "FROM":
            out.append([])
        out[-1].append(instr)
    return out


def test_dockerfile_is_multi_stage_from_a_pinned_slim_base() -> None:
    glob, *built = stages()
    assert len(built) >= 2
    (arg,) = [rest for word, rest in glob if word == "ARG"]
    name, _, base = arg.partition("=")
    assert name == "PYTHON_IMAGE"
    # a patch release (or a digest), never a floating tag
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base), base
    froms = [stage[0][1] for stage in built]
    assert froms == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE} AS runtime"]


def test_runtime_stage_copies_the_venv_and_runs_unprivileged() -> None:
    runtime = stages()[-1]
    copies = [rest for word, rest in runtime if word == "COPY"]
    assert copies == ["--from=builder /opt/streamproc /opt/streamproc"]
    users = [rest for word, rest in runtime if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    run = " ".join(rest for word, rest in runtime if word == "RUN")
    assert "useradd --system --uid 10001" in run
    assert not any(word == "RUN" and "pip install" in rest for word, rest in runtime)


def test_builder_installs_a_wheel_not_an_editable_tree() -> None:
    builder = stages()[1]
    run = " ".join(rest for word, rest in builder if word == "RUN")
    assert 'pip install ".[registry]"' in run and "-e ." not in run and "--editable" not in run
    # the schemas are package data, verified from outside the source tree
    assert "schema_names()" in run and "site-packages" in run
    copied = {rest.split()[0] for word, rest in builder if word == "COPY"}
    assert {"pyproject.toml", "schemas", "streamproc"} <= copied
    # package data: streamproc/schemas points at schemas/ and pyproject ships it
    assert (REPO / "streamproc" / "schemas").resolve() == (REPO / "schemas").resolve()
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert "schemas/*.json" in pyproject["tool"]["setuptools"]["package-data"]["streamproc"]


def test_entrypoint_cmd_and_healthcheck() -> None:
    runtime = dict(stages()[-1])
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert json.loads(runtime["ENTRYPOINT"]) == ["streamproc"]
    assert "streamproc" in pyproject["project"]["scripts"]
    assert json.loads(runtime["CMD"]) == ["worker", "--config", "/etc/streamproc/monitor.toml"]
    options, _, command = runtime["HEALTHCHECK"].partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"]
    compile(argv[2], "<healthcheck>", "exec")  # the one-liner is valid Python
    assert "urllib" in argv[2] and "/metrics" in argv[2]
    assert f"'{MetricsConfig().port}'" in argv[2]  # the default metrics port
    assert runtime["EXPOSE"] == str(MetricsConfig().port)


def test_dockerignore_keeps_only_what_the_build_copies() -> None:
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    kept = {line[1:] for line in lines if line.startswith("!")}
    assert kept == {"pyproject.toml", "README.md", "streamproc", "schemas"}


# --- docker-compose.yml --------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml", reason="PyYAML is in the test extra")
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


def command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command", [])
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_compose_has_the_whole_stack(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {
        "kafka",
        "topics",
        "reference",
        "streamproc",
        "traffic",
        "forwarder",
        "alertmanager",
        "prometheus",
        "grafana",
    }
    for name, service in compose["services"].items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: unpinned {image}"


def test_kafka_is_a_single_kraft_node_from_the_official_image(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"] == "apache/kafka:4.1.1"
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9094"
    # transactions (the worker's exactly-once) need these on one node
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == 1
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == 1
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]


def test_bind_mounts_exist_in_the_repository(compose: dict[str, Any]) -> None:
    seen = set()
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), source
                seen.add(source)
    assert {
        "./deploy/compose",
        "./deploy/alertmanager/alertmanager.yml",
        "./deploy/prometheus/prometheus.yml",
        "./deploy/prometheus/rules",
        "./deploy/grafana/provisioning",
        "./deploy/grafana/dashboards",
    } <= seen


def test_worker_and_forwarder_share_one_config(compose: dict[str, Any]) -> None:
    services = compose["services"]
    config = load_config(MONITOR_TOML, env={})
    assert command(services["streamproc"]) == ["worker", "--config", "/etc/streamproc/monitor.toml"]
    forward = command(services["forwarder"])
    assert forward[:2] == ["alerts", "forward"]
    assert flag(forward, "--config") == "/etc/streamproc/monitor.toml"
    assert flag(forward, "--alertmanager") == "http://alertmanager:9093"
    assert "--web.listen-address=:9093" in command(services["alertmanager"])
    # the broker and the topics are the ones the stack creates and produces to
    assert config.kafka.bootstrap_servers == "kafka:9092"
    topics = command(services["topics"])
    assert flag(topics, "--topic") == config.topics.predictions
    traffic = command(services["traffic"])
    assert flag(traffic, "--topic") == config.topics.predictions
    assert flag(traffic, "--bootstrap-servers") == config.kafka.bootstrap_servers
    # the reference the one-shot service writes is the one the worker loads
    reference = command(services["reference"])
    assert config.references == {MODEL: Path(flag(reference, "--out"))}


def test_monitor_toml_uses_the_demo_timings() -> None:
    config = load_config(MONITOR_TOML, env={})
    t = STANDARD.timings
    assert config.windows.size_ms == t.window_s * 1000
    assert config.windows.allowed_lateness_ms == t.allowed_lateness_s * 1000
    assert config.windows.rolling_horizon_ms == t.rolling_horizon_s * 1000
    assert config.freshness.staleness_ms == t.staleness_s * 1000
    assert config.evaluation.interval_ms == t.evaluation_s * 1000
    assert (config.metrics.host, config.metrics.port) == ("0.0.0.0", MetricsConfig().port)


def test_prometheus_and_grafana_point_at_the_compose_services(compose: dict[str, Any]) -> None:
    yaml = pytest.importorskip("yaml")
    services = compose["services"]
    prometheus = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        target
        for job in prometheus["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    port = load_config(MONITOR_TOML, env={}).metrics.port
    assert f"streamproc:{port}" in targets
    assert f"{port}:{port}" in services["streamproc"]["ports"]
    datasources = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    assert {d["url"] for d in datasources["datasources"]} == {"http://prometheus:9090"}
    dashboards = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/dashboards/streamproc.yml").read_text()
    )
    (provider,) = dashboards["providers"]
    mounts = dict(v.split(":")[:2] for v in services["grafana"]["volumes"] if v.startswith("./"))
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"


def test_one_shot_and_producer_services_skip_the_metrics_healthcheck(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    for name in ("reference", "traffic"):
        assert services[name]["healthcheck"] == {"disable": True}
    forward = command(services["forwarder"])
    assert flag(forward, "--metrics-port") == str(MetricsConfig().port)


@pytest.mark.skipif(
    shutil.which("docker") is None
    or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0,
    reason="the docker compose plugin is not installed",
)
def test_docker_compose_config_validates() -> None:
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr


# --- deploy/compose/demo_traffic.py --------------------------------------------------


def demo_traffic() -> ModuleType:
    path = REPO / "deploy" / "compose" / "demo_traffic.py"
    spec = importlib.util.spec_from_file_location("demo_traffic", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_traffic_writes_a_reference_the_worker_loads(tmp_path: Path) -> None:
    from streamproc.monitor.references import ReferenceSet

    module = demo_traffic()
    out = tmp_path / "reference" / "credit-risk.profile"
    assert module.main(["reference", "--out", str(out)]) == 0
    assert ReferenceSet.load([out]).by_model.keys() == {MODEL}
    before = out.stat().st_mtime_ns
    assert module.write_reference(out) is False  # kept on a restart
    assert out.stat().st_mtime_ns == before
