"""Configuration: defaults, TOML parsing, durations, env and CLI overlays, errors."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from streamproc.checks import LifecyclePolicy
from streamproc.checks.policy import EvaluationPolicy
from streamproc.checks.service_checks import ServicePolicy
from streamproc.config import (
    ConfigError,
    MonitorConfig,
    config_from_mapping,
    kafka_settings_from_env,
    load_config,
    parse_duration_ms,
    parse_size,
)
from streamproc.core.thresholds import Thresholds

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "monitor.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults() -> None:
    c = load_config(env={})
    assert c == MonitorConfig()
    assert c.kafka.group_id == "streamproc"
    assert (c.topics.predictions, c.topics.labels) == ("predictions", "labels")
    assert c.topics.alerts == "streamproc-alerts"
    assert c.topics.deadletter == "streamproc-deadletter"
    assert c.topics.profiles == "streamproc-profiles"
    assert c.windows.size_ms == 300_000
    assert c.windows.allowed_lateness_ms == 60_000
    assert c.windows.retention_ms == 86_400_000
    assert c.windows.rolling_horizon_ms == 3_600_000
    assert c.freshness.staleness_ms == 600_000
    assert c.limits.max_message_bytes == 1 << 20
    assert c.alerts.allow_raw_values_in_alerts is False
    assert c.lifecycle_policy() == LifecyclePolicy()


def test_example_file_parses_to_the_defaults() -> None:
    config = load_config(EXAMPLE, env={})
    assert dataclasses.replace(config, source="<defaults>") == MonitorConfig()


def test_example_file_documents_every_option() -> None:
    text = EXAMPLE.read_text()
    sections = tomllib.loads(text)
    for section in dataclasses.fields(MonitorConfig):
        if section.name == "source":
            continue
        assert f"[{section.name}]" in text, section.name
        default = section.default_factory()  # type: ignore[misc]
        if not dataclasses.is_dataclass(default):
            continue
        for f in dataclasses.fields(default):
            key = f.name.removesuffix("_ms") if f.metadata.get("kind") == "duration" else f.name
            if key in ("client", "runbook_urls", "overrides", "models"):
                continue
            if f.default is None:  # no TOML value: documented as a comment
                assert f"\n# {key} = " in text, f"{section.name}.{key} not documented"
                continue
            assert key in sections[section.name], f"{section.name}.{key} not documented"


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("5m", 300_000),
        ("30s", 30_000),
        ("1h", 3_600_000),
        ("24h", 86_400_000),
        ("1d", 86_400_000),
        ("500ms", 500),
        ("1h30m", 5_400_000),
        ("1.5s", 1500),
        (90, 90_000),
        (0.25, 250),
    ],
)
def test_parse_duration(text: object, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "5", "5 minutes", "m5", "-1s", -3, True, None, "1h 30x"])
def test_bad_duration(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration_ms(text)


@pytest.mark.parametrize(
    ("text", "n"), [(1024, 1024), ("1MiB", 1 << 20), ("512KiB", 512 << 10), ("10MB", 10**7)]
)
def test_parse_size(text: object, n: int) -> None:
    assert parse_size(text) == n


def test_full_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [kafka]
        bootstrap_servers = "k1:9092,k2:9092"
        [kafka.client]
        security.protocol = "SASL_SSL"
        "sasl.mechanism" = "PLAIN"
        socket.keepalive.enable = true
        fetch.max.bytes = 52428800
        [topics]
        predictions = "fraud-predictions"
        [windows]
        size = "1m"
        allowed_lateness = "10s"
        [evaluation]
        interval = "30s"
        replay = true
        [lifecycle]
        fire_after = 3
        fire_window = 5
        resolve_after = 2
        renotify = "4h"
        [freshness]
        staleness = "2m"
        [limits]
        max_message_bytes = "256KiB"
        [metrics]
        port = 9100
        [alerts]
        runbook_base_url = "https://wiki/streamproc"
        allow_raw_values_in_alerts = true
        [alerts.runbook_urls]
        staleness = "https://wiki/stale"
        [references]
        fraud = "refs/fraud.profile"
        "fraud/17" = "/abs/fraud17.profile"
        """,
    )
    c = load_config(path, env={})
    assert c.source == str(path)
    assert c.kafka.bootstrap_servers == "k1:9092,k2:9092"
    assert dict(c.kafka.client) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "socket.keepalive.enable": "true",
        "fetch.max.bytes": "52428800",
    }
    assert c.kafka.connection_settings()["bootstrap.servers"] == "k1:9092,k2:9092"
    assert "group.id" not in c.kafka.connection_settings()  # each consumer sets its own
    assert c.kafka.group_id == "streamproc"
    assert c.topics.predictions == "fraud-predictions" and c.topics.labels == "labels"
    assert (c.windows.size_ms, c.windows.allowed_lateness_ms) == (60_000, 10_000)
    assert c.windows.retention_ms == 86_400_000
    assert (c.evaluation.interval_ms, c.evaluation.replay) == (30_000, True)
    assert c.freshness.staleness_ms == 120_000
    assert c.limits.max_message_bytes == 256 * 1024
    assert c.metrics.port == 9100
    assert c.references == {
        "fraud": tmp_path / "refs/fraud.profile",
        "fraud/17": Path("/abs/fraud17.profile"),
    }
    policy = c.lifecycle_policy()
    assert (policy.fire_after, policy.fire_window, policy.resolve_after) == (3, 5, 2)
    assert policy.renotify_ms == 4 * 3_600_000
    assert policy.allow_raw_values is True
    assert policy.runbook_url("staleness") == "https://wiki/stale"
    assert policy.runbook_url("schema") == "https://wiki/streamproc#schema"


