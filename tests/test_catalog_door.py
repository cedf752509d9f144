"""The catalog is the only door to the data: no module outside `retinal_reason_data/catalog/` holds SQL."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import retinal_reason_data

PACKAGE = Path(retinal_reason_data.__file__).parent
CATALOG = PACKAGE / "catalog"
# module (relative to the package) -> why it may still hold SQL; empty: every query lives in the catalog
ALLOWED: dict[str, str] = {}
RUNNERS = {"execute", "executemany", "query", "sql", "iter_rows", "fetch_df"}
STATEMENT = re.compile(
    r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|ATTACH|DETACH|WITH|COPY|PRAGMA)\b.*"
    r"\b(FROM|INTO|TABLE|SET|INDEX|AS|VALUES)\b",
    re.DOTALL,
)
KEYWORD = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|ATTACH|DETACH|PRAGMA|BEGIN|COMMIT)\b")


def _text(node: ast.AST) -> str | None:
    """The literal text of a string or f-string (its constant parts)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    if isinstance(node, ast.BinOp):  # "SELECT ..." + "..."
        return (_text(node.left) or "") + (_text(node.right) or "")
    return None


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def sql_in(source: str) -> list[str]:
    """Where a module's source runs SQL: string literals passed to execute/query-like calls that hold SQL
    keywords, and any other string literal (docstrings aside) written as an SQL statement."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    found: list[str] = []
    passed: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in RUNNERS:
            for arg in node.args[:1]:
                text = _text(arg)
                if text is not None and KEYWORD.search(text):
                    passed.update(id(part) for part in ast.walk(arg))
                    found.append(f"line {node.lineno}: .{node.func.attr}({text.strip()[:60]!r})")
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):  # its parts are judged together
            passed.update(id(part) for part in node.values)
        if isinstance(node, (ast.Constant, ast.JoinedStr)) and id(node) not in docstrings | passed:
            text = _text(node)
            if text and STATEMENT.match(text):
                found.append(f"line {node.lineno}: {text.strip()[:60]!r}")
    return found


def test_the_detector_finds_sql_however_it_is_written() -> None:
    source = '''
def f(catalog, table):
    """SELECT in a docstring is prose."""
    catalog.query("SELECT data FROM cases")
    catalog.db.execute(f"DELETE FROM {table}")
    sql = "SELECT count(*) FROM items WHERE task = ?"
    message = "select a file from the list"
    return catalog.query(sql), message
'''
    found = sql_in(source)
    assert [line.split(":")[0] for line in found] == ["line 4", "line 5", "line 6"]


def test_no_module_outside_the_catalog_holds_sql() -> None:
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if CATALOG in path.parents:
            continue
        name = str(path.relative_to(PACKAGE))
        found = sql_in(path.read_text(encoding="utf-8"))
        if found and name not in ALLOWED:
            offenders[name] = found
    assert not offenders, "SQL outside the catalog (move it into a catalog/ module):\n" + "\n".join(
        f"{name}: {'; '.join(lines)}" for name, lines in offenders.items()
    )


def test_every_allowed_exception_still_holds_sql() -> None:
    stale = [name for name in ALLOWED if not sql_in((PACKAGE / name).read_text(encoding="utf-8"))]
    assert not stale, f"no SQL left in {stale}: remove them from ALLOWED"
