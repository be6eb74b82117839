"""Operators in isolation: template fields, rendered-value coercion, the XCom contract, errors.

The hook is replaced by a recording fake (pure units); the real hook against the emulator is covered by the
integration and DAG tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.exceptions import AirflowFailException  # the class both task runners (3.1 and 3.3) catch

from airflow_provider_openrouter.exceptions import (
    OpenRouterAuthenticationError,
    OpenRouterNotFoundError,
    OpenRouterOutcomeUnknownError,
    OpenRouterPossiblyBilledError,
    OpenRouterRequestError,
    OpenRouterResponseError,
    OpenRouterUpstreamError,
)
from airflow_provider_openrouter.models import (
    ChatCompletion,
    Credits,
    Generation,
    ModelEndpoints,
    ModelList,
    TextCompletion,
)
from airflow_provider_openrouter.operators import (
    OpenRouterChatCompletionOperator,
    OpenRouterCompletionOperator,
    OpenRouterGetCreditsOperator,
    OpenRouterGetGenerationOperator,
    OpenRouterListModelEndpointsOperator,
    OpenRouterListModelsOperator,
)
from airflow_provider_openrouter.operators import generation as generation_module


def chat_result(text: str = "Paris.", finish_reason: str = "stop", cost: str = "0.0000066") -> ChatCompletion:
    return ChatCompletion.model_validate(
        {
            "id": "gen-123",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "openai/gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": finish_reason,
                    "message": {"role": "assistant", "content": text},
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15, "cost": float(cost)},
        }
    )


def text_result(finish_reason: str = "stop") -> TextCompletion:
    return TextCompletion.model_validate(
        {
            "id": "gen-456",
            "model": "openai/gpt-3.5-turbo-instruct",
            "choices": [{"index": 0, "text": " red, yellow and blue.", "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 6, "completion_tokens": 7, "total_tokens": 13, "cost": 0.000023},
        }
    )


class FakeHook:
    """Records each call and answers from a script: a value is returned, an exception raised."""

    def __init__(self, *answers: Any, retry_ambiguous: bool = False) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.settings = SimpleNamespace(retry_ambiguous=retry_ambiguous)
        self.open = False
        self.closed = 0

    def __enter__(self) -> FakeHook:
        self.open = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.open = False
        self.closed += 1

    def _answer(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((name, args, kwargs))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def chat_completion(self, **kwargs: Any) -> Any:
        return self._answer("chat_completion", **kwargs)

    def completion(self, **kwargs: Any) -> Any:
        return self._answer("completion", **kwargs)

    def budget_for(self, budget: Any) -> Any:
        return budget

    def get_credits(self) -> Any:
        return self._answer("get_credits")

    def get_generation(self, generation_id: str) -> Any:
        return self._answer("get_generation", generation_id)

    def list_model_endpoints(self, author: str, slug: str) -> Any:
        return self._answer("list_model_endpoints", author, slug)

    def list_models(self, **filters: Any) -> Any:
        return self._answer("list_models", **filters)


class FakeTaskInstance:
    def __init__(self, try_number: int = 1, run_id: str = "manual__2026-01-01", map_index: int = -1) -> None:
        self.dag_id, self.task_id, self.run_id, self.map_index = "dag", "task", run_id, map_index
        self.try_number = try_number
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def run(operator: Any, hook: FakeHook, ti: FakeTaskInstance | None = None) -> tuple[Any, FakeTaskInstance]:
    operator.hook = hook
    ti = ti or FakeTaskInstance()
    return operator.execute({"ti": ti}), ti


def refused(operator: Any) -> str:
    """Run ``operator`` with a hook that must not be called; the one line of its OpenRouterRequestError."""
    hook = FakeHook()
    with pytest.raises(OpenRouterRequestError) as caught:
        run(operator, hook)
    assert hook.calls == []
    message = str(caught.value)
    assert "\n" not in message
    return message


def sent(operator: Any, **params: Any) -> dict[str, Any]:
    """Render a chat ``operator`` with ``params`` and run it; the request its hook received."""
    render(operator, params=params)
    hook = FakeHook(chat_result())
    run(operator, hook)
    request: dict[str, Any] = hook.calls[0][2]
    return request


def render(operator: Any, **context: Any) -> None:
    """Render the template fields the way a task run does (a Jinja template always renders to a string)."""
    operator.render_template_fields(context)


# --- template fields ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator_class", "expected"),
    [
        (
            OpenRouterChatCompletionOperator,
            {
                "openrouter_conn_id",
                "model",
                "role",
                "content",
                "messages",
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
                "stream",
                "fail_on_truncation",
                "attribution",
                "output_type",
                "budget",
            },
        ),
        (
            OpenRouterCompletionOperator,
            {
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
            },
        ),
        (OpenRouterGetCreditsOperator, {"openrouter_conn_id"}),
        (OpenRouterGetGenerationOperator, {"openrouter_conn_id", "generation_id", "wait_for_stats"}),
        (OpenRouterListModelEndpointsOperator, {"openrouter_conn_id", "author", "slug", "model"}),
        (
            OpenRouterListModelsOperator,
            {
                "openrouter_conn_id",
                "category",
                "supported_parameters",
                "output_modalities",
                "input_modalities",
                "filters",
                "output_path",
            },
        ),
    ],
)
def test_every_parameter_and_the_conn_id_is_a_template_field(
    operator_class: type, expected: set[str]
) -> None:
    assert set(operator_class.template_fields) == expected
    for field, renderer in operator_class.template_fields_renderers.items():
        assert field in expected
        assert renderer == "json"


def test_typed_result_class_is_declared_for_the_worker_allow_list() -> None:
    expected = {
        OpenRouterChatCompletionOperator: ChatCompletion,
        OpenRouterCompletionOperator: TextCompletion,
        OpenRouterGetCreditsOperator: Credits,
        OpenRouterGetGenerationOperator: Generation,
        OpenRouterListModelEndpointsOperator: ModelEndpoints,
        OpenRouterListModelsOperator: ModelList,
    }
    for operator_class, result_class in expected.items():
        # The chat operator's output_type is the user's class, allowed like its own results.
        extra = ("output_class",) if operator_class is OpenRouterChatCompletionOperator else ()
        assert operator_class.deserialization_allowed_class_fields == ("result_type", *extra)
        assert operator_class.result_type is result_class


def test_conn_id_renders_from_a_template() -> None:
    op = OpenRouterGetCreditsOperator(task_id="c", openrouter_conn_id="{{ params.conn }}")
    render(op, params={"conn": "openrouter_management"})
    assert op.openrouter_conn_id == "openrouter_management"
    assert op.hook.openrouter_conn_id == "openrouter_management"


# --- chat: coercion of rendered values --------------------------------------------------------------------


def test_chat_rendered_strings_become_numbers_dicts_and_lists() -> None:
    op = OpenRouterChatCompletionOperator(
        task_id="chat",
        model="{{ params.model }}",
        content="Capital of {{ params.country }}?",
        temperature="{{ params.temperature }}",
        max_tokens="{{ params.max_tokens }}",
        seed="{{ params.seed }}",
        stop='["{{ params.stop }}"]',
        response_format='{"type": "{{ params.format }}"}',
        models="{{ params.fallbacks | join(',') }}",
        provider="{{ params.provider | tojson }}",
        tool_choice="auto",
        extra_body='{"top_p": 0.9}',
        stream="{{ params.stream }}",
    )
    render(
        op,
        params={
            "stream": True,
            "model": "openai/gpt-4o-mini",
            "country": "France",
            "temperature": 0.2,
            "max_tokens": 64,
            "seed": 7,
            "stop": "END",
            "format": "json_object",
            "fallbacks": ["a/one", "b/two"],
            "provider": {"order": ["OpenAI"], "allow_fallbacks": False},
        },
    )
    hook = FakeHook(chat_result(text='{"capital": "Paris"}'))
    run(op, hook)

    ((name, _, request),) = hook.calls
    assert name == "chat_completion"
    assert request["model"] == "openai/gpt-4o-mini"
    assert request["role"] == "user"
    assert request["content"] == "Capital of France?"
    assert request["temperature"] == 0.2 and isinstance(request["temperature"], float)
    assert request["max_tokens"] == 64 and isinstance(request["max_tokens"], int)
    assert request["seed"] == 7
    assert request["stop"] == ["END"]
    assert request["response_format"] == {"type": "json_object"}
    assert request["models"] == ["a/one", "b/two"]
    assert request["provider"] == {"order": ["OpenAI"], "allow_fallbacks": False}
    assert request["tool_choice"] == "auto"
    assert request["extra_body"] == {"top_p": 0.9}
    assert request["messages"] is None and request["tools"] is None and request["reasoning"] is None
    assert request["top_p"] is None
    assert request["stream"] is True


def test_chat_native_values_pass_through_unchanged() -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    op = OpenRouterChatCompletionOperator(
        task_id="chat",
        messages=messages,
        tools=tools,
        tool_choice={"type": "function", "function": {"name": "f"}},
        stop="\n\n",
        temperature=1,
    )
    hook = FakeHook(chat_result())
    run(op, hook)
    request = hook.calls[0][2]
    assert request["messages"] == messages
    assert request["tools"] == tools
    assert request["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert request["stop"] == "\n\n"
    assert request["temperature"] == 1.0
    assert request["model"] is None  # the connection's default model applies
    assert request["stream"] is False


@pytest.mark.parametrize(
    ("parameter", "value", "expected_words"),
    [
        ("temperature", "warm", "must be a number"),
        ("max_tokens", "2.5", "must be an integer"),
        ("max_tokens", True, "must be an integer"),
        ("response_format", '{"type": json_object}', "must be a JSON object"),
        ("response_format", "[1, 2]", "must be a JSON object"),
        ("messages", '{"role": "user"}', "must be a JSON list"),
        ("models", "[1, 2]", "must be a list of strings"),
        ("stop", "[1]", "must be a string or a list of strings"),
        ("stream", "sometimes", "must be true or false"),
    ],
)
def test_chat_bad_rendered_value_names_task_and_parameter_and_sends_nothing(
    parameter: str, value: Any, expected_words: str
) -> None:
    op = OpenRouterChatCompletionOperator(task_id="ask", content="hi", **{parameter: value})
    hook = FakeHook()
    with pytest.raises(OpenRouterRequestError) as caught:
        run(op, hook)
    message = str(caught.value)
    assert "\n" not in message
    assert "'ask'" in message and repr(parameter) in message and expected_words in message
    assert "nothing was sent" in message
    assert hook.calls == []


@pytest.mark.parametrize("parameter", ["temperature", "max_tokens", "provider", "tools", "models"])
def test_chat_parameter_rendered_from_none_is_unset(parameter: str) -> None:
    op = OpenRouterChatCompletionOperator(task_id="ask", content="hi", **{parameter: "{{ params.unset }}"})
    request = sent(op, unset=None)
    assert getattr(op, parameter) == "None"  # what Jinja renders for None
    assert request[parameter] is None


def test_chat_dict_and_list_rendered_without_tojson_are_read() -> None:
    op = OpenRouterChatCompletionOperator(
        task_id="ask", content="hi", provider="{{ params.provider }}", models="{{ params.models }}"
    )
    request = sent(op, provider={"order": ["OpenAI"], "allow_fallbacks": False}, models=["a/one", "b/two"])
    assert request["provider"] == {"order": ["OpenAI"], "allow_fallbacks": False}
    assert request["models"] == ["a/one", "b/two"]


def test_chat_text_that_is_neither_json_nor_a_repr_says_to_render_it_with_tojson() -> None:
    message = refused(OpenRouterChatCompletionOperator(task_id="ask", content="hi", provider="order=OpenAI"))
    assert "parameter 'provider' must be a JSON object" in message
    assert "render it with `| tojson`" in message


def test_chat_accepts_the_response_format_shortcut_the_hook_accepts() -> None:
    op = OpenRouterChatCompletionOperator(task_id="chat", content="hi", response_format="json_object")
    hook = FakeHook(chat_result(text="not json"))
    with pytest.raises(OpenRouterResponseError, match="response_format 'json_object' asked for JSON"):
        run(op, hook)
    assert hook.calls[0][2]["response_format"] == {"type": "json_object"}


def test_chat_content_that_renders_empty_without_messages_names_content() -> None:
    op = OpenRouterChatCompletionOperator(task_id="ask", content="{{ params.question }}")
    render(op, params={"question": ""})
    message = refused(op)
    assert message.startswith(
        "Invalid OpenRouter request: task 'ask': parameter 'content' must be non-empty text (or give "
        "'messages'), got ''"
    )
    assert "empty upstream XCom" in message


def test_chat_content_that_renders_empty_is_skipped_when_messages_are_given() -> None:
    messages = [{"role": "user", "content": "Hi"}]
    op = OpenRouterChatCompletionOperator(task_id="chat", content="{{ params.extra }}", messages=messages)
    request = sent(op, extra="")
    assert request["content"] is None and request["role"] is None
    assert request["messages"] == messages


def test_chat_without_content_or_messages_is_rejected_when_the_dag_is_parsed() -> None:
    with pytest.raises(OpenRouterRequestError, match="nothing to send"):
        OpenRouterChatCompletionOperator(task_id="empty", model="openai/gpt-4o-mini")


# --- chat and completion: the XCom contract ---------------------------------------------------------------


def test_chat_returns_the_typed_result_and_pushes_the_cost_record() -> None:
    result = chat_result()
    value, ti = run(
        OpenRouterChatCompletionOperator(task_id="chat", content="hi"), FakeHook(result), FakeTaskInstance(2)
    )
    assert value is result
    assert ti.pushed["generation_id"] == "gen-123"
    assert ti.pushed["text"] == "Paris."
    assert ti.pushed["cost"] == Decimal("0.0000066")
    usage = ti.pushed["usage"]
    assert usage["prompt_tokens"] == 12 and usage["completion_tokens"] == 3 and usage["total_tokens"] == 15
    assert Decimal(str(usage["cost"])) == Decimal("0.0000066")
    assert usage["try_number"] == 2
    json.dumps(usage)  # plain JSON, readable in the UI


def test_chat_truncated_answer_fails_only_after_its_cost_was_pushed() -> None:
    op = OpenRouterChatCompletionOperator(
        task_id="chat", content="hi", fail_on_truncation="{{ params.strict }}"
    )
    render(op, params={"strict": True})
    ti = FakeTaskInstance()
    with pytest.raises(OpenRouterResponseError) as caught:
        run(op, FakeHook(chat_result(finish_reason="length")), ti)
    assert ti.pushed["generation_id"] == "gen-123"
    assert ti.pushed["cost"] == Decimal("0.0000066")
    assert caught.value.billed is True
    assert caught.value.generation_id == "gen-123"
    assert "finish_reason 'length'" in str(caught.value)


def test_chat_truncated_answer_passes_when_truncation_is_allowed() -> None:
    value, _ = run(
        OpenRouterChatCompletionOperator(task_id="chat", content="hi"),
        FakeHook(chat_result(finish_reason="length")),
    )
    assert value.finish_reason == "length"


def test_chat_answer_that_is_not_the_requested_json_fails_after_its_cost_was_pushed() -> None:
    op = OpenRouterChatCompletionOperator(
        task_id="chat", content="hi", response_format={"type": "json_schema", "json_schema": {"name": "x"}}
    )
    ti = FakeTaskInstance()
    with pytest.raises(OpenRouterResponseError) as caught:
        run(op, FakeHook(chat_result(text="Sure! Here it is: {oops")), ti)
    assert set(ti.pushed) == {"generation_id", "text", "usage", "cost"}
    assert ti.pushed["text"] == "Sure! Here it is: {oops"
    assert "json_schema" in str(caught.value) and "gen-123" in str(caught.value)


def test_chat_json_answer_in_a_code_fence_is_accepted() -> None:
    op = OpenRouterChatCompletionOperator(
        task_id="chat", content="hi", response_format='{"type": "json_object"}'
    )
    value, _ = run(op, FakeHook(chat_result(text='```json\n{"a": 1}\n```')))
    assert value.parsed_json() == {"a": 1}


def test_idempotency_key_is_one_per_task_instance_and_the_same_across_tries() -> None:
    def key_for(ti: FakeTaskInstance) -> str:
        hook = FakeHook(chat_result())
        run(OpenRouterChatCompletionOperator(task_id="chat", content="hi"), hook, ti)
        key: str = hook.calls[0][2]["idempotency_key"]
        return key

    first_try = key_for(FakeTaskInstance(try_number=1))
    assert key_for(FakeTaskInstance(try_number=2)) == first_try
    assert key_for(FakeTaskInstance(run_id="manual__2026-01-02")) != first_try
    assert key_for(FakeTaskInstance(map_index=3)) != first_try


def test_do_xcom_push_false_pushes_no_extra_keys() -> None:
    op = OpenRouterChatCompletionOperator(task_id="chat", content="hi", do_xcom_push=False)
    _, ti = run(op, FakeHook(chat_result()))
    assert ti.pushed == {}


def test_completion_coerces_and_pushes_the_cost_record_before_the_truncation_check() -> None:
    op = OpenRouterCompletionOperator(
        task_id="complete",
        model="openai/gpt-3.5-turbo-instruct",
        prompt="The primary colours are",
        max_tokens="{{ params.n }}",
        temperature="0",
        stop="END",
        fail_on_truncation=True,
    )
    render(op, params={"n": 7})
    hook = FakeHook(text_result(finish_reason="length"))
    ti = FakeTaskInstance()
    with pytest.raises(OpenRouterResponseError):
        run(op, hook, ti)
    request = hook.calls[0][2]
    assert request.pop("idempotency_key")
    assert request.pop("attribution") is None
    assert request.pop("budget") is None
    assert request == {
        "model": "openai/gpt-3.5-turbo-instruct",
        "prompt": "The primary colours are",
        "max_tokens": 7,
        "temperature": 0.0,
        "stop": "END",
        "seed": None,
        "models": None,
        "provider": None,
        "extra_body": None,
    }
    assert ti.pushed["generation_id"] == "gen-456"
    assert ti.pushed["text"] == " red, yellow and blue."
    assert ti.pushed["cost"] == Decimal("0.000023")


def test_a_maybe_billed_failure_keeps_its_generation_id() -> None:
    unreadable = OpenRouterResponseError("body is not a chat completion", generation_id="gen-9", billed=True)
    ti = FakeTaskInstance()
    with pytest.raises(OpenRouterResponseError):
        run(OpenRouterChatCompletionOperator(task_id="chat", content="hi"), FakeHook(unreadable), ti)
    assert ti.pushed == {"generation_id": "gen-9"}


@pytest.mark.parametrize(
    "error",
    [
        OpenRouterOutcomeUnknownError("read timed out", generation_id="gen-11"),
        OpenRouterUpstreamError("provider error", status=524, generation_id="gen-11", billed=None),
    ],
    ids=["lost-answer", "ambiguous-524"],
)
def test_a_task_with_retries_fails_for_good_when_its_request_may_have_been_billed(error: Exception) -> None:
    ti = FakeTaskInstance()
    with pytest.raises(OpenRouterPossiblyBilledError) as caught:
        run(OpenRouterChatCompletionOperator(task_id="chat", content="hi", retries=3), FakeHook(error), ti)
    assert isinstance(caught.value, AirflowFailException)  # Airflow fails the task without a retry
    assert caught.value.__cause__ is error
    assert caught.value.generation_id == "gen-11" and caught.value.billed is None
    assert error.heading in str(caught.value) and error.message in str(caught.value)
    assert "retry_ambiguous" in str(caught.value)
    assert ti.pushed == {"generation_id": "gen-11"}


def test_a_task_without_retries_or_with_retry_ambiguous_keeps_the_original_error() -> None:
    for retries, retry_ambiguous in ((0, False), (3, True)):
        lost = OpenRouterOutcomeUnknownError("read timed out")
        operator = OpenRouterCompletionOperator(task_id="complete", prompt="hi", retries=retries)
        with pytest.raises(OpenRouterOutcomeUnknownError) as caught:
            run(operator, FakeHook(lost, retry_ambiguous=retry_ambiguous))
        assert caught.value is lost


def test_a_task_with_retries_is_retried_by_airflow_when_the_request_provably_did_not_run() -> None:
    refused_upstream = OpenRouterUpstreamError("overloaded", status=503)  # answered before generation
    with pytest.raises(OpenRouterUpstreamError) as caught:
        run(
            OpenRouterChatCompletionOperator(task_id="chat", content="hi", retries=3),
            FakeHook(refused_upstream),
        )
    assert caught.value is refused_upstream and not isinstance(caught.value, AirflowFailException)


def test_a_rejected_answer_in_a_task_with_retries_fails_for_good_after_its_cost_was_pushed() -> None:
    operator = OpenRouterChatCompletionOperator(
        task_id="chat", content="hi", response_format={"type": "json_object"}, retries=2
    )
    ti = FakeTaskInstance()
    with pytest.raises(OpenRouterPossiblyBilledError) as caught:
        run(operator, FakeHook(chat_result(text="not json")), ti)
    assert ti.pushed["cost"] == Decimal("0.0000066")
    assert isinstance(caught.value.__cause__, OpenRouterResponseError)
    assert caught.value.billed is True and "asked for JSON" in str(caught.value)


def test_an_unbilled_failure_pushes_nothing() -> None:
    rejected = OpenRouterUpstreamError("provider down", status=502, generation_id="gen-10")  # billed=False
    ti = FakeTaskInstance()
    with pytest.raises(OpenRouterUpstreamError):
        run(OpenRouterCompletionOperator(task_id="complete", prompt="hi"), FakeHook(rejected), ti)
    assert ti.pushed == {}


def test_hook_error_propagates_unchanged() -> None:
    error = OpenRouterAuthenticationError(
        "No auth credentials found", status=401, conn_id="openrouter_default"
    )
    with pytest.raises(OpenRouterAuthenticationError) as caught:
        run(OpenRouterChatCompletionOperator(task_id="chat", content="hi"), FakeHook(error))
    assert caught.value is error


# --- read-only operators ----------------------------------------------------------------------------------


def test_credits_returns_the_typed_balance() -> None:
    credits = Credits.model_validate({"total_credits": 10.5, "total_usage": 0.25})
    value, ti = run(OpenRouterGetCreditsOperator(task_id="c"), FakeHook(credits))
    assert value is credits and value.remaining == Decimal("10.25")
    assert ti.pushed == {}


GENERATION = Generation.model_validate({"id": "gen-123", "total_cost": 0.0000066, "tokens_prompt": 12})


def test_generation_asks_again_while_the_stats_are_not_written(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(generation_module.time, "sleep", slept.append)
    not_yet = OpenRouterNotFoundError("Generation not found", status=404)
    hook = FakeHook(not_yet, not_yet, not_yet, GENERATION)
    op = OpenRouterGetGenerationOperator(task_id="g", generation_id="{{ params.id }}", wait_for_stats="30")
    render(op, params={"id": " gen-123 "})
    value, _ = run(op, hook)
    assert value is GENERATION
    assert [call[1] for call in hook.calls] == [("gen-123",)] * 4
    assert slept == [0.5, 1.0, 2.0]


def test_generation_not_found_after_the_wait_fails_with_the_404(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(range(0, 1000, 10))  # every look at the clock is 10 s later
    monkeypatch.setattr(generation_module.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(generation_module.time, "sleep", lambda seconds: None)
    not_found = OpenRouterNotFoundError("Generation not found", status=404)
    hook = FakeHook(*[not_found] * 10)
    with pytest.raises(OpenRouterNotFoundError):
        run(OpenRouterGetGenerationOperator(task_id="g", generation_id="gen-x", wait_for_stats=25), hook)
    assert len(hook.calls) == 3  # at t=10 and t=20 there is time left, at t=30 there is none


def test_generation_without_waiting_asks_once() -> None:
    hook = FakeHook(OpenRouterNotFoundError("Generation not found", status=404))
    with pytest.raises(OpenRouterNotFoundError):
        run(OpenRouterGetGenerationOperator(task_id="g", generation_id="gen-x", wait_for_stats=0), hook)
    assert len(hook.calls) == 1


@pytest.mark.parametrize("rendered", ["", "None", "null", " None "])
def test_generation_id_that_renders_empty_or_none_fails_before_asking(rendered: str) -> None:
    op = OpenRouterGetGenerationOperator(task_id="g", generation_id="{{ params.id }}")
    render(op, params={"id": rendered})
    message = refused(op)
    assert "task 'g': parameter 'generation_id' must be a generation id such as 'gen-...'" in message
    assert "upstream XCom it renders from was probably empty" in message


def test_generation_takes_the_connectors_id_as_an_alias_of_generation_id() -> None:
    op = OpenRouterGetGenerationOperator(task_id="g", id="{{ params.id }}", wait_for_stats=0)
    assert op.generation_id == "{{ params.id }}"  # the template field it fills
    render(op, params={"id": "gen-123"})
    hook = FakeHook(GENERATION)
    value, _ = run(op, hook)
    assert value is GENERATION
    assert hook.calls == [("get_generation", ("gen-123",), {})]
    same = OpenRouterGetGenerationOperator(task_id="g2", id="gen-123", generation_id="gen-123")
    assert same.generation_id == "gen-123"


def test_generation_with_both_id_and_generation_id_differing_is_refused_when_the_dag_is_parsed() -> None:
    with pytest.raises(OpenRouterRequestError) as caught:
        OpenRouterGetGenerationOperator(task_id="g", id="gen-1", generation_id="gen-2")
    assert "parameter 'id' must be left out, or equal to 'generation_id' ('gen-2')" in str(caught.value)


def test_generation_without_an_id_is_refused_when_the_dag_is_parsed() -> None:
    with pytest.raises(OpenRouterRequestError, match="parameter 'generation_id' must be given"):
        OpenRouterGetGenerationOperator(task_id="g")


ENDPOINTS = ModelEndpoints.model_validate({"id": "meta-llama/llama-3.3-70b-instruct:free", "endpoints": []})


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"author": "openai", "slug": "gpt-4o-mini"}, ("openai", "gpt-4o-mini")),
        ({"model": "meta-llama/llama-3.3-70b-instruct:free"}, ("meta-llama", "llama-3.3-70b-instruct:free")),
        ({"model": "{{ params.m }}"}, ("openai", "gpt-4o")),
    ],
)
def test_endpoints_take_author_and_slug_or_one_model_id(
    kwargs: dict[str, str], expected: tuple[str, str]
) -> None:
    op = OpenRouterListModelEndpointsOperator(task_id="e", **kwargs)
    render(op, params={"m": "openai/gpt-4o"})
    hook = FakeHook(ENDPOINTS)
    value, _ = run(op, hook)
    assert value is ENDPOINTS
    assert hook.calls == [("list_model_endpoints", expected, {})]


@pytest.mark.parametrize("kwargs", [{}, {"author": "openai"}, {"model": "openai/gpt-4o", "author": "openai"}])
def test_endpoints_need_exactly_one_way_of_naming_the_model(kwargs: dict[str, str]) -> None:
    with pytest.raises(OpenRouterRequestError, match="'model'"):
        OpenRouterListModelEndpointsOperator(task_id="e", **kwargs)


def test_endpoints_author_with_a_slash_says_to_pass_model_instead() -> None:
    message = refused(
        OpenRouterListModelEndpointsOperator(task_id="e", author="openai/gpt-4o-mini", slug="x")
    )
    assert "task 'e': parameter 'author' must be the model's author without '/'" in message
    assert "Pass model='author/slug' instead" in message


def test_endpoints_model_without_a_slash_is_a_clear_error() -> None:
    with pytest.raises(OpenRouterRequestError, match="'author/slug'"):
        run(OpenRouterListModelEndpointsOperator(task_id="e", model="gpt-4o"), FakeHook())


CATALOG = ModelList.model_validate(
    {
        "data": [
            {"id": "openai/gpt-4o-mini", "pricing": {"prompt": "0.00000015", "completion": "0.0000006"}},
            {"id": "mistralai/mistral-nemo", "pricing": {"prompt": "0.00000002", "completion": "0.00000004"}},
        ]
    }
)


def test_list_models_passes_filters_and_returns_the_typed_catalog() -> None:
    op = OpenRouterListModelsOperator(
        task_id="m",
        category="{{ params.category }}",
        supported_parameters="tools, seed",
        output_modalities=["text"],
        filters='{"sort": "pricing-low-to-high"}',
    )
    render(op, params={"category": "programming"})
    hook = FakeHook(CATALOG)
    value, _ = run(op, hook)
    assert value is CATALOG
    assert hook.calls == [
        (
            "list_models",
            (),
            {
                "category": "programming",
                "supported_parameters": ["tools", "seed"],
                "output_modalities": ["text"],
                "sort": "pricing-low-to-high",
            },
        )
    ]


def test_list_models_to_output_path_writes_the_catalog_and_returns_a_manifest(tmp_path: Any) -> None:
    target = tmp_path / "catalog" / "models.json"
    op = OpenRouterListModelsOperator(
        task_id="m", output_path=str(tmp_path / "catalog" / "{{ params.name }}")
    )
    render(op, params={"name": "models.json"})
    manifest, _ = run(op, FakeHook(CATALOG))
    written = target.read_bytes()
    assert manifest == {"path": str(target), "count": 2, "bytes": len(written)}
    assert ModelList.model_validate_json(written).ids == ["openai/gpt-4o-mini", "mistralai/mistral-nemo"]


# --- the package ------------------------------------------------------------------------------------------


def test_importing_the_operators_package_imports_no_operator_module() -> None:
    code = (
        "import sys, airflow_provider_openrouter.operators as ops\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('airflow_provider_openrouter.'))\n"
        "print(loaded)\n"
        "assert loaded == ['airflow_provider_openrouter.operators'], loaded\n"
        "module = ops.OpenRouterGetCreditsOperator.__module__\n"
        "assert module == 'airflow_provider_openrouter.operators.credits', module\n"
        "try:\n"
        "    ops.NoSuchOperator\n"
        "except AttributeError as err:\n"
        "    assert 'NoSuchOperator' in str(err)\n"
        "else:\n"
        "    raise SystemExit('no AttributeError')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


# --- issue 8: rendered missing values and model ids, refused before anything is sent ------------------------


@pytest.mark.parametrize("rendered", ["None", "null", "NULL", ""])
@pytest.mark.parametrize(
    ("make", "name", "expected"),
    [
        (
            lambda: OpenRouterChatCompletionOperator(task_id="ask", content="{{ params.text }}"),
            "content",
            "non-empty text (or give 'messages')",
        ),
        (
            lambda: OpenRouterCompletionOperator(task_id="ask", prompt="{{ params.text }}"),
            "prompt",
            "non-empty text (or a list of texts)",
        ),
    ],
)
def test_billed_text_rendered_from_a_missing_value_is_named_and_nothing_is_sent(
    make: Any, name: str, expected: str, rendered: str
) -> None:
    op = make()
    render(op, params={"text": rendered})
    message = refused(op)
    assert message.startswith(
        f"Invalid OpenRouter request: task 'ask': parameter '{name}' must be {expected}, got {rendered!r}"
    )
    assert "empty upstream XCom" in message


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"model": "../../credits"}, "model"),
        ({"model": "openai/../../credits"}, "model"),
        ({"author": "..", "slug": "credits"}, "author"),
        ({"author": "openai", "slug": "../../key"}, "slug"),
    ],
)
def test_endpoints_model_ids_outside_the_id_shape_are_refused(kwargs: dict[str, str], named: str) -> None:
    message = refused(OpenRouterListModelEndpointsOperator(task_id="e", **kwargs))
    assert f"task 'e': parameter '{named}' must be" in message
    assert "no '/'" in message


# --- issue 7: plain decimal costs, and every operator closes its hook ---------------------------------------


def test_costs_are_written_in_plain_decimal_notation_in_xcom_and_the_log(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from airflow_provider_openrouter.models import _xcom_serde_module

    serde = _xcom_serde_module()  # what XCom uses: the task SDK's on Airflow 3.2+, the core's on 3.1
    serialize, deserialize = serde.serialize, serde.deserialize

    result = chat_result(cost="0.00000015")
    op = OpenRouterChatCompletionOperator(task_id="chat", content="hi")
    _, ti = run(op, FakeHook(result))

    usage = ti.pushed["usage"]
    assert usage["cost"] == "0.00000015"  # the documented type: str, plain decimal notation
    stored = {key: json.dumps(serialize(ti.pushed[key])) for key in ("cost", "usage")}
    stored["return_value"] = json.dumps(serialize(result))
    for key, text in stored.items():
        assert "0.00000015" in text, key
        assert "E-" not in text.upper(), (key, text)
    assert deserialize(json.loads(stored["cost"])) == Decimal("0.00000015")
    assert isinstance(deserialize(json.loads(stored["cost"])), Decimal)
    assert deserialize(json.loads(stored["return_value"])).cost == Decimal("0.00000015")
    assert "cost 0.00000015 USD" in capsys.readouterr().out  # the task SDK logs to stdout here


def test_the_catalog_file_writes_prices_in_plain_decimal_notation(tmp_path: Any) -> None:
    op = OpenRouterListModelsOperator(task_id="m", output_path=str(tmp_path / "catalog.json"))
    run(op, FakeHook(CATALOG))
    text = (tmp_path / "catalog.json").read_text()
    assert '"prompt":"0.00000015"' in text and '"completion":"0.00000004"' in text
    assert "E-" not in text


def _operators_with_answers() -> list[tuple[Any, Any]]:
    return [
        (OpenRouterChatCompletionOperator(task_id="chat", content="hi"), chat_result()),
        (OpenRouterCompletionOperator(task_id="complete", prompt="Once"), text_result()),
        (
            OpenRouterGetCreditsOperator(task_id="credits"),
            Credits(total_credits=Decimal(5), total_usage=Decimal(1)),
        ),
        (OpenRouterGetGenerationOperator(task_id="gen", generation_id="gen-1", wait_for_stats=0), GENERATION),
        (OpenRouterListModelsOperator(task_id="models"), CATALOG),
        (OpenRouterListModelEndpointsOperator(task_id="ends", model="openai/gpt-4o"), ENDPOINTS),
    ]


@pytest.mark.parametrize("outcome", ["success", "failure"])
def test_every_operator_closes_its_hook_when_execute_ends(outcome: str) -> None:
    for op, answer in _operators_with_answers():
        hook = FakeHook(answer if outcome == "success" else OpenRouterAuthenticationError("no", status=401))
        if outcome == "success":
            run(op, hook)
        else:
            with pytest.raises(OpenRouterAuthenticationError):
                run(op, hook)
        assert hook.calls, op.task_id
        assert hook.closed == 1 and not hook.open, op.task_id


def test_on_kill_closes_the_hook() -> None:
    for op, _ in _operators_with_answers():
        hook = FakeHook()
        op.hook = hook
        op.on_kill()
        assert hook.closed == 1, op.task_id
    OpenRouterChatCompletionOperator(task_id="unused", content="hi").on_kill()  # no hook made: nothing to do


@pytest.mark.parametrize("on_exhausted", ["skip", "wait", "fail"])
def test_an_exhausted_budget_skips_defers_or_fails_the_task(on_exhausted: str) -> None:
    from airflow.providers.standard.triggers.temporal import DateTimeTrigger

    try:
        from airflow.sdk.exceptions import TaskDeferred
    except ImportError:  # Airflow 3.1: both live in airflow.exceptions
        from airflow.exceptions import TaskDeferred  # type: ignore[no-redef]

    from airflow_provider_openrouter.budget import BudgetExhaustedError, OpenRouterBudget, skip_exception

    AirflowSkipException = skip_exception()

    budget = OpenRouterBudget("daily", "0.01", period="day", on_exhausted=on_exhausted)
    exhausted = BudgetExhaustedError("budget 'daily' has 0 USD left", budget="daily", period="day")
    op = OpenRouterChatCompletionOperator(task_id="ask", content="hi", budget=budget)
    hook = FakeHook(exhausted, chat_result())
    expected = {"skip": AirflowSkipException, "wait": TaskDeferred, "fail": BudgetExhaustedError}
    with pytest.raises(expected[on_exhausted]) as caught:
        run(op, hook)
    assert hook.calls[0][2]["budget"] is budget
    if on_exhausted == "wait":
        deferred = caught.value
        assert isinstance(deferred, TaskDeferred) and isinstance(deferred.trigger, DateTimeTrigger)
        assert deferred.trigger.moment == budget.next_period_start()
        # Once the period has started the task runs again and sends its request.
        ti = FakeTaskInstance()
        result = op.execute_after_budget_wait({"ti": ti}, event=None)
        assert result.id == ti.pushed["generation_id"] and len(hook.calls) == 2
