"""Fairness metrics per group against numpy / scikit-learn / scipy on the raw rows."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats
from scipy.stats.contingency import relative_risk
from sklearn.metrics import confusion_matrix, precision_score, recall_score

from streamproc.core.errors import ProfileFormatError
from streamproc.core.fairness import OTHER, FairnessCounts, fairness_report

GROUPS = np.array(["a", "b", "c", "tiny"])


def _data(n: int, seed: int) -> tuple[list[str | None], np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    g = rng.choice(GROUPS, n, p=[0.5, 0.3, 0.195, 0.005])
    base = {"a": 0.4, "b": 0.3, "c": 0.25, "tiny": 0.5}
    y = rng.random(n) < np.vectorize(base.get)(g)
    shift = np.vectorize({"a": 0.1, "b": 0.0, "c": -0.08, "tiny": 0.0}.get)(g)
    score = np.clip(rng.beta(2, 4, n) + 0.3 * y + shift, 0, 1)
    groups: list[str | None] = list(g)
    groups[::97] = [None] * len(groups[::97])  # some rows without the attribute
    return groups, score >= 0.5, y, score


def _counts(groups, selected, y, score) -> FairnessCounts:
    fc = FairnessCounts("gender")
    fc.add_predictions(groups, selected)
    fc.add_labeled(groups, selected, y, score)
    return fc


def _wilson(k: int, n: int) -> tuple[float, float]:
    ci = stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
    return ci.low, ci.high


def test_group_metrics_match_sklearn_and_scipy() -> None:
    groups, sel, y, score = _data(6000, 1)
    rep = fairness_report(_counts(groups, sel, y, score), min_group_size=50)
    g = np.array([x if x is not None else "" for x in groups])
    assert rep.missing == 2 * sum(x is None for x in groups)  # predictions + labeled rows
    for name in ("a", "b", "c"):
        m = g == name
        sr = rep.selection_rate[name]
        assert sr.value == pytest.approx(sel[m].mean(), abs=1e-12)
        assert (sr.interval.low, sr.interval.high) == pytest.approx(
            _wilson(int(sel[m].sum()), int(m.sum())), abs=1e-12
        )
        assert rep.tpr[name].value == pytest.approx(recall_score(y[m], sel[m]), abs=1e-12)
        tn, fp, _fn, _tp = confusion_matrix(y[m], sel[m]).ravel()
        assert rep.fpr[name].value == pytest.approx(fp / (fp + tn), abs=1e-12)
        assert rep.precision[name].value == pytest.approx(precision_score(y[m], sel[m]), abs=1e-12)
        cal = rep.calibration[name]
        assert cal.mean_score == pytest.approx(score[m].mean(), rel=1e-12)
        assert cal.observed.value == pytest.approx(y[m].mean(), abs=1e-12)
        assert cal.gap == pytest.approx(score[m].mean() - y[m].mean(), abs=1e-12)


def test_disparities_match_numpy_and_scipy() -> None:
    groups, sel, y, score = _data(6000, 2)
    rep = fairness_report(_counts(groups, sel, y, score), min_group_size=50)
    g = np.array([x if x is not None else "" for x in groups])
    big = ["a", "b", "c"]
    rates = {k: sel[g == k].mean() for k in big}
    lo, hi = min(rates, key=rates.get), max(rates, key=rates.get)
    di = rep.disparate_impact
    assert (di.low_group, di.high_group) == (lo, hi)
    assert di.value == pytest.approx(rates[lo] / rates[hi], rel=1e-12)
    rr = relative_risk(
        int(sel[g == lo].sum()), int((g == lo).sum()), int(sel[g == hi].sum()), int((g == hi).sum())
    )
    ci = rr.confidence_interval(0.95)
    assert (di.interval.low, di.interval.high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert rep.four_fifths == (rates[lo] / rates[hi] >= 0.8)
    dp = rep.demographic_parity_difference
    assert dp.value == pytest.approx(rates[hi] - rates[lo], abs=1e-12)
    assert dp.interval.low < dp.value < dp.interval.high

    tpr = {k: recall_score(y[g == k], sel[g == k]) for k in big}
    fpr = {k: sel[(g == k) & ~y].mean() for k in big}
    tpr_gap = max(tpr.values()) - min(tpr.values())
    fpr_gap = max(fpr.values()) - min(fpr.values())
    assert rep.tpr_gap.value == pytest.approx(tpr_gap, abs=1e-12)
    assert rep.fpr_gap.value == pytest.approx(fpr_gap, abs=1e-12)
    assert rep.equalized_odds_difference.value == pytest.approx(max(tpr_gap, fpr_gap), abs=1e-12)


def test_small_groups_are_insufficient_and_redacted() -> None:
    groups, sel, y, score = _data(6000, 3)
    rep = fairness_report(_counts(groups, sel, y, score), min_group_size=50)
    tiny = rep.selection_rate["tiny"]
    assert tiny.status == "insufficient" and tiny.value is None and 0 < tiny.n < 50
    assert "tiny" not in (rep.disparate_impact.low_group, rep.disparate_impact.high_group)
    assert rep.small_groups() == ["tiny"]
    redacted = rep.to_dict()
    assert "tiny" not in redacted["groups"] and redacted["small_groups_left_out"] == 1
    assert "tiny" in rep.to_dict(raw_small_groups=True)["groups"]
    # one group of sufficient size: no disparity at all
    one = fairness_report(_counts(["a"] * 100, sel[:100], y[:100], score[:100]))
    assert one.disparate_impact.status == "insufficient" and one.four_fifths is None
    assert one.equalized_odds_difference.value is None


def test_clear_four_fifths_violation() -> None:
    fc = FairnessCounts("race")
    fc.add_predictions(
        ["x"] * 1000 + ["y"] * 1000, np.r_[np.arange(1000) < 500, np.arange(1000) < 200]
    )
    rep = fairness_report(fc)
    assert rep.disparate_impact.value == pytest.approx(0.4)
    assert rep.four_fifths is False and rep.four_fifths_clearly_violated


def test_merge_equals_one_pass_and_round_trips() -> None:
    groups, sel, y, score = _data(3000, 4)
    whole = _counts(groups, sel, y, score)
    cut = [0, 700, 1900, 3000]
    parts = [_counts(groups[a:b], sel[a:b], y[a:b], score[a:b]) for a, b in itertools.pairwise(cut)]
    left = parts[0].merge(parts[1]).merge(parts[2])
    right = parts[0].merge(parts[1].merge(parts[2]))
    for merged in (left, right, parts[2].merge(parts[1]).merge(parts[0])):
        assert merged.groups.keys() == whole.groups.keys()
        for k in whole.groups:
            a, b = merged.groups[k].to_list(), whole.groups[k].to_list()
            assert a[:-1] == b[:-1] and a[-1] == pytest.approx(b[-1], rel=1e-12)
    before = parts[0].to_bytes()
    parts[0].merge(parts[1])
    assert parts[0].to_bytes() == before  # merge does not mutate
    assert FairnessCounts.from_bytes(whole.to_bytes()) == whole
    with pytest.raises(ProfileFormatError):
        FairnessCounts.from_bytes(whole.to_bytes()[:-3])
    with pytest.raises(ValueError, match="attributes"):
        whole.merge(FairnessCounts("other"))


def test_group_cap_pools_into_other() -> None:
    fc = FairnessCounts("zip", max_groups=4)
    fc.add_predictions([f"g{i}" for i in range(10)], np.ones(10, bool))
    assert set(fc.groups) == {"g0", "g1", "g2", OTHER}
    assert fc.groups[OTHER].n == 7
    a, b = FairnessCounts("zip", max_groups=3), FairnessCounts("zip", max_groups=3)
    a.add_predictions(["p"] * 5 + ["q"] * 2, np.zeros(7, bool))
    b.add_predictions(["r"] * 9, np.zeros(9, bool))
    m = a.merge(b)
    assert {k: v.n for k, v in m.groups.items()} == {"r": 9, "p": 5, OTHER: 2}
    rep = fairness_report(m, min_group_size=1)
    assert rep.selection_rate[OTHER].value == 0.0
    assert OTHER not in (rep.disparate_impact.low_group, rep.disparate_impact.high_group)
