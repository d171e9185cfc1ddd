"""The Grafana dashboard and the Prometheus rules, proven against a real Prometheus.

A worker serves ``/metrics`` on 127.0.0.1 and is fed real traffic on the real broker
(normal, then drifted so alerts fire; plus malformed, unknown-model and late records so
the dead-letter counters exist). A real Prometheus (Debian's package) scrapes it every
second with ``deploy/prometheus/rules/streamproc.rules.yml`` loaded. Then:

* every dashboard panel query, with the template variables replaced by concrete values
  (``$model`` = the model, ``$feature`` = one feature, ``$statistic`` = psi,
  ``$instance`` = the worker, ``$__rate_interval`` = 10s), must be accepted by
  ``/api/v1/query`` and return data. Only queries on the model-service health metrics
  (``PENDING_METRICS``, added by another change) are exempt from returning data, and
  only while the worker does not expose them;
* every rule must be loaded and evaluated with health "ok" (``/api/v1/rules``), and every
  rule expression must return data *without its threshold*: the expression is split at
  top-level ``and``/``or``/``unless`` and each operand's trailing comparison with a
  number is dropped (``up == 0`` → ``up``). For ``absent(x)``, which is empty while
  the worker is scraped, ``x`` must return data and ``absent(x)`` must be empty. The
  dead-letter share must be under its 1% threshold on this healthy traffic;
* after the worker stops, ``up == 0`` becomes true and StreamprocWorkerDown goes pending.

``promtool check rules``/``check config`` and ``promtool test rules`` (synthetic series for
each alert, firing and not firing) run too. In CI (``CI=true``) a missing prometheus or
promtool fails these tests instead of skipping them.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from streamproc.broker.local import free_port
from streamproc.config import MonitorConfig
from streamproc.monitor.references import ReferenceSet
from streamproc.monitor.worker import Worker
from tests.integration.monitor_harness import (
    NUMERIC,
    Feed,
    monitor_config,
    records,
    reference_profile,
    wait_until,
)
from tests.support.kafka import create_topic
from tests.support.prometheus import (
    INSTALL_HINT,
    PrometheusServer,
    prometheus_binary,
    prometheus_required,
    promtool_binary,
)

pytestmark = pytest.mark.prometheus

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/grafana/dashboards/streamproc.json"
RULES = ROOT / "deploy/prometheus/rules/streamproc.rules.yml"
RULE_TESTS = ROOT / "deploy/prometheus/tests/streamproc.rules.test.yml"
PROMETHEUS_CONFIG = ROOT / "deploy/prometheus/prometheus.yml"

# Model-service health metrics another change adds; their panels may not return data yet.
PENDING_METRICS = frozenset(
    {"streamproc_latency_ms", "streamproc_error_rate_ratio", "streamproc_fallback_rate_ratio"}
    # performance needs labels, which this traffic has none of (the label-join tests read
    # these series from the worker's registry)
    | {
        "streamproc_performance",
        "streamproc_label_coverage_ratio",
        "streamproc_performance_estimation_error",
        "streamproc_performance_gap",
        "streamproc_label_lag_seconds",
        "streamproc_label_staleness_seconds",
        "streamproc_join_events_total",
        "streamproc_labels_total",
        "streamproc_join_pending_predictions",
        "streamproc_join_waiting_labels",
    }
    # slices, fairness and rollouts need [models] sections and segments, which this
    # traffic has none of (tests/integration/test_slices_versions.py reads these series)
    | {
        "streamproc_segment_window_rows",
        "streamproc_fairness_metric",
        "streamproc_rollout_verdict",
        "streamproc_rollout_difference",
        "streamproc_rollout_comparisons_total",
    }
)
PENDING_CHECKS = ("fairness|rollout",)
"""Panels of ``streamproc_alerts_firing`` filtered to checks this traffic cannot fire."""
RATE = 2_000.0
DRIFTED = {"num_1": 1.5, "num_4": -1.5}


def _need(binary: str | None, name: str) -> str:
    if binary is None:
        reason = f"{name} not found; {INSTALL_HINT}"
        if prometheus_required():
            pytest.fail(f"{name} is required here (CI=true) but missing: {reason}")
        pytest.skip(reason)
    return binary


# -- expressions ----------------------------------------------------------------------

_SET_OPS = re.compile(r"\s(and|or|unless)\s")
_COMPARISON = re.compile(
    r"(==|!=|>=|<=|>|<)\s*(bool\s+)?[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$"
)


def _top_level(expr: str) -> list[bool]:
    """For each character: is it outside (), [], {} and string literals?"""
    flags, depth, quote = [], 0, ""
    for i, ch in enumerate(expr):
        if quote:
            flags.append(False)
            if ch == quote and expr[i - 1] != "\\":
                quote = ""
            continue
        if ch in "\"'`":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        flags.append(depth == 0 and not quote and ch not in ")]}")
    return flags


def condition_operands(expr: str) -> list[str]:
    """The data expressions of an alert condition: split at top-level set operators, and
    each operand without its trailing top-level comparison with a number."""
    expr = " ".join(expr.split())
    top = _top_level(expr)
    parts, start = [], 0
    for m in _SET_OPS.finditer(expr):
        if all(top[m.start() : m.end()]):
            parts.append(expr[start : m.start()])
            start = m.end()
    parts.append(expr[start:])
    operands = []
    for part in parts:
        part = part.strip()
        top = _top_level(part)
        for m in _COMPARISON.finditer(part):
            if top[m.start()]:
                part = part[: m.start()].strip()
                break
        operands.append(part)
    return operands


def test_condition_operands() -> None:
    assert condition_operands('up{job="a"} == 0') == ['up{job="a"}']
    assert condition_operands("sum(a) > 1e4\nand\nsum(deriv(b[10m])) > 0") == [
        "sum(a)",
        "sum(deriv(b[10m]))",
    ]
    assert condition_operands('rate(x{r=~"a|b"}[5m]) / (y + z) > 0.01') == [
        'rate(x{r=~"a|b"}[5m]) / (y + z)'
    ]
    assert condition_operands("histogram_quantile(0.99, sum(rate(b[1m])) > 2) > 1") == [
        "histogram_quantile(0.99, sum(rate(b[1m])) > 2)"
    ]
    assert condition_operands('absent(up{job="x"})') == ['absent(up{job="x"})']


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expression) of every query of every panel, rows included."""
    out = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            for target in panel.get("targets", []):
                out.append((panel["title"], target["expr"]))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    return out


