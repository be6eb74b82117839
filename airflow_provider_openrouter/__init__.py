"""Apache Airflow provider for OpenRouter.

The names below are what a DAG author uses; each is imported on first access (module ``__getattr__``), so
``from airflow_provider_openrouter import OpenRouterChatCompletionOperator`` loads the chat operator and
nothing else. Request builders, error mapping, the transport and base classes are internal: import them from
their modules if you must, knowing they may move.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from airflow_provider_openrouter.batch.manifest import BatchManifest
    from airflow_provider_openrouter.budget import BudgetExhaustedError, OpenRouterBudget
    from airflow_provider_openrouter.budget.guard import BudgetGuardResult
    from airflow_provider_openrouter.catalog import CatalogDiff
    from airflow_provider_openrouter.cost.summary import CostAuditSummary, CostReportInfo
    from airflow_provider_openrouter.decorators.openrouter import openrouter_task
    from airflow_provider_openrouter.embeddings import Embeddings
    from airflow_provider_openrouter.exceptions import (
        OpenRouterAuthenticationError,
        OpenRouterConfigurationError,
        OpenRouterConnectionError,
        OpenRouterEndpointGoneError,
        OpenRouterError,
        OpenRouterInsufficientCreditsError,
        OpenRouterModerationError,
        OpenRouterNotFoundError,
        OpenRouterOutcomeUnknownError,
        OpenRouterPayloadTooLargeError,
        OpenRouterPermissionError,
        OpenRouterPossiblyBilledError,
        OpenRouterRateLimitError,
        OpenRouterRequestError,
        OpenRouterResponseError,
        OpenRouterTimeoutError,
        OpenRouterUpstreamError,
    )
    from airflow_provider_openrouter.hooks.openrouter import OpenRouterHook, StructuredCompletion
    from airflow_provider_openrouter.models import (
        ChatCompletion,
        Credits,
        Generation,
        KeyInfo,
        Model,
        ModelEndpoints,
        ModelList,
        TextCompletion,
    )
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
    from airflow_provider_openrouter.operators.embeddings import (
        EmbeddingsManifest,
        OpenRouterEmbeddingOperator,
    )
    from airflow_provider_openrouter.operators.generation import OpenRouterGetGenerationOperator
    from airflow_provider_openrouter.operators.models import (
        OpenRouterListModelEndpointsOperator,
        OpenRouterListModelsOperator,
    )
    from airflow_provider_openrouter.retry_policy import OPENROUTER_RETRY_POLICY, openrouter_retry_policy
    from airflow_provider_openrouter.sensors.generation import OpenRouterGenerationSensor
    from airflow_provider_openrouter.structured import InvalidOutputError, register_output_type
    from airflow_provider_openrouter.triggers.batch import OpenRouterBatchTrigger
    from airflow_provider_openrouter.triggers.budget_guard import OpenRouterBudgetGuardTrigger
    from airflow_provider_openrouter.triggers.generation import OpenRouterGenerationTrigger
    from airflow_provider_openrouter.triggers.generation_stats import OpenRouterGenerationStatsTrigger

_EXCEPTIONS = "airflow_provider_openrouter.exceptions"
_MODELS = "airflow_provider_openrouter.models"
_OPERATORS = "airflow_provider_openrouter.operators"

_MODULE_OF: dict[str, str] = {
    # hook, operators, sensor, decorator
    "OpenRouterHook": "airflow_provider_openrouter.hooks.openrouter",
    "OpenRouterBatchCompletionOperator": f"{_OPERATORS}.batch",
    "OpenRouterBudgetGuardOperator": f"{_OPERATORS}.budget_guard",
    "OpenRouterChatCompletionOperator": f"{_OPERATORS}.chat",
    "OpenRouterCompletionOperator": f"{_OPERATORS}.completion",
    "OpenRouterCostAuditOperator": f"{_OPERATORS}.cost_audit",
    "OpenRouterCostReportOperator": f"{_OPERATORS}.cost_audit",
    "OpenRouterEmbeddingOperator": f"{_OPERATORS}.embeddings",
    "OpenRouterGetCreditsOperator": f"{_OPERATORS}.credits",
    "OpenRouterGetGenerationOperator": f"{_OPERATORS}.generation",
    "OpenRouterListModelEndpointsOperator": f"{_OPERATORS}.models",
    "OpenRouterListModelsOperator": f"{_OPERATORS}.models",
    "OpenRouterModelCatalogOperator": f"{_OPERATORS}.catalog",
    "OpenRouterGenerationSensor": "airflow_provider_openrouter.sensors.generation",
    "openrouter_task": "airflow_provider_openrouter.decorators.openrouter",
    # triggers (what a deferred task waits in)
    "OpenRouterBatchTrigger": "airflow_provider_openrouter.triggers.batch",
    "OpenRouterBudgetGuardTrigger": "airflow_provider_openrouter.triggers.budget_guard",
    "OpenRouterGenerationStatsTrigger": "airflow_provider_openrouter.triggers.generation_stats",
    "OpenRouterGenerationTrigger": "airflow_provider_openrouter.triggers.generation",
    # typed results (what the operators return and push to XCom)
    "BatchManifest": "airflow_provider_openrouter.batch.manifest",
    "BudgetGuardResult": "airflow_provider_openrouter.budget.guard",
    "CatalogDiff": "airflow_provider_openrouter.catalog",
    "ChatCompletion": _MODELS,
    "CostAuditSummary": "airflow_provider_openrouter.cost.summary",
    "CostReportInfo": "airflow_provider_openrouter.cost.summary",
    "Credits": _MODELS,
    "Embeddings": "airflow_provider_openrouter.embeddings",
    "EmbeddingsManifest": f"{_OPERATORS}.embeddings",
    "Generation": _MODELS,
    "KeyInfo": _MODELS,
    "Model": _MODELS,
    "ModelEndpoints": _MODELS,
    "ModelList": _MODELS,
    "StructuredCompletion": "airflow_provider_openrouter.hooks.openrouter",
    "TextCompletion": _MODELS,
    # budgets, structured outputs, retries
    "OpenRouterBudget": "airflow_provider_openrouter.budget",
    "register_output_type": "airflow_provider_openrouter.structured",
    "OPENROUTER_RETRY_POLICY": "airflow_provider_openrouter.retry_policy",
    "openrouter_retry_policy": "airflow_provider_openrouter.retry_policy",
    # exceptions a DAG catches
    "BudgetExhaustedError": "airflow_provider_openrouter.budget",
    "InvalidOutputError": "airflow_provider_openrouter.structured",
    "OpenRouterAuthenticationError": _EXCEPTIONS,
    "OpenRouterConfigurationError": _EXCEPTIONS,
    "OpenRouterConnectionError": _EXCEPTIONS,
    "OpenRouterEndpointGoneError": _EXCEPTIONS,
    "OpenRouterError": _EXCEPTIONS,
    "OpenRouterInsufficientCreditsError": _EXCEPTIONS,
    "OpenRouterModerationError": _EXCEPTIONS,
    "OpenRouterNotFoundError": _EXCEPTIONS,
    "OpenRouterOutcomeUnknownError": _EXCEPTIONS,
    "OpenRouterPayloadTooLargeError": _EXCEPTIONS,
    "OpenRouterPermissionError": _EXCEPTIONS,
    "OpenRouterPossiblyBilledError": _EXCEPTIONS,
    "OpenRouterRateLimitError": _EXCEPTIONS,
    "OpenRouterRequestError": _EXCEPTIONS,
    "OpenRouterResponseError": _EXCEPTIONS,
    "OpenRouterTimeoutError": _EXCEPTIONS,
    "OpenRouterUpstreamError": _EXCEPTIONS,
}

__all__ = [
    "OPENROUTER_RETRY_POLICY",
    "BatchManifest",
    "BudgetExhaustedError",
    "BudgetGuardResult",
    "CatalogDiff",
    "ChatCompletion",
    "CostAuditSummary",
    "CostReportInfo",
    "Credits",
    "Embeddings",
    "EmbeddingsManifest",
    "Generation",
    "InvalidOutputError",
    "KeyInfo",
    "Model",
    "ModelEndpoints",
    "ModelList",
    "OpenRouterAuthenticationError",
    "OpenRouterBatchCompletionOperator",
    "OpenRouterBatchTrigger",
    "OpenRouterBudget",
    "OpenRouterBudgetGuardOperator",
    "OpenRouterBudgetGuardTrigger",
    "OpenRouterChatCompletionOperator",
    "OpenRouterCompletionOperator",
    "OpenRouterConfigurationError",
    "OpenRouterConnectionError",
    "OpenRouterCostAuditOperator",
    "OpenRouterCostReportOperator",
    "OpenRouterEmbeddingOperator",
    "OpenRouterEndpointGoneError",
    "OpenRouterError",
    "OpenRouterGenerationSensor",
    "OpenRouterGenerationStatsTrigger",
    "OpenRouterGenerationTrigger",
    "OpenRouterGetCreditsOperator",
    "OpenRouterGetGenerationOperator",
    "OpenRouterHook",
    "OpenRouterInsufficientCreditsError",
    "OpenRouterListModelEndpointsOperator",
    "OpenRouterListModelsOperator",
    "OpenRouterModelCatalogOperator",
    "OpenRouterModerationError",
    "OpenRouterNotFoundError",
    "OpenRouterOutcomeUnknownError",
    "OpenRouterPayloadTooLargeError",
    "OpenRouterPermissionError",
    "OpenRouterPossiblyBilledError",
    "OpenRouterRateLimitError",
    "OpenRouterRequestError",
    "OpenRouterResponseError",
    "OpenRouterTimeoutError",
    "OpenRouterUpstreamError",
    "StructuredCompletion",
    "TextCompletion",
    "__version__",
    "openrouter_retry_policy",
    "openrouter_task",
    "register_output_type",
]


def _lazy_exports(
    module_name: str, homes: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``module_name``, whose public names live in ``homes`` (name: module)."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        setattr(sys.modules[module_name], name, value)  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[module_name]), *homes})

    return __getattr__, __dir__


__getattr__, __dir__ = _lazy_exports(__name__, _MODULE_OF)