def test_thresholds_overrides_feed_core_thresholds(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [thresholds]
        psi_warning = 0.15
        [thresholds.features.age]
        psi_critical = 0.4
        [thresholds.models.fraud]
        psi_warning = 0.2
        min_samples = 1000
        [thresholds.models.fraud.features.age]
        psi_critical = 0.6
        [thresholds.models.fraud.features.car_value]
        ks_critical = 0.3
        """,
    )
    c = load_config(path, env={})
    assert c.thresholds.overrides_for("eta") == {
        "psi_warning": 0.15,
        "features": {"age": {"psi_critical": 0.4}},
    }
    fraud = c.thresholds.overrides_for("fraud")
    assert fraud == {
        "psi_warning": 0.2,
        "min_samples": 1000,
        "features": {"age": {"psi_critical": 0.6}, "car_value": {"ks_critical": 0.3}},
    }
    t = Thresholds().with_overrides(fraud)
    assert (t.psi_warning, t.min_samples) == (0.2, 1000)
    assert t.for_feature("age").psi_critical == 0.6
    assert t.for_feature("car_value").ks_critical == 0.3
    assert t.for_feature("other").psi_critical == Thresholds().psi_critical


def test_unknown_threshold_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[thresholds.models.fraud]\npsi_critcal = 0.3\n")
    with pytest.raises(ConfigError, match=r"thresholds\.models\.fraud.*monitor\.toml.*psi_critcal"):
        load_config(path, env={})


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[windows]\nsise = '5m'\n", "windows.sise"),
        ("[kafka]\nbootstrap = 'x'\n", "kafka.bootstrap"),
        ("[topicz]\npredictions = 'p'\n", "topicz"),
        ("allow_raw_values_in_alerts = true\n", "allow_raw_values_in_alerts"),
    ],
)
def test_unknown_keys_name_the_key_and_file(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    message = str(err.value)
    assert f"unknown key '{key}'" in message
    assert str(path) in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[windows]\nsize = 'soon'\n", "windows.size"),
        ("[metrics]\nport = '9100'\n", "metrics.port"),
        ("[evaluation]\nreplay = 'perhaps'\n", "evaluation.replay"),
        ("[lifecycle]\nfire_after = 4\n", "lifecycle"),
        ("[alerts.runbook_urls]\nvibes = 'x'\n", "vibes"),
        ("[kafka.client]\nlist = [1, 2]\n", "kafka.client"),
        ("windows = 3\n", "[windows] must be a table"),
        ("[windows\n", "not valid TOML"),
    ],
)
def test_bad_values(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        load_config(path, env={})


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config("/nonexistent/monitor.toml", env={})


def test_config_error_is_a_cli_usage_error() -> None:
    from streamproc.errors import UsageError

    assert issubclass(ConfigError, UsageError)


def test_kafka_env_names() -> None:
    assert kafka_settings_from_env(
        {
            "STREAMPROC_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "STREAMPROC_KAFKA_SASL_PASSWORD": "s3cret",
            "STREAMPROC_KAFKA_SOME__ODD_NAME": "x",
            "STREAMPROC_KAFKA_": "ignored",
            "STREAMPROC_METRICS_PORT": "1",
            "KAFKA_SECURITY_PROTOCOL": "ignored",
        }
    ) == {"security.protocol": "SASL_SSL", "sasl.password": "s3cret", "some_odd.name": "x"}


def test_env_overlays_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[kafka]\nbootstrap_servers = 'file:9092'\n"
        "[kafka.client]\nsecurity.protocol = 'SSL'\nclient.id = 'file'\n",
    )
    env = {
        "STREAMPROC_CONFIG": str(path),
        "STREAMPROC_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "STREAMPROC_KAFKA_BOOTSTRAP_SERVERS": "env:9093",
        "STREAMPROC_KAFKA_GROUP_ID": "g2",
        "STREAMPROC_METRICS_PORT": "9200",
        "STREAMPROC_REPLAY": "true",
    }
    c = load_config(env=env)
    assert c.source == str(path)
    assert c.kafka.bootstrap_servers == "env:9093" and c.kafka.group_id == "g2"
    assert dict(c.kafka.client) == {"security.protocol": "SASL_SSL", "client.id": "file"}
    assert c.metrics.port == 9200 and c.evaluation.replay is True


def test_bad_env_value() -> None:
    with pytest.raises(ConfigError, match="environment"):
        load_config(env={"STREAMPROC_METRICS_PORT": "ninety"})


def test_config_is_frozen() -> None:
    c = MonitorConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.kafka = None  # type: ignore[misc,assignment]
    with pytest.raises(TypeError):
        c.kafka.client["x"] = "y"  # type: ignore[index]


def test_mapping_entry_point() -> None:
    c = config_from_mapping({"topics": {"alerts": "a"}}, source="inline")
    assert c.topics.alerts == "a" and c.source == "inline"


def test_config_translates_into_policies(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [evaluation]
        replay = true
        [freshness]
        staleness = "2m"
        pipeline_lag_p95 = "30s"
        processing_lag_p95 = "2m"
        data_lag = "3h"
        [service]
        latency_sla_ms = 250.0
        error_rate_critical = 0.1
        expected_versions = { fraud = ["7", "8"] }
        rollout = true
        [thresholds]
        psi_warning = 0.15
        [thresholds.models.fraud]
        psi_warning = 0.2
        """,
    )
    c = load_config(path, env={})
    policy = c.evaluation_policy("fraud")
    assert policy.staleness_s == 120.0
    assert policy.pipeline_lag_p95_s == 30.0
    assert policy.processing_lag_p95_s == 120.0  # its own setting, not pipeline_lag_p95's
    assert policy.data_lag_p95_s == 3 * 3600.0
    assert policy.skip_wall_clock_lags is True
    assert policy.thresholds.psi_warning == 0.2
    assert c.evaluation_policy("eta").thresholds.psi_warning == 0.15
    service = c.service_policy("fraud")
    assert service.latency_sla_ms == 250.0 and service.error_rate_critical == 0.1
    assert service.expected_versions == frozenset({"7", "8"}) and service.rollout is True
    assert c.service_policy("eta").expected_versions == frozenset()


