"""`streamproc top --once` against a running worker on the real broker: it lists the
model, each window with the rows produced into it, the drift against the reference and
the alert firing for the drifted feature."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from streamproc.checks.alerts import rfc3339
from streamproc.monitor.worker import state_topic_name
from tests.integration.monitor_harness import (
    Feed,
    expected_counts,
    monitor_config,
    records,
    reference_profile,
    running_worker,
    wait_drained,
    wait_until,
    window_counts,
)

RATE = 1_500.0
YEAR_S = 365 * 86_400
"""Year-old event times: the worker evaluates them as fast as they arrive (as a replay)."""


def _script(start_s: float) -> list[tuple[bytes, bytes]]:
    """10 s normal, then 20 s with num_1 drifted 3σ (event time): the alert stays firing."""
    normal = records(int(RATE * 10), start_s=start_s, rate=RATE, seed=70)
    drifted = records(int(RATE * 20), start_s=start_s + 10, rate=RATE, seed=71, shift={"num_1": 3})
    return normal + drifted


def test_top_once_lists_windows_rows_drift_and_the_firing_alert(
    bootstrap_servers: str, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    prefix = unique_topic("top")
    windows = {"size": "5s", "allowed_lateness": "1s", "rolling_horizon": "15s"}
    config = monitor_config(bootstrap_servers, prefix, windows=windows)
    t = config.topics
    config_file = tmp_path / "streamproc.toml"
    config_file.write_text(
        f'[kafka]\nbootstrap_servers = "{bootstrap_servers}"\ngroup_id = "{prefix}.top"\n'
        f'[topics]\npredictions = "{t.predictions}"\nalerts = "{t.alerts}"\n'
        f'deadletter = "{t.deadletter}"\nprofiles = "{t.profiles}"\n'
    )
    reference = reference_profile()
    reference_file = tmp_path / "credit.profile"
    reference_file.write_bytes(reference.to_bytes())
    recs = _script(time.time() // 5 * 5 - YEAR_S)
    expected = expected_counts(recs, config.windows.size_ms)
    state = state_topic_name(t.profiles)

    with running_worker(config, [reference]) as run:
        Feed(bootstrap_servers, t.predictions).send(recs)
        assert wait_drained(run.worker, len(recs), 120)
        assert wait_until(lambda: window_counts(bootstrap_servers, state) == expected, 60)
        top = subprocess.run(
            [
                *(sys.executable, "-m", "streamproc", "top", "--once", "--windows", "50"),
                *("--config", str(config_file), "--reference", str(reference_file)),
                *("--bootstrap-servers", bootstrap_servers, "--timeout", "60s"),
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    assert top.returncode == 0, top.stderr
    text = top.stdout
    lines = text.splitlines()
    assert any(line.startswith("model credit  versions 1  windows 6 of 6") for line in lines)

    shown = {}
    for line in lines:
        fields = line.split()
        if len(fields) == 5 and fields[0][:2].isdigit() and fields[0].endswith("Z"):
            shown[fields[0]] = int(fields[3].replace(",", ""))
    assert shown == {rfc3339(start): n for start, n in expected.items()}, text

    drift_row = next(line.split() for line in lines if line.startswith("    num_1 "))
    assert drift_row[-3:-1] == ["critical", "psi"], text  # the last window: drifted
    firing = text[text.index("  alerts firing\n") :]
    assert any(
        line.split()[:2] == ["feature_drift", "num_1"] for line in firing.splitlines()[1:]
    ), text
