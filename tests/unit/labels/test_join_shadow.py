"""Shadow (champion/challenger) pairs in the label join, over the in-memory and RocksDB
store: every arrival order, duplicates, expiry, sampling and replay."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streamproc.labels.join import (
    DAY_MS,
    NO_PREDICTION,
    SHADOW_SUFFIX,
    JoinOutput,
    JoinPolicy,
    LabelJoin,
    PredictionRows,
)
from streamproc.labels.kv import KV, MemoryKV, RocksKV
from streamproc.labels.store import Pending, PendingStore, record_id, sample_hash

T0 = 1_714_000_000_000
HOUR = 3_600_000
WINDOW = 60_000
W0 = T0 // WINDOW * WINDOW
SHADOW = {"m": ("v1", "v2")}

KVFactory = Callable[[], KV]


@pytest.fixture(params=["memory", "rocksdb"])
def kv_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KVFactory]:
    made: list[KV] = []

    def make() -> KV:
        kv: KV = MemoryKV() if request.param == "memory" else RocksKV(tmp_path / f"db{len(made)}")
        made.append(kv)
        return kv

    yield make
    for kv in made:
        kv.close()


def _join(kv: KV, shadow: dict[str, tuple[str, str]] | None = None, **policy: Any) -> LabelJoin:
    return LabelJoin(
        PendingStore(kv), JoinPolicy(shadow=SHADOW if shadow is None else shadow, **policy)
    )


def _preds(
    ids: list[str], times: list[int], versions: list[str], scores: list[float], model: str = "m"
) -> PredictionRows:
    return PredictionRows(
        [model] * len(ids), ids, times, [t // WINDOW * WINDOW for t in times], versions,
        [int(s >= 0.5) for s in scores], scores,
    )  # fmt: skip


def _champion(join: LabelJoin, rid: str = "a", t: int = T0, score: float = 0.8) -> JoinOutput:
    return join.apply_predictions(_preds([rid], [t], ["v1"], [score]))


def _challenger(join: LabelJoin, rid: str = "a", t: int = T0 + 5, score: float = 0.3) -> JoinOutput:
    return join.apply_predictions(_preds([rid], [t], ["v2"], [score]))


def _label(join: LabelJoin, rid: str = "a", t: int = T0 + 100, label: Any = 1) -> JoinOutput:
    return join.apply_labels(["m"], [rid], [t], [label])


STEPS: dict[str, Callable[[LabelJoin], JoinOutput]] = {
    "P": _champion,
    "C": _challenger,
    "L": _label,
}


def _summary(p: Pending) -> tuple[Any, ...]:
    return (p.model, p.request_id, p.model_version, p.score, p.label, p.label_ms)


@pytest.mark.parametrize("order", ["".join(o) for o in itertools.permutations("PCL")])
def test_every_order_gives_one_pair_one_labeled_pair_and_two_matches(
    kv_factory: KVFactory, order: str
) -> None:
    j = _join(kv_factory())
    outs = [STEPS[step](j) for step in order]
    pairs = [pair for o in outs for pair in o.pairs]
    labeled = [lp for o in outs for lp in o.labeled_pairs]
    matched = [m for o in outs for m in o.matched]
    assert [(c.model, c.model_version, c.score, h.model, h.model_version, h.score)
            for c, h in pairs] == [("m", "v1", 0.8, "m", "v2", 0.3)]  # fmt: skip
    assert [(_summary(c), _summary(h), label, ms) for c, h, label, ms in labeled] == [
        (("m", "a", "v1", 0.8, 1, T0 + 100), ("m", "a", "v2", 0.3, 1, T0 + 100), 1, T0 + 100)
    ]
    assert sorted(
        (m.prediction.model_version, m.prediction.score, m.label, m.label_ms, m.lag_ms)
        for m in matched
    ) == [("v1", 0.8, 1, T0 + 100, 100), ("v2", 0.3, 1, T0 + 100, 95)]
    assert all(m.prediction.model == "m" and m.prediction.window_start_ms == W0 for m in matched)
    assert sum(o.duplicates + o.duplicate_predictions + len(o.corrections) for o in outs) == 0
    assert not any(o.unmatched or o.expired for o in outs)
    assert (outs[-1].pending, outs[-1].waiting) == (2, 0)
    # both stored labeled, under their own keys, with the real model name's key layout
    st = j.store
    champion = st.get_prediction(record_id("m", "a"))
    challenger = st.get_prediction(record_id("m" + SHADOW_SUFFIX, "a"))
    assert champion is not None and challenger is not None
    assert (champion.model_version, champion.label, champion.label_ms) == ("v1", 1, T0 + 100)
    assert (challenger.model_version, challenger.label, challenger.label_ms) == ("v2", 1, T0 + 100)
    # a later label is the champion's duplicate (counted once) and changes nothing else
    again = _label(j, t=T0 + 200)
    assert (again.duplicates, again.matched, again.labeled_pairs, again.corrections) == (
        1, [], [], [],
    )  # fmt: skip


@pytest.mark.parametrize("order", ["".join(o) for o in itertools.permutations("PCL")])
def test_replaying_the_calls_on_a_fresh_store_gives_the_same_outputs(
    kv_factory: KVFactory, order: str
) -> None:
    def run() -> list[JoinOutput]:
        j = _join(kv_factory(), horizon_ms=DAY_MS)
        outs = [STEPS[step](j) for step in order]
        outs.append(_label(j, t=T0 + 300, label=0))  # a correction
        outs.append(j.advance(T0 + 2 * DAY_MS))
        return outs

    first, second = run(), run()
    assert first == second
    assert sum(len(o.pairs) for o in first) == 1
    assert [len(o.corrections) for o in first] == [0, 0, 0, 1, 0]
    assert first[-1].pending == 0 and first[-1].expired == {}  # both were labeled


def test_changelog_restore_continues_the_same(kv_factory: KVFactory) -> None:
    a = _join(kv_factory())
    log = _challenger(a).changelog + _label(a).changelog
    b_store = PendingStore(kv_factory())
    b_store.restore(log)
    b = LabelJoin(b_store, JoinPolicy(shadow=SHADOW))
    out_a, out_b = _champion(a), _champion(b)
    assert out_a == out_b
    assert [_summary(m.prediction) for m in out_a.matched] == [("m", "a", "v1", 0.8, 1, T0 + 100)]
    assert len(out_a.pairs) == len(out_a.labeled_pairs) == 1


def test_both_in_one_batch(kv_factory: KVFactory) -> None:
    j = _join(kv_factory())
    _label(j, "b", t=T0 + 7, label="yes")
    out = j.apply_predictions(
        _preds(["a", "b", "b", "a"], [T0, T0 + 1, T0 + 2, T0 + 3], ["v2", "v2", "v1", "v1"],
               [0.1, 0.2, 0.7, 0.9])
    )  # fmt: skip
    assert [(c.request_id, c.score, h.score) for c, h in out.pairs] == [
        ("b", 0.7, 0.2),
        ("a", 0.9, 0.1),
    ]
    assert [(c.request_id, h.request_id, label, ms) for c, h, label, ms in out.labeled_pairs] == [
        ("b", "b", "yes", T0 + 7)
    ]
    assert [(m.prediction.model_version, m.label) for m in out.matched] == [
        ("v1", "yes"),
        ("v2", "yes"),
    ]
    assert (out.pending, out.waiting, out.duplicate_predictions) == (4, 0, 0)


def test_challenger_duplicates_are_counted_per_key(kv_factory: KVFactory) -> None:
    j = _join(kv_factory())
    out = j.apply_predictions(_preds(["a", "a"], [T0, T0 + 1], ["v2", "v2"], [0.3, 0.4]))
    assert (out.duplicate_predictions, out.pending, out.pairs) == (1, 1, [])
    out = _champion(j)
    assert out.duplicate_predictions == 0 and [(c.score, h.score) for c, h in out.pairs] == [
        (0.8, 0.3)
    ]
    out = j.apply_predictions(_preds(["a", "a"], [T0 + 2, T0 + 3], ["v2", "v1"], [0.5, 0.6]))
    assert (out.duplicate_predictions, out.pending, out.pairs) == (2, 2, [])
    # another version of a shadow model shares the champion's key: a duplicate there
    out = j.apply_predictions(_preds(["a"], [T0 + 4], ["v3"], [0.5]))
    assert out.duplicate_predictions == 1 and out.pending == 2


def test_corrections_and_duplicates_are_the_champions_only(kv_factory: KVFactory) -> None:
    j = _join(kv_factory())
    _champion(j)
    _challenger(j)
    out = j.apply_labels(["m"] * 4, ["a"] * 4, [T0 + 10, T0 + 11, T0 + 12, T0 + 13], [1, 1, 0, 0])
    assert [(m.prediction.model_version, m.label, m.label_ms) for m in out.matched] == [
        ("v1", 1, T0 + 10),
        ("v2", 1, T0 + 10),
    ]
    assert out.duplicates == 2 and [(c.first_label, c.label) for c in out.corrections] == [(1, 0)]
    assert len(out.labeled_pairs) == 1
    challenger = j.store.get_prediction(record_id("m" + SHADOW_SUFFIX, "a"))
    assert challenger is not None and (challenger.label, challenger.last_label) == (1, None)


def test_challenger_takes_the_first_label_of_a_corrected_waiting_label(
    kv_factory: KVFactory,
) -> None:
    j = _join(kv_factory())
    _label(j, label="x", t=T0 + 1)
    _challenger(j)
    out = _label(j, label="z", t=T0 + 2)  # a correction while waiting
    assert [(m.prediction.model_version, m.label, m.label_ms) for m in out.matched] == [
        ("v2", "x", T0 + 1)
    ]
    assert len(out.corrections) == 1 and out.labeled_pairs == []
    out = _champion(j)
    assert [(m.prediction.model_version, m.label) for m in out.matched] == [("v1", "x")]
    assert [(c.last_label, h.last_label, label) for c, h, label, _ in out.labeled_pairs] == [
        ("z", None, "x")
    ]


def test_models_without_shadow_config_drop_the_second_version(kv_factory: KVFactory) -> None:
    for shadow in ({}, {"other": ("v1", "v2")}):
        j = _join(kv_factory(), shadow=shadow)
        _champion(j)
        out = _challenger(j)
        assert (out.duplicate_predictions, out.pending, out.pairs) == (1, 1, [])
        out = _label(j)
        assert [m.prediction.model_version for m in out.matched] == ["v1"]
        assert out.labeled_pairs == []
    # a model not in the config, next to one that is
    j = _join(kv_factory())
    j.apply_predictions(_preds(["a", "a"], [T0, T0 + 1], ["v1", "v2"], [0.8, 0.3], model="n"))
    out = j.apply_predictions(_preds(["a", "a"], [T0, T0 + 1], ["v1", "v2"], [0.8, 0.3]))
    assert out.pending == 3 and len(out.pairs) == 1


def test_challenger_alone_is_a_regular_prediction(kv_factory: KVFactory) -> None:
    j = _join(kv_factory(), horizon_ms=DAY_MS, grace_ms=HOUR)
    _challenger(j)
    out = _label(j)
    assert [_summary(m.prediction) for m in out.matched] == [("m", "a", "v2", 0.3, 1, T0 + 100)]
    assert (out.pairs, out.labeled_pairs, out.waiting) == ([], [], 1)  # waits for a champion
    out = j.advance(T0 + 100 + HOUR + 1)
    assert [(u.request_id, u.reason) for u in out.unmatched] == [("a", NO_PREDICTION)]
    # an unlabeled lone challenger expires like any prediction, under the real model name
    _challenger(j, "b", t=T0 + 2 * HOUR)
    out = j.advance(T0 + 2 * HOUR + DAY_MS + 1)
    assert out.expired == {("m", (T0 + 2 * HOUR) // WINDOW * WINDOW): 1} and out.pending == 0


def test_expiry_deletes_both_entries(kv_factory: KVFactory) -> None:
    j = _join(kv_factory(), horizon_ms=DAY_MS, max_work=1)
    _champion(j)
    _challenger(j)
    out = j.advance(T0 + DAY_MS + 10)  # one entry per call
    assert out.expired == {("m", W0): 1} and out.pending == 1
    out = j.advance(T0 + DAY_MS + 10)
    assert out.expired == {("m", W0): 1} and out.pending == 0
    assert j.store.predictions_from(b"", 100) == ([], None)
    assert j.store.predictions_before(T0 + 2 * DAY_MS, 100) == []
    # the same ids can be stored again afterwards
    _champion(j, t=T0 + DAY_MS + 20)
    out = _challenger(j, t=T0 + DAY_MS + 21)
    assert out.duplicate_predictions == 0 and len(out.pairs) == 1 and out.pending == 2


def test_a_stored_partner_past_the_horizon_does_not_pair(kv_factory: KVFactory) -> None:
    j = _join(kv_factory(), horizon_ms=DAY_MS, max_work=1)
    j.apply_predictions(_preds(["x", "a"], [T0 - 1, T0], ["v1", "v1"], [0.5, 0.8]))
    out = j.advance(T0 + DAY_MS + 10)  # expires only "x"; "a" is past the horizon too
    assert out.pending == 1
    out = _challenger(j, t=T0 + DAY_MS + 20)
    assert out.pairs == [] and out.expired == {("m", W0): 1} and out.pending == 1


def test_sampling_keeps_or_drops_both_members(kv_factory: KVFactory) -> None:
    ids = [f"r{i}" for i in range(40)]
    kept = [i for i in ids if sample_hash(i) < 0.5]
    assert 5 < len(kept) < 35
    j = _join(kv_factory(), sample_rate=0.5)
    a = j.apply_predictions(_preds(ids, [T0] * 40, ["v2"] * 40, [0.3] * 40))
    b = j.apply_predictions(_preds(ids, [T0] * 40, ["v1"] * 40, [0.8] * 40))
    assert a.sampled_out_predictions == b.sampled_out_predictions == 40 - len(kept)
    assert [c.request_id for c, _ in b.pairs] == kept
    assert all(c.request_id == h.request_id for c, h in b.pairs)
    out = j.apply_labels(["m"] * 40, ids, [T0 + 1] * 40, [1] * 40)
    assert len(out.matched) == 2 * len(kept) and len(out.labeled_pairs) == len(kept)
    assert out.sampled_out_labels == 40 - len(kept)


def test_long_model_names_keep_distinct_keys(kv_factory: KVFactory) -> None:
    model = "m" * 300
    j = _join(kv_factory(), shadow={model: ("v1", "v2")}, horizon_ms=DAY_MS)
    j.apply_predictions(_preds(["a"], [T0], ["v1"], [0.8], model=model))
    out = j.apply_predictions(_preds(["a"], [T0 + 1], ["v2"], [0.3], model=model))
    assert len(out.pairs) == 1 and out.pending == 2
    assert [(c.model, h.model) for c, h in out.pairs] == [(model, model)]
    out = j.apply_labels([model], ["a"], [T0 + 2], [0])
    assert len(out.matched) == 2
    assert [(c.model, h.model, label) for c, h, label, _ in out.labeled_pairs] == [
        (model, model, 0)
    ]
    assert j.advance(T0 + 2 * DAY_MS).pending == 0


def test_policy_validates_and_stays_hashable() -> None:
    policy = JoinPolicy(shadow=SHADOW)
    assert hash(policy) == hash(JoinPolicy(shadow={"x": ("a", "b")}))
    assert policy == JoinPolicy(shadow=dict(SHADOW)) and policy != JoinPolicy()
    with pytest.raises(ValueError, match="two different versions"):
        JoinPolicy(shadow={"m": ("v1", "v1")})
