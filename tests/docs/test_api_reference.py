"""The documentation site covers the public API: every public class of
`airflow_provider_openrouter.operators`, `.hooks`, `.models` and `.exceptions` has an entry in the API
reference (docs/api/), and every operator has a page of its own there and is named in a prose page.

The site itself is built by `.ci/run` (sphinx-build -W: a directive whose target does not import fails there);
these tests read the pages' directives, so they run in a second without Sphinx.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
API = DOCS / "api"
PUBLIC_MODULES = ("operators", "hooks", "models", "exceptions")
# ```{autoclass} dotted.path  (MyST directive fences: autoclass, autoexception)
DIRECTIVE = re.compile(r"^```\{(autoclass|autoexception)\}\s+(\S+)", re.MULTILINE)


def _resolve(dotted: str) -> Any:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _documented(pages: list[Path]) -> dict[Any, list[Path]]:
    """Each class documented by an autoclass/autoexception directive -> the pages that document it."""
    found: dict[Any, list[Path]] = {}
    for page in pages:
        for _, target in DIRECTIVE.findall(page.read_text()):
            found.setdefault(_resolve(target), []).append(page)
    return found


def _public_classes(module_name: str) -> list[tuple[str, type]]:
    module = importlib.import_module(f"airflow_provider_openrouter.{module_name}")
    members = [(name, getattr(module, name)) for name in module.__all__]
    return [(name, obj) for name, obj in members if inspect.isclass(obj)]


def _operators() -> list[tuple[str, type]]:
    return _public_classes("operators")


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_class_has_an_api_reference_entry(module_name: str) -> None:
    documented = _documented(sorted(API.rglob("*.md")))
    classes = _public_classes(module_name)
    assert classes, f"airflow_provider_openrouter.{module_name} exports no class"
    missing = [name for name, cls in classes if cls not in documented]
    assert not missing, (
        f"public classes of airflow_provider_openrouter.{module_name} without an entry under docs/api/: "
        f"{missing}; add an autoclass (or autoexception) directive for each"
    )


@pytest.mark.parametrize("name", [name for name, _ in _operators()])
def test_every_operator_has_its_own_api_page_and_a_prose_section(name: str) -> None:
    cls = dict(_operators())[name]
    pages = _documented(sorted((API / "operators").glob("*.md"))).get(cls, [])
    assert len(pages) == 1, f"{name} should have exactly one page under docs/api/operators/, has {pages}"
    assert len(DIRECTIVE.findall(pages[0].read_text())) == 1, f"{pages[0]} documents more than {name}"
    # A changelog line is not a section that explains the operator.
    pages = [page for page in sorted(DOCS.glob("*.md")) if page.name != "changelog.md"]
    prose = [page.name for page in pages if re.search(rf"\b{name}\b", page.read_text())]
    assert prose, f"no page of docs/ (besides the API reference and the changelog) names {name}"


@pytest.mark.parametrize("name", [name for name, _ in _operators()])
def test_every_operator_docstring_states_its_xcom_contract(name: str) -> None:
    # The API reference page is the docstring: without the contract the page would not state it.
    doc = inspect.getdoc(dict(_operators())[name]) or ""
    assert "XCom" in doc, f"{name}'s docstring does not say what it pushes to XCom"


def test_a_class_missing_from_the_reference_is_reported(tmp_path: Path) -> None:
    """The check above can fail: a page that documents only one exception leaves the others missing."""
    page = tmp_path / "one.md"
    page.write_text("```{autoexception} airflow_provider_openrouter.exceptions.OpenRouterError\n```\n")
    documented = _documented([page])
    missing = [n for n, cls in _public_classes("exceptions") if cls not in documented]
    assert "OpenRouterRateLimitError" in missing and "OpenRouterError" not in missing
