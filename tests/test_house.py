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


SRC = TESTS.parent / "src" / "mcuforge"

# The one import cycle left (issue 16): the package root re-exports the API, whose modules import from it.
KNOWN_ROOT_CYCLE = "mcuforge"


def import_graph() -> dict[str, set[str]]:
    """mcuforge module -> the mcuforge modules it imports anywhere in its body (lazy imports too)."""
    modules = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found = set()
        tree = ast.parse(path.read_text(), str(path))
        typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                       and ast.unparse(block.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
                       for stmt in block.body for n in ast.walk(stmt)}  # imports for annotations: no cycle
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + [node.module] if node.module else base)
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    found.add(full if full in modules else target)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        edges[name] = {m for m in found if m in modules and m != name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_no_new_import_cycles():
    found = cycles(import_graph())
    new = [c for c in found if KNOWN_ROOT_CYCLE not in c]
    assert not new, f"new import cycles: {new}"
    for broken in ("mcuforge.engine.plan.scratch", "mcuforge.audio.tables", "mcuforge.cli.nas", "mcuforge.targets.bench"):
        assert not any(broken in c for c in found), broken
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [{"a", "b"}]  # the detector sees a cycle