def test_policies_are_cached_per_model_and_config() -> None:
    c = MonitorConfig()
    assert c.evaluation_policy("a") is c.evaluation_policy("a")
    assert c.service_policy("a") is c.service_policy("a")
    assert c.evaluation_policy("a") == EvaluationPolicy()
    assert c.service_policy("a") == ServicePolicy()
    # a changed copy does not share the cache of the original
    replay = dataclasses.replace(c, evaluation=dataclasses.replace(c.evaluation, replay=True))
    assert replay.evaluation_policy("a").skip_wall_clock_lags is True
    assert c.evaluation_policy("a").skip_wall_clock_lags is False
    assert replay == dataclasses.replace(replay)  # the caches take no part in equality


def test_limits_defaults_and_decode_limits() -> None:
    from streamproc.contracts.limits import DecodeLimits

    limits = MonitorConfig().limits
    assert (limits.max_features, limits.max_category_bytes) == (1000, 256)
    assert limits.max_future_skew_ms == 5 * 60 * 1000
    assert limits.decode_limits() == DecodeLimits()


def test_limits_from_toml(tmp_path: Path) -> None:
    from streamproc.contracts.limits import DecodeLimits

    path = write(
        tmp_path,
        '[limits]\nmax_message_bytes = "64KiB"\nmax_features = 50\n'
        'max_category_bytes = "1KiB"\nmax_future_skew = "30s"\n',
    )
    limits = load_config(path, env={}).limits
    assert limits.max_future_skew_ms == 30_000
    assert limits.decode_limits() == DecodeLimits(
        max_message_bytes=65_536, max_features=50, max_category_bytes=1024
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[limits]\nmax_category_bytes = 16\n", "max_category_bytes must be at least 32"),
        ("[limits]\nmax_features = -1\n", "max_features"),
        ("[limits]\nmax_features = '10'\n", "limits.max_features"),
        ("[limits]\nmax_future_skew = '-5m'\n", "limits.max_future_skew"),
        ("[limits]\nmax_category_bytes = 'big'\n", "limits.max_category_bytes"),
    ],
)
def test_bad_limits(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        load_config(write(tmp_path, text), env={})
