"""Slices, fairness and versions on a real broker, live and replayed a year later.

Three models in one stream, with labels:

* ``credit`` — sliced by ``country`` (DE 30%, FR, US) with ``gender`` declared protected.
  From the fifth window on, the DE rows' ``f0`` moves by +3 and their accuracy falls from
  0.75 to 0.4: ``feature_drift`` and ``performance_drop`` must fire for the DE slice and
  never for FR or US. The approval rate is 0.6 for ``m`` and 0.4 for
  ``f``: the windows' fairness metrics must equal numpy's on the raw rows.
* ``fraud`` — an A/B rollout: versions 1 and 2 serve alternate requests, 70% and 80%
  right. With ``min_n`` above the first windows' rows the first verdict is ``extend``;
  once enough labels are in it is ``ship``.
* ``risk`` — a shadow rollout: version 2 scores every request version 1 scores (same
  request id), 70% and 80% right, independently: McNemar's test gives ``ship``.

The replay (the same records a year earlier, at full speed) must give the same slice
alerts and the same final verdicts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pytest

from streamproc.core.fairness import fairness_report
from streamproc.core.model_profile import ModelProfile
from streamproc.core.reference_performance import build
from streamproc.monitor.slice_eval import window_fairness
from streamproc.monitor.state import WindowState
from tests.integration.monitor_harness import (
    AlertWatcher,
    Feed,
    Timed,
    monitor_config,
    running_worker,
    send_timed,
    shift_timed,
    wait_until,
)
from tests.support.kafka import create_topic, latest_values

WINDOW_S = 5
WINDOWS = 8  # the last never closes
RATE = 200  # records per second of event time, per model
DRIFT_FROM = 4  # first window with DE's f0 moved
LABEL_DELAY_S = 1.0
YEAR_S = 365 * 86_400
P_APPROVE = {"m": 0.6, "f": 0.4}
MODELS_SECTION: dict[str, Any] = {
    "credit": {
        "slices": {"dimensions": ["country"], "key_features": ["f0", "f1"]},
        "fairness": {"protected": ["gender"], "positive": "approve", "min_group_size": 30},
    },
    "fraud": {"rollout": {"champion": "1", "challenger": "2", "mode": "ab", "min_n": 1500}},
    "risk": {"rollout": {"champion": "1", "challenger": "2", "mode": "shadow"}},
}


def _reference(model: str, seed: int) -> ModelProfile:
    rng = np.random.default_rng(seed)
    n = 40_000
    truth = np.where(rng.random(n) < 0.5, "deny", "approve").astype(object)
    right = rng.random(n) < 0.75
    pred = np.where(right, truth, np.where(truth == "deny", "approve", "deny")).astype(object)
    score = np.where(pred == "deny", 0.8, 0.2)
    prof = ModelProfile.build_reference(
        model,
        "1",
        {"f0": rng.normal(0, 1, n), "f1": rng.normal(3, 2, n)},
        predictions=score,
        predicted_labels=pred,
    )
    perf = build(list(truth), scores=score, predicted=list(pred), positive="deny")
    prof.metadata["performance"] = perf.to_meta()
    return prof


def _flip(label: str) -> str:
    return "approve" if label == "deny" else "deny"


def _script(start_s: float) -> tuple[Timed, list[dict[str, Any]]]:
    """Every model's predictions and labels in event-time order, and credit's raw rows."""
    rng = np.random.default_rng(7)
    n = RATE * WINDOW_S * WINDOWS
    t = start_s + np.arange(n) / RATE
    timed: Timed = []
    credit_rows: list[dict[str, Any]] = []

    def emit(
        at: float,
        model: str,
        version: str,
        rid: str,
        pred: str,
        truth: str | None,
        features: dict[str, float],
        segment: dict[str, str] | None = None,
    ) -> None:
        env: dict[str, Any] = {
            "model": model,
            "model_version": version,
            "request_id": rid,
            "timestamp": round(at, 3),
            "features": features,
            "prediction": {"label": pred, "score": 0.8 if pred == "deny" else 0.2},
        }
        if segment:
            env["segment"] = segment
        timed.append((at, "p", rid.encode(), orjson.dumps(env)))
        if truth is not None:
            label = {"model": model, "request_id": rid, "timestamp": round(at + LABEL_DELAY_S, 3),
                     "label": truth}  # fmt: skip
            timed.append((at + LABEL_DELAY_S, "l", rid.encode(), orjson.dumps(label)))

    for j in range(n):
        at = float(t[j])
        window = j // (RATE * WINDOW_S)
        f = {"f0": float(rng.normal(0, 1)), "f1": float(rng.normal(3, 2))}
        # credit: segments, a drift confined to DE, unequal approval by gender
        country = str(rng.choice(["DE", "FR", "US"], p=[0.3, 0.35, 0.35]))
        gender = "f" if rng.random() < 0.5 else "m"
        cf = dict(f)
        if country == "DE" and window >= DRIFT_FROM:
            cf["f0"] += 3.0
        pred = "approve" if rng.random() < P_APPROVE[gender] else "deny"
        right = 0.4 if country == "DE" and window >= DRIFT_FROM else 0.75  # DE's accuracy falls
        truth = pred if rng.random() < right else _flip(pred)
        seg = {"country": country, "gender": gender}
        emit(at, "credit", "1", f"c{j}", pred, truth, cf, seg)
        credit_rows.append({"ms": round(at * 1000), "gender": gender, "pred": pred, "truth": truth})
        # fraud: A/B, alternate requests
        truth = "deny" if rng.random() < 0.5 else "approve"
        version = "1" if j % 2 == 0 else "2"
        right = rng.random() < (0.7 if version == "1" else 0.8)
        emit(at, "fraud", version, f"f{j}", truth if right else _flip(truth), truth, f)
        # risk: shadow, both versions score every request (one label)
        truth = "deny" if rng.random() < 0.5 else "approve"
        for version, p in (("1", 0.7), ("2", 0.8)):
            pred = truth if rng.random() < p else _flip(truth)
            emit(at, "risk", version, f"r{j}", pred, truth if version == "1" else None, f)
    timed.sort(key=lambda x: x[0])
    return timed, credit_rows


class Outcome:
    def __init__(self) -> None:
        self.slice_alerts: set[tuple[str, str, str, str]] = set()
        self.verdicts: dict[str, list[str]] = {}
        self.windows: dict[tuple[str, int], WindowState] = {}


def _run(bootstrap: str, prefix: str, timed: Timed, live: bool) -> Outcome:
    config = monitor_config(
        bootstrap,
        prefix,
        windows={"size": f"{WINDOW_S}s", "allowed_lateness": "1s", "rolling_horizon": "15s"},
        join={"grace": "30s"},
        thresholds={"min_samples": 200},
        models=MODELS_SECTION,
    )
    labels_topic = f"{prefix}.labels"
    create_topic(bootstrap, labels_topic, 3)
    alerts = AlertWatcher(bootstrap, config.topics.alerts)
    rollouts = AlertWatcher(bootstrap, config.topics.rollouts)
    n_labels = sum(1 for _, kind, _, _ in timed if kind == "l")
    out = Outcome()
    refs = [_reference("credit", 1), _reference("fraud", 2), _reference("risk", 3)]
    try:
        with running_worker(config, refs, labels_topic=labels_topic) as run:
            feeds = {
                "p": Feed(bootstrap, config.topics.predictions),
                "l": Feed(bootstrap, labels_topic),
            }
            send_timed(feeds, timed, live)
            registry = run.worker.metrics.registry

            def counted() -> float:
                return sum(
                    registry.get_sample_value("streamproc_labels_total", {"model": m}) or 0.0
                    for m in ("credit", "fraud", "risk")
                )

            # risk's challenger is labeled by the join too: one Matched per version
            want = n_labels + sum(1 for _, k, key, _ in timed if k == "l" and key[:1] == b"r")
            assert wait_until(lambda: counted() >= want, 180), (counted(), want)
            state_topic = f"{config.topics.profiles}-state"

            def final_verdicts() -> bool:
                got = {m["model"]: m["verdict"] for m in rollouts.alerts}
                return got.get("fraud") == "ship" and got.get("risk") == "ship"

            wait_until(final_verdicts, 60, every_s=1.0)
            time.sleep(2.0)
            exposed = {m.name for m in registry.collect() if m.samples}
            gauges = {"segment_window_rows", "fairness_metric", "rollout_verdict"}
            gauges |= {"rollout_difference"}
            assert {f"streamproc_{g}" for g in gauges} <= exposed, sorted(exposed)
            for key, value in latest_values(bootstrap, state_topic, timeout_s=30).items():
                if value is not None and orjson.loads(key)[0] == "w":
                    w = WindowState.from_bytes(value)
                    if w.model_version == "1":
                        out.windows[(w.model, w.start_ms)] = w
    finally:
        alerts.close()
        rollouts.close()
    for a in alerts.alerts:
        if "segment" in a and a["status"] == "firing":
            seg = ",".join(f"{k}={v}" for k, v in sorted(a["segment"].items()))
            out.slice_alerts.add((a["model"], a["check"], a.get("feature") or "", seg))
    for m in rollouts.alerts:
        out.verdicts.setdefault(m["model"], []).append(m["verdict"])
    return out


def _fairness_by_numpy(rows: list[dict[str, Any]], start_ms: int) -> dict[str, float]:
    got = [r for r in rows if start_ms <= r["ms"] < start_ms + WINDOW_S * 1000]
    g = np.array([r["gender"] for r in got])
    sel = np.array([r["pred"] == "approve" for r in got])
    y = np.array([r["truth"] == "approve" for r in got])
    rate = {k: sel[g == k].mean() for k in ("f", "m")}
    tpr = {k: sel[(g == k) & y].mean() for k in ("f", "m")}
    fpr = {k: sel[(g == k) & ~y].mean() for k in ("f", "m")}
    return {
        "disparate_impact_ratio": min(rate.values()) / max(rate.values()),
        "demographic_parity_difference": max(rate.values()) - min(rate.values()),
        "tpr_gap": max(tpr.values()) - min(tpr.values()),
        "fpr_gap": max(fpr.values()) - min(fpr.values()),
    }


@pytest.mark.timeout(900)
def test_slices_fairness_and_rollouts_live_and_replayed(
    bootstrap_servers: str, unique_topic: Callable[[str], str]
) -> None:
    start_s = (time.time() + 2) // WINDOW_S * WINDOW_S + WINDOW_S
    timed, credit_rows = _script(start_s)
    live = _run(bootstrap_servers, unique_topic("slices-live"), timed, True)
    replay = _run(
        bootstrap_servers, unique_topic("slices-replay"), shift_timed(timed, YEAR_S), False
    )

    # a drift confined to DE alerts for DE, never for FR or US
    drift = {a for a in live.slice_alerts if a[1] == "feature_drift"}
    assert ("credit", "feature_drift", "f0", "country=DE") in drift, live.slice_alerts
    drops = {a[3] for a in live.slice_alerts if a[1] == "performance_drop"}
    assert drops == {"country=DE"}, live.slice_alerts
    assert not {a for a in live.slice_alerts if a[3] in ("country=FR", "country=US")}, drift
    assert replay.slice_alerts == live.slice_alerts

    # fairness per closed window equals numpy on the raw rows (live and replay)
    window_ms = WINDOW_S * 1000
    first = int(start_s * 1000) // window_ms * window_ms
    for k in range(WINDOWS - 1):
        start = first + k * window_ms
        want = _fairness_by_numpy(credit_rows, start)
        for name, run, at in (("live", live, start), ("replay", replay, start - YEAR_S * 1000)):
            report = fairness_report(window_fairness(run.windows[("credit", at)])["gender"], 30)
            got = {
                "disparate_impact_ratio": report.disparate_impact.value,
                "demographic_parity_difference": report.demographic_parity_difference.value,
                "tpr_gap": report.tpr_gap.value,
                "fpr_gap": report.fpr_gap.value,
            }
            assert got == pytest.approx(want, rel=1e-9), (name, k)

    # A/B: extend while too small, then ship; shadow: ship; replay ends the same
    assert live.verdicts["fraud"][0] == "extend", live.verdicts
    assert live.verdicts["fraud"][-1] == "ship", live.verdicts
    assert live.verdicts["risk"][-1] == "ship", live.verdicts
    assert replay.verdicts["fraud"][-1] == "ship", replay.verdicts
    assert replay.verdicts["risk"][-1] == "ship", replay.verdicts