def substitute(expr: str, values: dict[str, str]) -> str:
    for name in sorted(values, key=len, reverse=True):  # $__rate_interval before $__range
        expr = expr.replace(f"${{{name}}}", values[name]).replace(f"${name}", values[name])
    assert "$" not in expr, f"unsubstituted template variable in {expr}"
    return expr


# -- a worker with its metrics endpoint --------------------------------------------------


@contextmanager
def serving_worker(config: MonitorConfig) -> Iterator[tuple[Worker, threading.Event]]:
    """Like the harness' running_worker, but serving /metrics on the configured port."""
    create_topic(config.kafka.bootstrap_servers, config.topics.predictions, 4)
    worker = Worker(config, ReferenceSet.of([reference_profile()]), serve_metrics=True)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        if not worker.ingest.ready.wait(60) or not worker.aggregate.ready.wait(60):
            raise TimeoutError(f"worker did not get its partitions: {worker.errors}")
        yield worker, stop
    finally:
        stop.set()
        thread.join(60)
    if worker.errors:
        raise worker.errors[0]


def bad_records(now: float) -> list[tuple[bytes, bytes | None]]:
    """Two dead-letters that are not late: malformed JSON and a model with no reference."""
    unknown = orjson.loads(records(1, start_s=now, rate=RATE, seed=9)[0][1])
    unknown["model"] = "no-such-model"
    return [(b"bad-1", b"{not json"), (b"unknown-1", orjson.dumps(unknown))]


def late_records(now: float) -> list[tuple[bytes, bytes]]:
    """Records a minute older than the newest: late on every partition that saw traffic."""
    return records(40, start_s=now - 60, rate=RATE, seed=8)


# -- tests ------------------------------------------------------------------------------


