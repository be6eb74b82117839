"""Every third-party package the provider imports is a declared dependency, and the lowest-Airflow CI
environment (ci/lowest-airflow.txt) satisfies every lower bound, so the bounds are versions CI has run."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "airflow_provider_openrouter"
# Imported only by the pytest plugin, which only pytest loads.
PROVIDED_BY_THE_HOST = {"pytest"}


def declared(*, extras: bool = False) -> dict[str, Requirement]:
    """The ``[project]`` dependencies (and, with ``extras``, the optional ones a feature imports)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    texts = list(project["dependencies"])
    if extras:
        texts += [text for group in project.get("optional-dependencies", {}).values() for text in group]
    requirements = (Requirement(text) for text in texts)
    return {requirement.name.lower(): requirement for requirement in requirements}


def _probes(tree: ast.AST) -> set[int]:
    """The nodes inside ``try: ... except ImportError``: probes for an optional package (or for where an
    Airflow version keeps a name), not dependencies."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(_catches_import_error(handler) for handler in node.handlers):
            for statement in node.body:
                found.update(id(inner) for inner in ast.walk(statement))
    return found


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    caught = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(
        isinstance(name, ast.Name) and name.id in ("ImportError", "ModuleNotFoundError") for name in caught
    )


def imported_distributions() -> set[str]:
    modules: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        probes = _probes(tree)
        for node in ast.walk(tree):
            if id(node) in probes:
                continue
            if isinstance(node, ast.Import):
                modules.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.add(node.module.partition(".")[0])
    third_party = (
        modules - set(sys.stdlib_module_names) - {"airflow_provider_openrouter"} - PROVIDED_BY_THE_HOST
    )
    owners = importlib.metadata.packages_distributions()
    # airflow.* comes from apache-airflow (core and task SDK); the declared name is what matters. A module of
    # an optional extra that this environment lacks is taken by the distribution that ships it, when the two
    # names differ, else by its own name.
    return {
        "apache-airflow"
        if module == "airflow"
        else owners.get(module, [OPTIONAL_DISTRIBUTIONS.get(module, module)])[0].lower()
        for module in third_party
    }


# Modules of optional extras whose distribution has another name (the lowest-Airflow environment lacks them).
OPTIONAL_DISTRIBUTIONS = {"pydantic_ai": "pydantic-ai-slim"}


def test_every_imported_package_is_declared() -> None:
    missing = imported_distributions() - set(declared(extras=True))
    assert not missing, f"imported but not in [project] dependencies: {sorted(missing)}"


def test_the_lowest_airflow_environment_satisfies_every_lower_bound() -> None:
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (REPO / "ci/lowest-airflow.txt").read_text(), re.M))
    pinned = {name.lower(): version for name, version in pins.items()}
    for name, requirement in declared().items():
        assert name in pinned, f"{name} is not in ci/lowest-airflow.txt"
        assert requirement.specifier.contains(pinned[name]), (
            f"{requirement} excludes the CI pin {pinned[name]}"
        )
        lower = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        assert lower == [pinned[name]], f"{requirement}: the lower bound should be the version CI proves"
