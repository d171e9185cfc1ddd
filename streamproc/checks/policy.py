"""What the window checks compare against: :class:`EvaluationPolicy`.

The drift and data-quality thresholds of the core table
(:class:`~streamproc.core.thresholds.Thresholds`, with per-feature overrides via
``Thresholds.for_feature``) plus the thresholds only the checks need. These defaults are
the only copy: the [freshness] section of :mod:`streamproc.config` takes its defaults from
this class (and ``tests/unit/test_config_defaults.py`` holds docs/monitor.example.toml to
them). Defaults:

================================  =========  =========  =======================================
threshold                         warning    critical   notes
================================  =========  =========  =======================================
missing-feature rate              0.01       0.10       records without an expected feature
unexpected-feature rate           0.01       0.10       records with a feature not in reference
distinct-count jump (cur / ref)   2×         5×         categoricals with ``min_samples`` values
dominant prediction share         0.99       0.999      ≥, not >; ``degenerate_min_samples`` 500
drifted-feature share             0.30       0.50       ≥; needs ``dataset_drift_min_features``
data lag p95                      3600 s     ×5         event time − features_as_of
pipeline lag p95                  60 s       ×5         Kafka append time − event time
processing lag p95                60 s       ×5         ingest time − Kafka append (wall clock)
staleness                         —          600 s      now − newest event; always critical
drift test significance α         1e-4                  gate for every drift statistic (below)
share-test significance α         1e-4                  one-sided binomial tests, see below
dataset-drift false discovery q   0.05                  Benjamini–Hochberg across features
Wasserstein (÷ reference scale)   None       None       reported, alerts only when configured
joint: largest correlation change 0.2        0.4        |Δr| of a pair, and significant
joint: reconstruction error ratio 1.2        1.5        window ÷ reference, and significant
joint: significance α             1e-4                  per window, both statistics together
joint: explained variance         0.65                  of the reference's PCA components kept
joint: features                   20                    the first numeric ones by name
================================  =========  =========  =======================================

``joint_drift`` (docs/STATISTICS.md *Joint distribution*): a pair's correlation change or
the reconstruction error ratio breaches only when also significant — half of
``joint_alpha`` for the pairs (Bonferroni over them), half for the reconstruction error,
with Student-t critical values on the reference parts' noise estimate. A pair needs
``thresholds.min_samples`` rows on both sides (the minimum of the distribution checks).

Why the drift tests are only a gate: their statistics grow with the sample size, so at
production volumes (10⁵ events a window) they reject for shifts nobody cares about (a
category moving from 20.0% to 20.3%). Effect sizes (PSI, JS, KS distance, Wasserstein)
grade the drift; a breach of any of them in ``feature_drift``, ``prediction_drift`` or
``slow_drift`` must also be significant: the feature's two-sample test — KS on D − ε
(the sketches' error bound subtracted) for numerics, chi-squared of homogeneity with
sparse cells pooled for categoricals — has p-value < ``drift_test_alpha``. The tests never
alert by themselves. α = 1e-4 is chosen with the false-alarm budget: a window of the
reference's own distribution breaches with probability ≤ α whatever the effect sizes do
(where the test is valid; measured in ``benchmarks/sim_false_alarms.py``), so with 2-of-3
firing a drift check gives ≤ U·2α² ≈ 0.0025 false alerts a week per feature (U = 122,976
evaluation units a week), ≤ 0.25 at 100 features. The KS distance also needs D − ε above
its critical value at ``Thresholds.ks_alpha`` (0.01), which the gate implies at α < 0.01.

Shares judged by sample size (``share_test_alpha``, docs/STATISTICS.md *Small samples*):
the dominant output share (``degenerate_output``), the new-category share
(``cardinality``, against the reference's Good–Turing unseen mass) and the out-of-range
share (``range``) breach only when a one-sided binomial test says the window's share is
above the reference's own (its upper bound) at level α = 1e-4, chosen with the
false-alarm budget (at most one false alert per model per week at 100 features). A
feature counts toward ``dataset_drift``'s drifted share only when its drift test (KS or
chi-squared p-value) is a discovery at false discovery rate ``dataset_drift_fdr``
(Benjamini & Hochberg 1995) across the window's features.

``skip_wall_clock_lags``: during a replay, pipeline and processing lags measure how old
the replayed data are (re-produced records are appended now), not how late the pipeline
is; set it to skip both (data lag compares two timestamps written with the data and
stays meaningful).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streamproc.core.thresholds import DEFAULT_THRESHOLDS, Thresholds


def _check_pair(name: str, warning: float, critical: float) -> None:
    if warning > critical:
        raise ValueError(f"{name}: warning threshold {warning} exceeds critical {critical}")


@dataclass(frozen=True)
class EvaluationPolicy:
    """Thresholds for :func:`streamproc.checks.evaluate.evaluate_window` (see module doc)."""

    thresholds: Thresholds = field(default_factory=lambda: DEFAULT_THRESHOLDS)
    drift_test_alpha: float = 1e-4
    share_test_alpha: float = 1e-4
    dataset_drift_fdr: float = 0.05
    wasserstein_warning: float | None = None
    wasserstein_critical: float | None = None
    missing_feature_rate_warning: float = 0.01
    missing_feature_rate_critical: float = 0.10
    unexpected_feature_rate_warning: float = 0.01
    unexpected_feature_rate_critical: float = 0.10
    distinct_ratio_warning: float = 2.0
    distinct_ratio_critical: float = 5.0
    degenerate_min_samples: int = 500
    dominant_share_warning: float = 0.99
    dominant_share_critical: float = 0.999
    dataset_drift_share_warning: float = 0.30
    dataset_drift_share_critical: float = 0.50
    dataset_drift_min_features: int = 3
    data_lag_p95_s: float = 3600.0
    pipeline_lag_p95_s: float = 60.0
    processing_lag_p95_s: float = 60.0
    lag_critical_factor: float = 5.0
    freshness_min_samples: int = 20
    skip_wall_clock_lags: bool = False
    staleness_s: float = 600.0
    joint_max_features: int = 20
    joint_alpha: float = 1e-4
    joint_explained_variance: float = 0.65
    joint_correlation_warning: float = 0.2
    joint_correlation_critical: float = 0.4
    joint_reconstruction_warning: float = 1.2
    joint_reconstruction_critical: float = 1.5

    def __post_init__(self) -> None:
        for name in (
            "missing_feature_rate",
            "unexpected_feature_rate",
            "distinct_ratio",
            "dominant_share",
            "dataset_drift_share",
            "joint_correlation",
            "joint_reconstruction",
        ):
            _check_pair(name, getattr(self, f"{name}_warning"), getattr(self, f"{name}_critical"))
        ww, wc = self.wasserstein_warning, self.wasserstein_critical
        if ww is not None and wc is not None:
            _check_pair("wasserstein", ww, wc)
        for name in ("drift_test_alpha", "share_test_alpha", "dataset_drift_fdr"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {getattr(self, name)}")
        if self.lag_critical_factor < 1.0:
            raise ValueError(f"lag_critical_factor must be >= 1, got {self.lag_critical_factor}")
        for name in ("degenerate_min_samples", "freshness_min_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("joint_alpha", "joint_explained_variance"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {getattr(self, name)}")
        if self.joint_max_features < 2:
            raise ValueError("joint_max_features must be at least 2")
        if self.dataset_drift_min_features < 1:
            raise ValueError("dataset_drift_min_features must be at least 1")


DEFAULT_POLICY = EvaluationPolicy()
