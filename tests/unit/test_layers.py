"""Imports point down: no package of streamproc imports from a package above it.

Every module under streamproc/ is parsed with ``ast`` (nothing is imported), including
imports inside functions and ``TYPE_CHECKING`` blocks: a lazy import is still a
dependency. The order, bottom to top, is :data:`LAYERS`; docs/LAYERS.md shows the graph.
Print the current graph with ``python -m tests.unit.test_layers``.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[2]
PACKAGE: Final = ROOT / "streamproc"

#: Rank of every top-level package (or module) of streamproc, bottom first. A package
#: may import itself and anything of a lower rank; packages of one rank are peers and
#: import nothing from one another.
LAYERS: Final[dict[str, int]] = {
    "streamproc": 0,  # streamproc/__init__.py: __version__ only
    "errors": 0,  # streamproc/errors.py: UsageError
    "core": 1,  # pure statistics: profiles, sketches, drift, the ops profile layout
    "contracts": 2,  # wire formats: prediction log, framing, JSON schemas
    "checks": 3,  # window checks, policies, alert lifecycle
    "labels": 3,  # the label join: pending-prediction store, join state machine, repartition
    "config": 4,  # MonitorConfig: TOML/env → policies
    "monitor": 5,  # the streaming worker
    "alerting": 5,  # the Alertmanager forwarder
    "offline": 5,  # batch profiles and drift reports
    "broker": 5,  # the local Kafka broker
    "demo": 6,
    "embed": 6,  # profiling inside a Faust app: ships ingest's deltas
    "cli": 7,  # argparse front end (incl. the config flags)
    "__main__": 8,  # python -m streamproc
}


def module_name(path: Path) -> tuple[str, ...]:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return parts[:-1] if parts[-1] == "__init__" else parts


def package_of(module: tuple[str, ...]) -> str:
    """``streamproc.monitor.worker`` → ``monitor``; ``streamproc`` → ``streamproc``."""
    return module[1] if len(module) > 1 else module[0]


def imported_modules(path: Path) -> Iterator[tuple[int, tuple[str, ...]]]:
    """(line, absolute module) of every streamproc import in ``path``."""
    me = module_name(path)
    here = me if path.name == "__init__.py" else me[:-1]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [tuple(alias.name.split(".")) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                module = (*base, *(node.module.split(".") if node.module else ()))
            else:
                module = tuple((node.module or "").split("."))
            # ``from streamproc import errors`` imports the module streamproc.errors
            names = [
                (*module, alias.name) if module == ("streamproc",) else module
                for alias in node.names
            ]
        else:
            continue
        for name in names:
            if name and name[0] == "streamproc":
                if name == ("streamproc", "__version__"):
                    name = ("streamproc",)
                yield node.lineno, name


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def package_graph() -> dict[str, set[str]]:
    """Which package imports which (self-imports left out)."""
    graph: dict[str, set[str]] = {}
    for path in modules():
        src = package_of(module_name(path))
        deps = graph.setdefault(src, set())
        for _line, name in imported_modules(path):
            dst = package_of(name)
            if dst != src:
                deps.add(dst)
    return graph


def test_every_package_has_a_layer() -> None:
    unknown = {package_of(module_name(p)) for p in modules()} - set(LAYERS)
    assert not unknown, f"add {sorted(unknown)} to LAYERS in {Path(__file__).name}"


def test_imports_point_down() -> None:
    violations = []
    for path in modules():
        src = package_of(module_name(path))
        for line, name in imported_modules(path):
            dst = package_of(name)
            if dst != src and LAYERS.get(dst, -1) > LAYERS[src]:
                where = f"{path.relative_to(ROOT)}:{line}"
                violations.append(f"{where}: {src} imports {'.'.join(name)} (from above)")
    assert not violations, "\n".join(violations)


def test_peers_are_independent() -> None:
    violations = []
    for path in modules():
        src = package_of(module_name(path))
        for line, name in imported_modules(path):
            dst = package_of(name)
            if dst != src and LAYERS.get(dst) == LAYERS[src]:
                where = f"{path.relative_to(ROOT)}:{line}"
                violations.append(f"{where}: {src} imports its peer {'.'.join(name)}")
    assert not violations, "\n".join(violations)


def test_imports_resolve_to_modules() -> None:
    """Catches a stale import of a moved module (``streamproc.monitor.ops``)."""
    missing = []
    for path in modules():
        for line, name in imported_modules(path):
            target = ROOT.joinpath(*name)
            if not (target.with_suffix(".py").is_file() or (target / "__init__.py").is_file()):
                missing.append(f"{path.relative_to(ROOT)}:{line}: {'.'.join(name)}")
    assert not missing, "\n".join(missing)


def test_the_checker_sees_violations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "streamproc"
    (pkg / "core").mkdir(parents=True)
    (pkg / "monitor").mkdir()
    for init in (pkg, pkg / "core", pkg / "monitor"):
        (init / "__init__.py").write_text("")
    (pkg / "monitor" / "worker.py").write_text("")
    (pkg / "core" / "bad.py").write_text(
        "def f() -> None:\n    from ..monitor import worker\n    import streamproc.monitor.worker\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    assert package_graph()["core"] == {"monitor"}
    with pytest.raises(AssertionError, match=r"core/bad\.py:2: core imports streamproc\.monitor"):
        test_imports_point_down()


def main() -> None:  # pragma: no cover - a helper for docs/LAYERS.md
    graph = package_graph()
    for src in sorted(graph, key=lambda p: (LAYERS.get(p, 99), p)):
        deps = sorted(graph[src], key=lambda p: (LAYERS.get(p, 99), p))
        print(f"{src:<10} → {', '.join(deps) if deps else '—'}")


if __name__ == "__main__":  # pragma: no cover
    main()
