"""Get generation: the connector's "Get generation" action (GET /generation?id=...)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

try:
    from airflow.sdk import conf
except ImportError:  # Airflow 3.1's task SDK does not export conf yet
    from airflow.configuration import conf  # type: ignore[assignment]

from airflow_provider_openrouter import _coerce
from airflow_provider_openrouter.exceptions import (
    OpenRouterError,
    OpenRouterNotFoundError,
    OpenRouterResponseError,
    error_from_event,
)
from airflow_provider_openrouter.models import Generation, plain_decimal
from airflow_provider_openrouter.operators._base import OpenRouterBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

_FIRST_POLL_DELAY = 0.5
_MAX_POLL_DELAY = 5.0
# In the triggerer an ask costs no worker slot, so it asks at a steady pace instead of backing off.
_DEFERRED_POLL_INTERVAL = 2.0
# Grace past wait_for_stats before Airflow times the deferral out: the trigger's own deadline comes first.
_DEFER_TIMEOUT_GRACE_S = 120.0
_REQUEST = "GET /generation"


class OpenRouterGetGenerationOperator(OpenRouterBaseOperator):
    """Look up one generation's stats: cost, token counts, provider, latency. Not billable; safe to retry.

    OpenRouter writes a generation's stats a moment *after* the completion returns, and answers 404 until
    then. So a 404 is asked again (0.5 s, 1 s, 2 s, ... up to 5 s apart) for up to ``wait_for_stats`` seconds;
    only GETs are repeated, never the completion. After that the 404 fails the task
    (``OpenRouterNotFoundError``): the id is wrong, or the stats are later than you allowed.

    With ``deferrable=True`` a first 404 defers the task to :class:`OpenRouterGenerationTrigger`, which asks
    every 2 s in the triggerer until the same ``wait_for_stats`` deadline, so no worker slot is held while
    waiting; the task resumes in :meth:`execute_complete` with the same result or the same errors.

    :param generation_id: the generation id, e.g. ``chat.output["generation_id"]`` or a template. A value
        that renders blank, ``"None"`` or ``"null"`` (an empty upstream XCom) fails the task before anything
        is sent.
    :param id: the connector's name for ``generation_id``, accepted as an alias (``generation_id`` is the
        template field it fills; giving both with different values is an error).
    :param wait_for_stats: seconds to keep asking while the answer is 404 (default 60; 0 asks once).
    :param deferrable: wait for late stats in the triggerer instead of on the worker (default: Airflow's
        ``[operators] default_deferrable``, False unless set).
    :param openrouter_conn_id: the OpenRouter connection (default ``openrouter_default``).

    ``generation_id``, ``wait_for_stats`` and ``openrouter_conn_id`` are template fields.

    **XCom contract**: ``return_value`` is a ``models.Generation`` (``total_cost`` as ``Decimal``,
    ``tokens_prompt``, ``tokens_completion``, ``model``, ``provider_name``, ``finish_reason``, ... every field
    of the API's ``data`` object). No other keys. It is that inner ``data`` object: the connector's
    ``data.total_cost`` is ``result.total_cost``.
    """

    result_type = Generation
    template_fields: Sequence[str] = ("openrouter_conn_id", "generation_id", "wait_for_stats")

    def __init__(
        self,
        *,
        generation_id: str | None = None,
        id: str | None = None,  # the connector's name for generation_id
        wait_for_stats: float | str = 60.0,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if generation_id is None and id is None:
            raise self.bad_parameter("generation_id", None, "given (or its connector name 'id')")
        if generation_id is not None and id is not None and generation_id != id:
            raise self.bad_parameter(
                "id",
                id,
                f"left out, or equal to 'generation_id' ({generation_id!r}): 'id' is another name for it",
            )
        self.generation_id = generation_id if generation_id is not None else id
        self.wait_for_stats = wait_for_stats
        self.deferrable = deferrable

    def execute(self, context: Context) -> Generation:
        with self.hook:
            if _coerce.unset(self.generation_id):
                raise self.bad_parameter(
                    "generation_id",
                    self.generation_id,
                    "a generation id such as 'gen-...'",
                    hint="The upstream XCom it renders from was probably empty (did that task push "
                    "'generation_id'?); nothing was sent.",
                )
            generation_id = str(self.generation_id).strip()
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
                    if self.deferrable:
                        self._defer_until(generation_id, time.time() + remaining, wait)
                    self.log.info(
                        "Generation %s has no stats yet (404); asking again in %.1f s", generation_id, delay
                    )
                    time.sleep(min(delay, remaining))
                    delay = min(delay * 2, _MAX_POLL_DELAY)
                except OpenRouterError as err:
                    self.log_failure("get generation", err)
                    raise
            return self._logged(generation)

    def _defer_until(self, generation_id: str, end_time: float, wait: float) -> NoReturn:
        from airflow_provider_openrouter.triggers.generation import OpenRouterGenerationTrigger

        self.log.info(
            "Generation %s has no stats yet (404); deferring, asking every %.0f s for up to %.0f s",
            generation_id,
            _DEFERRED_POLL_INTERVAL,
            wait,
        )
        self.defer(
            trigger=OpenRouterGenerationTrigger(
                openrouter_conn_id=self.openrouter_conn_id,
                generation_id=generation_id,
                poll_interval=_DEFERRED_POLL_INTERVAL,
                end_time=end_time,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=wait + _DEFER_TIMEOUT_GRACE_S),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Generation:
        """Resume after the trigger: accept only a known event; return the ``Generation`` or fail."""
        from airflow_provider_openrouter.triggers.generation import EVENT_STATUSES

        status = event.get("status") if isinstance(event, dict) else None
        answer = event.get("generation") if isinstance(event, dict) else None
        if status not in EVENT_STATUSES or (status == "ready" and not isinstance(answer, dict)):
            raise OpenRouterResponseError(
                f"task {self.task_id!r}: the generation trigger sent an event this operator does not know: "
                f"{repr(event)[:200]}",
                conn_id=self.openrouter_conn_id,
                request=_REQUEST,
                billed=False,
                hint="Retry the task (it only repeats a GET). If it repeats, the trigger and operator "
                "versions differ; align the provider version on workers and triggerer.",
            )
        assert isinstance(event, dict)  # checked above
        generation_id = str(event.get("generation_id") or self.generation_id)
        if status == "ready":
            assert isinstance(answer, dict)  # checked above
            return self._logged(self.hook.parse_generation(answer))
        err: OpenRouterError
        if status == "timeout":
            err = OpenRouterNotFoundError(
                f"task {self.task_id!r}: {event.get('message') or status}",
                status=404,
                conn_id=self.openrouter_conn_id,
                request=_REQUEST,
                generation_id=generation_id,
            )
        elif isinstance(event.get("error"), dict):
            # The same class, status, billed and retry_after as on the trigger: Airflow (and a retry
            # policy) then fails, retries or stops the task exactly as when the worker had asked itself.
            err = error_from_event(event["error"])
        else:  # an event from a trigger of an older provider version: only its message is known
            err = OpenRouterError(
                f"task {self.task_id!r}: {event.get('message') or status}",
                conn_id=self.openrouter_conn_id,
                request=_REQUEST,
                generation_id=generation_id,
            )
        self.log_failure("get generation", err)
        raise err

    def _logged(self, generation: Generation) -> Generation:
        self.log.info(
            "OpenRouter generation %s: model %s via %s, %s prompt + %s completion tokens, total cost %s USD",
            generation.id,
            generation.model,
            generation.provider_name,
            generation.tokens_prompt,
            generation.tokens_completion,
            plain_decimal(generation.total_cost) if generation.total_cost is not None else "unknown",
        )
        return generation
