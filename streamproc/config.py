"""Monitor configuration: one TOML file, environment variables, CLI flags.

Precedence, lowest first: built-in defaults < TOML file < environment < CLI flags (the
flags live in :mod:`streamproc.cli.config_args`). Every option is documented in
``docs/monitor.example.toml``. Durations are strings such as
``"500ms"``, ``"30s"``, ``"5m"``, ``"1h"``, ``"1d"`` or ``"1h30m"`` (a bare number means
seconds); sizes are bytes or strings such as ``"512KiB"``, ``"1MiB"``.

Environment:

* ``STREAMPROC_CONFIG``: path of the TOML file (when no ``--config`` flag).
* ``STREAMPROC_KAFKA_<SETTING>``: a Kafka client setting; the name is lower-cased and
  ``_`` becomes ``.`` (``__`` stands for a literal ``_``), so
  ``STREAMPROC_KAFKA_SECURITY_PROTOCOL=SASL_SSL`` sets ``security.protocol`` and
  ``STREAMPROC_KAFKA_SASL_PASSWORD`` keeps the secret out of the file.
  ``..._BOOTSTRAP_SERVERS``, ``..._GROUP_ID`` and ``..._INSTANCE_ID`` set those fields.
* ``STREAMPROC_SCHEMA_REGISTRY_<SETTING>``: a ``[mapping.schema_registry]`` setting, named
  the same way (``..._BASIC_AUTH_USER_INFO``); ``..._URL`` sets ``schema_registry_url``.
  They apply to a wire-format ``[mapping]`` only: set for a whole deployment, they never
  break a worker that reads plain JSON.
* ``STREAMPROC_METRICS_PORT``, ``STREAMPROC_REPLAY`` (``1``/``true``).

Unknown keys are errors that name the key and the file: a typo must not silently fall
back to a default.

Defaults live in ONE place: the policy dataclasses of the checks layer
(:class:`~streamproc.checks.policy.EvaluationPolicy`,
:class:`~streamproc.checks.service_checks.ServicePolicy`,
:class:`~streamproc.checks.lifecycle.LifecyclePolicy`). The config sections below take
their defaults from those, and translate back into them in one method each
(:meth:`MonitorConfig.evaluation_policy`, :meth:`MonitorConfig.service_policy`,
:meth:`MonitorConfig.lifecycle_policy`). The checks are used without any config (offline,
tests), and the layers only allow config to read checks, not the reverse.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from streamproc.checks.lifecycle import LifecyclePolicy
from streamproc.checks.model_settings import (
    ModelConfigError,
    ModelSettings,
    parse_models,
    settings_for,
)
from streamproc.checks.performance_checks import PerformancePolicy
from streamproc.checks.policy import EvaluationPolicy
from streamproc.checks.result import CHECK_NAMES
from streamproc.checks.retrain import RetrainPolicy
from streamproc.checks.service_checks import ServicePolicy
from streamproc.contracts.label_mapping import (
    LABEL_IDENTITY,
    compile_label_mapping,
    is_label_identity,
)
from streamproc.contracts.limits import (
    DEFAULT_MAX_CATEGORY_BYTES,
    DEFAULT_MAX_FEATURES,
    DEFAULT_MAX_FUTURE_SKEW_MS,
    DEFAULT_MAX_MESSAGE_BYTES,
    DecodeLimits,
)
from streamproc.contracts.mapping import RecordMapping
from streamproc.contracts.mapping_config import IDENTITY, compile_mapping, is_identity
from streamproc.contracts.registry import (
    WireSettings,
    client_settings_from_env,
    compile_wire_mapping,
    flatten_client_settings,
)
from streamproc.contracts.start_from import DEFAULT_START_FROM, StartFrom, parse_start_from
from streamproc.core.slice_profiles import SliceSpec
from streamproc.core.thresholds import DEFAULT_THRESHOLDS
from streamproc.errors import UsageError
from streamproc.labels.join import JoinPolicy

ENV_PREFIX: Final = "STREAMPROC_"
KAFKA_ENV_PREFIX: Final = "STREAMPROC_KAFKA_"


class ConfigError(UsageError):
    """The configuration is unusable; the message names the key and where it came from."""


def _frozen(mapping: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


def _duration_field(default_ms: int) -> Any:
    return field(default=default_ms, metadata={"kind": "duration"})


def _seconds_field(default_s: float) -> Any:
    """A duration setting whose policy counterpart is in seconds."""
    return _duration_field(round(default_s * 1000))


# The single source of the defaults below (see the module docstring).
_EVALUATION: Final = EvaluationPolicy()
_SERVICE: Final = ServicePolicy()
_LIFECYCLE: Final = LifecyclePolicy()
_JOIN: Final = JoinPolicy()
_RETRAIN: Final = RetrainPolicy()
_PERFORMANCE: Final = PerformancePolicy()


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap_servers: str = "localhost:9092"
    group_id: str = "streamproc"
    instance_id: str = ""
    """This worker's slot (e.g. a StatefulSet pod name): static group membership and
    stable transactional ids, so a restart takes its partitions back and fences the dead
    process's open transaction at once. Empty: a fresh identity per process."""
    client: Mapping[str, str] = field(default_factory=_empty)
    """Pass-through client settings (``security.protocol``, ``sasl.*``, ``ssl.*``, ...)."""
    start_from: str = DEFAULT_START_FROM
    """Where the ingest group's first start reads partitions without a committed offset:
    ``earliest``, ``latest``, an RFC 3339 time or ``"<duration> ago"`` (see
    streamproc/contracts/start_from.py). Committed offsets always win."""

    def __post_init__(self) -> None:
        try:
            self.start_position()
        except ValueError as exc:
            raise ConfigError(f"bad [kafka] start_from: {exc}") from None

    def start_position(self) -> StartFrom:
        """``start_from`` parsed."""
        return parse_start_from(self.start_from)

    def connection_settings(self) -> dict[str, str]:
        """Settings every confluent-kafka client shares: ``client`` plus the servers
        (producers and admin clients take no group id; each consumer stage sets its own)."""
        return {**self.client, "bootstrap.servers": self.bootstrap_servers}


