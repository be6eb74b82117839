"""An ``openrouter`` connection as a pydantic-ai model (``OpenRouterHook.get_pydantic_ai_model``).

pydantic-ai's own OpenRouter route reads a key from the environment and always calls openrouter.ai. This one
takes everything from the Airflow connection: the Base URL (so the emulator, or a proxy, works), the key,
the app attribution headers (``app_url``, ``app_title``) and the read/connect timeouts; and, inside a task,
each request names the task that sent it (``metadata``, ``session_id``, ``trace``), as our operators do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic_ai.models.openrouter import OpenRouterModel

    from airflow_provider_openrouter.hooks.openrouter import OpenRouterHook

__all__ = ["pydantic_ai_model"]

# Headers the OpenAI client sets itself (auth) or that describe our HTTP client, not the caller.
_OWN_HEADERS = frozenset({"Authorization", "User-Agent", "Accept"})


def pydantic_ai_model(
    hook: OpenRouterHook,
    model: str | None = None,
    *,
    attribution: bool | Mapping[str, Any] | str | None = None,
) -> OpenRouterModel:
    """A pydantic-ai ``OpenRouterModel`` for ``model`` (default: the connection's *Default model*) that talks
    to the hook's connection. Needs ``pydantic-ai-slim[openai]`` (the ``common-ai`` extra)."""
    try:
        from openai import AsyncOpenAI, Timeout
        from pydantic_ai.models.openrouter import OpenRouterModel
        from pydantic_ai.providers.openrouter import OpenRouterProvider
        from pydantic_ai.settings import ModelSettings
    except ImportError as err:
        raise ImportError(
            f"get_pydantic_ai_model needs pydantic-ai with its OpenAI client ({err.name} is missing): "
            "pip install 'airflow-provider-openrouter[common-ai]'"
        ) from None
    settings = hook.settings
    name = model or settings.default_model
    if not name:
        raise ValueError(
            f"get_pydantic_ai_model: no model given and connection '{hook.openrouter_conn_id}' has no "
            "default_model extra; pass a model id such as 'openai/gpt-4o-mini'."
        )
    client = AsyncOpenAI(
        base_url=settings.base_url,
        api_key=settings.api_key,
        default_headers={k: v for k, v in settings.headers().items() if k not in _OWN_HEADERS},
        timeout=Timeout(settings.timeout, connect=settings.connect_timeout),
        max_retries=0,  # a lost answer may have been billed: pydantic-ai must not resend it on its own
    )
    fields = hook.attribution_for(attribution).fields
    return OpenRouterModel(
        name,
        provider=OpenRouterProvider(openai_client=client),
        settings=ModelSettings(extra_body=fields) if fields else None,
    )
