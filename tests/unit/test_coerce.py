"""Rendered-value coercion (_coerce): one set of rules for the operators and the hook."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from airflow_provider_openrouter import _coerce
from airflow_provider_openrouter.exceptions import OpenRouterRequestError
from airflow_provider_openrouter.hooks._requests import build_chat_request, failing
from airflow_provider_openrouter.operators import OpenRouterChatCompletionOperator


class Bad(Exception):
    """What the test's ``fail`` builds: keeps the three parts the caller words its error from."""

    def __init__(self, name: str, value: Any, expected: str) -> None:
        super().__init__(f"{name} must be {expected}, got {_coerce.shown(value)}")
        self.name, self.value, self.expected = name, value, expected


def fail(name: str, value: Any, expected: str) -> Bad:
    return Bad(name, value, expected)


class Index:
    """An integer type that is not ``int`` (as numpy's are): it has ``__index__``."""

    def __index__(self) -> int:
        return 12


# --- shown -----------------------------------------------------------------------------------------------


def test_shown_keeps_short_values_and_cuts_long_ones_to_one_short_line() -> None:
    assert _coerce.shown("warm") == "'warm'"
    assert _coerce.shown(3) == "3"
    long_text = "x" * 500
    assert _coerce.shown(long_text) == repr("x" * 77 + "...")
    long_list = list(range(200))
    shown = _coerce.shown(long_list)
    assert len(shown) == 80 and shown.startswith("[0, 1, 2") and shown.endswith("...")
    assert "\n" not in _coerce.shown("a\nb")


# --- numbers ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0.2", 0.2), (" 1.5 ", 1.5), (1, 1.0), (0.7, 0.7), (None, None), ("", None), ("  ", None)],
)
def test_number_accepts_a_number_or_its_text_and_blank_is_unset(value: Any, expected: float | None) -> None:
    result = _coerce.number("temperature", value, fail)
    assert result == expected
    assert result is None or isinstance(result, float)


@pytest.mark.parametrize("value", ["warm", True, "nan", float("nan"), [1], {"a": 1}])
def test_number_refuses_words_booleans_nan_and_containers(value: Any) -> None:
    with pytest.raises(Bad) as caught:
        _coerce.number("temperature", value, fail)
    assert (caught.value.name, caught.value.expected) == ("temperature", "a number")
    assert caught.value.value is value


def test_number_bounds_are_inclusive_and_named_in_the_error() -> None:
    assert _coerce.number("temperature", "2", fail, low=0.0, high=2.0) == 2.0
    assert _coerce.number("temperature", 0, fail, low=0.0, high=2.0) == 0.0
    with pytest.raises(Bad) as caught:
        _coerce.number("temperature", "2.01", fail, low=0.0, high=2.0)
    assert caught.value.expected == "a number from 0 to 2"
    with pytest.raises(Bad) as caught:
        _coerce.number("requests_per_minute", -1, fail, low=0.0)
    assert caught.value.expected == "a number >= 0"


# --- integers --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"), [("256", 256), (" 7 ", 7), (64, 64), (Index(), 12), (None, None), (" ", None)]
)
def test_integer_accepts_an_integer_or_its_text_and_blank_is_unset(value: Any, expected: int | None) -> None:
    result = _coerce.integer("max_tokens", value, fail)
    assert result == expected
    assert result is None or type(result) is int


@pytest.mark.parametrize("value", ["12.5", "3.0", 3.0, 2.5, True, "abc", [1]])
def test_integer_refuses_fractions_floats_booleans_and_words_without_rounding(value: Any) -> None:
    with pytest.raises(Bad) as caught:
        _coerce.integer("seed", value, fail)
    assert caught.value.expected == "a whole number"


def test_integer_lower_bound_and_the_callers_word() -> None:
    assert _coerce.integer("offset", "0", fail, low=0) == 0
    with pytest.raises(Bad) as caught:
        _coerce.integer("max_tokens", 0, fail, low=1)
    assert caught.value.expected == "a whole number >= 1"
    with pytest.raises(Bad) as caught:
        _coerce.integer("max_tokens", "lots", fail, kind="an integer")
    assert caught.value.expected == "an integer"


# --- flags -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        ("true", True),
        (" Yes ", True),
        ("1", True),
        (1, True),
        (False, False),
        ("False", False),
        ("no", False),
        ("0", False),
        ("", False),
        ("None", False),
        ("null", False),
        (None, False),
    ],
)
def test_boolean_reads_the_usual_words(value: Any, expected: bool) -> None:
    assert _coerce.boolean("fail_on_truncation", value, fail) is expected


def test_boolean_refuses_anything_else() -> None:
    with pytest.raises(Bad) as caught:
        _coerce.boolean("fail_on_truncation", "maybe", fail)
    assert caught.value.expected == "true or false"


