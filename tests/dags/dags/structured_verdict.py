"""The output class of the openrouter_structured_and_budget test DAG, in a module of its own: the DAG file is
loaded under a generated module name, and XCom re-imports a class by its module's importable name."""

from __future__ import annotations

from pydantic import BaseModel


class Verdict(BaseModel):
    label: str
    confidence: float
