"""docs/monitor.example.toml, the config sections and the policies agree on every default.

The example file documents every setting with its default. Every key in it must be a
setting the code knows, every setting must appear in it, and every value must equal the
code's default (durations and sizes compared after parsing). The config sections take
their defaults from the policy dataclasses, so the defaults of a plain ``MonitorConfig``
must translate back into those policies unchanged.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from streamproc.checks.lifecycle import LifecyclePolicy
from streamproc.checks.performance_checks import PerformancePolicy
from streamproc.checks.policy import DEFAULT_POLICY, EvaluationPolicy
from streamproc.checks.service_checks import ServicePolicy
from streamproc.config import MonitorConfig, parse_duration_ms, parse_size
from streamproc.core.thresholds import Thresholds

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "monitor.example.toml"

#: Sections whose keys are not fixed fields: their example tables hold no active key.
OPEN_SECTIONS = ("thresholds", "references", "models")


def example() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))


def toml_key(f: dataclasses.Field[Any]) -> str:
    """The TOML key of a section field: durations drop their ``_ms`` suffix."""
    return f.name.removesuffix("_ms") if f.metadata.get("kind") == "duration" else f.name


def settings() -> Iterator[tuple[str, dataclasses.Field[Any], Any]]:
    """(section, field, default) of every fixed-key setting of :class:`MonitorConfig`."""
    defaults = MonitorConfig()
    for section in dataclasses.fields(MonitorConfig):
        if section.name == "source" or section.name in OPEN_SECTIONS:
            continue
        value = getattr(defaults, section.name)
        assert dataclasses.is_dataclass(value), section.name
        for f in dataclasses.fields(value):
            yield section.name, f, getattr(value, f.name)


SETTINGS = {f"{section}.{toml_key(f)}": (f, default) for section, f, default in settings()}


def test_every_example_key_is_a_known_setting() -> None:
    data = example()
    known_sections = {f.name for f in dataclasses.fields(MonitorConfig)} - {"source"}
    assert set(data) <= known_sections, sorted(set(data) - known_sections)
    for section, table in data.items():
        if section in OPEN_SECTIONS:
            continue
        for key in table:
            assert f"{section}.{key}" in SETTINGS, f"unknown setting {section}.{key}"


#: Settings without a default value (None: off) cannot be written in TOML: the example
#: documents them as a commented-out line instead.
UNSET = sorted(name for name, (_f, default) in SETTINGS.items() if default is None)


def test_every_setting_is_in_the_example() -> None:
    data = example()
    text = EXAMPLE.read_text(encoding="utf-8")
    for name in SETTINGS:
        section, key = name.split(".")
        if name in UNSET:
            body = text.split(f"[{section}]", 1)[1].split("\n[", 1)[0]
            assert f"\n# {key} = " in body, f"{name}: document it as '# {key} = ...'"
            assert key not in data.get(section, {}), f"{name} has no default to write"
            continue
        assert key in data.get(section, {}), f"{name} is not documented in {EXAMPLE.name}"
    for section in OPEN_SECTIONS:
        assert section in data, f"[{section}] is not documented in {EXAMPLE.name}"


@pytest.mark.parametrize("name", sorted(set(SETTINGS) - set(UNSET)))
def test_example_value_is_the_default(name: str) -> None:
    section, key = name.split(".")
    f, default = SETTINGS[name]
    value = example()[section][key]
    kind = f.metadata.get("kind")
    if kind == "duration":
        assert parse_duration_ms(value) == default, f"{name} = {value!r}, default {default} ms"
    elif kind == "size":
        assert parse_size(value) == default, f"{name} = {value!r}, default {default} bytes"
    elif isinstance(default, Mapping):
        assert value == dict(default), f"{name} = {value!r}, default {dict(default)}"
    else:
        assert value == default, f"{name} = {value!r}, default {default!r}"
        assert type(value) is type(default), f"{name}: write it as a {type(default).__name__}"


def test_open_sections_hold_no_active_override() -> None:
    data = example()
    assert data["thresholds"] == {}, "the example documents defaults: overrides stay comments"
    assert data["references"] == {}


def test_the_threshold_keys_named_in_the_example_exist() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    block = text[text.index("# Drift and data-quality thresholds") : text.index("[thresholds]")]
    fields = {f.name for f in dataclasses.fields(Thresholds)}
    named = {
        word.strip(",.()")
        for word in block.replace("/", " ").split()
        if "_" in word and word.strip(",.()").endswith(("_warning", "_critical", "_samples"))
    }
    assert named, "no threshold names found in the example's [thresholds] comment"
    assert named <= fields, sorted(named - fields)


def test_config_defaults_are_the_policy_defaults() -> None:
    """One source: a default config yields exactly the policies' own defaults."""
    config = MonitorConfig()
    assert config.evaluation_policy("any") == EvaluationPolicy() == DEFAULT_POLICY
    assert config.service_policy("any") == ServicePolicy()
    assert config.performance_policy("any") == PerformancePolicy()
    assert config.lifecycle_policy() == LifecyclePolicy()


def test_the_example_parses_to_the_policy_defaults() -> None:
    from streamproc.config import load_config

    config = load_config(EXAMPLE, env={})
    assert config.evaluation_policy("any") == EvaluationPolicy()
    assert config.service_policy("any") == ServicePolicy()
    assert config.performance_policy("any") == PerformancePolicy()
    assert config.lifecycle_policy() == LifecyclePolicy()


def test_documented_data_lag_default() -> None:
    """docs/monitor.example.toml documents data_lag = "1h" (the value the worker has used)."""
    assert EvaluationPolicy().data_lag_p95_s == 3600.0
    assert MonitorConfig().freshness.data_lag_ms == 3_600_000
    assert MonitorConfig().freshness.processing_lag_p95_ms == 60_000
