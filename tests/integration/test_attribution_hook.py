"""Attribution against the emulator: every billable body the hook sends names the task that sent it.

The emulator keeps each generation's ``metadata``, ``session_id`` and ``trace`` as the request sent them
(``RunningEmulator.generations()``); ``GET /generation`` answers ``session_id`` as OpenRouter does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_openrouter.emulator.testing import RunningEmulator
from airflow_provider_openrouter.exceptions import OpenRouterConfigurationError, OpenRouterRequestError
from airflow_provider_openrouter.hooks import OpenRouterHook

MakeHook = Callable[..., OpenRouterHook]  # the make_hook fixture (conftest.py)

MODEL = "openai/gpt-4o-mini"


class _TaskInstance:
    dag_id = "nightly"
    task_id = "summarise"
    run_id = "scheduled__2026-12-01T00:00:00+00:00"
    map_index = 3
    try_number = 2


TASK_METADATA = {
    "airflow_dag_id": "nightly",
    "airflow_task_id": "summarise",
    "airflow_run_id": "scheduled__2026-12-01T00:00:00+00:00",
    "airflow_map_index": "3",
    "airflow_try_number": "2",
}
SESSION = "nightly/scheduled__2026-12-01T00:00:00+00:00"


@pytest.fixture
def in_task() -> Iterator[None]:
    """Run the test's hook calls as if inside a task (what the task runner sets up around ``execute``)."""
    from airflow.sdk.execution_time.context import set_current_context

    with set_current_context({"ti": _TaskInstance()}):  # type: ignore[arg-type]
        yield


def _only(emulator: RunningEmulator) -> dict[str, Any]:
    (generation,) = emulator.generations()
    return generation


def _chat_requests(emulator: RunningEmulator) -> int:
    requests = emulator.stats()["requests"]
    return sum(
        sum(requests.get(route, {}).values()) for route in ("POST /chat/completions", "POST /completions")
    )


@pytest.mark.usefixtures("in_task")
@pytest.mark.parametrize("stream", [False, True])
def test_a_chat_inside_a_task_names_the_task_run_and_try(
    emulator: RunningEmulator, make_hook: MakeHook, stream: bool
) -> None:
    hook = make_hook()
    answer = hook.chat_completion(MODEL, content="Hello", stream=stream)

    generation = _only(emulator)
    assert generation["id"] == answer.id
    assert generation["metadata"] == TASK_METADATA
    assert generation["session_id"] == SESSION
    assert generation["trace"] == {
        "trace_id": SESSION,
        "trace_name": "nightly",
        "span_name": "summarise[3]",
        "generation_name": "summarise",
    }


@pytest.mark.usefixtures("in_task")
def test_a_legacy_completion_inside_a_task_carries_the_same_fields(
    emulator: RunningEmulator, make_hook: MakeHook
) -> None:
    make_hook().completion(MODEL, "Once upon a time")

    generation = _only(emulator)
    assert generation["metadata"] == TASK_METADATA
    assert generation["session_id"] == SESSION


@pytest.mark.usefixtures("in_task")
def test_get_generation_answers_the_session_of_the_run(
    emulator: RunningEmulator, make_hook: MakeHook
) -> None:
    emulator.configure(generation_delay_s=0)
    hook = make_hook()
    answer = hook.chat_completion(MODEL, content="Hello")

    assert hook.get_generation(answer.id).session_id == SESSION


def test_outside_a_task_only_the_users_pairs_are_sent(emulator: RunningEmulator, make_hook: MakeHook) -> None:
    hook = make_hook()
    hook.chat_completion(MODEL, content="one")
    hook.chat_completion(MODEL, content="two", attribution={"team": "search", "budget": 7})

    bare, paired = emulator.generations()
    assert (bare["metadata"], bare["session_id"], bare["trace"]) == (None, None, None)
    assert (paired["metadata"], paired["session_id"], paired["trace"]) == (
        {"team": "search", "budget": "7"},
        None,
        None,
    )


