"""Per-model gauges with a lifecycle: replaced whole on every evaluation, gone with the model.

A plain ``Gauge`` keeps every series it was ever set to: a drift statistic that a
later evaluation no longer reports keeps its old value forever, and the series of a
model that a rebalance moved to another worker stay behind. :class:`ModelGauges` is a
custom collector instead (prometheus_client's ``Collector`` protocol): the evaluator
hands it, per model version and *group* (the open window, the clock, the serving
versions), the complete set of series of that evaluation, which replaces the
previous set; :meth:`ModelGauges.drop` removes a model's series. Scrapes read the
current sets (each replaced atomically, so a scrape never sees half an evaluation).

Gauges whose labels do not name the version (``model`` only) take the value of the
version evaluated last.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from streamproc.monitor.state import ModelKey


class GaugeSpec(NamedTuple):
    name: str
    documentation: str
    labels: tuple[str, ...]


GAUGES: tuple[GaugeSpec, ...] = (
    GaugeSpec(
        "drift_value",
        "Latest drift statistics (PSI, JS, KS, Wasserstein) of the open window vs the reference",
        ("model", "feature", "statistic"),
    ),
    GaugeSpec("null_rate_ratio", "Share of null values in the open window", ("model", "feature")),
    GaugeSpec(
        "unseen_category_share_ratio",
        "Share of values in categories unseen in the reference (open window)",
        ("model", "feature"),
    ),
    GaugeSpec(
        "event_lag_seconds",
        "Event-time lag quantiles of the open window",
        ("model", "lag", "quantile"),
    ),
    GaugeSpec(
        "staleness_seconds",
        "Wall-clock seconds since the newest event time seen for the model",
        ("model",),
    ),
    GaugeSpec("window_events", "Records in the newest (open) window", ("model", "model_version")),
    GaugeSpec(
        "replaying",
        "1 while the model's data is historical (wall-clock checks paused)",
        ("model",),
    ),
    GaugeSpec(
        "latency_ms",
        "Inference latency quantiles of the open window, milliseconds",
        ("model", "quantile"),
    ),
    GaugeSpec(
        "error_rate_ratio", "Share of records with the error flag in the open window", ("model",)
    ),
    GaugeSpec(
        "fallback_rate_ratio",
        "Share of records served by the fallback in the open window",
        ("model",),
    ),
    GaugeSpec(
        "performance",
        "Performance: realized (latest window with labels), estimated before labels (CBPE, "
        "latest closed window), and the reference's",
        ("model", "version", "metric", "kind"),
    ),
    GaugeSpec(
        "performance_estimation_error",
        "Estimated minus realized metric of the latest closed window with both (CBPE)",
        ("model", "version", "metric"),
    ),
    GaugeSpec(
        "label_coverage_ratio",
        "Labeled / predicted rows of the latest window with labels",
        ("model", "version"),
    ),
    GaugeSpec(
        "performance_gap",
        "Train-production gap over the rolling horizon's labeled windows: reference minus "
        "realized where higher is better, realized minus reference where lower is better "
        "(positive: production is worse)",
        ("model", "version", "metric"),
    ),
    GaugeSpec(
        "label_lag_seconds",
        "Label lag quantiles (label time minus prediction time) of the latest window with labels",
        ("model", "version", "quantile"),
    ),
    GaugeSpec(
        "label_staleness_seconds",
        "Wall-clock seconds since the model's last labels (performance delta) arrived",
        ("model",),
    ),
    GaugeSpec(
        "segment_window_rows",
        "Records of each slice in the latest closed window (segment analysis)",
        ("model", "model_version", "segment"),
    ),
    GaugeSpec(
        "fairness_metric",
        "Fairness metrics of a protected attribute in the latest closed window (disparate "
        "impact ratio, demographic parity, equalized odds difference, calibration gap)",
        ("model", "model_version", "attribute", "metric"),
    ),
    GaugeSpec(
        "rollout_verdict",
        "1 for the current verdict (ship, investigate, extend, kill) of a declared rollout",
        ("model", "champion", "challenger", "mode", "verdict"),
    ),
    GaugeSpec(
        "rollout_difference",
        "Challenger minus champion on the rollout's primary metric, and its p-value",
        ("model", "champion", "challenger", "mode", "statistic"),
    ),
    GaugeSpec(
        "model_version_serving",
        "1 for each model version seen serving recently",
        ("model", "model_version"),
    ),
)

_BY_NAME = {spec.name: spec for spec in GAUGES}

Series = dict[tuple[str, tuple[str, ...]], float]
"""(gauge name without prefix, label values) → value."""


class SeriesBuilder:
    """Collects the series of one evaluation; hand ``series`` to :meth:`ModelGauges.replace`."""

    def __init__(self) -> None:
        self.series: Series = {}

    def set(self, gauge: str, labels: Iterable[str], value: float) -> None:
        values = tuple(labels)
        spec = _BY_NAME[gauge]
        if len(values) != len(spec.labels):
            raise ValueError(f"{gauge} takes labels {spec.labels}, got {values}")
        self.series[(gauge, values)] = float(value)


class ModelGauges(Collector):
    """The per-model gauges of one worker, exported at scrape time."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._groups: dict[tuple[ModelKey, str], tuple[int, Series]] = {}
        self._sequence = itertools.count()

    def replace(self, owner: ModelKey, group: str, series: Series) -> None:
        """Make ``series`` the whole of ``owner``'s ``group`` (an empty dict removes it)."""
        if series:
            self._groups[(owner, group)] = (next(self._sequence), dict(series))
        else:
            self._groups.pop((owner, group), None)

    def drop(self, models: set[ModelKey]) -> None:
        """Remove every series of ``models`` and the serving-versions group of their names."""
        names = {m[0] for m in models}
        for key in list(self._groups):
            owner = key[0]
            if owner in models or (key[1] == VERSIONS_GROUP and owner[0] in names):
                self._groups.pop(key, None)

    def value(self, gauge: str, labels: Iterable[str]) -> float | None:
        """The exported value of one series (None when absent), for tests and views."""
        return self._merged().get((gauge, tuple(labels)))

    def _merged(self) -> Series:
        merged: Series = {}
        for _seq, series in sorted(list(self._groups.values()), key=lambda item: item[0]):
            merged.update(series)  # later evaluations win where labels coincide
        return merged

    def describe(self) -> Iterator[GaugeMetricFamily]:
        for spec in GAUGES:
            yield GaugeMetricFamily(
                f"{self.prefix}_{spec.name}", spec.documentation, labels=spec.labels
            )

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = {
            spec.name: GaugeMetricFamily(
                f"{self.prefix}_{spec.name}", spec.documentation, labels=spec.labels
            )
            for spec in GAUGES
        }
        for (gauge, labels), value in self._merged().items():
            families[gauge].add_metric(list(labels), value)
        yield from families.values()


WINDOW_GROUP = "window"
"""Series of the open window, replaced on every provisional evaluation."""
CLOCK_GROUP = "clock"
"""Staleness and replay mode, replaced on every staleness tick."""
PERFORMANCE_GROUP = "performance"
"""Performance, label coverage and label lag of the latest window with labels, and the
train-production gap of the rolling horizon."""
ESTIMATED_GROUP = "estimated"
"""Estimated performance (CBPE) of the latest closed window with scores."""
VERSIONS_GROUP = "versions"
SEGMENT_GROUP = "segments"
"""Slice rows and fairness metrics of the latest closed window."""
ROLLOUT_GROUP = "rollout"
"""A declared rollout's verdict (owned by the champion's model key)."""
"""Serving versions of a model (owner: ``ModelKey(model, "")``)."""
