"""No function longer than 100 lines outside `phantoms/` (the synthetic image and layout writers)."""

from __future__ import annotations

import ast
from pathlib import Path

import retinal_reason_data

PACKAGE = Path(retinal_reason_data.__file__).parent
MAX_LINES = 100


def long_functions(source: str, where: str) -> list[str]:
    """`where:line name (N lines)` for every function or method of `source` spanning more than MAX_LINES lines,
    counted from its `def` line to its last line inclusive (decorators not counted)."""
    found = []
    for node in ast.walk(ast.parse(source, filename=where)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_LINES:
                found.append(f"{where}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_outside_phantoms_is_longer_than_100_lines() -> None:
    modules = [path for path in sorted(PACKAGE.rglob("*.py")) if "phantoms" not in path.relative_to(PACKAGE).parts]
    assert len(modules) > 50  # the walk found the package
    found = [
        hit
        for path in modules
        for hit in long_functions(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE.parent)))
    ]
    assert found == [], "split these into named helpers:\n" + "\n".join(found)


def test_the_check_names_a_long_function_and_passes_a_short_one() -> None:
    body = "\n".join(f"        x{i} = {i}" for i in range(MAX_LINES))  # def line + 100 lines = 101
    source = f"def short():\n    return 1\n\n\nclass Holder:\n    async def long_one(self):\n{body}\n"
    assert long_functions(source, "m.py") == ["m.py:6 long_one (101 lines)"]
    exactly = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES - 1))
    assert long_functions(f"def fits():\n{exactly}\n", "m.py") == []
