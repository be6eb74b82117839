"""json_schema answers against the schemas pydantic generates ($defs/$ref, anyOf with null, enums, nested
lists), and the ``[[emulator: invalid-json]]`` directive that makes an answer break its schema on purpose."""

from __future__ import annotations

import enum
import json
import time
from typing import Any

import httpx
import jsonschema
import pydantic
import pytest

from airflow_provider_openrouter.emulator.testing import RunningEmulator

from .conftest import chat

MODEL = "openai/gpt-4o-mini"


class Priority(enum.Enum):
    LOW = "low"
    HIGH = "high"


class Contact(pydantic.BaseModel):
    name: str
    email: str | None = None


class LineItem(pydantic.BaseModel):
    sku: str
    quantity: int = pydantic.Field(ge=1, le=99)
    unit_price: float


class Ticket(pydantic.BaseModel):
    """Every shape a pydantic user meets: nested models, lists of them, an enum, optional fields."""

    subject: str
    priority: Priority
    requester: Contact
    items: list[LineItem]
    tags: list[str] = []
    escalated: bool | None = None
    assignee: Contact | None = None


class AllOptional(pydantic.BaseModel):
    note: str | None = None


# A string, or anything at all: no value breaks it.
ANY_VALUE = {"anyOf": [{"type": "string"}, {"description": "anything"}]}


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def response_format(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {"name": model.__name__, "strict": True, "schema": model.model_json_schema()},
    }


def answer_of(http: httpx.Client, prompt: str, model: type[pydantic.BaseModel]) -> tuple[str, dict[str, Any]]:
    response = chat(http, prompt, response_format=response_format(model))
    assert response.status_code == 200, response.text
    body = response.json()
    return body["choices"][0]["message"]["content"], body["usage"]


@pytest.mark.parametrize("index", range(8))
def test_answers_validate_into_the_pydantic_model_whose_schema_was_sent(
    http: httpx.Client, index: int
) -> None:
    text, _ = answer_of(http, f"Extract ticket {index}", Ticket)
    jsonschema.validate(json.loads(text), Ticket.model_json_schema())
    ticket = Ticket.model_validate_json(text)
    assert isinstance(ticket.requester, Contact)
    assert all(isinstance(item, LineItem) for item in ticket.items)


def test_invalid_json_directive_answers_well_formed_json_missing_a_required_property(
    http: httpx.Client,
) -> None:
    text, usage = answer_of(http, "Extract this ticket [[emulator: invalid-json]]", Ticket)
    value = json.loads(text)
    assert isinstance(value, dict)
    with pytest.raises(pydantic.ValidationError, match="Field required"):
        Ticket.model_validate_json(text)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(value, Ticket.model_json_schema())
    assert usage["cost"] > 0  # billed like any answer: the model did answer


def test_invalid_json_directive_answers_the_wrong_type_when_nothing_is_required(http: httpx.Client) -> None:
    text, _ = answer_of(http, "Add a note [[emulator: invalid-json]]", AllOptional)
    with pytest.raises(pydantic.ValidationError):
        AllOptional.model_validate_json(text)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(text), AllOptional.model_json_schema())


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, "only applies to POST /chat/completions with response_format"),
        ({"response_format": {"type": "json_object"}}, "only applies to POST /chat/completions with"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "any", "schema": ANY_VALUE}}},
            "accepts any JSON value",
        ),
    ],
)
def test_invalid_json_directive_is_a_400_where_no_answer_can_break_a_schema(
    http: httpx.Client, fields: dict[str, Any], expected: str
) -> None:
    response = chat(http, "Hello [[emulator: invalid-json]]", **fields)
    assert response.status_code == 400
    assert expected in response.json()["error"]["message"]


def test_invalid_json_directive_holds_in_a_stream_and_in_a_batch(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    prompt = "Extract this ticket [[emulator: invalid-json]]"
    whole, _ = answer_of(http, prompt, Ticket)
    fields = {"response_format": response_format(Ticket), "stream": True}
    with http.stream(
        "POST", "/chat/completions", json={"model": MODEL, "messages": user(prompt), **fields}
    ) as stream:
        events = [line[6:] for line in stream.iter_lines() if line.startswith("data: {")]
    pieces = [json.loads(event)["choices"] for event in events]
    assert "".join(c[0]["delta"].get("content") or "" for c in pieces if c) == whole

    emulator.configure(batch_duration_s=0)
    body = {"messages": user(prompt), "response_format": response_format(Ticket)}
    created = http.post(
        "/batches",
        json={
            "endpoint": "/v1/chat/completions",
            "model": MODEL,
            "requests": [{"custom_id": "r", "body": body}],
        },
    ).json()
    deadline = time.monotonic() + 30
    while (batch := http.get(f"/batches/{created['id']}").json())["status"] != "completed":
        assert time.monotonic() < deadline, batch["status"]
        time.sleep(0.02)
    text = batch["results"][0]["response"]["body"]["choices"][0]["message"]["content"]
    with pytest.raises(pydantic.ValidationError, match="Field required"):
        Ticket.model_validate_json(text)
