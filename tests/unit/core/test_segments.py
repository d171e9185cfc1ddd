"""Bounded slicing against exact counts (collections.Counter) on the raw records."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.core.errors import ProfileFormatError
from streamproc.core.segments import (
    OTHER,
    SegmentCounts,
    SliceSet,
    SlicingPolicy,
    parse_slice_key,
    slice_key,
)


def _records(n: int, seed: int, distinct: int = 60) -> list[dict[str, str]]:
    rng = np.random.default_rng(seed)
    country = rng.zipf(1.6, n) % distinct
    device = rng.choice(["ios", "android", "web"], n, p=[0.5, 0.3, 0.2])
    return [
        {"country": f"c{c}", "device": str(d)}
        for c, d in zip(country.tolist(), device, strict=True)
    ]


def _exact_top(records: list[dict[str, str]], dim: str, k: int) -> list[tuple[str, int]]:
    cnt = Counter(r[dim] for r in records if dim in r)
    return sorted(cnt.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


def test_top_k_is_exact_below_the_sketch_capacity() -> None:
    recs = _records(5000, 1)
    sc = SegmentCounts(SlicingPolicy(top_k=20))
    sc.update(recs)
    assert sc.top("country") == _exact_top(recs, "country", 20)
    assert sc.top("device") == _exact_top(recs, "device", 20)
    assert sc.error_bound("country") == 0
    assert sc.records == 5000


def test_top_k_of_a_long_tail_within_the_error_bound() -> None:
    recs = _records(200_000, 2, distinct=20_000)  # far more values than the sketch holds
    sc = SegmentCounts(SlicingPolicy(top_k=20))
    for i in range(0, len(recs), 10_000):
        sc.update(recs[i : i + 10_000])
    exact = Counter(r["country"] for r in recs)
    bound = sc.error_bound("country")
    assert 0 < bound <= 0.0069 * len(recs)  # epsilon of lg_max_map_size 9
    got = sc.top("country")
    for value, est in got:
        assert exact[value] <= est <= exact[value] + bound
    truth = _exact_top(recs, "country", 21)
    clear = [v for v, c in truth[:20] if c - bound > truth[20][1]]  # clearly in the top 20
    assert set(clear) <= {v for v, _ in got}


def test_keys_of_maps_values_to_their_slices() -> None:
    sc = SegmentCounts(SlicingPolicy(top_k=2, crossings=(("country", "device"),)))
    sc.update([{"country": "DE", "device": "ios"}] * 5 + [{"country": "FR", "device": "web"}] * 3)
    sc.update([{"country": "IT", "device": "ios"}, {"device": "android"}, None, {}])
    ss = sc.slices()
    assert ss.values == {"country": {"DE", "FR"}, "device": {"ios", "web"}}
    assert ss.keys_of({"country": "DE", "device": "ios"}) == [
        "country=DE",
        "device=ios",
        "country=DE&device=ios",
    ]
    assert ss.keys_of({"country": "IT", "device": "ios"}) == [f"country={OTHER}", "device=ios"]
    assert ss.keys_of({"device": "android"}) == [f"device={OTHER}"]
    assert ss.keys_of(None) == [] and ss.keys_of({}) == []
    batch = [{"country": "DE"}, {"country": "ES"}, None, {"country": "DE", "device": "ios"}]
    rows = ss.assign(batch)
    for key, idx in rows.items():
        assert [i for i, r in enumerate(batch) if key in ss.keys_of(r)] == idx.tolist()
    assert rows["country=DE"].tolist() == [0, 3]
    odd = [{"country": ["DE"]}, {"country": ["DE"]}]  # unhashable: counted by str()
    assert ss.assign(odd)[f"country={OTHER}"].tolist() == [0, 1]
    sc.update(odd)
    assert sc.sketches["country"].get_estimate("['DE']") == 2
    assert SliceSet.from_dict(ss.to_dict()) == ss
    assert len(ss) == len(ss.keys()) == 3 + 3 + 2


def test_cap_keeps_the_largest_slices() -> None:
    recs = _records(5000, 3)
    sc = SegmentCounts(SlicingPolicy(top_k=20, max_slices=10))
    sc.update(recs)
    ss = sc.slices()
    assert len(ss) == 10  # two OTHER slices and the 8 largest named ones
    cnt = Counter((d, v) for r in recs for d, v in r.items())
    ranked = sorted(cnt.items(), key=lambda kv: (-kv[1], slice_key([kv[0]])))[:8]
    kept = {(d, v) for d, vs in ss.values.items() for v in vs}
    assert kept == {dv for dv, _ in ranked}


def test_discovered_dimensions_are_bounded_and_configured_ones_fixed() -> None:
    rec = {f"d{i}": "x" for i in range(12)}
    sc = SegmentCounts(SlicingPolicy(max_dimensions=3))
    sc.update([rec])
    assert sorted(sc.sketches) == ["d0", "d1", "d10"]
    sc2 = SegmentCounts(SlicingPolicy(dimensions=("d5",)))
    sc2.update([rec])
    assert list(sc2.sketches) == ["d5"]


@pytest.mark.parametrize("items", [[("a&b", "x=y")], [("k", "100%"), ("j", "&=&")]])
def test_slice_keys_round_trip(items: list[tuple[str, str]]) -> None:
    key = slice_key(items)
    assert parse_slice_key(key) == dict(items)
    assert key.count("&") == len(items) - 1


segment = st.dictionaries(
    st.sampled_from(["country", "device", "plan"]), st.sampled_from(["a", "b", "c", "d&e"])
)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.none(), segment), max_size=40), st.integers(0, 40))
def test_merge_is_one_pass_commutative_and_round_trips(recs: list, cut: int) -> None:
    policy = SlicingPolicy(top_k=3, crossings=(("country", "plan"),))
    whole, a, b = SegmentCounts(policy), SegmentCounts(policy), SegmentCounts(policy)
    whole.update(recs)
    a.update(recs[:cut])
    b.update(recs[cut:])
    a_bytes = a.to_bytes()
    merged = a.merge(b)
    assert merged == whole
    assert b.merge(a) == whole
    assert a.to_bytes() == a_bytes  # not mutated
    assert SegmentCounts.from_bytes(merged.to_bytes()) == whole
    assert merged.slices() == whole.slices()


def test_bad_bytes_and_policy_mismatch() -> None:
    sc = SegmentCounts()
    sc.update(_records(100, 4))
    data = sc.to_bytes()
    with pytest.raises(ProfileFormatError):
        SegmentCounts.from_bytes(data[:-1])
    with pytest.raises(ProfileFormatError):
        SegmentCounts.from_bytes(b"XXXX" + data[4:])
    with pytest.raises(ValueError, match="policies"):
        sc.merge(SegmentCounts(SlicingPolicy(top_k=5)))
    with pytest.raises(ValueError, match="crossing"):
        SlicingPolicy(crossings=(("a", "a"),))
