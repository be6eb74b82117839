"""Chat completion: the connector's "Chat completion" action (POST /chat/completions)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_openrouter import _coerce
from airflow_provider_openrouter.models import ChatCompletion
from airflow_provider_openrouter.operators._base import (
    CHAT_PARAMETERS,
    OpenRouterChatParametersOperator,
    OpenRouterGenerationOperator,
)

if TYPE_CHECKING:
    from airflow.sdk import Context
    from pydantic import BaseModel

    from airflow_provider_openrouter.hooks._billing import StructuredCompletion

_JSON_FORMATS = ("json_object", "json_schema")


class OpenRouterChatCompletionOperator(OpenRouterGenerationOperator, OpenRouterChatParametersOperator):
    """Send one chat completion request and return the typed answer.

    The connector's flat form is ``model`` + ``role`` + ``content`` (one message); the full API is
    ``messages`` (a list of ``{"role": ..., "content": ...}``) plus the optional fields below. Give
    ``content`` or ``messages`` (or both: ``content`` is appended as the last message). ``system_prompt`` is
    prepended as a system message.

    :param model: model id, e.g. ``"openai/gpt-4o-mini"``; empty uses the connection's default model.
    :param role: role of ``content`` (``user``, ``system``, ``assistant``, ``developer``; any case, so
        ``"User"`` is ``user``); default ``user``. ``system`` needs a user message in ``messages`` to answer;
        ``tool`` is refused here (a tool result needs its ``tool_call_id``: pass it in ``messages``).
    :param content: the message text (or a list of content parts). A text that renders empty, ``"None"``
        or ``"null"`` (a missing value) is skipped when ``messages`` is given, and fails the task (before
        anything is sent) when it is not.
    :param messages: the conversation, a list of message dicts (or its JSON text).
    :param system_prompt: a system message placed first.
    :param temperature: sampling temperature (number, or its text).
    :param top_p: nucleus sampling probability mass.
    :param max_tokens: upper bound on completion tokens.
    :param stop: a stop string or a list of them.
    :param seed: integer seed for providers that support it.
    :param response_format: e.g. ``{"type": "json_object"}`` or ``{"type": "json_schema", ...}``; the bare
        ``"json_object"`` or ``"text"`` stands for ``{"type": ...}``. With a JSON format the answer must parse
        as JSON, or the task fails *after* pushing its cost.
    :param tools: tool (function) definitions.
    :param tool_choice: ``"auto"``, ``"none"``, ``"required"`` or a dict naming a function.
    :param models: fallback model ids, tried in order when ``model`` is unavailable.
    :param provider: provider routing preferences (``order``, ``only``, ``ignore``, ``sort``, ...).
    :param reasoning: reasoning settings, e.g. ``{"effort": "low"}``.
    :param extra_body: any further request body field, merged last.
    :param stream: receive the answer as server-sent events and assemble it (``True``, or its rendered text).
        For long generations: OpenRouter's keep-alive comments then hold the connection open, so the
        connection's read timeout measures silence rather than the whole answer. The result and the XCom are
        the same as without streaming; an error event mid-stream fails the task like the status it carries,
        and a stream cut off before its end is never resent (its outcome is unknown, it may have been billed).
    :param fail_on_truncation: fail the task when the answer stopped at ``max_tokens`` (``finish_reason ==
        "length"``), after pushing its cost.
    :param output_type: a pydantic class (or its dotted path ``"pkg.module.Class"``): the request asks for
        JSON of the class's schema (strict where the model supports ``structured_outputs``) and the answer is
        validated into it; ``return_value`` is then your instance (see the XCom contract). Not together with
        ``response_format``. An answer that does not validate fails the task after pushing its cost, with the
        validation errors on one line. Define the class at module scope, so a downstream task can import it.
    :param budget: an ``OpenRouterBudget``, or the name of one declared in the connection extra ``budgets``:
        the request's worst case is reserved before it is sent; when it does not fit, nothing is sent and the
        task fails, skips or waits for the next period, as the budget's ``on_exhausted`` says.
    :param attribution: the request names this task (``metadata``: DAG, task, run, map index, try number;
        ``session_id`` and ``trace``: the DAG run) unless ``False``; a dict (or its JSON text) adds your own
        metadata pairs. Overrides the connection extra ``attribution``; ``extra_body`` values win over both.
    :param openrouter_conn_id: the OpenRouter connection (default ``openrouter_default``).

    Every parameter above is a template field. Rendered numbers and JSON text are converted back to numbers,
    dicts and lists before the request is built. The request carries an ``X-Idempotency-Key`` derived from the
    task instance (dag, task, run, map index; not the try number).

    **XCom contract**

    ====================  =============================  ================================================
    key                   type                           value
    ====================  =============================  ================================================
    ``return_value``      ``models.ChatCompletion``      the whole typed answer (``.text``, ``.cost``,
                                                         ``.usage``, ``.choices[0].message``, ...); with
                                                         ``output_type``, your class's instance
    ``completion``        ``models.ChatCompletion``      only with ``output_type``: the whole answer
    ``generation_id``     ``str``                        the generation id (for Get generation)
    ``text``              ``str``                        the first choice's text (``""`` for tool calls)
    ``usage``             ``dict | None``                token counts and cost as JSON, plus ``try_number``
    ``cost``              ``decimal.Decimal | None``     USD charged, as reported in ``usage.cost``
    ====================  =============================  ================================================

    ``generation_id``, ``text``, ``usage`` and ``cost`` are pushed (and logged) *before* the
    ``response_format`` and ``fail_on_truncation`` checks, because a rejected answer was still paid for. A
    hook failure that may have been billed pushes only ``generation_id`` (when OpenRouter named one). XCom of
    a task instance is cleared when a retry starts; each attempt's cost line stays in that attempt's log.
    """

    result_type = ChatCompletion
    # Airflow 3.3+ workers allow-list these classes before a downstream task reads this task's XCom.
    deserialization_allowed_class_fields: ClassVar[tuple[str, ...]] = ("result_type", "output_class")
    template_fields: Sequence[str] = (
        "openrouter_conn_id",
        "model",
        "role",
        "content",
        "messages",
        *CHAT_PARAMETERS,
        "stream",
        "fail_on_truncation",
        "attribution",
        "output_type",
        "budget",
    )
    template_fields_renderers = {
        **OpenRouterChatParametersOperator.template_fields_renderers,
        "messages": "json",
        "attribution": "json",
    }

    def __init__(
        self,
        *,
        model: str | None = None,
        role: str = "user",
        content: str | list[dict[str, Any]] | None = None,
        messages: list[dict[str, Any]] | str | None = None,
        stream: bool | str = False,
        output_type: type[BaseModel] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.output_class: type[BaseModel] | None = None
        if isinstance(output_type, type):
            from airflow_provider_openrouter.structured import register_output_type

            # At parse time, in every process that loads the DAG: a downstream task then reads the instance
            # with Airflow's default deserialization settings (on Airflow 3.1 and 3.2 too). The class itself
            # stays out of the template fields: Airflow calls a callable template field to render it.
            self.output_class = register_output_type(output_type)
            output_type = f"{output_type.__module__}.{output_type.__qualname__}"
        self.output_type = output_type
        if content is None and messages is None:
            raise self.bad_parameter("content", None, "given (or 'messages'): there is nothing to send")
        self.model = model
        self.role = role
        self.content = content
        self.messages = messages
        self.stream = stream

    def execute(self, context: Context) -> ChatCompletion | BaseModel:
        with self.hook:
            messages = self.as_list("messages", self.messages)
            content = self.content
            if _coerce.unset(content):
                # A template that rendered nothing ('', or 'None' for a missing value): with messages there
                # is still something to send; without them, sending would pay for an answer to "None".
                if messages is None:
                    raise self.missing_text("content", content, "non-empty text (or give 'messages')")
                content = None
            request: dict[str, Any] = {
                "model": self.model or None,
                "role": self.role if content is not None else None,
                "content": content,
                "messages": messages,
                **self.chat_parameters(),
            }
            stream = self.as_bool("stream", self.stream)
            output_type = self.output_class or (None if _coerce.unset(self.output_type) else self.output_type)
            if output_type is not None and request["response_format"] is not None:
                raise self.bad_parameter(
                    "response_format",
                    request["response_format"],
                    "unset when output_type is given (output_type sends its class's schema)",
                )
            idempotency_key = self.idempotency_key(context)
            from airflow_provider_openrouter.hooks._billing import StructuredCompletion
            from airflow_provider_openrouter.structured import InvalidOutputError

            def ask() -> ChatCompletion | StructuredCompletion[Any]:
                try:
                    return self.hook.chat_completion(
                        **request,
                        idempotency_key=idempotency_key,
                        stream=stream,
                        attribution=self.attribution,
                        output_type=output_type,
                        budget=self.budget_value(),
                    )
                except InvalidOutputError as err:
                    if err.completion is not None:  # billed: its cost reaches XCom before the task fails
                        self.push_generation_record(context, err.completion)
                    raise

            result = self.call_billable(context, "chat completion", ask)
            if isinstance(result, StructuredCompletion):
                self.push_generation_record(context, result.completion)
                self.check_truncation(result.completion)
                if self.do_xcom_push:
                    context["ti"].xcom_push(key="completion", value=result.completion)
                return result.output
            self.push_generation_record(context, result)
            self.check_truncation(result)
            self.check_response_format(result, request["response_format"])
            return result

    def check_response_format(self, result: ChatCompletion, response_format: dict[str, Any] | None) -> None:
        """A JSON ``response_format`` needs text that ``parsed_json()`` decodes (schema not re-checked)."""
        wanted = (response_format or {}).get("type")
        if wanted not in _JSON_FORMATS:
            return
        try:
            result.parsed_json()
        except ValueError as err:
            reason = str(err)
        else:
            return
        self.reject_answer(
            result,
            f"response_format {wanted!r} asked for JSON: {reason}",
            "Use a model that supports structured outputs, or make the instructions stricter.",
        )
