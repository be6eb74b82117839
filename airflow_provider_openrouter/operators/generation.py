"""Get generation: the connector's "Get generation" action (GET /generation?id=...)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_openrouter.exceptions import OpenRouterError, OpenRouterNotFoundError
from airflow_provider_openrouter.models import Generation
from airflow_provider_openrouter.operators._base import OpenRouterBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

_FIRST_POLL_DELAY = 0.5
_MAX_POLL_DELAY = 5.0


class OpenRouterGetGenerationOperator(OpenRouterBaseOperator):
    """Look up one generation's stats: cost, token counts, provider, latency. Not billable; safe to retry.

    OpenRouter writes a generation's stats a moment *after* the completion returns, and answers 404 until
    then. So a 404 is asked again (0.5 s, 1 s, 2 s, ... up to 5 s apart) for up to ``wait_for_stats`` seconds;
    only GETs are repeated, never the completion. After that the 404 fails the task
    (``OpenRouterNotFoundError``): the id is wrong, or the stats are later than you allowed.

    :param generation_id: the generation id, e.g. ``chat.output["generation_id"]`` or a template. This is the
        connector's ``id`` parameter (renamed: ``id`` reads as the task's own id in a DAG file).
    :param wait_for_stats: seconds to keep asking while the answer is 404 (default 60; 0 asks once).
    :param openrouter_conn_id: the OpenRouter connection (default ``openrouter_default``).

    ``generation_id``, ``wait_for_stats`` and ``openrouter_conn_id`` are template fields.

    **XCom contract**: ``return_value`` is a ``models.Generation`` (``total_cost`` as ``Decimal``,
    ``tokens_prompt``, ``tokens_completion``, ``model``, ``provider_name``, ``finish_reason``, ... every field
    of the API's ``data`` object). No other keys.
    """

    result_type = Generation
    template_fields: Sequence[str] = ("openrouter_conn_id", "generation_id", "wait_for_stats")

    def __init__(self, *, generation_id: str, wait_for_stats: float | str = 60.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.generation_id = generation_id
        self.wait_for_stats = wait_for_stats

    def execute(self, context: Context) -> Generation:
        generation_id = str(self.generation_id or "").strip()
        if not generation_id:
            raise self.bad_parameter("generation_id", self.generation_id, "a generation id such as 'gen-...'")
        wait = self.as_float("wait_for_stats", self.wait_for_stats) or 0.0
        deadline = time.monotonic() + wait
        delay = _FIRST_POLL_DELAY
        while True:
            try:
                generation = self.hook.get_generation(generation_id)
                break
            except OpenRouterNotFoundError as err:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.log.error("No stats for generation %s after waiting %.0f s", generation_id, wait)
                    self.log_failure("get generation", err)
                    raise
                self.log.info(
                    "Generation %s has no stats yet (404); asking again in %.1f s", generation_id, delay
                )
                time.sleep(min(delay, remaining))
                delay = min(delay * 2, _MAX_POLL_DELAY)
            except OpenRouterError as err:
                self.log_failure("get generation", err)
                raise
        self.log.info(
            "OpenRouter generation %s: model %s via %s, %s prompt + %s completion tokens, total cost %s USD",
            generation.id,
            generation.model,
            generation.provider_name,
            generation.tokens_prompt,
            generation.tokens_completion,
            generation.total_cost,
        )
        return generation
