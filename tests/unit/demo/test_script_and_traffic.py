"""The scripted timeline and the records the traffic generator writes."""

from __future__ import annotations

import dataclasses

import numpy as np
import orjson
import pytest

from streamproc.contracts import validate
from streamproc.contracts.prediction import decode_predictions
from streamproc.demo import model
from streamproc.demo.script import FAST, STANDARD, Phase, Script, Timings
from streamproc.demo.traffic import AFTER_SCRIPT, Traffic, encode


def test_standard_script_runs_about_four_minutes_and_fast_under_one_and_a_half() -> None:
    assert 210 <= STANDARD.seconds <= 270
    assert FAST.seconds <= 90
    for script in (STANDARD, FAST):
        script.validate()
        names = ["normal", "concept_drift", "incident", "stall", "recovery"]
        assert [p.name for p in script.phases] == names
        assert [p.produce for p in script.phases] == [True, True, True, False, True]
        assert [p.incident for p in script.phases] == [False, False, True, False, False]
        assert [p.concept_drift for p in script.phases] == [False, True, False, False, False]


def test_phase_at_boundaries() -> None:
    s = FAST
    n, d, i, st, _ = (p.seconds for p in s.phases)
    assert s.starts() == [0, n, n + d, n + d + i, n + d + i + st]
    assert s.phase_at(0)[1].name == "normal"  # type: ignore[index]
    assert s.phase_at(n - 0.01)[1].name == "normal"  # type: ignore[index]
    assert s.phase_at(n)[1].name == "concept_drift"  # type: ignore[index]
    assert s.phase_at(n + d)[1].name == "incident"  # type: ignore[index]
    assert s.phase_at(n + d + i + 0.5)[1].name == "stall"  # type: ignore[index]
    assert s.phase_at(s.seconds - 0.01)[0] == 4  # type: ignore[index]
    assert s.phase_at(s.seconds) is None
    assert s.start_of("stall") == n + d + i


def test_producing_seconds_skip_the_stall() -> None:
    stall = FAST.phases[3].seconds
    assert FAST.producing_seconds(5) == 5
    assert FAST.producing_seconds(FAST.seconds) == FAST.seconds - stall
    assert FAST.producing_seconds(FAST.seconds + 10) == FAST.seconds - stall + 10


def test_validate_rejects_a_stall_too_short_for_staleness_or_a_window() -> None:
    timings = Timings(window_s=10, allowed_lateness_s=1, rolling_horizon_s=10, staleness_s=6)
    short = Script("x", (Phase("normal", 5), Phase("stall", 7, produce=False)), timings)
    with pytest.raises(ValueError, match="staleness"):
        short.validate()
    narrow = Script(
        "x", (Phase("stall", 9, produce=False),), dataclasses.replace(timings, window_s=20)
    )
    with pytest.raises(ValueError, match="window"):
        narrow.validate()


def test_validate_rejects_a_concept_drift_too_short_for_two_labeled_windows() -> None:
    timings = Timings(window_s=10, allowed_lateness_s=1, rolling_horizon_s=10, staleness_s=6)
    short = Script("x", (Phase("normal", 5), Phase("drift", 20, concept_drift=True)), timings)
    with pytest.raises(ValueError, match="performance_drop"):
        short.validate()


def test_the_stall_outlasts_staleness_and_one_window() -> None:
    for script in (STANDARD, FAST):
        stall = script.phases[3]
        assert stall.seconds > script.timings.staleness_s + 2
        assert stall.seconds >= script.timings.window_s


def test_encoded_records_follow_the_prediction_log_contract() -> None:
    rows = model.sample(np.random.default_rng(0), 50, model.Incident())
    records = encode(rows, start_s=1_700_000_000.0, span_s=0.1, first_id=100)
    assert len(records) == 50
    assert records[0][0] == b"r-100" and records[-1][0] == b"r-149"
    stamps = []
    for key, value in records:
        rec = orjson.loads(value)
        validate("prediction_log", rec)
        assert rec["request_id"] == key.decode()
        assert set(rec["features"]) == set(model.FEATURES)
        stamps.append(rec["timestamp"])
    assert stamps == sorted(stamps)
    assert stamps[0] >= 1_700_000_000.0 and stamps[-1] < 1_700_000_000.1
    nulls = [orjson.loads(v)["features"]["employment_years"] is None for _, v in records]
    assert any(nulls)  # JSON null, which the decoder counts as a null, not as missing
    result = decode_predictions([v for _, v in records], window_ms=10_000)
    assert not result.rejects
    (batch,) = result.batches.values()
    assert batch.missing.get("employment_years", 0) == 0
    assert sum(v is None for v in batch.features["employment_years"]) == sum(nulls)


