"""Segment findings: the segment named, the aggregate flagged, BH over the slices."""

from __future__ import annotations

import numpy as np
import pytest

from streamproc.checks.segment_checks import segment_findings


def test_a_breach_confined_to_one_segment() -> None:
    found = segment_findings(
        {"country=DE": "critical", "country=FR": None, "country=DE&device=ios": "warning"}, None
    )
    by = {f.key: f for f in found}
    assert by["country=DE"].segment == {"country": "DE"}
    assert by["country=DE&device=ios"].segment == {"country": "DE", "device": "ios"}
    assert by["country=DE"].confined and "confined" in by["country=DE"].note()
    assert not by["country=FR"].breached and by["country=FR"].note() == ""
    agg = segment_findings({"country=DE": "critical"}, "warning")[0]
    assert agg.aggregate_affected and not agg.confined


def test_benjamini_hochberg_keeps_only_discoveries() -> None:
    p = {f"k={i}": v for i, v in enumerate([0.001, 0.008, 0.039, 0.041, 0.6])}
    sev = dict.fromkeys(p, "warning")
    found = {f.key: f for f in segment_findings(sev, None, p, fdr=0.05)}
    # step-up by hand: sorted p ≤ q·i/m for i = 1..5 → 0.01, 0.02, 0.03, 0.04, 0.05
    q = 0.05 * np.arange(1, 6) / 5
    ps = np.sort(list(p.values()))
    last = max(i for i in range(5) if ps[i] <= q[i])
    expected = {k for k, v in p.items() if v <= ps[last]}
    assert {k for k, f in found.items() if f.breached} == expected == {"k=0", "k=1"}
    assert found["k=2"].discovery is False and found["k=2"].pvalue == pytest.approx(0.039)
    with pytest.raises(ValueError):
        segment_findings(sev, None, p, fdr=0.0)
