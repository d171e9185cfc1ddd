"""Fairness checks: graded only when the disparity is large and statistically clear."""

from __future__ import annotations

import numpy as np
import pytest

from streamproc.checks.fairness_checks import FairnessPolicy, judge_fairness
from streamproc.core.fairness import FairnessCounts, fairness_report

POLICY = FairnessPolicy()


def _counts(rates: dict[str, tuple[int, float]], seed: int = 0) -> FairnessCounts:
    """Groups of (n, selection rate); labels equal to the decision flipped 10% of the time
    and a score of 0.7 / 0.3 (calibrated within noise only where the rate matches)."""
    rng = np.random.default_rng(seed)
    fc = FairnessCounts("group")
    for name, (n, p) in rates.items():
        sel = np.arange(n) < round(n * p)
        y = sel ^ (rng.random(n) < 0.1)
        fc.add_predictions([name] * n, sel)
        fc.add_labeled([name] * n, sel, y, np.where(sel, 0.9, 0.1))
    return fc


def _by_metric(findings):
    return {f.metric: f for f in findings}


def test_clear_disparate_impact_is_graded() -> None:
    rep = fairness_report(_counts({"x": (2000, 0.5), "y": (2000, 0.25)}))
    f = _by_metric(judge_fairness(rep, POLICY))
    di = f["disparate_impact_ratio"]
    assert di.value == pytest.approx(0.5) and di.severity == "critical"
    assert di.groups == ("y", "x") and "'y' vs 'x'" in di.summary
    dp = f["demographic_parity_difference"]
    assert dp.value == pytest.approx(0.25) and dp.severity == "critical"


def test_a_gap_within_noise_is_not_graded() -> None:
    # 0.5 vs 0.38 on 40 rows each: ratio 0.75 < 0.8, but the interval reaches 1
    rep = fairness_report(_counts({"x": (40, 0.5), "y": (40, 0.375)}))
    di = _by_metric(judge_fairness(rep, POLICY))["disparate_impact_ratio"]
    assert di.value == pytest.approx(0.75)
    assert di.interval.high > 1 and di.severity is None


def test_equal_groups_are_clean_and_small_groups_redacted() -> None:
    rep = fairness_report(_counts({"x": (3000, 0.3), "y": (3000, 0.3), "z": (10, 1.0)}))
    findings = judge_fairness(rep, POLICY)
    assert findings and not any(f.breached for f in findings)
    ev = findings[0].evidence
    assert "z" not in ev["groups"] and ev["small_groups_left_out"] == 1
    raw = judge_fairness(rep, FairnessPolicy(allow_raw_small_groups=True))[0].evidence
    assert "z" in raw["groups"]


def test_miscalibrated_group_is_graded() -> None:
    # scores 0.9 / 0.1, outcomes match the decision 90% of the time: calibrated in the
    # large when half are selected (0.5·0.9 + 0.5·0.1 = 0.5 vs observed 0.5) ...
    fine = fairness_report(_counts({"x": (4000, 0.5), "y": (4000, 0.5)}))
    assert _by_metric(judge_fairness(fine, POLICY))["calibration_gap"].severity is None
    # ... but not when every label of a group is positive
    fc = _counts({"x": (4000, 0.5)})
    fc.add_predictions(["y"] * 4000, np.zeros(4000, bool))
    fc.add_labeled(["y"] * 4000, np.zeros(4000, bool), np.ones(4000, bool), np.full(4000, 0.1))
    cal = _by_metric(judge_fairness(fairness_report(fc), POLICY))["calibration_gap"]
    assert cal.groups == ("y", None) and cal.value == pytest.approx(0.9)
    assert cal.severity == "critical"


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        FairnessPolicy(disparate_impact_warning=0.5, disparate_impact_critical=0.8)
    with pytest.raises(ValueError):
        FairnessPolicy(parity_warning=0.3, parity_critical=0.2)