class _Recorder:
    def __init__(self) -> None:
        self.values: list[bytes] = []

    def produce(self, topic: str, value: bytes, key: bytes, on_delivery: object) -> None:
        self.values.append(value)

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        return 0


def _traffic(rate: float) -> tuple[Traffic, _Recorder]:
    traffic = Traffic({"bootstrap.servers": "127.0.0.1:9"}, "t", FAST, rate, seed=3)
    recorder = _Recorder()
    traffic.producer = recorder  # type: ignore[assignment]
    return traffic, recorder


def test_traffic_follows_the_script() -> None:
    traffic, recorder = _traffic(rate=1000)
    starts = dict(zip([p.name for p in FAST.phases], FAST.starts(), strict=True))
    assert traffic.tick(starts["normal"] + 1, 1e9) == 100
    normal = [orjson.loads(v) for v in recorder.values]
    assert all(r["features"]["channel"] != model.NEW_CHANNEL for r in normal)
    recorder.values.clear()
    ticks = sum(traffic.tick(starts["incident"] + 1, 1e9) for _ in range(10))
    assert ticks == 1000 and traffic.phase.name == "incident"
    incident = [orjson.loads(v)["features"] for v in recorder.values]
    assert sum(f["channel"] == model.NEW_CHANNEL for f in incident) > 50
    assert 0.2 < np.mean([f["employment_years"] is None for f in incident]) < 0.4
    recorder.values.clear()
    assert traffic.tick(starts["stall"] + 1, 1e9) == 0 and recorder.values == []
    assert traffic.tick(starts["recovery"] + 1, 1e9) == 100
    assert traffic.phase_now(FAST.seconds + 5) == (5, AFTER_SCRIPT)


def test_fractional_rates_carry_over_between_ticks() -> None:
    traffic, _ = _traffic(rate=15)  # 1.5 records a tick
    assert sum(traffic.tick(1.0, 1e9) for _ in range(10)) == 15


def _labeled_traffic() -> tuple[Traffic, _Recorder]:
    traffic = Traffic(
        {"bootstrap.servers": "127.0.0.1:9"}, "t", FAST, 1000, seed=3, labels_topic="labels"
    )
    recorder = _Recorder()
    traffic.producer = recorder  # type: ignore[assignment]
    return traffic, recorder


def _accuracy(labels: list[dict[str, object]], predictions: dict[str, str]) -> float:
    return float(np.mean([predictions[str(x["request_id"])] == x["label"] for x in labels]))


def test_labels_come_late_for_a_share_of_predictions_and_the_concept_drift_flips_them() -> None:
    traffic, recorder = _labeled_traffic()
    starts = dict(zip([p.name for p in FAST.phases], FAST.starts(), strict=True))
    lb, now = FAST.labels, 1_700_000_000.0
    records: list[dict[str, object]] = []
    for phase in ("normal", "concept_drift"):
        for k in range(100):  # 10 s of traffic, then every label is due
            traffic.tick(starts[phase] + 0.1 * k, now)
            now += 0.1
        now += lb.max_delay_s + 1
        traffic.tick(starts["stall"] + 1, now)  # the stall produces the due labels only
        records.append({"values": [orjson.loads(v) for v in recorder.values]})
        recorder.values.clear()
    accuracy = []
    for part in records:
        values = part["values"]
        assert isinstance(values, list)
        predictions = {r["request_id"]: r["prediction"]["label"] for r in values if "features" in r}
        labels = [r for r in values if "features" not in r]
        assert len(predictions) == 10_000
        assert len(labels) == pytest.approx(lb.share * 10_000, rel=0.05)
        for x in labels[:50]:
            validate("label_event", x)
        times = {r["request_id"]: r["timestamp"] for r in values if "features" in r}
        delays = [float(x["timestamp"]) - times[str(x["request_id"])] for x in labels]
        assert lb.min_delay_s - 1e-3 <= min(delays) and max(delays) <= lb.max_delay_s + 1e-3
        accuracy.append(_accuracy(labels, predictions))
    assert traffic.pending == []
    assert accuracy[0] == pytest.approx(0.94, abs=0.02)  # as on the reference
    assert accuracy[1] == pytest.approx(0.4 + 0.2 * accuracy[0], abs=0.03)  # 40% flipped


def test_without_a_labels_topic_no_label_is_drawn() -> None:
    traffic, recorder = _traffic(rate=1000)
    traffic.tick(FAST.start_of("concept_drift") + 1, 1e9)
    assert len(recorder.values) == 100 and traffic.pending == []
