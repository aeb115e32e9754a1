"""The package's layers and what each may import (README "Where things live").

stages/      one module per command; imports core, transforms, compute; never another stage
transforms/  Spark DataFrame -> DataFrame pieces; imports core, compute
compute/     numpy / pandas / Arrow only: no Spark, no core warehouse or session
core/        warehouse, settings, session, metadata, errors, logs; imports no layer above it
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "wvb_spark"
MAY_IMPORT = {
    "stages": {"core", "transforms", "compute"},
    "transforms": {"core", "compute"},
    "compute": {"core.errors"},
    "core": {"core"},
    "benchmarks": {"core", "transforms", "compute"},
}


def _modules() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py") if path.parent != PACKAGE)


def _imported(path: Path) -> set[str]:
    """Every wvb_spark module a file imports, at any depth (lazy imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("wvb_spark"):
            if node.module == "wvb_spark":
                found.update(f"wvb_spark.{alias.name}" for alias in node.names)
            else:
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("wvb_spark"))
    return found


def _allowed(layer: str, module: str, imported: str) -> bool:
    parts = imported.split(".")[1:]  # drop wvb_spark
    if not parts or parts[0] == "__version__":
        return True
    if parts[0] == layer and layer in {"transforms", "compute", "core", "benchmarks"}:
        return True
    return any(".".join(parts).startswith(rule) for rule in MAY_IMPORT[layer])


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_each_layer_imports_only_the_layers_below(path):
    layer = path.relative_to(PACKAGE).parts[0]
    wrong = sorted(name for name in _imported(path) if not _allowed(layer, path.stem, name))
    assert not wrong, f"{path.relative_to(PACKAGE)} ({layer}) imports {wrong}"


def test_compute_has_no_spark():
    for path in (PACKAGE / "compute").glob("*.py"):
        tree = ast.parse(path.read_text())
        names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert not [n for n in names if n.split(".")[0] in {"pyspark", "py4j", "delta"}], path.name


def test_every_command_lives_in_stages():
    from wvb_spark import cli

    for name, (module, _) in cli.COMMANDS.items():
        assert module.startswith("wvb_spark.stages."), name
        assert (PACKAGE / "stages" / f"{module.rsplit('.', 1)[1]}.py").is_file(), name


def test_no_function_is_longer_than_80_lines():
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 80:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.name} ({lines} lines)")
    assert not long, long


def test_no_bare_print_outside_the_runner():
    """Results reach stdout through cli (the runner); everything else logs."""
    printing = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "cli.py" or path.parent.name == "benchmarks":  # benchmarks: own processes' output
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                printing.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not printing, printing