def test_promtool_accepts_rules_and_config_and_rule_unit_tests_pass() -> None:
    promtool = _need(promtool_binary(), "promtool")
    for args in (
        ["check", "rules", str(RULES)],
        ["check", "config", str(PROMETHEUS_CONFIG)],
        ["test", "rules", str(RULE_TESTS)],
    ):
        done = subprocess.run(
            [promtool, *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}{done.stderr}"


def test_every_panel_query_and_rule_returns_data_on_a_real_prometheus(
    bootstrap_servers: str, unique_topic: Callable[[str], str]
) -> None:
    _need(prometheus_binary(), "prometheus")
    dashboard = json.loads(DASHBOARD.read_text())
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    port = free_port()
    config = monitor_config(
        bootstrap_servers, unique_topic("prom"), metrics={"host": "127.0.0.1", "port": port}
    )
    target = f"127.0.0.1:{port}"
    prometheus = PrometheusServer.start([target], [RULES])
    try:
        with serving_worker(config) as (worker, stop):
            feed = Feed(bootstrap_servers, config.topics.predictions)
            now = time.time()
            feed.paced(records(int(RATE * 3), start_s=now, rate=RATE, seed=1), RATE)
            feed.send(bad_records(time.time()))
            feed.send(list(late_records(time.time())))
            drift_start = time.time()
            drifted = records(int(RATE * 15), start_s=drift_start, rate=RATE, seed=2, shift=DRIFTED)
            registry = worker.metrics.registry

            def firing() -> bool:
                return any(
                    m.samples for m in registry.collect() if m.name == "streamproc_alerts_firing"
                )

            for i in range(0, len(drifted), int(RATE)):
                feed.paced(drifted[i : i + int(RATE)], RATE)
                if firing():
                    break
            assert firing(), "no alert fired on drifted traffic"
            late = registry.get_sample_value(
                "streamproc_deadletter_total", {"reason": "late_event"}
            )
            assert late, "no late records were dead-lettered"

            # Prometheus has scraped the worker, with the firing alert and 10 s of rates.
            assert prometheus.wait_for(f'up{{instance="{target}"}} == 1', 30), (
                prometheus.targets(),
                prometheus.log_tail(),
            )
            assert prometheus.wait_for("streamproc_alerts_firing", 30)
            assert prometheus.wait_for('streamproc_deadletter_total{reason="late_event"}', 30)
            time.sleep(2)

            names = set(prometheus.label_values("__name__", '{job="streamproc"}'))
            features = prometheus.label_values("feature", 'streamproc_drift_value{model="credit"}')
            assert "num_1" in features, features
            values = {
                "model": "credit",
                "feature": "num_1",
                "statistic": "psi",
                "instance": target,
                "__rate_interval": "10s",
                "__interval": "2s",
                "__range": "1m",
            }
            failures, exempt = [], []
            queries = panel_queries(dashboard)
            for title, expr in queries:
                concrete = substitute(expr, values)
                result = prometheus.query(concrete)  # raises unless status is success
                metric_names = set(re.findall(r"streamproc_[a-z_]+", expr))
                if not result:
                    pending = metric_names & PENDING_METRICS and not metric_names & names
                    if pending or any(f'check=~"{c}"' in expr for c in PENDING_CHECKS):
                        exempt.append(title)
                    else:
                        failures.append(f"{title}: {concrete}")
            assert not failures, "panel queries with no data:\n" + "\n".join(failures)

            # The data says what happened: the drifted features top the drift heatmap, and
            # the dead-letter panel shows each reason that was fed.
            heatmap = next(e for t, e in queries if t.startswith("Drift heatmap"))
            psi = {
                r["metric"]["feature"]: float(r["value"][1])
                for r in prometheus.query(substitute(heatmap, values))
            }
            assert set(NUMERIC) <= set(psi), psi
            ranked = sorted(psi, key=psi.__getitem__, reverse=True)
            assert set(ranked[: len(DRIFTED)]) == set(DRIFTED), psi
            dlq = next(e for t, e in queries if t == "Dead-letters /s by reason")
            reasons = {r["metric"]["reason"] for r in prometheus.query(substitute(dlq, values))}
            assert {"malformed_json", "unknown_model", "late_event"} <= reasons, reasons

            # Rules: loaded and evaluated without error ...
            assert wait_until(
                lambda: all(
                    r["health"] == "ok" and not r["lastEvaluation"].startswith("0001")
                    for g in prometheus.rule_groups()
                    for r in g["rules"]
                ),
                15,
            ), prometheus.rule_groups()
            loaded = {r["name"] for g in prometheus.rule_groups() for r in g["rules"]}
            assert loaded == {r["alert"] for r in rules}
            # ... and their data exists.
            for rule in rules:
                for operand in condition_operands(rule["expr"]):
                    absent = re.fullmatch(r"absent\((.*)\)", operand)
                    if absent:
                        assert prometheus.query(operand) == [], rule["alert"]
                        operand = absent.group(1)
                    assert prometheus.query(operand), f"{rule['alert']}: no data for {operand}"
            dead_letter_rule = next(
                r for r in rules if r["alert"] == "StreamprocDeadLetterRateHigh"
            )
            share = condition_operands(dead_letter_rule["expr"])[0]
            for sample in prometheus.query(share):
                # NaN: no traffic inside the rate window (0/0), which never fires either.
                value = float(sample["value"][1])
                assert math.isnan(value) or 0 <= value < 0.01, sample
            # A handful of bad records among thousands must not fire the rule.
            assert prometheus.query(dead_letter_rule["expr"]) == []
            stop.set()

        # The worker is gone: its scrape fails and the down rule starts pending.
        assert prometheus.wait_for(f'up{{instance="{target}"}} == 0', 15)
        assert prometheus.wait_for(
            'ALERTS{alertname="StreamprocWorkerDown", alertstate="pending"}', 15
        )
        print(f"verified {len(queries)} panel queries ({len(exempt)} exempt: {exempt}),")
        print(f"{len(rules)} rules")
    finally:
        prometheus.stop()
