"""The package's shape: no import cycle between its modules, and no module so long that it holds several jobs."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "newsfeed"
#: A module past this many lines probably does more than one job (the layout rule of the README).
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(path: Path) -> set[str]:
    """The newsfeed modules ``path`` imports when it runs (imports under ``if TYPE_CHECKING:`` are for types)."""
    tree = ast.parse(path.read_text())
    skipped = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
               and ast.unparse(block.test) == "TYPE_CHECKING" for node in ast.walk(block)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("newsfeed"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("newsfeed"))
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = {target for target in _runtime_imports(path) if target in modules and target != name}
        # A module inside a package imports its package's __init__ first; a package importing its own
        # submodules is how it re-exports them, not a cycle.
        graph[name] = {t for t in targets if not name.startswith(t + ".")}
    return graph


def _packages_of(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(2, len(parts))]


def test_no_import_cycle_between_modules() -> None:
    graph = _graph()
    # Collapse each subpackage to one node when seen from outside it: a cycle world -> policies -> world
    # through different submodules is still a cycle between the two packages.
    def node(module: str, viewer: str) -> str:
        for package in _packages_of(module):
            if not viewer.startswith(package + ".") and viewer != package:
                return package
        return module
    edges = {(node(a, b), node(b, a)) for a, targets in graph.items() for b in targets}
    adjacency: dict[str, set[str]] = {}
    for a, b in edges:
        if a != b:
            adjacency.setdefault(a, set()).add(b)
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(current: str, path: list[str]) -> bool:
        state[current] = 1
        for nxt in sorted(adjacency.get(current, ())):
            if state.get(nxt) == 1:
                cycle.extend([*path[path.index(nxt):], current, nxt] if nxt in path else [current, nxt])
                return True
            if nxt not in state and visit(nxt, [*path, current]):
                return True
        state[current] = 2
        return False

    for start in sorted(adjacency):
        if start not in state and visit(start, []):
            break
    assert not cycle, f"import cycle: {' -> '.join(cycle)}"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_holds_one_job(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines: split it by concern (at most {MAX_LINES})"