@pytest.mark.usefixtures("in_task")
def test_what_the_user_put_in_the_body_wins(emulator: RunningEmulator, make_hook: MakeHook) -> None:
    make_hook().chat_completion(
        MODEL,
        content="Hello",
        extra_body={"metadata": {"airflow_task_id": "mine"}, "session_id": "my-session"},
    )

    generation = _only(emulator)
    assert generation["session_id"] == "my-session"
    assert generation["metadata"]["airflow_task_id"] == "mine"
    assert generation["metadata"]["airflow_dag_id"] == "nightly"


@pytest.mark.usefixtures("in_task")
@pytest.mark.parametrize(
    ("extra", "parameter", "expected"),
    [
        (False, None, None),
        ("false", None, None),
        ({"team": "ops"}, None, {**TASK_METADATA, "team": "ops"}),
        ('{"team": "ops"}', {"cost_centre": "42"}, {**TASK_METADATA, "team": "ops", "cost_centre": "42"}),
        ({"team": "ops"}, False, None),
        (False, {"team": "ml"}, {**TASK_METADATA, "team": "ml"}),
    ],
)
def test_the_connection_extra_and_the_parameter_turn_it_off_or_add_pairs(
    emulator: RunningEmulator, make_hook: MakeHook, extra: Any, parameter: Any, expected: Any
) -> None:
    make_hook(attribution=extra).chat_completion(MODEL, content="Hello", attribution=parameter)

    generation = _only(emulator)
    assert generation["metadata"] == expected
    assert (generation["session_id"] is None) is (expected is None)


@pytest.mark.usefixtures("in_task")
def test_seventeen_pairs_fail_before_anything_is_sent_naming_the_parameter(
    emulator: RunningEmulator, make_hook: MakeHook
) -> None:
    pairs = {f"k{n}": "v" for n in range(17)}
    with pytest.raises(OpenRouterRequestError, match=r"parameter 'attribution'.*16") as caught:
        make_hook().chat_completion(MODEL, content="Hello", attribution=pairs)

    assert caught.value.status is None
    assert _chat_requests(emulator) == 0


@pytest.mark.parametrize(
    "pairs",
    [{"airflow_dag_id": "spoof"}, {"k" * 65: "v"}, {"k": "v" * 513}, {"k": ["a list"]}, "not json"],
)
def test_pairs_openrouter_would_refuse_fail_before_sending(
    emulator: RunningEmulator, make_hook: MakeHook, pairs: Any
) -> None:
    with pytest.raises(OpenRouterRequestError, match="parameter 'attribution'"):
        make_hook().completion(MODEL, "Hello", attribution=pairs)
    assert _chat_requests(emulator) == 0


def test_a_bad_connection_extra_is_a_configuration_error_naming_it(
    emulator: RunningEmulator, make_hook: MakeHook
) -> None:
    with pytest.raises(
        OpenRouterConfigurationError, match="extra 'attribution' of connection 'openrouter_it'"
    ):
        make_hook(attribution="[1, 2]").chat_completion(MODEL, content="Hello")
    assert _chat_requests(emulator) == 0


class _StandInTaskInstance(_TaskInstance):
    def xcom_push(self, key: str, value: Any) -> None:
        pass


@pytest.mark.parametrize("rendered", ["None", "null", "  "])
def test_a_system_prompt_rendered_from_a_missing_value_sends_no_system_message(
    emulator: RunningEmulator, make_hook: MakeHook, rendered: str
) -> None:
    from airflow_provider_openrouter.operators import OpenRouterChatCompletionOperator

    make_hook("openrouter_default")
    answers = [
        OpenRouterChatCompletionOperator(
            task_id="chat", model=MODEL, content="Hello", system_prompt=system_prompt
        ).execute({"ti": _StandInTaskInstance()})  # type: ignore[arg-type]
        for system_prompt in (None, rendered)
    ]

    without, with_rendered = (answer.usage for answer in answers)
    assert with_rendered is not None and without is not None
    assert with_rendered.prompt_tokens == without.prompt_tokens
    assert with_rendered.cost == without.cost
