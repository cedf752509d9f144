"""The test tree's own rules: a test module imports no other test module (shared material lives in
tests/helpers/ or tests/conftest.py), so each module can be run, moved or deleted on its own."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def imported_test_modules(path: Path) -> list[str]:
    """The `tests.test_*` modules (or `test_*` siblings) that the file at `path` imports, with their line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[-1].startswith("test_") and parts[0] in ("tests", parts[-1]):
                found.append(f"{path.name}:{node.lineno} imports {name}")
                break
    return found


def test_no_test_module_imports_another(tmp_path: Path) -> None:
    offenders = [line for path in sorted(TESTS.rglob("*.py")) for line in imported_test_modules(path)]
    assert offenders == [], "move what they share into tests/helpers/: " + "; ".join(offenders)
    # the check itself finds both spellings
    (tmp_path / "test_a.py").write_text("from tests.test_b import x\nimport tests.test_c\nfrom tests import helpers\n")
    assert [line.split(" imports ")[1] for line in imported_test_modules(tmp_path / "test_a.py")] == [
        "tests.test_b",
        "tests.test_c",
    ]
