"""House rules the code can check itself: the tests share their helpers through the harness modules
(oracle.py, netbuilder.py, conftest.py fixtures), and no test module imports another."""
from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def imported_modules(path: Path) -> set[str]:
    """The top-level module names `path` imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_test_imports_another_test():
    tests = {p.stem for p in TESTS.glob("test_*.py")}
    offenders = {p.name: sorted(imported_modules(p) & tests) for p in TESTS.glob("*.py")}
    assert not {k: v for k, v in offenders.items() if v}, "move shared helpers to oracle.py or netbuilder.py"
    assert imported_modules(TESTS / "test_plan_choice.py") >= {"oracle"}  # the check sees `from X import`