@dataclass(frozen=True)
class TopicsConfig:
    predictions: str = "predictions"
    labels: str = "labels"
    alerts: str = "streamproc-alerts"
    deadletter: str = "streamproc-deadletter"
    profiles: str = "streamproc-profiles"
    retrain: str = "streamproc-retrain"
    rollouts: str = "streamproc-rollouts"


@dataclass(frozen=True)
class RetrainConfig:
    """The retraining trigger (see streamproc/checks/retrain.py); defaults: RetrainPolicy."""

    drift_share: float = _RETRAIN.drift_share
    windows: int = _RETRAIN.windows
    labeled_volume: int = _RETRAIN.labeled_volume

    def __post_init__(self) -> None:
        try:
            self.policy()
        except ValueError as exc:
            raise ConfigError(f"bad [retrain]: {exc}") from None

    def policy(self) -> RetrainPolicy:
        return RetrainPolicy(self.drift_share, self.windows, self.labeled_volume)


@dataclass(frozen=True)
class PerformanceConfig:
    """The performance and label checks (see streamproc/checks/performance_checks.py,
    performance_trend.py, label_checks.py); defaults: PerformancePolicy. The same keys
    under ``[performance.models.<model>]`` override them for one model."""

    primary_metric: str = _PERFORMANCE.primary_metric
    drop_warning: float = _PERFORMANCE.drop_warning
    drop_critical: float = _PERFORMANCE.drop_critical
    floor: float | None = field(default=None, metadata={"kind": "optional_number"})
    """Absolute bound on the primary metric (a minimum; a maximum when lower is better)."""
    floor_for_ms: int = _seconds_field(_PERFORMANCE.floor_for_s)
    """The floor is critical once every labeled window of this long is below it; 0: at once."""
    brier_warning: float = _PERFORMANCE.brier_warning
    brier_critical: float = _PERFORMANCE.brier_critical
    label_psi_warning: float = _PERFORMANCE.label_psi_warning
    label_psi_critical: float = _PERFORMANCE.label_psi_critical
    label_drift_alpha: float = _PERFORMANCE.label_drift_alpha
    min_labeled: int = _PERFORMANCE.min_labeled
    label_staleness_ms: int = _seconds_field(_PERFORMANCE.label_staleness_s)
    """``label_staleness``: no labels for this long (wall clock) → critical; 0: off."""
    label_delay_ms: int = _seconds_field(_PERFORMANCE.label_delay_s)
    """``label_coverage`` judges windows this much event time old (labels are due)."""
    label_coverage_min: float = _PERFORMANCE.label_coverage_min
    """``label_coverage``: labeled / predicted below this → warning, half → critical; 0: off."""
    models: Mapping[str, PerformanceConfig] = field(
        default_factory=_empty, metadata={"kind": "nested"}
    )
    """Per model name: the section with that model's overrides applied."""

    def __post_init__(self) -> None:
        try:
            self.policy()
        except ValueError as exc:
            raise ConfigError(f"bad [performance]: {exc}") from exc

    def policy(self) -> PerformancePolicy:
        return PerformancePolicy(
            primary_metric=self.primary_metric,
            drop_warning=self.drop_warning,
            drop_critical=self.drop_critical,
            floor=self.floor,
            floor_for_s=self.floor_for_ms / 1000,
            brier_warning=self.brier_warning,
            brier_critical=self.brier_critical,
            label_psi_warning=self.label_psi_warning,
            label_psi_critical=self.label_psi_critical,
            label_drift_alpha=self.label_drift_alpha,
            min_labeled=self.min_labeled,
            label_staleness_s=self.label_staleness_ms / 1000,
            label_delay_s=self.label_delay_ms / 1000,
            label_coverage_min=self.label_coverage_min,
        )

    def for_model(self, model: str) -> PerformanceConfig:
        return self.models.get(model, self)


@dataclass(frozen=True)
class WindowsConfig:
    """Event-time windows, all in milliseconds."""

    size_ms: int = _duration_field(5 * 60_000)
    allowed_lateness_ms: int = _duration_field(60_000)
    retention_ms: int = _duration_field(24 * 3_600_000)
    rolling_horizon_ms: int = _duration_field(3_600_000)


@dataclass(frozen=True)
class EvaluationConfig:
    interval_ms: int = _duration_field(500)
    """How often the open window is evaluated provisionally (wall clock)."""
    replay: bool = False
    """Replay mode: evaluate by event time as fast as the input allows (backfills)."""


