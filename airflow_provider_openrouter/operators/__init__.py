"""OpenRouter operators, one per connector action, plus batch completions.

The classes are imported on first use (module ``__getattr__``), so ``import
airflow_provider_openrouter.operators`` costs nothing and a DAG file pays only for the operators it names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_openrouter.operators.batch import OpenRouterBatchCompletionOperator
    from airflow_provider_openrouter.operators.budget_guard import OpenRouterBudgetGuardOperator
    from airflow_provider_openrouter.operators.catalog import OpenRouterModelCatalogOperator
    from airflow_provider_openrouter.operators.chat import OpenRouterChatCompletionOperator
    from airflow_provider_openrouter.operators.completion import OpenRouterCompletionOperator
    from airflow_provider_openrouter.operators.cost_audit import (
        OpenRouterCostAuditOperator,
        OpenRouterCostReportOperator,
    )
    from airflow_provider_openrouter.operators.credits import OpenRouterGetCreditsOperator
    from airflow_provider_openrouter.operators.embeddings import OpenRouterEmbeddingOperator
    from airflow_provider_openrouter.operators.generation import OpenRouterGetGenerationOperator
    from airflow_provider_openrouter.operators.models import (
        OpenRouterListModelEndpointsOperator,
        OpenRouterListModelsOperator,
    )

_MODULE_OF: dict[str, str] = {
    "OpenRouterChatCompletionOperator": "airflow_provider_openrouter.operators.chat",
    "OpenRouterCompletionOperator": "airflow_provider_openrouter.operators.completion",
    "OpenRouterGetCreditsOperator": "airflow_provider_openrouter.operators.credits",
    "OpenRouterGetGenerationOperator": "airflow_provider_openrouter.operators.generation",
    "OpenRouterListModelEndpointsOperator": "airflow_provider_openrouter.operators.models",
    "OpenRouterListModelsOperator": "airflow_provider_openrouter.operators.models",
    "OpenRouterBatchCompletionOperator": "airflow_provider_openrouter.operators.batch",
    "OpenRouterCostAuditOperator": "airflow_provider_openrouter.operators.cost_audit",
    "OpenRouterCostReportOperator": "airflow_provider_openrouter.operators.cost_audit",
    "OpenRouterModelCatalogOperator": "airflow_provider_openrouter.operators.catalog",
    "OpenRouterEmbeddingOperator": "airflow_provider_openrouter.operators.embeddings",
    "OpenRouterBudgetGuardOperator": "airflow_provider_openrouter.operators.budget_guard",
}

__all__ = [
    "OpenRouterBatchCompletionOperator",
    "OpenRouterBudgetGuardOperator",
    "OpenRouterChatCompletionOperator",
    "OpenRouterCompletionOperator",
    "OpenRouterCostAuditOperator",
    "OpenRouterCostReportOperator",
    "OpenRouterEmbeddingOperator",
    "OpenRouterGetCreditsOperator",
    "OpenRouterGetGenerationOperator",
    "OpenRouterListModelEndpointsOperator",
    "OpenRouterListModelsOperator",
    "OpenRouterModelCatalogOperator",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_MODULE_OF])
