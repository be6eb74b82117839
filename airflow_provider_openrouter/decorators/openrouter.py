"""``@task.openrouter``: a TaskFlow function returns the prompt, the task returns the (typed) answer.

::

    @task.openrouter(model="openai/gpt-4o-mini", output_type=Ticket, system_prompt="Extract the ticket.")
    def extract(text: str) -> str:
        return f"Ticket: {text}"

    extract.expand(text=["Printer on fire", "VPN down"])

Airflow imports this module only when a DAG file names ``task.openrouter``. The decorated operator is the chat
operator underneath, so every chat parameter, ``output_type`` and ``budget`` work as documented there.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk.bases.decorator import DecoratedOperator, task_decorator_factory
from airflow.sdk.definitions.context import context_merge

from airflow_provider_openrouter import _coerce
from airflow_provider_openrouter.exceptions import OpenRouterRequestError
from airflow_provider_openrouter.operators.chat import OpenRouterChatCompletionOperator

try:
    from airflow.sdk.bases.decorator import KeywordParameters
except ImportError:  # Airflow 3.1: still in the core
    from airflow.utils.operator_helpers import KeywordParameters

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.sdk.bases.decorator import TaskDecorator

__all__ = ["OpenRouterDecoratedOperator", "openrouter_task"]

# What the chat operator's content holds until execute() calls the function (it refuses neither text).
_PROMPT_PENDING = "(set when the task runs)"


class OpenRouterDecoratedOperator(DecoratedOperator, OpenRouterChatCompletionOperator):
    """The operator behind ``@task.openrouter``: calls the function, sends what it returns as the prompt.

    The function returns a string (sent as one user message, after ``system_prompt``) or a list of message
    dicts (``[{"role": "user", "content": ...}, ...]``, sent as ``messages``). Every other argument of the
    decorator is a parameter of
    :class:`~airflow_provider_openrouter.operators.chat.OpenRouterChatCompletionOperator`.

    **XCom contract**: as the chat operator's. ``return_value`` is the ``output_type`` instance when
    ``output_type`` is set (a downstream task receives the user's class; ``completion`` then holds the whole
    ``ChatCompletion``), else the ``ChatCompletion``; ``generation_id``, ``text``, ``usage`` and ``cost`` are
    pushed under their own keys, before the answer is checked.
    """

    custom_operator_name: str = "@task.openrouter"
    template_fields: Sequence[str] = (
        *DecoratedOperator.template_fields,
        *OpenRouterChatCompletionOperator.template_fields,
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {
        **DecoratedOperator.template_fields_renderers,
        **OpenRouterChatCompletionOperator.template_fields_renderers,
    }

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Collection[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        for name in ("content", "messages"):
            if name in kwargs:
                raise TypeError(
                    f"@task.openrouter takes no {name!r}: the decorated function returns the prompt "
                    "(a string, or a list of message dicts)."
                )
        super().__init__(
            python_callable=python_callable,
            op_args=op_args,
            op_kwargs=op_kwargs,
            content=_PROMPT_PENDING,
            **kwargs,
        )

    def execute(self, context: Context) -> Any:
        context_merge(context, self.op_kwargs)
        kwargs = KeywordParameters.determine(self.python_callable, self.op_args, context).unpacking()
        prompt = self.python_callable(*self.op_args, **kwargs)
        if isinstance(prompt, str):
            self.content, self.messages = prompt, None
        elif isinstance(prompt, list) and prompt and all(isinstance(item, Mapping) for item in prompt):
            self.content, self.messages = None, [dict(item) for item in prompt]
        else:
            raise OpenRouterRequestError(
                f"task {self.task_id!r}: the @task.openrouter function must return the prompt, a string or a "
                f"non-empty list of message dicts; it returned {_coerce.shown(prompt)}",
                conn_id=self.openrouter_conn_id,
                hint="Return the prompt text (or the messages) from the function; nothing was sent.",
            )
        return OpenRouterChatCompletionOperator.execute(self, context)


def openrouter_task(python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> TaskDecorator:
    """``@task.openrouter(model=..., output_type=..., **chat parameters)``; see
    :class:`OpenRouterDecoratedOperator`."""
    return task_decorator_factory(
        python_callable=python_callable,
        decorated_operator_class=OpenRouterDecoratedOperator,
        **kwargs,
    )