@dataclass(frozen=True)
class LifecycleConfig:
    """Alert lifecycle (see streamproc/checks/lifecycle.py); defaults: LifecyclePolicy."""

    fire_after: int = _LIFECYCLE.fire_after
    fire_window: int = _LIFECYCLE.fire_window
    resolve_after: int = _LIFECYCLE.resolve_after
    renotify_ms: int = _duration_field(_LIFECYCLE.renotify_ms)


@dataclass(frozen=True)
class FreshnessConfig:
    """Freshness and staleness thresholds; defaults: EvaluationPolicy (critical: ×5)."""

    staleness_ms: int = _seconds_field(_EVALUATION.staleness_s)
    """Alert when the newest event of a model is older than this."""
    pipeline_lag_p95_ms: int = _seconds_field(_EVALUATION.pipeline_lag_p95_s)
    """Alert when p95 of (Kafka append time − event time) exceeds this."""
    processing_lag_p95_ms: int = _seconds_field(_EVALUATION.processing_lag_p95_s)
    """Alert when p95 of (ingest time − Kafka append time) exceeds this."""
    data_lag_ms: int = _seconds_field(_EVALUATION.data_lag_p95_s)
    """Alert when p95 of (event time − features_as_of) exceeds this (stale features)."""


@dataclass(frozen=True)
class JoinConfig:
    """The label join (``streamproc worker --labels-topic``; see
    streamproc/labels/join.py for the rules); defaults: :class:`JoinPolicy`."""

    horizon_ms: int = _duration_field(_JOIN.horizon_ms)
    """Label horizon: how long (event time) a prediction waits for its label."""
    grace_ms: int = _duration_field(_JOIN.grace_ms)
    """How long (event time) a label waits for a prediction that has not come yet."""
    budget: int = _JOIN.budget
    """Pending predictions per join partition before the join samples request ids."""
    sample_rate: float = _JOIN.sample_rate
    """Share of request ids joined from the start (1: all)."""
    state_dir: str = ""
    """Where the join keeps its RocksDB stores (rebuilt from the changelog topic at
    every start); empty: a directory under the system's temporary directory."""
    mode: str = "stateful"
    """``stateful``: labels meet stored predictions by request id; ``stateless``: label
    events carry the prediction they judge (no store, no internal topics)."""

    def __post_init__(self) -> None:
        if self.mode not in ("stateful", "stateless"):
            raise ConfigError(f"bad [join] mode {self.mode!r}: stateful or stateless")
        try:
            self.policy()
        except ValueError as exc:
            raise ConfigError(f"bad [join]: {exc}") from None

    def policy(self) -> JoinPolicy:
        return JoinPolicy(
            horizon_ms=self.horizon_ms,
            grace_ms=self.grace_ms,
            budget=self.budget,
            sample_rate=self.sample_rate,
        )