# --- JSON values -----------------------------------------------------------------------------------------


def test_decode_json_reads_text_and_passes_other_values() -> None:
    native = {"a": 1}
    assert _coerce.decode_json("x", native, fail, "an object", dict) is native
    assert _coerce.decode_json("x", '{"a": [1, 2]}', fail, "an object", dict) == {"a": [1, 2]}
    with pytest.raises(Bad) as caught:
        _coerce.decode_json("x", "{a: 1}", fail, "an object", dict)
    assert caught.value.expected.startswith("an object (not valid JSON: Expecting property name")


@pytest.mark.parametrize(
    ("value", "wanted", "expected"),
    [
        (
            str({"order": ["OpenAI"], "allow_fallbacks": False}),
            dict,
            {"order": ["OpenAI"], "allow_fallbacks": False},
        ),
        (str(["openai/gpt-4o-mini", "x/y"]), list, ["openai/gpt-4o-mini", "x/y"]),
        (str([{"role": "user", "content": "it's"}]), list, [{"role": "user", "content": "it's"}]),
        ("{'seed': None}", dict, {"seed": None}),
    ],
)
def test_decode_json_reads_the_python_repr_a_template_renders_without_tojson(
    value: str, wanted: type, expected: Any
) -> None:
    assert _coerce.decode_json("x", value, fail, "an object", wanted) == expected


@pytest.mark.parametrize(
    ("value", "wanted"),
    [
        ("['a']", dict),  # a Python list where a dict is wanted
        ("{'a': 1}", list),
        ("{'when': datetime.date(2026, 1, 1)}", dict),  # not a literal
        ("limit=5", dict),
        ("{" * 5000, dict),
    ],
)
def test_decode_json_refuses_other_text_and_says_to_render_it_with_tojson(value: str, wanted: type) -> None:
    with pytest.raises(Bad) as caught:
        _coerce.decode_json("provider", value, fail, "an object", wanted)
    assert caught.value.expected.startswith("an object (not valid JSON: ")
    assert caught.value.expected.endswith("render it with `| tojson`)")


@pytest.mark.parametrize("rendered", ["None", "null", " NULL ", "", "  "])
def test_a_rendered_none_or_null_is_unset_for_numbers_objects_and_lists(rendered: str) -> None:
    assert _coerce.unset(rendered)
    assert _coerce.number("temperature", rendered, fail) is None
    assert _coerce.integer("max_tokens", rendered, fail) is None
    assert _coerce.mapping("provider", rendered, fail) is None
    assert _coerce.json_list("tools", rendered, fail, "a JSON list") is None
    assert _coerce.string_list("models", rendered, fail) is None
    assert _coerce.response_format(rendered, fail) is None
    assert _coerce.boolean("stream", rendered, fail) is False


def test_unset_is_only_a_missing_value() -> None:
    assert _coerce.unset(None)
    assert not _coerce.unset("Nonesuch") and not _coerce.unset(0) and not _coerce.unset("0")


def test_mapping_copies_any_mapping_and_reads_its_json_text() -> None:
    original = {"order": ["OpenAI"]}
    copied = _coerce.mapping("provider", original, fail)
    assert copied == original and copied is not original
    assert _coerce.mapping("provider", MappingProxyType({"sort": "price"}), fail) == {"sort": "price"}
    assert _coerce.mapping("provider", '{"sort": "price"}', fail) == {"sort": "price"}
    assert _coerce.mapping("provider", "", fail) is None


@pytest.mark.parametrize("value", ["[1]", [1], "text", 5])
def test_mapping_refuses_what_is_not_an_object_in_the_callers_words(value: Any) -> None:
    with pytest.raises(Bad) as caught:
        _coerce.mapping("provider", value, fail, kind="a JSON object")
    assert caught.value.expected.startswith("a JSON object")


def test_json_list_reads_a_list_and_refuses_an_object() -> None:
    assert _coerce.json_list("tools", '[{"type": "function"}]', fail, "a JSON list") == [{"type": "function"}]
    assert _coerce.json_list("tools", None, fail, "a JSON list") is None
    with pytest.raises(Bad) as caught:
        _coerce.json_list("messages", '{"role": "user"}', fail, "a JSON list")
    assert caught.value.expected == "a JSON list"


# --- lists of strings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("tools, seed", ["tools", "seed"]),
        ('["a/one", " b/two "]', ["a/one", "b/two"]),
        (["x"], ["x"]),
        (("x", "y"), ["x", "y"]),
        ("  ", None),
        (None, None),
    ],
)
def test_string_list_from_a_list_its_json_or_comma_separated_text(value: Any, expected: Any) -> None:
    assert _coerce.string_list("models", value, fail) == expected


