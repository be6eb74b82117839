"""Operators with the inputs a template renders badly, through the real hook to the emulator over HTTP.

Each test checks what reaches (or does not reach) the emulator: a bad input fails before anything is sent,
and an input that only looks bad (a Python repr, a capitalised role, a format shortcut) is sent as meant.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest

from airflow_provider_openrouter.emulator.testing import RunningEmulator
from airflow_provider_openrouter.exceptions import OpenRouterRequestError
from airflow_provider_openrouter.hooks import OpenRouterHook
from airflow_provider_openrouter.operators import (
    OpenRouterChatCompletionOperator,
    OpenRouterCompletionOperator,
    OpenRouterGetGenerationOperator,
    OpenRouterListModelEndpointsOperator,
)

MakeHook = Callable[..., OpenRouterHook]  # the make_hook fixture (conftest.py)
CONN_ID = "openrouter_bad_inputs"
MODEL = "openai/gpt-4o-mini"


def counts(emulator: RunningEmulator, route: str) -> dict[str, int]:
    """Requests the emulator saw on ``route``, by status code."""
    return dict(emulator.stats()["requests"].get(route, {}))


def execute(operator: Any, **rendered: Any) -> Any:
    """Set attributes as a template renders them (always text), then run the operator."""
    for name, value in rendered.items():
        setattr(operator, name, value)
    return operator.execute({"ti": mock.MagicMock(try_number=1)})


@pytest.fixture
def conn_id(make_hook: MakeHook) -> str:
    make_hook(CONN_ID)  # puts the emulator's connection in the environment under CONN_ID
    return CONN_ID


@pytest.mark.parametrize("rendered", ["None", "null", ""])
def test_generation_id_rendered_from_an_empty_xcom_fails_without_asking_the_server(
    emulator: RunningEmulator, conn_id: str, rendered: str
) -> None:
    op = OpenRouterGetGenerationOperator(
        task_id="stats",
        generation_id="{{ ti.xcom_pull('chat', key='generation_id') }}",
        openrouter_conn_id=conn_id,
    )
    with pytest.raises(OpenRouterRequestError) as caught:
        execute(op, generation_id=rendered)  # wait_for_stats keeps its 60 s default
    assert "parameter 'generation_id'" in str(caught.value) and "upstream XCom" in str(caught.value)
    assert counts(emulator, "GET /generation") == {}


def test_generation_by_the_connectors_id_parameter(emulator: RunningEmulator, conn_id: str) -> None:
    chat = execute(
        OpenRouterChatCompletionOperator(
            task_id="chat", model=MODEL, content="hi", openrouter_conn_id=conn_id
        )
    )
    stats = execute(OpenRouterGetGenerationOperator(task_id="stats", id=chat.id, openrouter_conn_id=conn_id))
    assert stats.id == chat.id
    assert counts(emulator, "GET /generation").get("200") == 1


def test_chat_inputs_that_only_look_wrong_are_sent_as_meant(emulator: RunningEmulator, conn_id: str) -> None:
    op = OpenRouterChatCompletionOperator(
        task_id="chat", model=MODEL, content="Give a JSON object", openrouter_conn_id=conn_id
    )
    rendered = {"role": "User", "provider": str({"order": ["OpenAI"]}), "temperature": "None"}
    answer = execute(op, response_format="json_object", **rendered)
    assert isinstance(answer.parsed_json(), dict)  # the json_object shortcut reached the server
    assert counts(emulator, "POST /chat/completions") == {"200": 1}


def test_chat_content_rendered_empty(emulator: RunningEmulator, conn_id: str) -> None:
    without = OpenRouterChatCompletionOperator(
        task_id="ask", model=MODEL, content="{{ x }}", openrouter_conn_id=conn_id
    )
    with pytest.raises(
        OpenRouterRequestError, match="task 'ask': parameter 'content' must be non-empty text"
    ):
        execute(without, content="")
    assert counts(emulator, "POST /chat/completions") == {}

    with_messages = OpenRouterChatCompletionOperator(
        task_id="ask",
        model=MODEL,
        content="{{ x }}",
        messages=[{"role": "user", "content": "hi"}],
        openrouter_conn_id=conn_id,
    )
    assert execute(with_messages, content="").text
    assert counts(emulator, "POST /chat/completions") == {"200": 1}


def billed_nothing(emulator: RunningEmulator) -> bool:
    stats = emulator.stats()
    return stats["billed_generations"] == 0 and stats["requests"] == {}


@pytest.mark.parametrize("rendered", ["None", "null"])
def test_content_and_prompt_rendered_from_a_missing_value_fail_before_paying(
    emulator: RunningEmulator, conn_id: str, rendered: str
) -> None:
    chat = OpenRouterChatCompletionOperator(
        task_id="ask", model=MODEL, content="{{ params.q }}", openrouter_conn_id=conn_id
    )
    with pytest.raises(OpenRouterRequestError, match="task 'ask': parameter 'content' must be non-empty"):
        execute(chat, content=rendered)
    complete = OpenRouterCompletionOperator(
        task_id="complete", model=MODEL, prompt="{{ params.q }}", openrouter_conn_id=conn_id
    )
    with pytest.raises(OpenRouterRequestError, match="task 'complete': parameter 'prompt' must be non-empty"):
        execute(complete, prompt=rendered)
    assert billed_nothing(emulator)


@pytest.mark.parametrize(
    ("role", "phrase"),
    [
        ("System", "role 'System' makes content a system message"),
        ("tool", "role 'tool' cannot go with content"),
    ],
)
def test_a_flat_role_that_cannot_be_answered_is_named_before_paying(
    emulator: RunningEmulator, conn_id: str, role: str, phrase: str
) -> None:
    op = OpenRouterChatCompletionOperator(
        task_id="ask", model=MODEL, role="{{ params.role }}", content="Hello", openrouter_conn_id=conn_id
    )
    with pytest.raises(OpenRouterRequestError) as caught:
        execute(op, role=role)
    assert phrase in str(caught.value) and "role='user'" in str(caught.value)
    assert "messages[0]" not in str(caught.value)
    assert billed_nothing(emulator)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"model": "../../credits"},
        {"model": "openai/../../../credits"},
        {"author": "..", "slug": "credits"},
        {"author": "openai", "slug": "../../key"},
    ],
)
def test_a_model_id_with_path_segments_sends_nothing_outside_models(
    emulator: RunningEmulator, conn_id: str, kwargs: dict[str, str]
) -> None:
    op = OpenRouterListModelEndpointsOperator(task_id="endpoints", openrouter_conn_id=conn_id, **kwargs)
    with pytest.raises(OpenRouterRequestError, match="no '/'"):
        execute(op)
    assert emulator.stats()["requests"] == {}


def test_a_model_id_with_a_variant_reaches_its_endpoints(emulator: RunningEmulator, conn_id: str) -> None:
    op = OpenRouterListModelEndpointsOperator(
        task_id="endpoints", model="meta-llama/llama-3.3-70b-instruct:free", openrouter_conn_id=conn_id
    )
    assert execute(op).id == "meta-llama/llama-3.3-70b-instruct:free"
    assert set(emulator.stats()["requests"]) == {"GET /models/{author}/{slug}/endpoints"}
