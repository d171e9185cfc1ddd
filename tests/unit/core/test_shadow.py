"""Shadow pairs against numpy / scipy / scikit-learn on the raw paired scores."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import accuracy_score, roc_auc_score

from streamproc.core.errors import ProfileFormatError
from streamproc.core.paired_tests import mcnemar_pairs_needed
from streamproc.core.shadow import QUANTILES, ShadowPairs
from streamproc.core.version_compare import decide


def _pairs(
    n: int, seed: int, lift: float = 0.3
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    common = rng.normal(size=n)
    a = 1 / (1 + np.exp(-(common + 1.0 * (y - 0.5) * 2 + rng.normal(scale=0.9, size=n))))
    b = 1 / (1 + np.exp(-(common + (1.0 + lift) * (y - 0.5) * 2 + rng.normal(scale=0.9, size=n))))
    ids = [f"req-{seed}-{i}" for i in range(n)]
    return ids, a, b, y


def _state(ids, a, b, y, **kw) -> ShadowPairs:
    sp = ShadowPairs(**kw)
    sp.update(a, b)
    sp.update_labeled(ids, a, b, y)
    return sp


def test_unlabeled_statistics_match_numpy_and_scipy() -> None:
    ids, a, b, y = _pairs(5000, 1)
    a[7] = np.nan  # a pair without one score is left out
    sp = _state(ids, a, b, y)
    ok = np.isfinite(a)
    a, b = a[ok], b[ok]
    assert sp.pairs == sp.labeled == ok.sum() and len(sp.sample) == sp.max_sample
    assert sp.agreement().value == pytest.approx(np.mean((a >= 0.5) == (b >= 0.5)), abs=1e-12)
    r = stats.pearsonr(a, b)
    ci = r.confidence_interval(0.95)
    corr = sp.correlation()
    assert corr.value == pytest.approx(r.statistic, abs=1e-12)
    assert (corr.low, corr.high) == pytest.approx((ci.low, ci.high), abs=1e-9)
    d = b - a
    summ = sp.difference_summary()
    assert summ["mean"] == pytest.approx(d.mean(), abs=1e-12)
    assert summ["sd"] == pytest.approx(d.std(ddof=1), rel=1e-9)
    for q in QUANTILES:  # KLL k=200: normalized rank error ~1.3%
        rank = np.mean(d <= summ[f"q{round(q * 100):02d}"])
        assert rank == pytest.approx(q, abs=0.025)


def test_paired_accuracy_and_auc_match_sklearn_and_scipy() -> None:
    ids, a, b, y = _pairs(1500, 2)
    sp = _state(ids, a, b, y)  # all 1500 labeled pairs fit the sample
    ra, rb = (a >= 0.5) == y, (b >= 0.5) == y
    acc = sp.accuracy_comparison()
    assert acc.value_a == pytest.approx(accuracy_score(y, a >= 0.5))
    assert acc.value_b == pytest.approx(accuracy_score(y, b >= 0.5))
    bb, cc = int((ra & ~rb).sum()), int((~ra & rb).sum())
    chi2 = (abs(bb - cc) - 1) ** 2 / (bb + cc)
    assert acc.pvalue == pytest.approx(stats.chi2.sf(chi2, 1), rel=1e-12)
    auc = sp.auc_comparison()
    assert auc.value_a == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    assert auc.value_b == pytest.approx(roc_auc_score(y, b), abs=1e-12)
    assert auc.better == 1 and auc.pvalue < 1e-3  # the challenger separates better
    assert decide(auc).verdict == "ship"


def test_a_small_shadow_sample_extends() -> None:
    ids, a, b, y = _pairs(40, 3, lift=0.1)
    sp = _state(ids, a, b, y)
    acc = sp.accuracy_comparison(mde=0.02)
    ra, rb = (a >= 0.5) == y, (b >= 0.5) == y
    bb, cc = int((ra & ~rb).sum()), int((~ra & rb).sum())
    assert acc.test == "mcnemar_exact"
    assert acc.pvalue == pytest.approx(stats.binomtest(bb, bb + cc, 0.5).pvalue, rel=1e-12)
    assert acc.needed_per_arm == mcnemar_pairs_needed((bb + cc) / 40, 0.02) - 40
    assert acc.better == 0 and decide(acc).verdict == "extend"
    assert f"{acc.needed_per_arm} more pairs" in decide(acc).reason
    assert decide(acc, min_n=200).reason.startswith("40 rows of the 200")


def _keys(ids: list[str]) -> np.ndarray:
    return np.array(
        [
            int.from_bytes(hashlib.blake2b(i.encode(), digest_size=8).digest(), "little")
            for i in ids
        ],
        dtype=np.uint64,
    )


def test_bottom_k_sample_is_the_smallest_hashes_and_merges_exactly() -> None:
    ids, a, b, y = _pairs(3000, 4)
    whole = _state(ids, a, b, y, max_sample=500)
    keys = _keys(ids)
    keep = np.argsort(keys)[:500]
    assert whole.keys.tolist() == np.sort(keys)[:500].tolist()
    assert np.array_equal(whole.sample[:, 0], a[keep]) and np.array_equal(
        whole.sample[:, 2], y[keep]
    )
    parts = [
        _state(ids[i : i + 700], a[i : i + 700], b[i : i + 700], y[i : i + 700], max_sample=500)
        for i in range(0, 3000, 700)
    ]
    merged = parts[0]
    for p in parts[1:]:
        merged = merged.merge(p)
    assert np.array_equal(merged.keys, whole.keys) and np.array_equal(merged.sample, whole.sample)
    assert np.array_equal(merged.table, whole.table)
    assert (merged.pairs, merged.agree) == (whole.pairs, whole.agree)
    np.testing.assert_allclose(merged.moments.cross, whole.moments.cross, rtol=1e-9)
    assert merged.auc_comparison().pvalue == pytest.approx(whole.auc_comparison().pvalue, rel=1e-12)
    # the same request counted twice stays one sample row
    again = merged.merge(parts[0])
    assert np.array_equal(again.keys, whole.keys)


def test_round_trip_and_bad_bytes() -> None:
    ids, a, b, y = _pairs(300, 5)
    sp = _state(ids, a, b, y)
    data = sp.to_bytes()
    back = ShadowPairs.from_bytes(data)
    assert back == sp and back.difference_summary() == sp.difference_summary()
    with pytest.raises(ProfileFormatError):
        ShadowPairs.from_bytes(data[:-2])
    with pytest.raises(ValueError, match="threshold"):
        sp.merge(ShadowPairs(threshold=0.3))
    empty = ShadowPairs()
    assert empty.agreement() is None and empty.correlation() is None
    assert empty.accuracy_comparison() is None and empty.auc_comparison() is None
    assert empty.difference_summary() == {}
