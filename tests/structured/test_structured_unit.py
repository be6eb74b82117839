"""Units of structured.py: the schema sent, the answer validated, the output class loaded."""

from __future__ import annotations

import importlib
import json
import sys
import types
from typing import Any

import pytest
from pydantic import BaseModel
from structured_types import AnyValue, ExtraAllowed, OpenMapping, Priority, Ticket

from airflow_provider_openrouter.models import ChatCompletion, Model
from airflow_provider_openrouter.structured import (
    InvalidOutputError,
    load_output_type,
    register_output_type,
    response_format_for,
    supports_strict,
    validate_output,
)


def answer(content: str | None, *, refusal: str | None = None, finish_reason: str = "stop") -> ChatCompletion:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": refusal}
    return ChatCompletion.model_validate(
        {"id": "gen-42", "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}]}
    )


def objects(schema: Any) -> list[dict[str, Any]]:
    """Every object schema inside ``schema``, found by walking all of it."""
    found: list[dict[str, Any]] = []
    if isinstance(schema, dict):
        if schema.get("type") == "object":
            found.append(schema)
        for value in schema.values():
            found += objects(value)
    elif isinstance(schema, list):
        for value in schema:
            found += objects(value)
    return found


# --- response_format_for / supports_strict ---------------------------------------------------------------


def test_strict_schema_closes_every_object_and_requires_every_property() -> None:
    fmt = response_format_for(Ticket, strict=True)
    assert fmt["type"] == "json_schema"
    spec = fmt["json_schema"]
    assert (spec["name"], spec["strict"]) == ("Ticket", True)
    closed = objects(spec["schema"])
    assert {obj["title"] for obj in closed} == {"Ticket", "Address"}
    for obj in closed:
        assert obj["additionalProperties"] is False
        assert sorted(obj["required"]) == sorted(obj["properties"])
    assert "default" not in json.dumps(spec["schema"])


def test_strict_schema_agrees_with_openais_own_strict_conversion() -> None:
    # An independent oracle: the OpenAI SDK's converter decides the same required/closed shape.
    openai_pydantic = pytest.importorskip("openai.lib._pydantic")
    theirs = openai_pydantic.to_strict_json_schema(Ticket)
    ours = response_format_for(Ticket, strict=True)["json_schema"]["schema"]
    assert ours["required"] == theirs["required"]
    assert ours["$defs"]["Address"]["required"] == theirs["$defs"]["Address"]["required"]
    assert ours["additionalProperties"] is theirs["additionalProperties"] is False


def test_non_strict_sends_pydantics_schema_unchanged() -> None:
    spec = response_format_for(Ticket, strict=False)["json_schema"]
    assert spec["strict"] is False
    assert spec["schema"] == Ticket.model_json_schema()


@pytest.mark.parametrize("cls", [OpenMapping, AnyValue, ExtraAllowed])
def test_classes_strict_mode_cannot_express_fall_back_to_non_strict(cls: type[BaseModel]) -> None:
    spec = response_format_for(cls, strict=True)["json_schema"]
    assert spec["strict"] is False
    assert spec["schema"] == cls.model_json_schema()


def test_strict_needs_structured_outputs_in_the_catalog() -> None:
    assert supports_strict(Model(id="a/b", supported_parameters=["tools", "structured_outputs"]))
    assert not supports_strict(Model(id="a/b", supported_parameters=["tools", "response_format"]))
    assert not supports_strict(Model(id="a/b"))
    assert not supports_strict(None)


def test_schema_name_keeps_to_the_allowed_characters() -> None:
    named = type("Ticket Ä v2", (BaseModel,), {"__annotations__": {"x": int}})
    assert response_format_for(named, strict=False)["json_schema"]["name"] == "Ticket___v2"


# --- validate_output -------------------------------------------------------------------------------------


def test_valid_answer_becomes_an_instance() -> None:
    text = '{"title": "Printer on fire", "priority": "high", "tags": ["hw"], "address": {"city": "Oslo"}}'
    ticket = validate_output(Ticket, answer(text))
    assert isinstance(ticket, Ticket)
    assert (ticket.title, ticket.priority, ticket.tags) == ("Printer on fire", Priority.high, ["hw"])
    assert ticket.address is not None and ticket.address.city == "Oslo"


def test_fenced_json_and_raw_bodies_are_accepted() -> None:
    fenced = answer('```json\n{"title": "t"}\n```')
    assert validate_output(Ticket, fenced).title == "t"
    assert validate_output(Ticket, fenced.model_dump(mode="json")).title == "t"


def test_validation_errors_on_one_line_with_the_generation() -> None:
    bad = '{"priority": "urgent", "tags": ["ok", 7]}'
    with pytest.raises(InvalidOutputError) as caught:
        validate_output(Ticket, answer(bad))
    err = caught.value
    text = str(err)
    assert "\n" not in text
    assert err.billed is True
    assert err.generation_id == "gen-42"
    assert "title: Field required" in text
    assert "priority: Input should be 'low' or 'high' (got 'urgent')" in text
    assert "tags.1: Input should be a valid string (got '7')" in text
    assert "gen-42" in text


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        (answer("not json at all"), "the answer is not JSON: Expecting value at char 0"),
        (answer('{"title": "cut', finish_reason="length"), "not JSON (cut off by max_tokens)"),
        (answer(None, refusal="I can't help with that."), "the model refused: I can't help with that."),
        (answer(""), "the answer has no text (finish_reason 'stop')"),
    ],
)
def test_unreadable_answers_raise_invalid_output(completion: ChatCompletion, expected: str) -> None:
    with pytest.raises(InvalidOutputError, match="does not match output_type") as caught:
        validate_output(Ticket, completion)
    assert expected in str(caught.value)
    assert caught.value.billed is True


