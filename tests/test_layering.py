"""Phantoms (demo and test material) stay off the production import path, and the package imports without cycles."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from retinal_reason_data.ingest.sources import ADAPTERS
from retinal_reason_data.phantoms.registry import WRITERS

PACKAGE = Path(__file__).resolve().parent.parent / "retinal_reason_data"
PHANTOMS = "retinal_reason_data.phantoms"
# The one door: the ingest stage writes a phantom layout when a recipe asks for one, importing the registry
# inside that function so that no production module loads the phantom writers when it is imported.
PHANTOM_DOOR = ("retinal_reason_data.ingest.stage", "ensure_phantom")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> list[str]:
    return sorted(_module_name(path) for path in PACKAGE.rglob("*.py"))


def _imported_names(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The absolute module names an import statement names (a `from x import y` names x and x.y)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level or node.module is None:  # relative: the package spells its imports absolutely
        return [f"<relative level {node.level}>{node.module or ''}"]
    return [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]


def _phantom_imports(path: Path) -> list[tuple[str, int, str | None]]:
    """(imported name, line, enclosing function or None for module level) for each import of the phantoms."""
    found: list[tuple[str, int, str | None]] = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, function or child.name)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                for name in _imported_names(child):
                    if name == PHANTOMS or name.startswith(f"{PHANTOMS}.") or name.startswith("<relative"):
                        found.append((name, child.lineno, function))
            visit(child, function)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), None)
    return found


def test_no_module_outside_phantoms_imports_the_phantoms() -> None:
    offenders: dict[str, list[tuple[str, int, str | None]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        if module == PHANTOMS or module.startswith(f"{PHANTOMS}."):
            continue
        imports = [found for found in _phantom_imports(path) if (module, found[2]) != PHANTOM_DOOR]
        if imports:
            offenders[module] = imports
    assert offenders == {}, f"production modules import the phantoms (name, line, function): {offenders}"


def test_the_one_door_imports_the_phantom_registry_inside_its_function() -> None:
    module, function = PHANTOM_DOOR
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    assert [(name, where) for name, _, where in _phantom_imports(path)] == [
        (f"{PHANTOMS}.registry", function),
        (f"{PHANTOMS}.registry.writer_for", function),
    ]


# Run in a fresh interpreter: imports every production module (nothing may load the phantoms), then every
# phantom module; prints what failed and which phantom modules the production imports loaded.
_IMPORT_ALL = """
import importlib, json, sys, traceback
names = json.loads(sys.argv[1])
failed = {}
loaded_by_production = None
for name in names:
    if loaded_by_production is None and name.startswith("retinal_reason_data.phantoms"):
        loaded_by_production = sorted(m for m in sys.modules if m.startswith("retinal_reason_data.phantoms"))
    try:
        importlib.import_module(name)
    except Exception:
        failed[name] = traceback.format_exc(limit=-3)
print(json.dumps({"failed": failed, "loaded_by_production": loaded_by_production}))
"""


def _import_in_fresh_interpreter(names: list[str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL, json.dumps(names)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        cwd=PACKAGE.parent,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_module_imports_and_production_loads_no_phantom() -> None:
    modules = _modules()
    production = [name for name in modules if not name.startswith(PHANTOMS)]
    phantoms = [name for name in modules if name.startswith(PHANTOMS)]
    assert phantoms and production
    result = _import_in_fresh_interpreter(production + phantoms)
    assert result["failed"] == {}
    assert result["loaded_by_production"] == []


@pytest.mark.parametrize("entry", [name for name in _modules() if name.startswith(PHANTOMS)])
def test_each_phantom_module_imports_first_without_a_cycle(entry: str) -> None:
    """Entered first, a phantom module that imports an adapter's tables loads every adapter, which must not
    import it back (adapters and `layouts_cfp` used to import each other, the cycle hidden by late imports)."""
    assert _import_in_fresh_interpreter([entry])["failed"] == {}


def test_every_phantom_writer_is_keyed_by_an_adapter_name() -> None:
    assert sorted(set(WRITERS) - set(ADAPTERS)) == []
    assert sorted(set(ADAPTERS) - set(WRITERS)) == []
