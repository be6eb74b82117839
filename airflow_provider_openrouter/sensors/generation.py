"""``OpenRouterGenerationSensor``: wait until ``GET /generation`` has the stats of one or many generations."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator

try:
    from airflow.sdk import conf
except ImportError:  # Airflow 3.1's task SDK does not export conf yet
    from airflow.configuration import conf  # type: ignore[assignment]

from airflow_provider_openrouter.exceptions import (
    OpenRouterError,
    OpenRouterNotFoundError,
    OpenRouterRequestError,
    OpenRouterResponseError,
    error_from_event,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_openrouter.hooks.openrouter import OpenRouterHook

_REQUEST = "GET /generation"
# Past the sensor's own timeout before Airflow times the deferral out: the trigger's deadline comes first.
_DEFER_TIMEOUT_GRACE_S = 120.0


class OpenRouterGenerationSensor(BaseSensorOperator):
    """Wait until OpenRouter has the stats (``GET /generation``) of every one of ``generation_ids``.

    OpenRouter answers 404 for a while after a completion. Each poke asks the ids still missing (only this
    idempotent GET; never a completion). With ``deferrable=True`` the wait moves to
    :class:`~airflow_provider_openrouter.triggers.generation_stats.OpenRouterGenerationStatsTrigger`, which
    asks every ``poke_interval`` seconds in the triggerer until the sensor's ``timeout`` (a wall-clock
    deadline that survives a triggerer restart), holding no worker slot.

    :param generation_ids: one id, a list of ids, or what the cost audit accepts (our operators' results, a
        batch manifest or output file): see :mod:`airflow_provider_openrouter.cost.collect`. Templated.
    :param openrouter_conn_id: the OpenRouter connection (default ``openrouter_default``). Templated.
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    :param max_concurrency: requests in flight at once while deferred (default 8).

    A 401, 402 or 403 fails at once (waiting cannot fix a key); the timeout fails with the ids still missing.

    **XCom contract**: none (the sensor pushes nothing; read the stats with the cost audit or
    ``OpenRouterGetGenerationOperator``).
    """

    template_fields: Sequence[str] = ("generation_ids", "openrouter_conn_id")
    ui_color = "#e9e4fb"

    def __init__(
        self,
        *,
        generation_ids: Any,
        openrouter_conn_id: str = "openrouter_default",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        max_concurrency: int = 8,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 5.0)
        kwargs.setdefault("timeout", 600.0)
        super().__init__(**kwargs)
        self.generation_ids = generation_ids
        self.openrouter_conn_id = openrouter_conn_id
        self.deferrable = deferrable
        self.max_concurrency = max_concurrency
        self._pending: list[str] | None = None

    def _ids(self) -> list[str]:
        from airflow_provider_openrouter.cost.collect import CostSourceError, collect

        try:
            ids = list(collect(self.generation_ids).refs)
        except CostSourceError as err:
            raise OpenRouterRequestError(
                f"task {self.task_id!r}: parameter 'generation_ids' cannot be read: {err}",
                conn_id=self.openrouter_conn_id,
                request=_REQUEST,
            ) from None
        if not ids:
            raise OpenRouterRequestError(
                f"task {self.task_id!r}: parameter 'generation_ids' holds no generation id "
                f"(got {str(self.generation_ids)[:80]!r})",
                conn_id=self.openrouter_conn_id,
                request=_REQUEST,
                hint="The upstream XCom it renders from was probably empty; nothing was sent.",
            )
        return ids

    def _hook(self) -> OpenRouterHook:
        from airflow_provider_openrouter.hooks.openrouter import OpenRouterHook

        return OpenRouterHook(self.openrouter_conn_id)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        ids = self._ids()
        if self.poke(context):  # stats often exist already: no deferral, no trigger row
            return None
        from airflow_provider_openrouter.triggers.generation_stats import OpenRouterGenerationStatsTrigger

        pending = self._pending or ids
        self.log.info("%d of %d generation(s) have no stats yet; deferring", len(pending), len(ids))
        self.defer(
            trigger=OpenRouterGenerationStatsTrigger(
                openrouter_conn_id=self.openrouter_conn_id,
                generation_ids=pending,
                poll_interval=float(self.poke_interval),
                end_time=time.time() + float(self.timeout),
                max_concurrency=self.max_concurrency,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout) + _DEFER_TIMEOUT_GRACE_S),
        )

    def poke(self, context: Context) -> bool:
        pending = self._pending if self._pending is not None else self._ids()
        still = []
        with self._hook() as hook:
            for generation_id in pending:
                try:
                    hook.get_generation(generation_id)
                except OpenRouterNotFoundError:
                    still.append(generation_id)
        self._pending = still
        if still:
            self.log.info("No stats yet for %d generation(s): %s", len(still), ", ".join(still[:5]))
        return not still

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> None:
        """Resume after the trigger: return when every id is ready, else raise its error or the timeout."""
        from airflow_provider_openrouter.triggers.generation_stats import EVENT_STATUSES

        status = event.get("status") if isinstance(event, dict) else None
        if status not in EVENT_STATUSES:
            raise OpenRouterResponseError(
                f"task {self.task_id!r}: the generation stats trigger sent an event this sensor does not "
                f"know: {repr(event)[:200]}",
                conn_id=self.openrouter_conn_id,
                request=_REQUEST,
                billed=False,
            )
        assert isinstance(event, dict)  # checked above
        if status == "ready":
            self.log.info("Stats are in for %d generation(s)", len(event.get("ready") or []))
            return
        err: OpenRouterError
        if status == "error" and isinstance(event.get("error"), dict):
            err = error_from_event(event["error"])
        else:
            err = OpenRouterNotFoundError(
                f"task {self.task_id!r}: {event.get('message') or status}",
                status=404,
                conn_id=self.openrouter_conn_id,
                request=_REQUEST,
            )
        self.log.error("Generation stats wait failed: %s", err)
        raise err
