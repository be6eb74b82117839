"""What every OpenRouter operator shares: connection id, hook, rendered-value coercion, error logging.

Operators stay thin: they render their parameters, coerce what a Jinja template turned into a string back into
the type the hook expects, call one hook method and push the typed result. Rules (HTTP, retries, billing,
parsing) live in the hook, the transport and the models.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, TypeVar

from airflow.sdk import BaseOperator

from airflow_provider_openrouter import _coerce
from airflow_provider_openrouter.exceptions import (
    OpenRouterError,
    OpenRouterPossiblyBilledError,
    OpenRouterRequestError,
    OpenRouterResponseError,
)
from airflow_provider_openrouter.models import PlainDecimal, plain_decimal

if TYPE_CHECKING:
    from airflow.sdk import Context
    from pydantic import BaseModel

    from airflow_provider_openrouter.budget import BudgetExhaustedError, OpenRouterBudget
    from airflow_provider_openrouter.hooks.openrouter import OpenRouterHook
    from airflow_provider_openrouter.models import ChatCompletion, TextCompletion

    BillableResult = ChatCompletion | TextCompletion

DEFAULT_CONN_ID = "openrouter_default"
T = TypeVar("T")

# The operators' words for an integer and an object in their errors (users and tests know them); the hook says
# "a whole number" and "an object (dict)".
_INTEGER = "an integer"
_OBJECT = "a JSON object"


class OpenRouterBaseOperator(BaseOperator):
    """Base class: ``openrouter_conn_id`` (templated), ``hook`` and the typed-XCom declaration.

    ``execute`` runs inside ``with self.hook:``, so the hook's pooled connections are closed when it returns,
    fails or defers; :meth:`on_kill` closes them when the task is killed.

    Subclasses set ``result_type`` to the pydantic class they return. ``deserialization_allowed_class_fields``
    names it, so an Airflow 3.3+ worker allow-lists that class (and every model nested in it) before a
    downstream task deserializes the XCom, with Airflow's default ``[core] allowed_deserialization_classes``.
    """

    result_type: ClassVar[type[BaseModel]]
    deserialization_allowed_class_fields: ClassVar[tuple[str, ...]] = ("result_type",)
    template_fields: Sequence[str] = ("openrouter_conn_id",)
    ui_color = "#e9e4fb"

    def __init__(self, *, openrouter_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.openrouter_conn_id = openrouter_conn_id

    @cached_property
    def hook(self) -> OpenRouterHook:
        """The hook for ``openrouter_conn_id`` (no I/O until a method is called)."""
        from airflow_provider_openrouter.hooks.openrouter import OpenRouterHook

        return OpenRouterHook(openrouter_conn_id=self.openrouter_conn_id)

    def on_kill(self) -> None:
        """Close the hook's connections (``execute`` closes them itself on success and failure)."""
        hook = self.__dict__.get("hook")
        if hook is not None:
            hook.close()

    def log_failure(self, action: str, err: OpenRouterError) -> None:
        """Put the one-line cause on its own log line, above Airflow's traceback."""
        self.log.error("OpenRouter %s failed: %s", action, err)

    # Rendered-value coercion (airflow_provider_openrouter._coerce: text read back into the typed values the
    # hook takes); these bind the operators' error, which names the task.

    def bad_parameter(
        self, name: str, value: Any, expected: str, *, hint: str | None = None
    ) -> OpenRouterRequestError:
        """The operators' error for a bad parameter: names the task, the parameter and the value."""
        return OpenRouterRequestError(
            f"task {self.task_id!r}: parameter {name!r} must be {expected}, got {_coerce.shown(value)}",
            conn_id=self.openrouter_conn_id,
            hint=hint or "Fix the value or the template that renders it; nothing was sent.",
        )

    def missing_text(self, name: str, value: Any, expected: str) -> OpenRouterRequestError:
        """The error for a text parameter that rendered blank, ``'None'`` or ``'null'`` (a missing value)."""
        return self.bad_parameter(
            name,
            value,
            expected,
            hint="Check the template that renders it (an empty upstream XCom renders '' or 'None'); nothing "
            "was sent.",
        )

    def as_int(self, name: str, value: Any) -> int | None:
        return _coerce.integer(name, value, self.bad_parameter, kind=_INTEGER)

    def as_float(self, name: str, value: Any) -> float | None:
        return _coerce.number(name, value, self.bad_parameter)

    def as_bool(self, name: str, value: Any) -> bool:
        return _coerce.boolean(name, value, self.bad_parameter)

    def as_dict(self, name: str, value: Any) -> dict[str, Any] | None:
        return _coerce.mapping(name, value, self.bad_parameter, kind=_OBJECT)

    def as_list(self, name: str, value: Any) -> list[Any] | None:
        return _coerce.json_list(name, value, self.bad_parameter, "a JSON list")

    def as_str_list(self, name: str, value: Any) -> list[str] | None:
        return _coerce.string_list(name, value, self.bad_parameter)

    def as_stop(self, value: Any) -> str | list[str] | None:
        return _coerce.stop(value, self.bad_parameter)


