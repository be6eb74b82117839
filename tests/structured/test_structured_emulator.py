"""structured.py over real HTTP: the strict schema is one a server accepts and answers, the answer validates,
and an answer that breaks the schema is an InvalidOutputError naming the field."""

from __future__ import annotations

import pytest
from structured_types import Address, Ticket

from airflow_provider_openrouter.emulator.testing import RunningEmulator
from airflow_provider_openrouter.hooks import OpenRouterHook
from airflow_provider_openrouter.structured import (
    InvalidOutputError,
    response_format_for,
    supports_strict,
    validate_output,
)

CONN_ID = "openrouter_structured"


@pytest.fixture
def hook(openrouter_emulator_clean: RunningEmulator, monkeypatch: pytest.MonkeyPatch) -> OpenRouterHook:
    for name, value in openrouter_emulator_clean.airflow_conn_env(CONN_ID, requests_per_minute=0).items():
        monkeypatch.setenv(name, value)
    return OpenRouterHook(CONN_ID)


# From the emulator's catalog: only the first lists structured_outputs in its supported_parameters.
@pytest.mark.parametrize(
    ("model_id", "strict"), [("openai/gpt-4.1-mini", True), ("anthropic/claude-3.5-haiku", False)]
)
def test_the_catalog_decides_strict_and_the_answer_validates(
    hook: OpenRouterHook, model_id: str, strict: bool
) -> None:
    with hook:
        fmt = response_format_for(Ticket, strict=supports_strict(hook.list_models().get(model_id)))
        assert fmt["json_schema"]["strict"] is strict
        answer = hook.chat_completion(
            model_id, content="Ticket: the printer is on fire.", response_format=fmt
        )
    ticket = validate_output(Ticket, answer)
    assert isinstance(ticket, Ticket)
    assert ticket.address is None or isinstance(ticket.address, Address)


def test_an_answer_that_breaks_the_schema_is_invalid_output(hook: OpenRouterHook) -> None:
    with hook:
        answer = hook.chat_completion(
            "openai/gpt-4.1-mini",
            content="[[emulator: invalid-json]] Ticket: the VPN drops.",
            response_format=response_format_for(Ticket, strict=True),
        )
    with pytest.raises(InvalidOutputError) as caught:
        validate_output(Ticket, answer)
    # The emulator leaves out the schema's first required property.
    assert "Ticket: title: Field required" in str(caught.value)
    assert caught.value.generation_id == answer.id
    assert caught.value.billed is True and answer.cost is not None and answer.cost > 0