@pytest.mark.parametrize(
    ("value", "expected_words"),
    [
        ("a,,b", "a list of non-empty strings"),
        (["a/b", ""], "a list of non-empty strings"),
        ("[1, 2]", "a list of strings"),
        ([1], "a list of strings"),
        ({"a": 1}, "a list of strings or a comma-separated string"),
        ('["a"', "a list of strings (not valid JSON"),
    ],
)
def test_string_list_refuses_empty_items_and_non_strings(value: Any, expected_words: str) -> None:
    with pytest.raises(Bad) as caught:
        _coerce.string_list("models", value, fail)
    assert caught.value.expected.startswith(expected_words)


# --- stop and tool_choice --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("END", "END"),
        ("\n\n", "\n\n"),
        ("", None),
        (None, None),
        ('["a", "b"]', ["a", "b"]),
        (("a", "b", "c", "d"), ["a", "b", "c", "d"]),
    ],
)
def test_stop_is_a_string_or_a_short_list(value: Any, expected: Any) -> None:
    assert _coerce.stop(value, fail) == expected


@pytest.mark.parametrize(
    ("value", "expected_words"),
    [
        (["a", "b", "c", "d", "e"], "a string or a list of at most 4 strings"),
        ("[1]", "a string or a list of strings"),
        (5, "a string or a list of strings"),
        ("[END", "a string or a list of strings (not valid JSON"),
    ],
)
def test_stop_refuses_long_lists_non_strings_and_broken_json(value: Any, expected_words: str) -> None:
    with pytest.raises(Bad) as caught:
        _coerce.stop(value, fail)
    assert caught.value.name == "stop" and caught.value.expected.startswith(expected_words)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (" auto ", "auto"),
        ("required", "required"),
        ('{"type": "function", "function": {"name": "f"}}', {"type": "function", "function": {"name": "f"}}),
        ({"type": "function"}, {"type": "function"}),
        ("", None),
        ({}, None),
        (None, None),
    ],
)
def test_tool_choice_is_a_bare_choice_or_an_object(value: Any, expected: Any) -> None:
    assert _coerce.tool_choice(value, fail) == expected


# --- one rule for both callers -----------------------------------------------------------------------------


def _operator_verdict(parameter: str, value: Any) -> tuple[str, Any]:
    op = OpenRouterChatCompletionOperator(task_id="ask", content="hi", **{parameter: value})
    try:
        return "ok", op.chat_parameters()[parameter]
    except OpenRouterRequestError as err:
        assert "task 'ask'" in str(err) and "\n" not in str(err)
        return "refused", None


def _hook_verdict(parameter: str, value: Any) -> tuple[str, Any]:
    try:
        fail = failing("POST /chat/completions")
        return "ok", build_chat_request(
            "m/x", content="hi", **_coerce.chat_parameters({parameter: value}, fail)
        ).get(parameter)
    except OpenRouterRequestError as err:
        assert "POST /chat/completions" in str(err) and "\n" not in str(err)
        return "refused", None


@pytest.mark.parametrize(
    ("parameter", "value", "verdict"),
    [
        ("max_tokens", "64", ("ok", 64)),
        ("max_tokens", 64.0, ("refused", None)),
        ("max_tokens", "", ("ok", None)),
        ("seed", True, ("refused", None)),
        ("temperature", "nan", ("refused", None)),
        ("temperature", "", ("ok", None)),
        ("models", "a/one,,b/two", ("refused", None)),
        ("models", "a/one, b/two", ("ok", ["a/one", "b/two"])),
        ("stop", '["x", "y"]', ("ok", ["x", "y"])),
        ("stop", ["a", "b", "c", "d", "e"], ("refused", None)),
        ("provider", "", ("ok", None)),
        ("provider", "[1]", ("refused", None)),
        ("tool_choice", " none ", ("ok", "none")),
        ("tool_choice", "{}", ("ok", None)),
        ("temperature", "None", ("ok", None)),
        ("max_tokens", "null", ("ok", None)),
        ("provider", "None", ("ok", None)),
        ("provider", str({"order": ["OpenAI"]}), ("ok", {"order": ["OpenAI"]})),
        ("provider", str(["OpenAI"]), ("refused", None)),
        ("models", str(["a/one", "b/two"]), ("ok", ["a/one", "b/two"])),
        ("response_format", "json_object", ("ok", {"type": "json_object"})),
        ("response_format", " text ", ("ok", {"type": "text"})),
        ("response_format", "json", ("refused", None)),
        ("response_format", {"schema": {}}, ("refused", None)),
    ],
)
def test_the_operator_and_the_hook_give_the_same_verdict(
    parameter: str, value: Any, verdict: tuple[str, Any]
) -> None:
    assert _operator_verdict(parameter, value) == verdict
    assert _hook_verdict(parameter, value) == verdict
