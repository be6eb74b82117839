"""Typed OpenRouter results (pydantic v2), one class per resource, field names exactly as on the wire.

Invariants:

* Every model tolerates fields the API adds later (``extra="allow"``); they survive a round trip.
* Money is :class:`~decimal.Decimal` (:data:`Money`), written to JSON as plain decimal text (``"0.00000015"``,
  never ``"1.5E-7"``). Prices arrive as strings (USD per token) and are parsed from the string;
  costs arrive as JSON numbers, which pydantic turns into a Decimal through their shortest decimal
  representation, never through float arithmetic, so ``0.00000735`` stays exactly ``Decimal("0.00000735")``
  (booleans and non-numeric text are rejected).
* Resources that OpenRouter wraps in ``{"data": ...}`` (credits, generation, key, model endpoints) are the
  inner object: ``Credits.total_credits``, not ``Credits.data.total_credits``.
* Importing this module registers every model with Airflow's XCom serde for the current process (see
  :func:`register_with_serde`), so a downstream task gets the typed object back with the default
  ``allowed_deserialization_classes`` on Airflow 3.1 and later.
  :data:`RESULT_MODELS` names the classes for ``deserialization_allowed_class_fields``.

Each resource has its module (``chat``, ``account``, ``generation``, ``catalog``; money and the base class in
``_money``); every class is imported from here, and keeps ``airflow_provider_openrouter.models`` as its
``__module__``, so the qualified names XCom stores (``airflow_provider_openrouter.models.ChatCompletion``) are
the same as before the split and values pushed by either version deserialise.
"""

import importlib
from typing import Any

from airflow_provider_openrouter.models._money import (
    Money,
    OpenRouterModel,
    PlainDecimal,
    plain_decimal,
)
from airflow_provider_openrouter.models.account import Credits, KeyInfo
from airflow_provider_openrouter.models.catalog import (
    Endpoint,
    Model,
    ModelArchitecture,
    ModelEndpoints,
    ModelList,
    ModelPricing,
    TopProvider,
)
from airflow_provider_openrouter.models.chat import (
    ChatChoice,
    ChatCompletion,
    ChatMessage,
    CompletionTokensDetails,
    CostDetails,
    ErrorInfo,
    PromptTokensDetails,
    TextChoice,
    TextCompletion,
    ToolCall,
    ToolCallFunction,
    Usage,
)
from airflow_provider_openrouter.models.generation import Generation, ProviderResponse

__all__ = [
    "RESULT_MODELS",
    "ChatChoice",
    "ChatCompletion",
    "ChatMessage",
    "CompletionTokensDetails",
    "CostDetails",
    "Credits",
    "Endpoint",
    "ErrorInfo",
    "Generation",
    "KeyInfo",
    "Model",
    "ModelArchitecture",
    "ModelEndpoints",
    "ModelList",
    "ModelPricing",
    "Money",
    "PlainDecimal",
    "PromptTokensDetails",
    "ProviderResponse",
    "TextChoice",
    "TextCompletion",
    "ToolCall",
    "ToolCallFunction",
    "TopProvider",
    "Usage",
    "plain_decimal",
    "register_with_serde",
]


RESULT_MODELS: tuple[type[OpenRouterModel], ...] = (
    ChatCompletion,
    TextCompletion,
    Credits,
    Generation,
    ModelList,
    Model,
    ModelEndpoints,
    KeyInfo,
)
"""The classes operators return; name them in ``deserialization_allowed_class_fields``."""

_ALL_MODELS: tuple[type[OpenRouterModel], ...] = (
    *RESULT_MODELS,
    ErrorInfo,
    ToolCallFunction,
    ToolCall,
    ChatMessage,
    ChatChoice,
    PromptTokensDetails,
    CompletionTokensDetails,
    CostDetails,
    Usage,
    TextChoice,
    ProviderResponse,
    ModelPricing,
    ModelArchitecture,
    TopProvider,
    Endpoint,
)

# XCom stores a value's class by module and name: one public module for every class, whatever file defines it.
for _cls in (*_ALL_MODELS, OpenRouterModel, PlainDecimal):
    _cls.__module__ = __name__


def register_with_serde(*classes: type) -> None:
    """Let XCom deserialize these classes in this process with Airflow's default allow-list.

    The classes must be defined at module scope (XCom re-imports them by qualified name). On task-sdk >= 1.3
    (Airflow 3.3+) this is ``airflow.sdk.serde.allow_class``. Older serde modules (``airflow.sdk.serde`` on
    Airflow 3.2, ``airflow.serialization.serde`` on 3.1) have no public call for it, but their ``deserialize``
    accepts any qualified name in the module-level ``_extra_allowed`` set (the set ``allow_class`` writes to
    in 3.3 as well), so the names go there. Without either, nothing happens and
    ``[core] allowed_deserialization_classes`` stays the way to allow them.
    """
    serde = _xcom_serde_module()
    if serde is None:
        return
    allow_class = getattr(serde, "allow_class", None)
    if allow_class is not None:
        for cls in classes:
            allow_class(cls)
        return
    extra_allowed = getattr(serde, "_extra_allowed", None)
    if not isinstance(extra_allowed, set):
        return
    for cls in classes:
        if "." in cls.__qualname__:
            raise ValueError(
                f"{cls.__module__}.{cls.__qualname__} is not defined at module scope, so XCom cannot "
                "re-import it by name. Define the class at module scope."
            )
        extra_allowed.add(f"{cls.__module__}.{cls.__qualname__}")


def _xcom_serde_module() -> Any:
    """The serde module XCom deserializes with: the task SDK's (Airflow 3.2+), else Airflow 3.1's; or None."""
    for name in ("airflow.sdk.serde", "airflow.serialization.serde"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None  # pragma: no cover - Airflow without either serde


register_with_serde(*_ALL_MODELS, PlainDecimal)
