"""The package's shape: no import cycle, modules a reader can take in at once, a lazy public namespace.

Pure units over the source files (``ast``) plus one fresh interpreter; nothing is sent anywhere.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import airflow_provider_openrouter as package

ROOT = Path(package.__file__).parent
NAME = package.__name__
DESIGN = ROOT.parent / "docs" / "design.md"
MAX_LINES = 500
# Modules allowed past MAX_LINES, each with its reason; docs/design.md ("Module size") states the same list.
LONG_MODULES = {
    "hooks/openrouter.py": "one typed method per OpenRouter action, each with its docstring and contract",
    "batch/concurrent.py": "the concurrent engine's one row loop: threads, 429 pause, checkpoint, budget",
    "operators/batch.py": "the batch operator's parameters, both modes, deferral and resume in one class",
    "batch/batch_api.py": "Batch API chunking, upload, polling and landing of results, budget per chunk",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported: module level, inside ``try``/``if`` blocks, but not
    under ``if TYPE_CHECKING:`` nor inside functions and classes."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                pending.extend(node.body)
            pending.extend(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                pending.extend(block)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules its top-level imports execute (``from pkg import sub`` counts as
    ``pkg.sub`` when ``sub`` is a module)."""
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        package_of = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in top_level_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package_of.split(".")[: len(package_of.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                    for alias in node.names
                ]
            graph[name].update(target for target in targets if target in known and target != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def test_the_cycle_finder_sees_a_cycle_and_its_absence() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_top_level_imports_skip_type_checking_and_function_bodies() -> None:
    tree = ast.parse(
        "import a\nif TYPE_CHECKING:\n    import b\ntry:\n    import c\nexcept ImportError:\n    import d\n"
        "def f():\n    import e\n"
    )
    names = sorted(alias.name for node in top_level_imports(tree) for alias in node.names)
    assert names == ["a", "c", "d"]


def test_no_import_cycle_inside_the_package() -> None:
    graph = import_graph()
    assert graph[f"{NAME}.transport._sync_client"] >= {f"{NAME}.transport.billing_rules"}  # the graph is real
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_modules_stay_under_the_line_limit_unless_listed_with_a_reason() -> None:
    sizes = {str(path.relative_to(ROOT)): len(path.read_text().splitlines()) for path in ROOT.rglob("*.py")}
    too_long = {
        path: lines for path, lines in sizes.items() if lines > MAX_LINES and path not in LONG_MODULES
    }
    assert not too_long, (
        f"modules over {MAX_LINES} lines (split them, or list them with a reason): {too_long}"
    )
    stale = {path for path in LONG_MODULES if sizes.get(path, 0) <= MAX_LINES}
    assert not stale, f"listed as long but now {MAX_LINES} lines or fewer (remove from LONG_MODULES): {stale}"
    design = DESIGN.read_text()
    unstated = [path for path in LONG_MODULES if f"`{path}`" not in design]
    assert not unstated, f"docs/design.md does not state these long modules and their reason: {unstated}"


def test_the_public_names_are_exactly_the_lazy_ones_and_all_resolve() -> None:
    assert sorted(set(package.__all__) - {"__version__"}) == sorted(package._MODULE_OF)
    # OPENROUTER_RETRY_POLICY is None where Airflow has no ExceptionRetryPolicy (before 3.3), as documented.
    from airflow_provider_openrouter import retry_policy

    none_before_3_3 = {"OPENROUTER_RETRY_POLICY"} if retry_policy.ExceptionRetryPolicy is None else set()
    for name in set(package.__all__) - none_before_3_3:
        assert getattr(package, name) is not None, name
    internal = [
        name for name in package.__all__ if name.startswith(("_", "build_")) and name != "__version__"
    ]
    assert not internal


def test_importing_the_package_or_one_operator_loads_nothing_else() -> None:
    probe = (
        "import json, sys\n"
        f"import {NAME}\n"
        f"bare = sorted(m for m in sys.modules if m.startswith('{NAME}.'))\n"
        f"from {NAME} import OpenRouterChatCompletionOperator\n"
        "print(json.dumps({'bare': bare, 'batch': any(m.startswith("
        f"'{NAME}.batch') for m in sys.modules), 'requests': 'requests' in sys.modules}}))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == {"bare": [], "batch": False, "requests": False}
