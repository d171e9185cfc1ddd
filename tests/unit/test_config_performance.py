"""[performance] and [performance.models.<model>]: parsing, defaults, overrides, errors,
and the worker's evaluator taking its policies from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamproc.checks.performance_checks import PerformancePolicy
from streamproc.config import ConfigError, MonitorConfig, load_config
from streamproc.monitor.references import ReferenceSet
from streamproc.monitor.worker import Worker


def _load(tmp_path: Path, text: str) -> MonitorConfig:
    path = tmp_path / "monitor.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, env={})


FULL = """
[windows]
retention = "3d"

[performance]
primary_metric = "recall"
drop_warning = 0.02
drop_critical = 0.04
floor = 0.95
floor_for = "30h"
brier_warning = 0.01
brier_critical = 0.03
label_psi_warning = 0.2
label_psi_critical = 0.4
label_drift_alpha = 0.001
min_labeled = 50
label_staleness = "2h"
label_delay = "12h"
label_coverage_min = 0.4

[performance.models.credit]
primary_metric = "rmse"
floor = 12.5
label_staleness = "0s"

[performance.models.fraud]
min_labeled = 1000
"""


def test_defaults_are_the_policy_defaults() -> None:
    config = MonitorConfig()
    assert config.performance_policy("any") == PerformancePolicy()
    policy = config.performance_policy("any")
    assert policy.floor is None and policy.floor_for_s == 0.0
    assert policy.label_staleness_s == 21_600.0  # 6 h
    assert policy.label_delay_s == 86_400.0  # 1 d
    assert policy.label_coverage_min == 0.0  # off


def test_every_key_and_per_model_overrides(tmp_path: Path) -> None:
    config = _load(tmp_path, FULL)
    base = PerformancePolicy(
        primary_metric="recall",
        drop_warning=0.02,
        drop_critical=0.04,
        floor=0.95,
        floor_for_s=30 * 3600.0,
        brier_warning=0.01,
        brier_critical=0.03,
        label_psi_warning=0.2,
        label_psi_critical=0.4,
        label_drift_alpha=0.001,
        min_labeled=50,
        label_staleness_s=7200.0,
        label_delay_s=43_200.0,
        label_coverage_min=0.4,
    )
    assert config.performance_policy("other") == base
    # a model's table overrides only its own keys; the rest comes from [performance]
    credit = config.performance_policy("credit")
    assert (credit.primary_metric, credit.floor, credit.label_staleness_s) == ("rmse", 12.5, 0.0)
    assert credit.drop_warning == 0.02 and credit.floor_for_s == 30 * 3600.0
    fraud = config.performance_policy("fraud")
    assert fraud.min_labeled == 1000 and fraud.primary_metric == "recall"
    assert set(config.performance.models) == {"credit", "fraud"}


def test_an_integer_floor_is_a_number(tmp_path: Path) -> None:
    config = _load(tmp_path, '[performance]\nprimary_metric = "mae"\nfloor = 3\n')
    assert config.performance_policy("m").floor == 3.0


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[performance]\nflor = 0.9\n", "unknown key 'performance.flor'"),
        (
            "[performance.models.fraud]\nflor = 0.9\n",
            "unknown key 'performance.models.fraud.flor'",
        ),
        ("[performance]\nfloor = 'high'\n", "bad value for 'performance.floor'"),
        ("[performance]\nmin_labeled = 1.5\n", "bad value for 'performance.min_labeled'"),
        ("[performance]\nfloor_for = 'forever'\n", "bad value for 'performance.floor_for'"),
        ("[performance]\nprimary_metric = 'auc'\n", "unknown primary metric 'auc'"),
        ("[performance]\ndrop_warning = 0.2\n", "bad [performance] in"),
        (
            "[performance.models.fraud]\ndrop_critical = 0.01\n",
            "bad [performance.models.fraud] in",
        ),
        ("[performance]\nlabel_coverage_min = 1.5\n", "label_coverage_min must be in [0, 1]"),
        ("[performance]\nmin_labeled = 0\n", "min_labeled must be >= 1"),
        ("[performance]\nmodels = 3\n", "[performance.models.<model>] must be tables"),
        ("performance = 3\n", "[performance] must be a table"),
        # the windows a rule reads must still be in retention (default 24 h)
        ("[performance]\nfloor = 0.9\nfloor_for = '30h'\n", "floor_for (108000000 ms) needs"),
        (
            "[performance.models.fraud]\nlabel_coverage_min = 0.5\n",
            "bad [performance.models.fraud] in",
        ),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    assert fragment in str(info.value)
    assert "monitor.toml" in str(info.value)


def test_coverage_fits_a_longer_retention(tmp_path: Path) -> None:
    text = '[windows]\nretention = "25h"\n[performance]\nlabel_coverage_min = 0.5\n'
    assert _load(tmp_path, text).performance_policy("m").label_coverage_min == 0.5


def test_the_worker_evaluator_takes_the_configured_policies(tmp_path: Path) -> None:
    config = _load(tmp_path, FULL)
    worker = Worker(config=config, references=ReferenceSet.of([]))
    evaluator = worker.aggregate.evaluator
    assert evaluator.performance_for("credit") == config.performance_policy("credit")
    assert evaluator.performance_for("other").floor == 0.95
