"""Pages name only parameters the operators have: a parameter table (a Markdown table whose first column is
headed "Parameter") under a heading that names an operator, and every operator call in a Python example of the
docs and the README, must use names that the operator's __init__ (or a base class's) accepts.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [*sorted((REPO / "docs").glob("*.md")), REPO / "README.md"]
OPERATOR_NAME = re.compile(r"\bOpenRouter\w+Operator\b")
BACKTICKED = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _operator_classes() -> dict[str, type]:
    module = importlib.import_module("airflow_provider_openrouter.operators")
    return {name: getattr(module, name) for name in module.__all__}


def accepted_parameters(cls: type) -> set[str]:
    """Keyword parameters of __init__ along the MRO (the operators pass **kwargs up to BaseOperator)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for parameter in inspect.signature(init).parameters.values():
            if parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                names.add(parameter.name)
    names.discard("self")
    return names


def table_parameters(text: str) -> list[tuple[str, str, int]]:
    """(operator named by the nearest heading, parameter, line) for each name in a "Parameter" table."""
    rows: list[tuple[str, str, int]] = []
    operator = ""
    in_table = False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("#"):
            found = OPERATOR_NAME.search(line)
            operator = found.group(0) if found else ""
            in_table = False
        elif line.startswith("|"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            if cells[0] == "Parameter":
                in_table = True
                rows.append((operator, "", number))  # the table itself: it must sit under an operator
            elif in_table and not set(cells[0]) <= set("-: "):
                rows.extend((operator, name, number) for name in BACKTICKED.findall(cells[0]))
        else:
            in_table = False
    return rows


def example_calls(text: str) -> list[tuple[str, str, int]]:
    """(operator, keyword, line in the block) for each keyword of an operator call in a ```python block."""
    calls: list[tuple[str, str, int]] = []
    for block in PYTHON_BLOCK.findall(text):
        try:
            tree = ast.parse(block)
        except SyntaxError:
            continue  # a fragment; the example DAGs themselves are parsed by the DAG tests
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = getattr(func, "id", None) or getattr(func, "attr", "")
            if OPERATOR_NAME.fullmatch(name):
                calls.extend((name, kw.arg, node.lineno) for kw in node.keywords if kw.arg is not None)
    return calls


def unknown_parameters(path: Path, text: str) -> list[str]:
    operators = _operator_classes()
    problems: list[str] = []
    for operator, name, line in table_parameters(text):
        if operator not in operators:
            problems.append(f"{path.name}:{line}: a Parameter table under a heading that names no operator")
        elif name and name not in accepted_parameters(operators[operator]):
            problems.append(f"{path.name}:{line}: {operator} has no parameter {name!r}")
    for operator, name, line in example_calls(text):
        if operator not in operators:
            problems.append(f"{path.name}: example calls {operator}, which the package does not export")
        elif name not in accepted_parameters(operators[operator]):
            problems.append(f"{path.name}: example (block line {line}) passes {operator} unknown {name!r}")
    return problems


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_pages_name_only_parameters_the_operators_have(path: Path) -> None:
    problems = unknown_parameters(path, path.read_text())
    assert not problems, "\n".join(problems)


def test_the_pages_are_checked_at_all() -> None:
    """The checks above have something to check: the operator tables and examples are found."""
    tables = [row for path in PAGES for row in table_parameters(path.read_text()) if row[1]]
    calls = [call for path in PAGES for call in example_calls(path.read_text())]
    operators_in_tables = {operator for operator, _, _ in tables}
    assert len(operators_in_tables) >= 4, operators_in_tables
    assert len(calls) >= 10, calls


def test_a_parameter_the_operator_lacks_is_reported() -> None:
    page = (
        "## OpenRouterChatCompletionOperator\n\n| Parameter | Type |\n|---|---|\n"
        "| `model` | str |\n| `temprature` | float |\n\n"
        "```python\nOpenRouterGetGenerationOperator(task_id='g', generation='x')\n```\n"
    )
    problems = unknown_parameters(Path("page.md"), page)
    assert problems == [
        "page.md:6: OpenRouterChatCompletionOperator has no parameter 'temprature'",
        "page.md: example (block line 1) passes OpenRouterGetGenerationOperator unknown 'generation'",
    ]
