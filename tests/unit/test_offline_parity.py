"""Offline/streaming parity: ``streamproc drift`` gives exactly the worker's verdicts.

One dataset — a shifted numeric, a stable one, a sparse 300-category Zipf feature (the
offline command used to call it 100% critical: no chi-squared gate), a feature with
out-of-range sentinels — goes through the offline command (CSV in, ``--config`` with
per-model and per-feature thresholds) and through the worker's path (a window profile
built against the reference, :func:`evaluate_window` with the config's policy). Every
(check, feature) verdict must agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from streamproc.checks.evaluate import evaluate_window
from streamproc.cli.main import main
from streamproc.config import load_config
from streamproc.core.kinds import FeatureKind
from streamproc.core.model_profile import ModelProfile
from streamproc.offline.profile_io import save_profile

KINDS = {
    "moved": FeatureKind.NUMERIC,
    "stable": FeatureKind.NUMERIC,
    "sparse": FeatureKind.CATEGORICAL,
    "age": FeatureKind.NUMERIC,
}
CONFIG = """
[thresholds]
psi_warning = 0.12

[thresholds.models.fraud]
ks_warning = 0.15

[thresholds.models.fraud.features.age]
range_min = 0
range_max = 120
"""


def _columns(rng: np.random.Generator, n: int, shift: float) -> dict[str, np.ndarray]:
    w = 1.0 / np.arange(1, 301) ** 1.1
    cats = np.array([f"s{i}" for i in range(300)], dtype=object)
    age = rng.uniform(18, 90, n)
    if shift:
        age[: n // 40] = 150.0  # 2.5% beyond the declared range
    return {
        "moved": rng.normal(shift, 1.0, n),
        "stable": rng.normal(0.0, 1.0, n),
        "sparse": cats[rng.choice(300, n, p=w / w.sum())],
        "age": age,
    }


@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_offline_drift_reports_the_worker_verdicts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], shift: float
) -> None:
    rng = np.random.default_rng(14)
    ref = ModelProfile.build_reference(
        "fraud", "7", _columns(rng, 20_000, 0.0), feature_kinds=KINDS
    )
    save_profile(ref, tmp_path / "ref.profile")
    data = _columns(rng, 2_000, shift)
    pacsv.write_csv(pa.table(data), tmp_path / "cur.csv")
    (tmp_path / "monitor.toml").write_text(CONFIG, encoding="utf-8")

    code = main(
        ["drift", "--reference", str(tmp_path / "ref.profile"), "--current",
         str(tmp_path / "cur.csv"), "--config", str(tmp_path / "monitor.toml"),
         "--format", "json", "--no-progress"]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    doc = json.loads(out)

    policy = load_config(tmp_path / "monitor.toml", env={}).evaluation_policy("fraud")
    assert policy.thresholds.for_feature("age").range_max == 120.0
    assert (policy.thresholds.psi_warning, policy.thresholds.ks_warning) == (0.12, 0.15)
    like = {"bin_edges": ref.psi_edges(), "joint_bounds": ref.joint_bounds()}  # as the worker
    win = ModelProfile.new("fraud", "7", KINDS, **like)  # type: ignore[arg-type]
    for lo in range(0, 2_000, 500):  # the worker merges small deltas
        delta = ModelProfile.new("fraud", "7", KINDS, **like)  # type: ignore[arg-type]
        delta.update_columns({k: v[lo : lo + 500] for k, v in data.items()})
        win = win.merge(delta)
    worker = evaluate_window(ref, win, None, policy, window_start_ms=0, window_end_ms=1)

    offline = {(c["check"], c["feature"]): c for c in doc["checks"]}
    streaming = {(r.check, r.feature): r for r in worker}
    assert set(offline) == set(streaming)
    for key, r in streaming.items():
        c = offline[key]
        assert (c["breached"], c["severity"], c["statistic"]) == (
            r.breached,
            r.severity,
            r.statistic,
        ), key
        assert c["threshold"] == pytest.approx(r.threshold), key
        assert c["value"] == pytest.approx(r.value, rel=0.05, abs=0.01), key  # KLL vs exact
    assert doc["features"]["sparse"]["status"] == "ok"  # the pooled chi-squared gate
    if shift:
        assert doc["features"]["moved"]["status"] in ("warning", "critical")
        assert offline[("range", "age")]["severity"] == "warning"
        moved = offline[("feature_drift", "moved")]
        warning = {"psi": 0.12, "ks": 0.15, "js": 0.1}  # the config's, per model
        critical = {"psi": 0.25, "ks": 0.2, "js": 0.2}
        table = warning if moved["severity"] == "warning" else critical
        assert moved["threshold"] == table[moved["statistic"]]
    else:
        assert doc["status"] == "ok", [c for c in doc["checks"] if c["breached"]]