CHAT_PARAMETERS: tuple[str, ...] = (
    "system_prompt",
    "temperature",
    "top_p",
    "max_tokens",
    "stop",
    "seed",
    "response_format",
    "tools",
    "tool_choice",
    "models",
    "provider",
    "reasoning",
    "extra_body",
)
"""The chat request's parameters besides the model and the messages, named as in ``build_chat_request``: what
the chat operator sends and what the batch operator applies to every row."""


class OpenRouterChatParametersOperator(OpenRouterBaseOperator):
    """Base holding :data:`CHAT_PARAMETERS` (chat and batch operators): one definition of the parameters and
    of how their rendered values are coerced, so a batch row gets exactly what a chat task would send.

    Subclasses list ``*CHAT_PARAMETERS`` in their ``template_fields``.
    """

    template_fields_renderers: ClassVar[dict[str, str]] = {
        "response_format": "json",
        "tools": "json",
        "tool_choice": "json",
        "models": "json",
        "provider": "json",
        "reasoning": "json",
        "extra_body": "json",
    }

    def __init__(
        self,
        *,
        system_prompt: str | None = None,
        temperature: float | str | None = None,
        top_p: float | str | None = None,
        max_tokens: int | str | None = None,
        stop: str | list[str] | None = None,
        seed: int | str | None = None,
        response_format: dict[str, Any] | str | None = None,
        tools: list[dict[str, Any]] | str | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        models: list[str] | str | None = None,
        provider: dict[str, Any] | str | None = None,
        reasoning: dict[str, Any] | str | None = None,
        extra_body: dict[str, Any] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.system_prompt = system_prompt
        self.temperature = temperature
        self.top_p = top_p
        self.max_tokens = max_tokens
        self.stop = stop
        self.seed = seed
        self.response_format = response_format
        self.tools = tools
        self.tool_choice = tool_choice
        self.models = models
        self.provider = provider
        self.reasoning = reasoning
        self.extra_body = extra_body

    def chat_parameters(self) -> dict[str, Any]:
        """Every :data:`CHAT_PARAMETERS` value, rendered strings coerced back; unset values are ``None``.

        A ``system_prompt`` that rendered blank, ``"None"`` or ``"null"`` (a missing upstream value) is unset:
        sending it would pay for a system message saying "None".
        """
        return _coerce.chat_parameters(
            {name: getattr(self, name) for name in CHAT_PARAMETERS},
            self.bad_parameter,
            integer_kind=_INTEGER,
            object_kind=_OBJECT,
        )


class OpenRouterGenerationOperator(OpenRouterBaseOperator):
    """Base for the billable operators (chat, completion): the cost record is pushed before any validation.

    A rejected answer (truncated, or not the JSON that ``response_format`` asked for) was still paid for, so
    ``generation_id``, ``text``, ``usage`` and ``cost`` reach XCom, and one log line, before a check can fail.

    ``attribution`` (a template field of the subclasses): the task's DAG, task, run, map index and try number
    go with the request as ``metadata``, ``session_id`` and ``trace`` (docs/cost-audit.md); ``False`` turns
    that off, a dict adds the user's own metadata pairs. It overrides the connection extra ``attribution``.

    ``budget`` (a template field of the subclasses): an :class:`~airflow_provider_openrouter.budget.
    OpenRouterBudget`, or the name of one declared in the connection extra ``budgets`` (docs/budgets.md). The
    request's worst case is reserved before it is sent; when it does not fit, nothing is sent and the task
    does what the budget's ``on_exhausted`` says: fail, skip, or wait (defer until the next period starts,
    then run again).
    """

    def __init__(
        self,
        *,
        fail_on_truncation: bool | str = False,
        attribution: bool | dict[str, Any] | str | None = None,
        budget: OpenRouterBudget | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.fail_on_truncation = fail_on_truncation
        self.attribution = attribution
        self.budget = budget

    def budget_value(self) -> OpenRouterBudget | str | None:
        """``budget`` as the hook takes it: a name that rendered blank or ``'None'`` is no budget."""
        return None if isinstance(self.budget, str) and _coerce.unset(self.budget) else self.budget

    @staticmethod
    def idempotency_key(context: Context) -> str:
        """One key per task instance (not per try): a retried attempt is recognisably the same request.

        OpenRouter does not deduplicate on it today; the emulator counts a key billed twice in its stats.
        """
        ti = context["ti"]
        identity = f"airflow:{ti.dag_id}:{ti.task_id}:{ti.run_id}:{ti.map_index}"
        return hashlib.sha256(identity.encode()).hexdigest()[:32]

    def push_generation_record(self, context: Context, result: BillableResult) -> None:
        ti = context["ti"]
        usage = result.usage.model_dump(mode="json") if result.usage is not None else None
        if usage is not None:
            # XCom is cleared when a retry starts; the attempt number says whether earlier attempts were paid.
            usage["try_number"] = ti.try_number
        self.log.info(
            "OpenRouter generation %s: model %s, %s prompt + %s completion tokens, cost %s USD (attempt %s)",
            result.id,
            result.model,
            result.usage.prompt_tokens if result.usage is not None else "?",
            result.usage.completion_tokens if result.usage is not None else "?",
            plain_decimal(result.cost) if result.cost is not None else "unknown",
            ti.try_number,
        )
        if not self.do_xcom_push:
            return
        ti.xcom_push(key="generation_id", value=result.id)
        ti.xcom_push(key="text", value=result.text)
        ti.xcom_push(key="usage", value=usage)
        ti.xcom_push(key="cost", value=PlainDecimal(result.cost) if result.cost is not None else None)

    def call_billable(self, context: Context, action: str, call: Callable[[], T]) -> T:
        """Run the hook call; on failure log the cause and keep the generation id of a maybe-billed request.

        An error whose request may have been billed (``billed`` not ``False``, e.g. an answer that arrived but
        could not be read) pushes its ``generation_id`` when OpenRouter named one, so the charge is traceable.
        """
        from airflow_provider_openrouter.budget import BudgetExhaustedError

        try:
            return call()
        except BudgetExhaustedError as err:
            self.log_failure(action, err)
            self.wait_for_budget(err)
        except OpenRouterError as err:
            self.log_failure(action, err)
            if err.generation_id and err.billed is not False:
                self.log.warning(
                    "The failed request may have been billed: generation %s (OpenRouterGetGenerationOperator "
                    "shows its cost)",
                    err.generation_id,
                )
                if self.do_xcom_push:
                    context["ti"].xcom_push(key="generation_id", value=err.generation_id)
            final = self.not_retried_if_billed(err)
            if final is err:
                raise
            raise final from err

    def wait_for_budget(self, err: BudgetExhaustedError) -> NoReturn:
        """The budget's ``on_exhausted``: raise ``err`` (fail), skip the task, or defer it until the next
        period starts and then run :meth:`execute` again (wait). Nothing was sent."""
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger

        from airflow_provider_openrouter.budget import raise_for_exhausted

        budget = self.hook.budget_for(self.budget_value())
        if budget is None:  # pragma: no cover - the hook raised for a budget it resolved
            raise err
        moment = raise_for_exhausted(err, budget)
        self.log.info("Budget %r is exhausted; waiting until %s", budget.name, moment.isoformat())
        self.defer(trigger=DateTimeTrigger(moment=moment), method_name="execute_after_budget_wait")

    def execute_after_budget_wait(self, context: Context, event: Any = None) -> Any:
        """Run the task again once its budget's next period has started."""
        return self.execute(context)

    def not_retried_if_billed(self, err: OpenRouterError) -> OpenRouterError:
        """``err``, or, when Airflow would retry this task although its request may have been billed, the
        same error as :class:`OpenRouterPossiblyBilledError`, which Airflow does not retry.

        An Airflow retry re-runs ``execute`` and sends a new billable request. Unless the connection's
        ``retry_ambiguous`` extra accepts that, a failure that may have cost money ends the task.
        """
        if err.billed is False or not self.retries or self.hook.settings.retry_ambiguous:
            return err
        return OpenRouterPossiblyBilledError.from_error(err)

    def check_truncation(self, result: BillableResult) -> None:
        if not self.as_bool("fail_on_truncation", self.fail_on_truncation):
            return
        if result.finish_reason == "length":
            self.reject_answer(
                result,
                "the answer stopped at the token limit (finish_reason 'length') and fail_on_truncation is "
                "set",
                "Raise max_tokens or shorten the input.",
            )

    def reject_answer(self, result: BillableResult, problem: str, advice: str) -> NoReturn:
        """Fail the task over an answer that arrived, was billed and does not pass this operator's check."""
        rejected = OpenRouterResponseError(
            f"task {self.task_id!r}: {problem}",
            conn_id=self.openrouter_conn_id,
            generation_id=result.id,
            billed=True,
            hint=f"{advice} The answer was billed; its cost is in XCom 'cost'.",
        )
        raise self.not_retried_if_billed(rejected)
