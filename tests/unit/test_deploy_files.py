"""The deploy files are well formed and agree with each other and with the worker's metrics.

What Prometheus itself thinks of them is in tests/integration/test_prometheus.py (every
query and rule evaluated on a real server); here: structure, cross-references and names.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamproc.monitor import metrics as metrics_module

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana/dashboards/streamproc.json"
DATASOURCES = DEPLOY / "grafana/provisioning/datasources/prometheus.yml"
DASHBOARD_PROVIDERS = DEPLOY / "grafana/provisioning/dashboards/streamproc.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus/prometheus.yml"
RULES = DEPLOY / "prometheus/rules/streamproc.rules.yml"
RULE_TESTS = DEPLOY / "prometheus/tests/streamproc.rules.test.yml"

GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__range", "__interval_ms", "__range_s"}
# Model-service health metrics another change declares; their panels are designed ahead.
PENDING_METRICS = {
    "streamproc_latency_ms",
    "streamproc_error_rate_ratio",
    "streamproc_fallback_rate_ratio",
}
EXPECTED_VARIABLES = {"model", "feature", "statistic", "instance"}
EXPECTED_ALERTS = {
    "StreamprocWorkerDown",
    "StreamprocWorkerAbsent",
    "StreamprocConsumerLagGrowing",
    "StreamprocDeadLetterRateHigh",
    "StreamprocIngestFlushSlow",
    "StreamprocUnreadableDelta",
    "StreamprocKafkaUnreachable",
}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out += panel.get("panels", [])
    return out


def graph_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in panels(dashboard) if p["type"] != "row"]


def exported_series_names() -> set[str]:
    """Every series name the worker's registry can expose (counter `_total`, histogram
    `_bucket`/`_sum`/`_count`, ...), from the one metrics module."""
    names = set()
    for family in metrics_module.create().registry.collect():
        base = family.name
        suffixes = {
            "counter": ["_total", "_created"],
            "gauge": [""],
            "histogram": ["_bucket", "_sum", "_count", "_created"],
            "summary": ["", "_sum", "_count", "_created"],
        }[family.type]
        names.update(base + s for s in suffixes)
    return names


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bstreamproc_[a-z0-9_]+", expr))


def test_provisioning_points_grafana_at_prometheus_with_one_uid(dashboard: dict[str, Any]) -> None:
    datasources = yaml.safe_load(DATASOURCES.read_text())
    assert datasources["apiVersion"] == 1
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    uid = source["uid"]

    for panel in graph_panels(dashboard):
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid, panel["title"]
    for variable in dashboard["templating"]["list"]:
        assert variable["datasource"]["uid"] == uid, variable["name"]

    providers = yaml.safe_load(DASHBOARD_PROVIDERS.read_text())
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/var/lib/grafana/dashboards")


def test_every_panel_has_a_query_on_an_exported_metric(dashboard: dict[str, Any]) -> None:
    exported = exported_series_names()
    graphs = graph_panels(dashboard)
    assert len(graphs) >= 20
    for panel in graphs:
        assert panel["title"], panel["id"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            assert expr.strip(), panel["title"]
            unknown = metric_names(expr) - exported - PENDING_METRICS
            assert not unknown, f"{panel['title']}: {unknown} not in streamproc.monitor.metrics"
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])


def test_panels_cover_the_required_views(dashboard: dict[str, Any]) -> None:
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows == [
        "Overview per model",
        "Drift per feature",
        "Data quality",
        "Predictions",
        "Model service health",
        "Monitor health",
        "Performance (labels)",
        "Segments, fairness and rollouts",
    ]
    exprs = " ".join(t["expr"] for p in graph_panels(dashboard) for t in p["targets"])
    for name in [
        "streamproc_events_total",
        "streamproc_consumer_lag_messages",
        "streamproc_staleness_seconds",
        "streamproc_alerts_firing",
        "streamproc_drift_value",
        "streamproc_null_rate_ratio",
        "streamproc_unseen_category_share_ratio",
        "streamproc_performance",
        "streamproc_label_coverage_ratio",
        "streamproc_performance_estimation_error",
        "streamproc_performance_gap",
        "streamproc_label_lag_seconds",
        "streamproc_label_staleness_seconds",
        "streamproc_join_pending_predictions",
        "streamproc_deadletter_total",
        "streamproc_ingest_batch_seconds_bucket",
        "streamproc_ingest_flush_seconds_bucket",
        "streamproc_deltas_published_total",
        "streamproc_deltas_applied_total",
        "streamproc_deltas_duplicate_total",
        "streamproc_model_version_serving",
        *PENDING_METRICS,
    ]:
        assert name in exprs, name
    heatmaps = [p for p in graph_panels(dashboard) if p["type"] == "heatmap"]
    assert any("streamproc_drift_value" in t["expr"] for p in heatmaps for t in p["targets"])


def test_panel_layout_is_on_the_grid_with_unique_ids(dashboard: dict[str, Any]) -> None:
    all_panels = panels(dashboard)
    assert len({p["id"] for p in all_panels}) == len(all_panels)
    for p in all_panels:
        grid = p["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, p["title"]
        assert grid["h"] > 0, p["title"]


def test_template_variables_exist_and_every_reference_resolves(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert set(variables) == EXPECTED_VARIABLES
    for name, variable in variables.items():
        assert variable["type"] == "query"
        assert variable["definition"].startswith("label_values("), name
        assert variable["query"]["query"] == variable["definition"], name
        assert variable["definition"].endswith(f", {name})"), name  # the label it lists
    texts = [t["expr"] for p in graph_panels(dashboard) for t in p["targets"]]
    texts += [p["title"] for p in panels(dashboard)]
    texts += [v["definition"] for v in variables.values()]
    for text in texts:
        for ref in re.findall(r"\$\{?(\w+)", text):
            assert ref in variables or ref in GRAFANA_BUILTINS, f"${ref} in {text!r}"
    used = " ".join(texts)
    assert all(f"${name}" in used for name in variables), "an unused variable"


def test_rules_parse_and_each_alert_is_complete() -> None:
    doc = yaml.safe_load(RULES.read_text())
    rules = [rule for group in doc["groups"] for rule in group["rules"]]
    assert {r["alert"] for r in rules} == EXPECTED_ALERTS
    exported = exported_series_names()
    for rule in rules:
        assert rule["expr"].strip(), rule["alert"]
        assert re.fullmatch(r"\d+m", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["annotations"]["description"], rule["alert"]
        assert not metric_names(rule["expr"]) - exported, rule["alert"]
    # The model checks run in streamproc's own alert lifecycle, not as Prometheus rules.
    assert not any("drift" in r["expr"] or "staleness" in r["expr"] for r in rules)


def test_prometheus_config_loads_the_rules_and_scrapes_the_worker() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    rule_globs = config["rule_files"]
    matched = {p for g in rule_globs for p in PROMETHEUS_CONFIG.parent.glob(g)}
    assert RULES in matched
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["streamproc"]["static_configs"][0]["targets"]
    tests = yaml.safe_load(RULE_TESTS.read_text())
    assert (RULE_TESTS.parent / tests["rule_files"][0]).resolve() == RULES.resolve()
    tested = {t["alertname"] for case in tests["tests"] for t in case["alert_rule_test"]}
    assert tested == EXPECTED_ALERTS


# --- the compose stack runs what the Helm chart deploys -------------------------------

COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_CONFIG = DEPLOY / "compose/monitor.toml"
CHART = DEPLOY / "helm/streamproc"
STREAMPROC_SERVICES = ("reference", "streamproc", "traffic", "forwarder")
# What the compose stack's config adds to the chart's defaults: the demo's short timings
# and its reference profile (the chart mounts references from its own `references` value).
COMPOSE_ONLY_TABLES = {"windows", "evaluation", "freshness", "alerts", "references"}


@pytest.fixture(scope="module")
def compose_services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


@pytest.fixture(scope="module")
def chart_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return values


def chart_template(name: str) -> str:
    return (CHART / "templates" / name).read_text()


def template_args(text: str, after: str) -> list[str]:
    """The literal `args:` items (up to the first templated one) of the container whose
    first arg is ``after``."""
    for block in re.findall(r"\n\s+args:\n((?:[ \t]+- .*\n)+)", text):
        items = []
        for line in block.splitlines():
            item = line.strip().removeprefix("- ")
            if "{{" in item:
                break
            items.append(item)
        if items and items[0] == after:
            return items
    raise AssertionError(f"no args list starting with {after}")


def chart_default_config(values: dict[str, Any]) -> dict[str, Any]:
    """What templates/_helpers.tpl "streamproc.config" renders with the default values."""
    config = json.loads(json.dumps(values["config"]))
    config["metrics"] = {"host": "0.0.0.0", "port": values["metrics"]["port"]}
    return config


def test_compose_runs_the_image_the_chart_deploys(
    compose_services: dict[str, Any], chart_values: dict[str, Any]
) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    image = chart_values["image"]
    expected = f"{image['repository']}:{image['tag'] or chart['appVersion']}"
    for name in STREAMPROC_SERVICES:
        service = compose_services[name]
        assert service["image"] == expected, name
        assert service["build"]["context"] == ".", name  # built from the Dockerfile


def test_compose_services_run_as_the_chart_pods_do(
    compose_services: dict[str, Any], chart_values: dict[str, Any]
) -> None:
    pod, ctr = chart_values["podSecurityContext"], chart_values["securityContext"]
    uid = re.search(r"useradd .*--uid (\d+)", (ROOT / "Dockerfile").read_text())
    assert uid and int(uid.group(1)) == pod["runAsUser"] == ctr["runAsUser"]
    assert ctr["readOnlyRootFilesystem"] and ctr["capabilities"]["drop"] == ["ALL"]
    assert ctr["allowPrivilegeEscalation"] is False
    statefulset = chart_template("statefulset.yaml")
    data_mount = re.search(r"- name: data\n\s+mountPath: (\S+)", statefulset)
    config_mount = re.search(r"mountPath: (\S+/monitor\.toml)", chart_template("_helpers.tpl"))
    assert data_mount and config_mount
    for name in STREAMPROC_SERVICES:
        service = compose_services[name]
        assert "user" not in service, f"{name}: runs as the image's USER, as the chart does"
        assert service["read_only"] is True, name
        assert service["tmpfs"] == ["/tmp"], name  # the chart's /tmp emptyDir
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        mounts = dict(v.split(":")[:2] for v in service["volumes"])
        assert mounts["./deploy/compose"] + "/monitor.toml" == config_mount.group(1), name
        assert mounts["streamproc-data"] == data_mount.group(1), name
        assert service["environment"]["STREAMPROC_CONFIG"] == config_mount.group(1), name


def test_compose_commands_are_the_chart_containers_args(
    compose_services: dict[str, Any], chart_values: dict[str, Any]
) -> None:
    worker = template_args(chart_template("statefulset.yaml"), "worker")
    assert worker == ["worker", "--config", "/etc/streamproc/monitor.toml"]
    assert compose_services["streamproc"]["command"] == worker
    forwarder = template_args(chart_template("forwarder.yaml"), "alerts")
    command = compose_services["forwarder"]["command"]
    assert command[: len(forwarder)] == forwarder == ["alerts", "forward", "--alertmanager"]
    assert command[command.index("--config") + 1] == worker[-1]
    port = chart_values["metrics"]["port"]
    assert f"{port}:{port}" in compose_services["streamproc"]["ports"]
    assert command[command.index("--metrics-port") + 1] == str(port)


def test_compose_config_is_the_chart_default_config_plus_the_demo_timings(
    chart_values: dict[str, Any],
) -> None:
    import tomllib

    from streamproc.config import config_from_mapping, load_config

    compose = tomllib.loads(COMPOSE_CONFIG.read_text())
    chart = chart_default_config(chart_values)
    assert set(compose) - set(chart) == COMPOSE_ONLY_TABLES
    assert set(chart) <= set(compose)
    compose_config = load_config(COMPOSE_CONFIG, env={})
    chart_config = config_from_mapping(chart)
    for table in chart:
        assert getattr(compose_config, table) == getattr(chart_config, table), table
