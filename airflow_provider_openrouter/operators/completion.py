"""Text completion: the connector's "Completion" action (the legacy POST /completions, prompt in, text
out)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_openrouter import _coerce
from airflow_provider_openrouter.models import TextCompletion
from airflow_provider_openrouter.operators._base import OpenRouterGenerationOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class OpenRouterCompletionOperator(OpenRouterGenerationOperator):
    """Send one text-completion request (``prompt`` in, ``choices[].text`` out) and return the typed answer.

    OpenRouter has removed ``/completions`` from its current API specification. Where it answers 404 or 410
    the task fails with ``OpenRouterEndpointGoneError``, which points to
    :class:`OpenRouterChatCompletionOperator`.

    :param model: model id; empty uses the connection's default model.
    :param prompt: the text to complete. A text that renders empty, ``"None"`` or ``"null"`` (a missing value)
        fails the task before anything is sent.
    :param max_tokens: upper bound on completion tokens.
    :param temperature: sampling temperature.
    :param stop: a stop string or a list of them.
    :param seed: integer seed for providers that support it.
    :param models: fallback model ids, tried in order when ``model`` is unavailable.
    :param provider: provider routing preferences.
    :param extra_body: any further request body field, merged last.
    :param fail_on_truncation: fail the task when the text stopped at ``max_tokens``, after pushing its cost.
    :param attribution: as for :class:`OpenRouterChatCompletionOperator`: ``False`` sends no attribution, a
        dict adds your own metadata pairs.
    :param budget: as for :class:`OpenRouterChatCompletionOperator`.
    :param openrouter_conn_id: the OpenRouter connection (default ``openrouter_default``).

    Every parameter above is a template field; rendered numbers and JSON text are converted back.

    **XCom contract**

    ====================  =============================  ================================================
    key                   type                           value
    ====================  =============================  ================================================
    ``return_value``      ``models.TextCompletion``      the whole typed answer (``.text``, ``.cost``, ...)
    ``generation_id``     ``str``                        the generation id (for Get generation)
    ``text``              ``str``                        the first choice's text
    ``usage``             ``dict | None``                token counts and cost as JSON, plus ``try_number``
    ``cost``              ``decimal.Decimal | None``     USD charged, as reported in ``usage.cost``
    ====================  =============================  ================================================

    The four extra keys are pushed before the ``fail_on_truncation`` check: a truncated answer was still paid
    for.
    """

    result_type = TextCompletion
    template_fields: Sequence[str] = (
        "openrouter_conn_id",
        "model",
        "prompt",
        "max_tokens",
        "temperature",
        "stop",
        "seed",
        "models",
        "provider",
        "extra_body",
        "fail_on_truncation",
        "attribution",
        "budget",
    )
    template_fields_renderers = {
        "models": "json",
        "provider": "json",
        "extra_body": "json",
        "attribution": "json",
    }

    def __init__(
        self,
        *,
        prompt: str,
        model: str | None = None,
        max_tokens: int | str | None = None,
        temperature: float | str | None = None,
        stop: str | list[str] | None = None,
        seed: int | str | None = None,
        models: list[str] | str | None = None,
        provider: dict[str, Any] | str | None = None,
        extra_body: dict[str, Any] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.prompt = prompt
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.stop = stop
        self.seed = seed
        self.models = models
        self.provider = provider
        self.extra_body = extra_body

    def execute(self, context: Context) -> TextCompletion:
        with self.hook:
            if _coerce.unset(self.prompt):
                raise self.missing_text("prompt", self.prompt, "non-empty text (or a list of texts)")
            request: dict[str, Any] = {
                "model": self.model or None,
                "prompt": self.prompt,
                "max_tokens": self.as_int("max_tokens", self.max_tokens),
                "temperature": self.as_float("temperature", self.temperature),
                "stop": self.as_stop(self.stop),
                "seed": self.as_int("seed", self.seed),
                "models": self.as_str_list("models", self.models),
                "provider": self.as_dict("provider", self.provider),
                "extra_body": self.as_dict("extra_body", self.extra_body),
            }
            idempotency_key = self.idempotency_key(context)
            result = self.call_billable(
                context,
                "completion",
                lambda: self.hook.completion(
                    **request,
                    idempotency_key=idempotency_key,
                    attribution=self.attribution,
                    budget=self.budget_value(),
                ),
            )
            self.push_generation_record(context, result)
            self.check_truncation(result)
            return result