# --- register_output_type / load_output_type ---------------------------------------------------------------


def test_local_and_nested_classes_are_refused_with_the_reason() -> None:
    class Local(BaseModel):
        x: int

    with pytest.raises(TypeError, match=r"Local is defined inside a function.*top level of a module"):
        register_output_type(Local)

    class Outer:
        class Inner(BaseModel):
            x: int

    with pytest.raises(TypeError, match=r"Outer\.Inner is defined inside"):
        register_output_type(Outer.Inner)


def test_only_pydantic_classes_are_output_types() -> None:
    with pytest.raises(TypeError, match=r"must be a pydantic model class .* got builtins.dict"):
        load_output_type(dict)
    with pytest.raises(TypeError, match="must be a pydantic model class"):
        load_output_type("structured_types.Priority")


def test_load_output_type_by_dotted_path() -> None:
    assert load_output_type("structured_types.Ticket") is Ticket
    assert load_output_type(Ticket) is Ticket


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("Ticket", "is not a dotted path"),
        ("no_such_module_xyz.Ticket", "module 'no_such_module_xyz' cannot be imported"),
        ("structured_types.Nope", "module 'structured_types' has no attribute 'Nope'"),
    ],
)
def test_bad_dotted_paths_name_what_is_wrong(path: str, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        load_output_type(path)


def xcom_serde() -> Any:
    """The serde module XCom uses: the task SDK's (Airflow 3.2+), else Airflow 3.1's."""
    try:
        return importlib.import_module("airflow.sdk.serde")
    except ImportError:
        return importlib.import_module("airflow.serialization.serde")


def test_registered_class_round_trips_through_xcom_serde() -> None:
    serde = xcom_serde()
    register_output_type(Ticket)
    stored = json.loads(json.dumps(serde.serialize(Ticket(title="t", tags=["a"]))))
    assert stored["__classname__"] == "structured_types.Ticket"
    back = serde.deserialize(stored)
    assert isinstance(back, Ticket)
    assert back == Ticket(title="t", tags=["a"])


def test_a_class_parsed_again_in_the_same_process_still_registers(monkeypatch: pytest.MonkeyPatch) -> None:
    # `airflow dags test` parses a DAG file again for each task, in one process: the operator built from the
    # first parse holds a class whose name now imports a newer class. Airflow 3.3+ allow_class refuses that.
    serde = pytest.importorskip("airflow.sdk.serde")
    if not hasattr(serde, "allow_class"):
        pytest.skip("this serde has no allow_class (Airflow < 3.3) and checks nothing of the kind")

    def parse() -> type[BaseModel]:
        module = types.ModuleType("reparsed_dag_file")
        exec("from pydantic import BaseModel\nclass Row(BaseModel):\n    x: int\n", module.__dict__)
        monkeypatch.setitem(sys.modules, "reparsed_dag_file", module)
        return module.Row  # type: ignore[no-any-return]

    first = parse()
    newer = parse()
    assert register_output_type(first) is first
    stored = json.loads(json.dumps(serde.serialize(first(x=1))))
    assert serde.deserialize(stored) == newer(x=1)
