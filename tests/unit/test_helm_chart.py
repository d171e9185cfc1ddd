"""The Helm chart deploy/helm/streamproc: `helm lint` and `helm template` with the default
values and with every option on, the rendered manifests' properties checked, and the
config it renders read by streamproc's own loader (the independent consumer of it).

helm comes from scripts/ensure-helm ($HELM, PATH, the cached build, else a build from its
Go module). In CI (CI=true, or STREAMPROC_REQUIRE_HELM=1) a missing helm fails the tests;
elsewhere they skip (scripts/ensure-helm builds one). The copies the chart reads through
.Files.Get (Helm reads nothing outside the chart) are checked without helm.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamproc.cli.main import build_parser
from streamproc.config import MonitorConfig, load_config
from streamproc.monitor.references import ReferenceSet
from streamproc.monitor.worker import Worker

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy/helm/streamproc"
RULES = ROOT / "deploy/prometheus/rules/streamproc.rules.yml"
DASHBOARD = ROOT / "deploy/grafana/dashboards/streamproc.json"
EXAMPLE_CONFIG = ROOT / "docs/monitor.example.toml"
RESULTS = ROOT / "benchmarks/RESULTS.md"
README = ROOT / "README.md"
DOCKERFILE = ROOT / "Dockerfile"
ENSURE_HELM = ROOT / "scripts/ensure-helm"

RELEASE = "mon"
NAMESPACE = "ml"
STATEFULSET = f"{RELEASE}-streamproc-worker"

# Building helm (CI, first run) can take minutes before the first test's own work.
pytestmark = pytest.mark.timeout(1800)

# Every option on: Prometheus Operator, Grafana sidecar, KEDA, the forwarder, an existing
# Secret for the SASL password, a CA, reference profiles from a ConfigMap.
ALL_OPTIONS: dict[str, Any] = {
    "predictionsPartitions": 6,
    "config": {
        "kafka": {
            "bootstrap_servers": "kafka-1:9093,kafka-2:9093",
            "group_id": "fraud-mon",
            "client": {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512"},
        },
        "topics": {"predictions": "fraud-predictions", "alerts": "fraud-alerts"},
        "windows": {"size": "10m"},
    },
    "kafkaAuth": {
        "existingSecret": "kafka-creds",
        "passwordKey": "password",
        "username": "streamproc-worker",
        "caSecret": "kafka-ca",
    },
    "references": {
        "configMap": "fraud-references",
        "models": {"fraud": "fraud.profile", "fraud/8": "fraud-8.profile"},
    },
    "worker": {"replicas": 3},
    "forwarder": {
        "enabled": True,
        "alertmanagerUrl": "http://alertmanager.monitoring:9093",
        "username": "streamproc-forwarder",
        "batchSize": 200,
    },
    "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "prometheusRule": {"enabled": True},
    "grafanaDashboard": {"enabled": True},
    "keda": {"enabled": True, "lagThreshold": 50000},
}


def helm_required() -> bool:
    """As tests/support/kafka.py kafka_required(): in CI a missing helm is a failure."""
    return os.environ.get("CI", "").lower() == "true" or os.environ.get(
        "STREAMPROC_REQUIRE_HELM"
    ) in {"1", "true", "yes"}


# --- the copies inside the chart (no helm needed) -------------------------------------


def test_chart_copy_of_the_rules_equals_deploy_prometheus_rules() -> None:
    assert (CHART / "files/streamproc.rules.yml").read_bytes() == RULES.read_bytes(), (
        f"cp {RULES.relative_to(ROOT)} {CHART.relative_to(ROOT)}/files/streamproc.rules.yml"
    )


def test_chart_copy_of_the_dashboard_equals_deploy_grafana_dashboard() -> None:
    copy = CHART / "files/streamproc-dashboard.json"
    assert copy.read_bytes() == DASHBOARD.read_bytes(), (
        f"cp {DASHBOARD.relative_to(ROOT)} {copy.relative_to(ROOT)}"
    )


def test_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == project["version"]


# --- helm -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def helm() -> str:
    args = ["bash", str(ENSURE_HELM)] + ([] if helm_required() else ["--no-build"])
    try:
        found = subprocess.run(args, capture_output=True, text=True, timeout=1700, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        found = subprocess.CompletedProcess(args, 1, "", str(exc))
    path = found.stdout.strip()
    if found.returncode != 0 or not path:
        message = f"no helm binary: {found.stderr.strip()[-2000:]}"
        if helm_required():
            pytest.fail(message)
        pytest.skip(message)
    return path


def run_helm(
    helm: str, *args: str, values: dict[str, Any] | None, tmp: Path
) -> subprocess.CompletedProcess[str]:
    command = [helm, *args]
    if values is not None:
        file = tmp / f"values-{len(list(tmp.iterdir()))}.yaml"
        file.write_text(yaml.safe_dump(values, sort_keys=False))
        command += ["-f", str(file)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def template(helm: str, values: dict[str, Any] | None, tmp: Path) -> list[dict[str, Any]]:
    done = run_helm(
        helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, values=values, tmp=tmp
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def template_error(helm: str, values: dict[str, Any], tmp: Path) -> str:
    done = run_helm(
        helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, values=values, tmp=tmp
    )
    assert done.returncode != 0, f"rendered although it should not: {values}"
    return done.stderr


class Manifests:
    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs

    def kinds(self) -> set[str]:
        return {d["kind"] for d in self.docs}

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [d for d in self.all(kind) if name is None or d["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind} {name}: {[d['metadata']['name'] for d in found]}"
        return found[0]


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("helm")


@pytest.fixture(scope="module")
def default(helm: str, tmp: Path) -> Manifests:
    return Manifests(template(helm, None, tmp))


@pytest.fixture(scope="module")
def full(helm: str, tmp: Path) -> Manifests:
    return Manifests(template(helm, ALL_OPTIONS, tmp))


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = workload["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return found


def env_of(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in c.get("env", [])}


def dockerfile() -> dict[str, Any]:
    text = DOCKERFILE.read_text()
    uid = re.search(r"useradd .*--uid (\d+)", text)
    port = re.search(r"^EXPOSE (\d+)", text, re.M)
    config = re.search(r'^CMD \[.*"--config", "([^"]+)"\]', text, re.M)
    assert uid and port and config, "Dockerfile: user, EXPOSE or CMD not found"
    return {"uid": int(uid.group(1)), "port": int(port.group(1)), "config": config.group(1)}


def rendered_config(m: Manifests, tmp: Path, name: str) -> Path:
    """The monitor.toml of the ConfigMap the worker mounts, written to a file."""
    sts = m.one("StatefulSet", STATEFULSET)
    worker = container(sts, "worker")
    (mount,) = [v for v in worker["volumeMounts"] if v["mountPath"] == dockerfile()["config"]]
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    config_map = m.one("ConfigMap", volumes[mount["name"]]["configMap"]["name"])
    path = tmp / name
    path.write_text(config_map["data"][mount["subPath"]])
    return path


def pod_env(c: dict[str, Any], pod: str) -> dict[str, str]:
    """The container's environment as the kubelet would set it in pod `pod` (a Secret's
    value stands in as secret:<name>/<key>)."""
    env = {}
    for name, entry in env_of(c).items():
        if "value" in entry:
            env[name] = entry["value"]
        elif "fieldRef" in entry["valueFrom"]:
            assert entry["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
            env[name] = pod
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[name] = f"secret:{ref['name']}/{ref['key']}"
    return env


def test_helm_lint_passes_with_default_values_and_every_option(helm: str, tmp: Path) -> None:
    for values in (None, ALL_OPTIONS):
        done = run_helm(helm, "lint", "--strict", str(CHART), values=values, tmp=tmp)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout


def test_default_values_render_the_worker_and_nothing_optional(default: Manifests) -> None:
    assert default.kinds() == {"ServiceAccount", "ConfigMap", "Service", "StatefulSet"}
    assert len(default.all("ConfigMap")) == 1  # monitor.toml; no dashboard


def test_every_option_renders_its_resources(full: Manifests) -> None:
    assert full.kinds() == {
        "ServiceAccount",
        "ConfigMap",
        "Service",
        "StatefulSet",
        "Deployment",
        "ServiceMonitor",
        "PrometheusRule",
        "ScaledObject",
        "TriggerAuthentication",
    }
    assert not full.all("Secret")  # existingSecret: the chart creates none


@pytest.mark.parametrize("which", ["default", "full"])
def test_worker_is_a_statefulset_whose_pod_name_is_the_instance_id(
    which: str, request: pytest.FixtureRequest, tmp: Path
) -> None:
    m: Manifests = request.getfixturevalue(which)
    sts = m.one("StatefulSet", STATEFULSET)
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    service = m.one("Service", sts["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"  # the governing, headless Service
    worker = container(sts, "worker")
    assert worker["args"][:3] == ["worker", "--config", dockerfile()["config"]]
    build_parser().parse_args(worker["args"])  # flags the CLI knows
    ref = env_of(worker)["STREAMPROC_KAFKA_INSTANCE_ID"]["valueFrom"]["fieldRef"]
    assert ref["fieldPath"] == "metadata.name"

    # What the worker makes of it: pod N of the StatefulSet gets the same group.instance.id
    # and transactional ids every time it (re)starts, and two pods never share them.
    config = rendered_config(m, tmp, f"{which}-identity.toml")
    ids = []
    for pod in (f"{STATEFULSET}-0", f"{STATEFULSET}-0", f"{STATEFULSET}-1"):
        loaded = load_config(config, env=pod_env(worker, pod))
        assert loaded.kafka.instance_id == pod
        w = Worker(config=loaded, references=ReferenceSet.of([]))
        ids.append((w.ingest.producer_id, w.aggregate.settings.instance_id))
    assert ids[0] == ids[1] and ids[0] != ids[2]
    assert ids[0][0].endswith(f"-{STATEFULSET}-0")


PERSISTENT_INIT: dict[str, Any] = {
    "worker": {"persistence": {"enabled": True}},
    "references": {
        "initContainer": {"enabled": True, "image": "busybox:1.36"},
        "models": {"m": "m.profile"},
    },
}


@pytest.mark.parametrize("which", ["default", "full", "persistent+init"])
def test_every_pod_runs_as_the_images_non_root_user_read_only(
    which: str, request: pytest.FixtureRequest, helm: str, tmp: Path
) -> None:
    m: Manifests = (
        Manifests(template(helm, PERSISTENT_INIT, tmp))
        if which == "persistent+init"
        else request.getfixturevalue(which)
    )
    uid = dockerfile()["uid"]
    workloads = m.all("StatefulSet") + m.all("Deployment")
    assert workloads
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == uid
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        volumes = {v["name"]: v for v in pod["volumes"]}
        for claim in workload["spec"].get("volumeClaimTemplates", []):
            volumes[claim["metadata"]["name"]] = {"persistentVolumeClaim": claim["spec"]}
        for c in containers(workload):
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] == uid, c["name"]
            assert sc["readOnlyRootFilesystem"] is True, c["name"]
            assert sc["allowPrivilegeEscalation"] is False, c["name"]
            assert sc["capabilities"]["drop"] == ["ALL"], c["name"]
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, c["name"]
            # Writable paths are scratch volumes; config and secrets are mounted read-only.
            mounts = {v["mountPath"]: v for v in c["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]["name"]], c["name"]
            for mount in mounts.values():
                volume = volumes[mount["name"]]
                if {"configMap", "secret"} & set(volume):
                    assert mount.get("readOnly") is True, (c["name"], mount)
                if not mount.get("readOnly"):
                    assert {"emptyDir", "persistentVolumeClaim"} & set(volume), (c["name"], mount)


@pytest.mark.parametrize("which", ["default", "full"])
def test_probes_read_metrics_on_the_images_port(which: str, request: pytest.FixtureRequest) -> None:
    m: Manifests = request.getfixturevalue(which)
    port = dockerfile()["port"]
    assert port == 9464
    sts = m.one("StatefulSet", STATEFULSET)
    workloads = [(sts, "worker", ["startupProbe", "livenessProbe", "readinessProbe"])]
    if m.all("Deployment"):
        workloads.append((m.one("Deployment"), "forwarder", ["livenessProbe", "readinessProbe"]))
    for workload, name, probes in workloads:
        c = container(workload, name)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports == {"metrics": port}
        for probe in probes:
            get = c[probe]["httpGet"]
            assert get["path"] == "/metrics", (name, probe)
            assert ports.get(get["port"], get["port"]) == port, (name, probe)
    # The headless Service exposes the same port by name, for Prometheus.
    service = m.one("Service", sts["spec"]["serviceName"])
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": port, "targetPort": "metrics", "protocol": "TCP"}
    ]


def test_resources_cover_the_measured_worker_memory(default: Manifests) -> None:
    text = RESULTS.read_text()
    hostile = re.search(r"^\| worker peak RSS.*?\| ([\d,]+) vs ([\d,]+) MiB", text, re.M)
    replay = re.search(r"^\| worker RSS over a 36 h replay.*?([\d,]+)–([\d,]+) MiB", text, re.M)
    assert hostile and replay, "benchmarks/RESULTS.md: the worker RSS rows moved"
    peak_mib = max(int(g.replace(",", "")) for g in hostile.groups())
    replay_mib = int(replay.group(2).replace(",", ""))
    resources = container(default.one("StatefulSet", STATEFULSET), "worker")["resources"]

    def mib(quantity: str) -> float:
        number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)(Mi|Gi)", quantity).groups()  # type: ignore[union-attr]
        return float(number) * (1024 if unit == "Gi" else 1)

    assert mib(resources["requests"]["memory"]) >= peak_mib
    assert mib(resources["limits"]["memory"]) >= replay_mib
    assert float(resources["requests"]["cpu"]) >= 0.8  # ~0.8 core per worker at full speed
    assert "cpu" not in resources.get("limits", {})


def test_rendered_config_is_accepted_by_streamprocs_loader(full: Manifests, tmp: Path) -> None:
    config = load_config(rendered_config(full, tmp, "full.toml"), env={})
    assert config.kafka.bootstrap_servers == "kafka-1:9093,kafka-2:9093"
    assert config.kafka.group_id == "fraud-mon"
    assert config.kafka.instance_id == ""  # from the pod name, not the file
    assert dict(config.kafka.client) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
    }
    assert config.topics.predictions == "fraud-predictions"
    assert config.topics.alerts == "fraud-alerts"
    assert config.topics.profiles == "streamproc-profiles"
    assert config.windows.size_ms == 600_000
    assert config.metrics.port == dockerfile()["port"] and config.metrics.host == "0.0.0.0"

    # The reference files are in the volume mounted at references.mountPath.
    sts = full.one("StatefulSet", STATEFULSET)
    worker = container(sts, "worker")
    (mount,) = [v for v in worker["volumeMounts"] if v["name"] == "references"]
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert volumes["references"]["configMap"]["name"] == "fraud-references"
    assert {m: str(p) for m, p in config.references.items()} == {
        "fraud": f"{mount['mountPath']}/fraud.profile",
        "fraud/8": f"{mount['mountPath']}/fraud-8.profile",
    }


def test_every_setting_of_the_example_config_renders_unchanged(helm: str, tmp: Path) -> None:
    """docs/monitor.example.toml as values → the chart's monitor.toml → the loader: the
    same MonitorConfig as the example loaded directly."""
    example = tomllib.loads(EXAMPLE_CONFIG.read_text())
    values = {"config": example, "metrics": {"port": example["metrics"]["port"]}}
    path = rendered_config(Manifests(template(helm, values, tmp)), tmp, "example.toml")
    rendered = load_config(path, env={})
    direct = load_config(EXAMPLE_CONFIG, env={})

    def normalized(c: MonitorConfig) -> MonitorConfig:
        return dataclasses.replace(c, source="", references={})

    assert normalized(rendered) == normalized(direct)
    # ... and a few that the example leaves commented out, of every TOML type.
    values = {
        "config": {
            "limits": {"max_message_bytes": 1048576, "max_category_bytes": 512},
            "joint_drift": {"alpha": 0.00001, "correlation_warning": 0.25},
            "service": {"expected_versions": {"fraud": ["7", "8"]}, "rollout": True},
            "mapping": {"prediction": {"label": "/decision", "score": "/p"}},
            "alerts": {"sensitive_features": {"*": ["email"]}},
            "thresholds": {"psi_critical": 0.3, "features": {"age": {"range_max": 120}}},
        }
    }
    path = rendered_config(Manifests(template(helm, values, tmp)), tmp, "types.toml")
    c = load_config(path, env={})
    assert c.limits.max_message_bytes == 1048576 and c.limits.max_category_bytes == 512
    assert c.joint_drift.alpha == pytest.approx(1e-5)
    assert dict(c.service.expected_versions) == {"fraud": ("7", "8")} and c.service.rollout
    assert c.mapping.prediction == {"label": "/decision", "score": "/p"}
    assert dict(c.alerts.sensitive_features) == {"*": ("email",)}
    assert c.thresholds.overrides["psi_critical"] == 0.3
    assert c.thresholds.overrides["features"]["age"]["range_max"] == 120


def test_kafka_password_comes_from_the_existing_secret(full: Manifests, tmp: Path) -> None:
    config = rendered_config(full, tmp, "secret.toml")
    sts = full.one("StatefulSet", STATEFULSET)
    worker = container(sts, "worker")
    password = env_of(worker)["STREAMPROC_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert password == {"name": "kafka-creds", "key": "password"}
    loaded = load_config(config, env=pod_env(worker, f"{STATEFULSET}-0"))
    assert loaded.kafka.client["sasl.password"] == "secret:kafka-creds/password"
    assert loaded.kafka.client["sasl.username"] == "streamproc-worker"
    # The CA: a Secret mounted read-only where ssl.ca.location points.
    ca = Path(loaded.kafka.client["ssl.ca.location"])
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    (mount,) = [v for v in worker["volumeMounts"] if v["mountPath"] == str(ca.parent)]
    assert volumes[mount["name"]]["secret"]["secretName"] == "kafka-ca"
    # The forwarder: its own username, the same Secret.
    forwarder = container(full.one("Deployment"), "forwarder")
    fwd = load_config(config, env=pod_env(forwarder, "fwd"))
    assert fwd.kafka.client["sasl.username"] == "streamproc-forwarder"
    assert fwd.kafka.client["sasl.password"] == "secret:kafka-creds/password"


def test_a_password_value_goes_into_a_chart_secret_only(helm: str, tmp: Path) -> None:
    secret_value = "n0t-in-the-configmap"
    m = Manifests(template(helm, {"kafkaAuth": {"password": secret_value}}, tmp))
    secret = m.one("Secret")
    assert base64.b64decode(secret["data"]["sasl-password"]).decode() == secret_value
    worker = container(m.one("StatefulSet", STATEFULSET), "worker")
    ref = env_of(worker)["STREAMPROC_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": secret["metadata"]["name"], "key": "sasl-password"}
    others = [d for d in m.docs if d["kind"] != "Secret"]
    assert secret_value not in json.dumps(others)


def test_forwarder_runs_alerts_forward_against_alertmanager(full: Manifests) -> None:
    deployment = full.one("Deployment")
    forwarder = container(deployment, "forwarder")
    args = build_parser().parse_args(forwarder["args"])
    assert (args.command, args.alerts_command) == ("alerts", "forward")
    assert args.alertmanager == "http://alertmanager.monitoring:9093"
    assert args.config == dockerfile()["config"]
    assert args.metrics_port == dockerfile()["port"]
    assert args.batch_size == 200
    assert deployment["spec"]["replicas"] == 1


def test_service_monitors_scrape_metrics_as_the_rules_jobs(full: Manifests) -> None:
    rules = yaml.safe_load(RULES.read_text())
    exprs = " ".join(r["expr"] for g in rules["groups"] for r in g["rules"])
    jobs = set(re.findall(r'job="([^"]+)"', exprs))
    assert jobs == {"streamproc"}
    services = full.all("Service")
    by_component = {}
    for monitor in full.all("ServiceMonitor"):
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        selector = monitor["spec"]["selector"]["matchLabels"]
        (service,) = [s for s in services if selector.items() <= s["metadata"]["labels"].items()]
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
        assert endpoint["path"] == "/metrics"
        (relabel,) = endpoint["relabelings"]
        assert relabel["targetLabel"] == "job"
        by_component[selector["app.kubernetes.io/component"]] = relabel["replacement"]
    assert by_component == {"worker": "streamproc", "forwarder": "streamproc-forwarder"}


def test_prometheus_rule_holds_the_rules_files_groups(full: Manifests) -> None:
    rule = full.one("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


def test_dashboard_configmap_is_labelled_for_the_grafana_sidecar(
    full: Manifests, helm: str, tmp: Path
) -> None:
    original = json.loads(DASHBOARD.read_text())
    (board,) = [c for c in full.all("ConfigMap") if "streamproc.json" in c["data"]]
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(board["data"]["streamproc.json"]) == original
    # datasourceUid rewrites the dashboard's Prometheus datasource, nothing else.
    m = Manifests(
        template(helm, {"grafanaDashboard": {"enabled": True, "datasourceUid": "prom"}}, tmp)
    )
    (board,) = [c for c in m.all("ConfigMap") if "streamproc.json" in c["data"]]
    expected = json.loads(DASHBOARD.read_text().replace('"streamproc-prometheus"', '"prom"'))
    assert json.loads(board["data"]["streamproc.json"]) == expected != original


def test_keda_scales_the_statefulset_on_the_ingest_groups_lag(full: Manifests, tmp: Path) -> None:
    scaled = full.one("ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    target = scaled["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("StatefulSet", STATEFULSET)
    sts = full.one("StatefulSet", STATEFULSET)
    assert "replicas" not in sts["spec"]  # KEDA owns the count; upgrades leave it alone
    partitions = ALL_OPTIONS["predictionsPartitions"]
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    assert scaled["spec"]["maxReplicaCount"] <= partitions
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    # The group and topic the worker's ingest stage really uses.
    config = load_config(rendered_config(full, tmp, "keda.toml"), env={})
    worker = Worker(config=config, references=ReferenceSet.of([]))
    assert meta["consumerGroup"] == worker.ingest.settings.group_id == "fraud-mon-ingest"
    assert meta["topic"] == worker.ingest.settings.predictions_topic == "fraud-predictions"
    assert meta["bootstrapServers"] == config.kafka.bootstrap_servers
    assert meta["lagThreshold"] == "50000"
    assert meta["allowIdleConsumers"] == "false"
    assert (meta["sasl"], meta["tls"]) == ("scram_sha512", "enable")
    # SASL: a TriggerAuthentication with the worker's username and Secret.
    auth = full.one("TriggerAuthentication", trigger["authenticationRef"]["name"])
    refs = {r["parameter"]: r for r in auth["spec"]["secretTargetRef"]}
    assert (refs["password"]["name"], refs["password"]["key"]) == ("kafka-creds", "password")
    assert (refs["ca"]["name"], refs["ca"]["key"]) == ("kafka-ca", "ca.pem")
    (username,) = auth["spec"]["env"]
    assert username["parameter"] == "username"
    assert username["name"] in env_of(container(sts, "worker"))


def test_keda_without_sasl_needs_no_trigger_authentication(helm: str, tmp: Path) -> None:
    m = Manifests(template(helm, {"keda": {"enabled": True}, "predictionsPartitions": 8}, tmp))
    scaled = m.one("ScaledObject")
    assert scaled["spec"]["maxReplicaCount"] == 8  # default: the partitions
    (trigger,) = scaled["spec"]["triggers"]
    assert "authenticationRef" not in trigger and "sasl" not in trigger["metadata"]
    assert trigger["metadata"]["consumerGroup"] == "streamproc-ingest"
    assert not m.all("TriggerAuthentication")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"worker": {"replicas": 5}, "predictionsPartitions": 4}, "exceeds predictionsPartitions"),
        (
            {"keda": {"enabled": True, "maxReplicaCount": 5}, "predictionsPartitions": 4},
            "keda.maxReplicaCount (5) exceeds predictionsPartitions (4)",
        ),
        ({"references": {"configMap": "a", "secret": "b"}}, "set only one of"),
        ({"references": {"models": {"m": "m.profile"}}}, "no source holds the files"),
        ({"config": {"kafka": {"client": {"sasl.password": "x"}}}}, "no sasl.password here"),
        ({"config": {"kafka": {"instance_id": "w"}}}, "each pod's name is its instance id"),
        ({"worker": {"replica": 2}}, "additional properties 'replica' not allowed"),  # schema
    ],
)
def test_values_that_would_deploy_something_broken_do_not_render(
    helm: str, tmp: Path, values: dict[str, Any], message: str
) -> None:
    assert message in template_error(helm, values, tmp)


@pytest.mark.parametrize(
    ("references", "volume"),
    [
        ({"secret": "refs"}, "secret"),
        ({"existingClaim": "refs"}, "persistentVolumeClaim"),
        (
            {"initContainer": {"enabled": True, "image": "amazon/aws-cli:2", "command": ["sh"]}},
            "emptyDir",
        ),
    ],
)
def test_reference_sources(helm: str, tmp: Path, references: dict[str, Any], volume: str) -> None:
    values = {"references": {**references, "models": {"credit": "credit.profile"}}}
    sts = Manifests(template(helm, values, tmp)).one("StatefulSet", STATEFULSET)
    pod = sts["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volume in volumes["references"]
    mounts: Iterator[dict[str, Any]] = (
        m for c in containers(sts) for m in c["volumeMounts"] if m["name"] == "references"
    )
    assert {m["mountPath"] for m in mounts} == {"/etc/streamproc/references"}
    if volume == "emptyDir":
        (init,) = pod["initContainers"]
        assert init["image"] == "amazon/aws-cli:2"
        assert init["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_readmes_values_example_renders(helm: str, tmp: Path) -> None:
    section = README.read_text().split("### Kubernetes (Helm)", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block, 'README "Kubernetes (Helm)": no values example'
    values = yaml.safe_load(block.group(1))
    m = Manifests(template(helm, values, tmp))
    assert {"StatefulSet", "Deployment", "ServiceMonitor", "PrometheusRule"} <= m.kinds()
    config = load_config(rendered_config(m, tmp, "readme.toml"), env={})
    assert config.kafka.client["security.protocol"] == "SASL_SSL"
    assert set(config.references) == {"credit-risk"}
    sts = m.one("StatefulSet", STATEFULSET)
    assert sts["spec"]["replicas"] <= values["predictionsPartitions"]