@dataclass(frozen=True)
class JointDriftConfig:
    """The ``joint_drift`` check (see streamproc/checks/joint_checks.py); defaults:
    EvaluationPolicy (its ``joint_*`` fields)."""

    max_features: int = _EVALUATION.joint_max_features
    """Numeric features compared, the first by name (profiles track up to 20)."""
    correlation_warning: float = _EVALUATION.joint_correlation_warning
    correlation_critical: float = _EVALUATION.joint_correlation_critical
    reconstruction_warning: float = _EVALUATION.joint_reconstruction_warning
    reconstruction_critical: float = _EVALUATION.joint_reconstruction_critical
    alpha: float = _EVALUATION.joint_alpha
    explained_variance: float = _EVALUATION.joint_explained_variance

    def __post_init__(self) -> None:
        try:
            EvaluationPolicy(**self.policy_fields())
        except ValueError as exc:
            raise ConfigError(f"bad [joint_drift]: {exc}") from None

    def policy_fields(self) -> dict[str, Any]:
        """The ``joint_*`` keyword arguments of :class:`EvaluationPolicy`."""
        return {f"joint_{f.name}": getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class ServiceConfig:
    """Model-service health thresholds (see streamproc/checks/service_checks.py);
    defaults: ServicePolicy."""

    latency_sla_ms: float = float(_SERVICE.latency_sla_ms or 0.0)
    """p95 latency SLA in ms; 0 compares latency with the reference only."""
    error_rate_warning: float = _SERVICE.error_rate_warning
    error_rate_critical: float = _SERVICE.error_rate_critical
    fallback_rate_warning: float = _SERVICE.fallback_rate_warning
    fallback_rate_critical: float = _SERVICE.fallback_rate_critical
    volume_change_warning: float = _SERVICE.volume_change_warning
    volume_change_critical: float = _SERVICE.volume_change_critical
    expected_versions: Mapping[str, tuple[str, ...]] = field(default_factory=_empty)
    """Per model: the versions allowed to serve (empty: any)."""
    rollout: bool = _SERVICE.rollout
    """A declared rollout: several versions may serve at once."""


@dataclass(frozen=True)
class LimitsConfig:
    """Bounds on input records (see streamproc/contracts/limits.py); defaults: DecodeLimits."""

    max_message_bytes: int = field(default=DEFAULT_MAX_MESSAGE_BYTES, metadata={"kind": "size"})
    """Larger records are dead-lettered as ``oversized``."""
    max_features: int = DEFAULT_MAX_FEATURES
    """Records with more features are dead-lettered as ``too_many_features``."""
    max_category_bytes: int = field(default=DEFAULT_MAX_CATEGORY_BYTES, metadata={"kind": "size"})
    """Longer string feature values and predicted labels (UTF-8 bytes) are capped: a prefix,
    ``…#`` and 16 hex digits of their SHA-256 (at least 32)."""
    max_future_skew_ms: int = _duration_field(DEFAULT_MAX_FUTURE_SKEW_MS)
    """Event time allowed ahead of the wall clock; later records are dead-lettered as
    ``future_timestamp``."""

    def __post_init__(self) -> None:
        try:
            self.decode_limits()
        except ValueError as exc:
            raise ConfigError(f"bad [limits]: {exc}") from None

    def decode_limits(self) -> DecodeLimits:
        """The decoders' limits (``limits=`` of ``fast_decode`` / ``decode_predictions``)."""
        return DecodeLimits(
            max_message_bytes=self.max_message_bytes,
            max_features=self.max_features,
            max_category_bytes=self.max_category_bytes,
        )


def _source_field(default: Any) -> Any:
    """A ``[mapping]`` key: any TOML value, checked by ``compile_mapping``."""
    if isinstance(default, list):
        return field(default_factory=list, metadata={"kind": "source"})
    return field(default=default, metadata={"kind": "source"})


@dataclass(frozen=True)
class MappingConfig:
    """Where each envelope field of a predictions record comes from (see
    streamproc/contracts/mapping.py); the defaults are the identity (today's envelope)."""

    model: str | int | float | Mapping[str, Any] | Sequence[Any] = _source_field(IDENTITY["model"])
    model_version: str | int | float | Mapping[str, Any] | Sequence[Any] = _source_field(
        IDENTITY["model_version"]
    )
    request_id: str | int | float | Mapping[str, Any] | Sequence[Any] = _source_field(
        IDENTITY["request_id"]
    )
    timestamp: str | int | float | Mapping[str, Any] | Sequence[Any] = _source_field(
        IDENTITY["timestamp"]
    )
    features: str | int | float | Mapping[str, Any] | Sequence[Any] = _source_field(
        IDENTITY["features"]
    )
    features_except: str | int | float | Mapping[str, Any] | Sequence[Any] = _source_field(
        IDENTITY["features_except"]
    )
    prediction: str | int | float | Mapping[str, Any] | Sequence[Any] = _source_field(
        IDENTITY["prediction"]
    )
    latency_ms: str | int | float | Mapping[str, Any] | Sequence[Any] = _source_field(
        IDENTITY["latency_ms"]
    )
    fallback: str | int | float | Mapping[str, Any] | Sequence[Any] = _source_field(
        IDENTITY["fallback"]
    )
    error: str | int | float | Mapping[str, Any] | Sequence[Any] = _source_field(IDENTITY["error"])
    segment: str | int | float | Mapping[str, Any] | Sequence[Any] = _source_field(
        IDENTITY["segment"]
    )
    features_as_of: str | int | float | Mapping[str, Any] | Sequence[Any] = _source_field(
        IDENTITY["features_as_of"]
    )
    format: str = "json"
    """How the values are encoded: ``json`` (plain JSON), or ``avro``, ``protobuf``,
    ``json_schema`` in the Confluent wire format (see streamproc/contracts/registry.py)."""
    schema_registry_url: str = ""
    """The schema registry of a wire format (comma-separated URLs)."""
    schema_registry: Mapping[str, Any] = field(default_factory=_empty)
    """``[mapping.schema_registry]``: ``SchemaRegistryClient`` settings passed through
    (``basic.auth.user.info``, ``ssl.ca.location``, ...; ``STREAMPROC_SCHEMA_REGISTRY_*``)."""

    def __post_init__(self) -> None:
        try:
            compile_mapping(self.table())
            self.wire_settings()
        except ValueError as exc:
            raise ConfigError(f"bad [mapping]: {exc}") from None

    def table(self) -> dict[str, Any]:
        """The section as a ``compile_mapping`` table."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.metadata.get("kind") == "source"
        }

    def wire_settings(self) -> WireSettings:
        """How the records are decoded before the mapping applies."""
        return WireSettings(self.format, self.schema_registry_url, self.schema_registry)

    def record_mapping(self) -> RecordMapping | None:
        """The compiled mapping, or None for the identity (the envelope decoders as they are)."""
        table = self.table()
        wire = self.wire_settings()
        if wire.uses_registry:  # the ingest stage decodes through the registry first
            return compile_wire_mapping(compile_mapping(table), wire)
        return None if is_identity(table) else compile_mapping(table)


@dataclass(frozen=True)
class LabelsMappingConfig:
    """Where each field of a label event on the labels topic comes from (see
    streamproc/contracts/label_mapping.py); the defaults are the identity (today's label
    events). ``label`` may also be derived from a business event:
    ``{from = "/type", map = {chargeback = 1, settled = 0}, default? = 0}``."""

    model: str | int | float | Mapping[str, Any] = _source_field(LABEL_IDENTITY["model"])
    request_id: str | int | float | Mapping[str, Any] = _source_field(LABEL_IDENTITY["request_id"])
    timestamp: str | int | float | Mapping[str, Any] = _source_field(LABEL_IDENTITY["timestamp"])
    label: str | int | float | Mapping[str, Any] = _source_field(LABEL_IDENTITY["label"])
    prediction: str | int | float | Mapping[str, Any] = _source_field(LABEL_IDENTITY["prediction"])

    def __post_init__(self) -> None:
        try:
            compile_label_mapping(self.table())
        except ValueError as exc:
            raise ConfigError(f"bad [labels_mapping]: {exc}") from None

    def table(self) -> dict[str, Any]:
        """The section as a ``compile_label_mapping`` table."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def record_mapping(self) -> RecordMapping | None:
        """The compiled mapping, or None for the identity (label events as they are)."""
        table = self.table()
        return None if is_label_identity(table) else compile_label_mapping(table)


@dataclass(frozen=True)
class MetricsConfig:
    port: int = 9464
    host: str = "0.0.0.0"


@dataclass(frozen=True)
class AlertsConfig:
    """How alerts are dressed; defaults: LifecyclePolicy."""

    runbook_base_url: str = _LIFECYCLE.runbook_base_url
    runbook_urls: Mapping[str, str] = field(default_factory=_empty)
    """Per-check runbook link, overriding ``runbook_base_url#<check-anchor>``."""
    allow_raw_values_in_alerts: bool = _LIFECYCLE.allow_raw_values
    """Show every category value raw in evidence (sensitive features excepted)."""
    raw_value_min_records: int = _LIFECYCLE.raw_value_min_records
    """Show a category value raw when at least this many records carry it (else a token)."""
    sensitive_features: Mapping[str, tuple[str, ...]] = field(default_factory=_empty)
    """Per model (``"*"``: every model): features whose values are always tokenized."""


@dataclass(frozen=True)
class ThresholdsConfig:
    """Threshold overrides in the shape ``streamproc.core.thresholds.Thresholds.with_overrides``
    takes: ``{"psi_warning": 0.2, "features": {"age": {"psi_critical": 0.5}}}``."""

    overrides: Mapping[str, Any] = field(default_factory=_empty)
    """Global overrides (may contain ``features``)."""
    models: Mapping[str, Mapping[str, Any]] = field(default_factory=_empty)
    """Per model name: overrides applied on top of the global ones."""

    def overrides_for(self, model: str) -> dict[str, Any]:
        """Global overrides merged with the model's; per-feature tables merge by feature."""
        merged = {k: v for k, v in self.overrides.items() if k != "features"}
        features = {n: dict(o) for n, o in self.overrides.get("features", {}).items()}
        own = self.models.get(model, {})
        merged.update({k: v for k, v in own.items() if k != "features"})
        for name, over in own.get("features", {}).items():
            features.setdefault(name, {}).update(over)
        if features:
            merged["features"] = features
        return merged


@dataclass(frozen=True)
class MonitorConfig:
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    topics: TopicsConfig = field(default_factory=TopicsConfig)
    windows: WindowsConfig = field(default_factory=WindowsConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    lifecycle: LifecycleConfig = field(default_factory=LifecycleConfig)
    thresholds: ThresholdsConfig = field(default_factory=ThresholdsConfig)
    freshness: FreshnessConfig = field(default_factory=FreshnessConfig)
    joint_drift: JointDriftConfig = field(default_factory=JointDriftConfig)
    join: JoinConfig = field(default_factory=JoinConfig)
    retrain: RetrainConfig = field(default_factory=RetrainConfig)
    performance: PerformanceConfig = field(default_factory=PerformanceConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    mapping: MappingConfig = field(default_factory=MappingConfig)
    labels_mapping: LabelsMappingConfig = field(default_factory=LabelsMappingConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    models: Mapping[str, ModelSettings] = field(default_factory=_empty)
    """``[models.<model>]``: slices, fairness and rollout (streamproc.checks.model_settings)."""
    references: Mapping[str, Path] = field(default_factory=_empty)
    """Reference profile path per model (``model`` or ``model/version``); relative paths
    are resolved against the config file's directory."""
    source: str = "<defaults>"
    """Where the configuration came from (for messages)."""

    @cached_property
    def _evaluation_policies(self) -> dict[str, EvaluationPolicy]:
        return {}  # per model; a frozen dataclass still has an instance __dict__

    @cached_property
    def _service_policies(self) -> dict[str, ServicePolicy]:
        return {}

    def evaluation_policy(self, model: str) -> EvaluationPolicy:
        """The evaluation policy of ``model`` (cached): the threshold table with the
        [thresholds] overrides, the [freshness] limits and the replay flag."""
        cache = self._evaluation_policies
        if model not in cache:
            fresh = self.freshness
            cache[model] = EvaluationPolicy(
                thresholds=DEFAULT_THRESHOLDS.with_overrides(self.thresholds.overrides_for(model)),
                staleness_s=fresh.staleness_ms / 1000,
                pipeline_lag_p95_s=fresh.pipeline_lag_p95_ms / 1000,
                processing_lag_p95_s=fresh.processing_lag_p95_ms / 1000,
                data_lag_p95_s=fresh.data_lag_ms / 1000,
                skip_wall_clock_lags=self.evaluation.replay,
                **self.joint_drift.policy_fields(),
            )
        return cache[model]

    def service_policy(self, model: str) -> ServicePolicy:
        """The model-service health policy of ``model`` (cached), from [service]."""
        cache = self._service_policies
        if model not in cache:
            svc = self.service
            cache[model] = ServicePolicy(
                latency_sla_ms=svc.latency_sla_ms or None,
                error_rate_warning=svc.error_rate_warning,
                error_rate_critical=svc.error_rate_critical,
                fallback_rate_warning=svc.fallback_rate_warning,
                fallback_rate_critical=svc.fallback_rate_critical,
                volume_change_warning=svc.volume_change_warning,
                volume_change_critical=svc.volume_change_critical,
                expected_versions=frozenset(svc.expected_versions.get(model, ())),
                rollout=svc.rollout,
            )
        return cache[model]

    @cached_property
    def _performance_policies(self) -> dict[str, PerformancePolicy]:
        return {}

    def performance_policy(self, model: str) -> PerformancePolicy:
        """The performance and label check policy of ``model`` (cached), from
        [performance] and [performance.models.<model>]."""
        cache = self._performance_policies
        if model not in cache:
            cache[model] = self.performance.for_model(model).policy()
        return cache[model]

    def model_settings(self, model: str) -> ModelSettings:
        """``[models.<model>]`` (or ``[models."*"]``) of ``model``."""
        return settings_for(self.models, model)

    def slice_spec(self, model: str) -> SliceSpec | None:
        """What ingest and the join slice ``model`` by (None: nothing)."""
        return self.model_settings(model).slice_spec()

    def declares_rollouts(self) -> bool:
        """Whether any ``[models.<model>.rollout]`` exists (the rollouts topic is then
        created and written; without one the worker needs no ACL for it)."""
        return any(s.rollout is not None for s in self.models.values())

    def shadow_pairs(self) -> dict[str, tuple[str, str]]:
        """Model → (champion, challenger) of every shadow rollout (for the join)."""
        out = {}
        for model, settings in self.models.items():
            r = settings.rollout
            if r is not None and r.mode == "shadow" and model != "*":
                out[model] = (r.champion, r.challenger)
        return out

    def lifecycle_policy(self) -> LifecyclePolicy:
        """The alert lifecycle policy these settings describe."""
        return LifecyclePolicy(
            fire_after=self.lifecycle.fire_after,
            fire_window=self.lifecycle.fire_window,
            resolve_after=self.lifecycle.resolve_after,
            renotify_ms=self.lifecycle.renotify_ms,
            runbook_base_url=self.alerts.runbook_base_url,
            runbook_urls=self.alerts.runbook_urls,
            allow_raw_values=self.alerts.allow_raw_values_in_alerts,
            raw_value_min_records=self.alerts.raw_value_min_records,
            sensitive_features=MappingProxyType(
                {m: frozenset(fs) for m, fs in self.alerts.sensitive_features.items()}
            ),
        )


# --- value parsers -------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_MS: Final = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_SIZE = re.compile(r"(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?")
_SIZE_UNIT: Final = {
    None: 1,
    "B": 1,
    "KiB": 1 << 10,
    "MiB": 1 << 20,
    "GiB": 1 << 30,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
}


def parse_duration_ms(value: object) -> int:
    """``"5m"`` → 300000; ``"1h30m"``, ``"500ms"``, ``"1d"``; a bare number is seconds."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"duration must not be negative: {value!r}")
        return round(value * 1000)
    if not isinstance(value, str):
        raise ValueError(f"not a duration: {value!r}")
    text = value.strip().replace(" ", "")
    pos, total = 0, 0.0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None:
            break
        total += float(match.group(1)) * _UNIT_MS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f"not a duration: {value!r} (use e.g. '30s', '5m', '1h', '1h30m')")
    return round(total)


def parse_size(value: object) -> int:
    """Bytes: an integer, or ``"512KiB"``, ``"1MiB"``, ``"10MB"``."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        match = _SIZE.fullmatch(value.strip())
        if match:
            return int(match.group(1)) * _SIZE_UNIT[match.group(2)]
    raise ValueError(f"not a size: {value!r} (use bytes or e.g. '512KiB', '1MiB')")


def _parse_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested TOML tables → dotted keys (``security.protocol = "SSL"`` is a nested table)."""
    out: dict[str, str] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, name + "."))
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            out[name] = str(value)
        else:
            raise ValueError(f"kafka.client.{name}: expected a string, number or boolean")
    return out


# --- TOML → dataclasses --------------------------------------------------------------


def _section(cls: type[Any], table: object, where: str, source: str) -> Any:
    """Build section dataclass ``cls`` from a TOML table; ``_ms`` fields drop the suffix."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"[{where}] must be a table in {source}")
    by_key: dict[str, dataclasses.Field[Any]] = {}
    for f in dataclasses.fields(cls):
        if f.metadata.get("kind") == "nested":  # a sub-table parsed by its own function
            continue
        key = f.name[:-3] if f.metadata.get("kind") == "duration" else f.name
        by_key[key] = f
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        found = by_key.get(key)
        if found is None:
            raise ConfigError(
                f"unknown key '{where}.{key}' in {source} (known: {', '.join(sorted(by_key))})"
            )
        try:
            kwargs[found.name] = _convert(found, value)
        except ValueError as exc:
            raise ConfigError(f"bad value for '{where}.{key}' in {source}: {exc}") from None
    return cls(**kwargs)


def _convert(f: dataclasses.Field[Any], value: object) -> Any:
    kind = f.metadata.get("kind")
    if kind == "source":
        return value
    if kind == "duration":
        return parse_duration_ms(value)
    if kind == "size":
        return parse_size(value)
    if kind == "optional_number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number, got {value!r}")
        return float(value)
    if f.name == "raw_value_min_records":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"expected an integer >= 1, got {value!r}")
        return value
    default = f.default
    if isinstance(default, bool):
        return _parse_bool(value)
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number, got {value!r}")
        return float(value)
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {value!r}")
        return value
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        return value
    if f.name == "client":
        if not isinstance(value, Mapping):
            raise ValueError("expected a table of client settings")
        return _frozen(_flatten(value))
    if f.name == "schema_registry":
        if not isinstance(value, Mapping):
            raise ValueError("expected a table of schema registry client settings")
        return _frozen(flatten_client_settings(value))
    if f.name == "runbook_urls":
        if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
            raise ValueError("expected a table of check name = URL")
        unknown = set(value) - set(CHECK_NAMES)
        if unknown:
            raise ValueError(f"unknown check(s) {sorted(unknown)}; known: {list(CHECK_NAMES)}")
        return _frozen(value)
    if f.name == "expected_versions":
        if not isinstance(value, Mapping) or not all(
            isinstance(v, list) and all(isinstance(x, str) for x in v) for v in value.values()
        ):
            raise ValueError('expected a table of model = ["version", ...]')
        return _frozen({k: tuple(v) for k, v in value.items()})
    if f.name == "sensitive_features":
        if not isinstance(value, Mapping) or not all(
            isinstance(v, list) and all(isinstance(x, str) and x for x in v) for v in value.values()
        ):
            raise ValueError('expected a table of model (or "*") = ["feature", ...]')
        return _frozen({k: tuple(v) for k, v in value.items()})
    raise ValueError(f"unsupported option {f.name}")  # pragma: no cover


_SECTIONS: Final[dict[str, type[Any]]] = {
    "kafka": KafkaConfig,
    "topics": TopicsConfig,
    "windows": WindowsConfig,
    "evaluation": EvaluationConfig,
    "lifecycle": LifecycleConfig,
    "freshness": FreshnessConfig,
    "joint_drift": JointDriftConfig,
    "join": JoinConfig,
    "retrain": RetrainConfig,
    "limits": LimitsConfig,
    "mapping": MappingConfig,
    "labels_mapping": LabelsMappingConfig,
    "service": ServiceConfig,
    "metrics": MetricsConfig,
    "alerts": AlertsConfig,
}


def _thresholds(table: object, source: str) -> ThresholdsConfig:
    if not isinstance(table, Mapping):
        raise ConfigError(f"[thresholds] must be a table in {source}")
    overrides = {k: v for k, v in table.items() if k != "models"}
    models = table.get("models", {})
    if not isinstance(models, Mapping) or not all(isinstance(m, Mapping) for m in models.values()):
        raise ConfigError(f"[thresholds.models.<model>] must be tables in {source}")
    config = ThresholdsConfig(
        overrides=_frozen(overrides), models=_frozen({m: dict(t) for m, t in models.items()})
    )
    _check_thresholds(config, source)
    return config


def _check_thresholds(config: ThresholdsConfig, source: str) -> None:
    """Validate the overrides against the core's ``Thresholds``."""
    for model in ["", *config.models]:
        where = f"thresholds.models.{model}" if model else "thresholds"
        try:
            DEFAULT_THRESHOLDS.with_overrides(config.overrides_for(model))
        except (ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(f"bad [{where}] in {source}: {exc}") from None


def _performance(table: object, source: str) -> PerformanceConfig:
    """[performance] and its [performance.models.<model>] overrides."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"[performance] must be a table in {source}")
    base = {k: v for k, v in table.items() if k != "models"}
    models = table.get("models", {})
    if not isinstance(models, Mapping) or not all(isinstance(m, Mapping) for m in models.values()):
        raise ConfigError(f"[performance.models.<model>] must be tables in {source}")

    def build(where: str, own: Mapping[str, Any]) -> PerformanceConfig:
        try:
            config: PerformanceConfig = _section(PerformanceConfig, {**base, **own}, where, source)
        except ConfigError as exc:
            if exc.__cause__ is None:  # an unknown key or a bad value: it names the key
                raise
            raise ConfigError(f"bad [{where}] in {source}: {exc.__cause__}") from None
        return config

    default = build("performance", {})
    per_model = {m: build(f"performance.models.{m}", t) for m, t in models.items()}
    return dataclasses.replace(default, models=_frozen(per_model))


def _check_retention(config: MonitorConfig) -> None:
    """A sustained floor and the coverage check need their windows still in retention."""
    retention, size = config.windows.retention_ms, config.windows.size_ms
    perf = config.performance
    for model, section in [("", perf), *perf.models.items()]:
        where = f"performance.models.{model}" if model else "performance"
        if section.floor_for_ms and section.floor_for_ms + size > retention:
            raise ConfigError(
                f"bad [{where}] in {config.source}: floor_for ({section.floor_for_ms} ms) needs "
                f"[windows] retention ({retention} ms) of at least floor_for + size"
            )
        if section.label_coverage_min and section.label_delay_ms + size > retention:
            raise ConfigError(
                f"bad [{where}] in {config.source}: label_delay ({section.label_delay_ms} ms) "
                f"needs [windows] retention ({retention} ms) of at least label_delay + size"
            )


def _references(table: object, base: Path, source: str) -> Mapping[str, Path]:
    if not isinstance(table, Mapping) or not all(isinstance(v, str) for v in table.values()):
        raise ConfigError(f"[references] must map model names to paths in {source}")
    return _frozen(
        {m: (base / p) if not Path(p).is_absolute() else Path(p) for m, p in table.items()}
    )


def config_from_mapping(
    data: Mapping[str, Any], *, source: str = "<mapping>", base_dir: Path | None = None
) -> MonitorConfig:
    """Build a :class:`MonitorConfig` from parsed TOML; unknown keys raise ConfigError."""
    kwargs: dict[str, Any] = {"source": source}
    for key, value in data.items():
        if key in _SECTIONS:
            kwargs[key] = _section(_SECTIONS[key], value, key, source)
        elif key == "thresholds":
            kwargs[key] = _thresholds(value, source)
        elif key == "performance":
            kwargs[key] = _performance(value, source)
        elif key == "references":
            kwargs[key] = _references(value, base_dir or Path.cwd(), source)
        elif key == "models":
            try:
                kwargs[key] = _frozen(parse_models(value, source))
            except ModelConfigError as exc:
                raise ConfigError(str(exc)) from None
        else:
            known = sorted([*_SECTIONS, "thresholds", "references", "performance", "models"])
            raise ConfigError(f"unknown key '{key}' in {source} (known: {', '.join(known)})")
    config = MonitorConfig(**kwargs)
    try:
        config.lifecycle_policy()
    except ValueError as exc:
        raise ConfigError(f"bad [lifecycle] in {source}: {exc}") from None
    _check_retention(config)
    return config


def load_config(
    path: str | Path | None = None, *, env: Mapping[str, str] | None = None
) -> MonitorConfig:
    """Defaults < TOML file (``path`` or ``$STREAMPROC_CONFIG``) < environment."""
    env = os.environ if env is None else env
    if path is None:
        path = env.get(f"{ENV_PREFIX}CONFIG") or None
    if path is None:
        config = MonitorConfig()
    else:
        file = Path(path)
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {file}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file} is not valid TOML: {exc}") from None
        config = config_from_mapping(data, source=str(file), base_dir=file.resolve().parent)
    return apply_env(config, env)


def kafka_settings_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """``STREAMPROC_KAFKA_SASL_MECHANISM=PLAIN`` → ``{"sasl.mechanism": "PLAIN"}``."""
    out = {}
    for name, value in env.items():
        if name.startswith(KAFKA_ENV_PREFIX) and len(name) > len(KAFKA_ENV_PREFIX):
            raw = name[len(KAFKA_ENV_PREFIX) :].lower()
            out[raw.replace("__", "\0").replace("_", ".").replace("\0", "_")] = value
    return out


def apply_env(config: MonitorConfig, env: Mapping[str, str]) -> MonitorConfig:
    """Overlay the environment variables described in the module docstring."""
    settings = kafka_settings_from_env(env)
    kafka = config.kafka
    servers = settings.pop("bootstrap.servers", kafka.bootstrap_servers)
    group = settings.pop("group.id", kafka.group_id)
    instance = settings.pop("instance.id", kafka.instance_id)
    if (
        settings
        or servers != kafka.bootstrap_servers
        or group != kafka.group_id
        or instance != kafka.instance_id
    ):
        kafka = dataclasses.replace(
            kafka,
            bootstrap_servers=servers,
            group_id=group,
            instance_id=instance,
            client=_frozen({**kafka.client, **settings}),
        )
    metrics, evaluation, mapping = config.metrics, config.evaluation, config.mapping
    registry = client_settings_from_env(env)
    if registry and mapping.format != "json":  # STREAMPROC_SCHEMA_REGISTRY_URL, ...
        url = registry.pop("url", mapping.schema_registry_url)
        try:
            mapping = dataclasses.replace(
                mapping,
                schema_registry_url=url,
                schema_registry=_frozen({**mapping.schema_registry, **registry}),
            )
        except ConfigError as exc:
            raise ConfigError(f"bad environment variable: {exc}") from None
    try:
        if f"{ENV_PREFIX}METRICS_PORT" in env:
            metrics = dataclasses.replace(metrics, port=int(env[f"{ENV_PREFIX}METRICS_PORT"]))
        if f"{ENV_PREFIX}REPLAY" in env:
            replay = _parse_bool(env[f"{ENV_PREFIX}REPLAY"])
            evaluation = dataclasses.replace(evaluation, replay=replay)
    except ValueError as exc:
        raise ConfigError(f"bad environment variable: {exc}") from None
    return dataclasses.replace(
        config, kafka=kafka, metrics=metrics, evaluation=evaluation, mapping=mapping
    )
