"""The main example: list models → pick the cheapest that fits → chat → look up that generation's cost.

1. ``list_models`` asks OpenRouter for the text models that accept the request parameters this job needs.
2. ``pick_model`` keeps those with a long enough context and a real price (free variants are heavily rate
   limited; ``ModelList.cheapest`` already skips routers such as ``openrouter/auto``, listed at a price of -1)
   and picks the one whose list price for this request (prompt tokens x prompt price + ``max_tokens`` x
   completion price) is lowest (``Decimal``).
3. ``chat`` sends the question to that model.
4. ``get_generation`` looks the answer up by its generation id. The stats appear a moment after the answer, so
   it asks again on 404 for up to ``wait_for_stats`` seconds (idempotent GETs; the chat is never resent).
5. ``report`` reads all of it as typed objects and returns a small summary.

Run it: ``./run-example`` (against the bundled emulator without OPENROUTER_API_KEY, else against OpenRouter).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import dag, task

from airflow_provider_openrouter.models import ChatCompletion, Generation, ModelList
from airflow_provider_openrouter.operators import (
    OpenRouterChatCompletionOperator,
    OpenRouterGetGenerationOperator,
    OpenRouterListModelsOperator,
)

NEEDED_PARAMETERS = ["max_tokens", "temperature"]
MAX_TOKENS = 120
CHARS_PER_TOKEN = 4  # a rough estimate for English text; only used to rank models


@dag(
    schedule=None,
    catchup=False,
    tags=["openrouter", "example"],
    params={
        "question": "Give one practical tip for keeping LLM costs predictable in a data pipeline.",
        "min_context_length": 8000,
    },
)
def example_openrouter_chain() -> None:
    catalog = OpenRouterListModelsOperator(
        task_id="list_models",
        supported_parameters=NEEDED_PARAMETERS,
        output_modalities=["text"],
    )

    @task
    def pick_model(models: ModelList, params: dict[str, Any] | None = None) -> str:
        assert params is not None
        min_context = int(params["min_context_length"])
        prompt_tokens = len(params["question"]) // CHARS_PER_TOKEN + 20
        best = models.cheapest(
            prompt_tokens=prompt_tokens,
            completion_tokens=MAX_TOKENS,
            min_context_length=min_context,
            supports=NEEDED_PARAMETERS,
            include_free=False,
        )
        if best is None:
            raise ValueError(
                f"none of the {len(models.data)} listed models has a {min_context}+ token context, "
                f"supports {NEEDED_PARAMETERS} and a price; lower min_context_length"
            )
        print(
            f"cheapest of {len(models.data)} models: {best.id}, at most "
            f"{best.cost_for(prompt_tokens, MAX_TOKENS)} USD for this request"
        )
        return best.id

    chosen_model = pick_model(catalog.output)

    chat = OpenRouterChatCompletionOperator(
        task_id="chat",
        model=chosen_model,
        content="{{ params.question }}",
        max_tokens=MAX_TOKENS,
        temperature=0.3,
    )

    generation = OpenRouterGetGenerationOperator(
        task_id="get_generation",
        generation_id=chat.output["generation_id"],
        wait_for_stats=60,
    )

    @task
    def report(model_id: str, answer: ChatCompletion, stats: Generation) -> dict[str, Any]:
        assert stats.id == answer.id, (stats.id, answer.id)
        print(
            f"{model_id} answered in {stats.tokens_completion} tokens for {stats.total_cost} USD: "
            f"{answer.text}"
        )
        return {
            "model": model_id,
            "text": answer.text,
            "prompt_tokens": stats.tokens_prompt,
            "completion_tokens": stats.tokens_completion,
            "cost_usd": str(stats.total_cost),
            "cost_reported_with_answer_usd": None if answer.cost is None else str(answer.cost),
            "generation_id": stats.id,
        }

    report(chosen_model, chat.output, generation.output)


example_openrouter_chain()
