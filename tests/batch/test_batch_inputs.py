"""Input normalisation and validation: every accepted row shape, every refusal names the row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_openrouter.batch.errors import BatchInputError
from airflow_provider_openrouter.batch.inputs import (
    InlineInputSource,
    JsonlInputSource,
    coerce_inline_inputs,
    iter_rows,
)


def _jsonl(tmp_path: Path, lines: list[str]) -> JsonlInputSource:
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return JsonlInputSource(ObjectStoragePath(str(path)))


def test_every_row_shape_is_normalised_to_messages_and_overrides() -> None:
    rows = list(
        iter_rows(
            InlineInputSource(
                [
                    "Say hi",
                    [{"role": "system", "content": "terse"}, {"role": "user", "content": "hi"}],
                    {"custom_id": "p", "prompt": "Hello", "temperature": 0},
                    {"custom_id": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5},
                    {
                        "custom_id": "b",
                        "method": "POST",
                        "url": "/v1/chat/completions",
                        "body": {"messages": [{"role": "user", "content": "y"}], "model": "a/b"},
                    },
                ]
            )
        )
    )
    assert [row.custom_id for row in rows] == ["row-1", "row-2", "p", "m", "b"]
    assert rows[0].messages == [{"role": "user", "content": "Say hi"}]
    assert rows[0].overrides == {}
    assert rows[1].messages[0]["role"] == "system"
    assert rows[2].messages == [{"role": "user", "content": "Hello"}]
    assert rows[2].overrides == {"temperature": 0}
    assert rows[3].overrides == {"max_tokens": 5}
    assert rows[4].messages == [{"role": "user", "content": "y"}]
    assert rows[4].overrides == {"model": "a/b"}
    assert [row.where for row in rows] == [f"inputs[{n}]" for n in range(5)]


def test_jsonl_default_ids_count_rows_not_lines(tmp_path: Path) -> None:
    source = _jsonl(tmp_path, ['"first"', "", "   ", '"second"', '{"custom_id": 7, "prompt": "third"}'])
    rows = list(iter_rows(source))
    assert [(row.index, row.custom_id) for row in rows] == [(0, "row-1"), (1, "row-2"), (2, "7")]
    assert rows[1].where == f"line 4 of {source.description}"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("{not json", "line 2 of"),
        ("42", "is a JSON int"),
        ('{"custom_id": "x"}', "exactly one of 'prompt', 'messages' or 'body' (found none of them)"),
        ('{"prompt": "a", "messages": [{"role": "user"}]}', "found prompt and messages"),
        (
            '{"body": {"messages": [{"role": "user", "content": "a"}]}, "temperature": 1}',
            "put request fields",
        ),
        ('{"url": "/v1/embeddings", "body": {"messages": [{"role": "user"}]}}', "only runs chat completions"),
        ('{"prompt": "   "}', "has no prompt (got ' ')"),
        ('{"prompt": "null"}', "has no prompt (got 'null')"),
        ('{"prompt": 3}', "a prompt that is not text"),
        ('{"messages": []}', "not a non-empty list"),
        ('{"messages": [{"content": "no role"}]}', "message 0 is not an object with a string 'role'"),
        ('{"custom_id": "", "prompt": "a"}', "empty custom_id"),
        ('{"custom_id": ["a"], "prompt": "a"}', "custom_id that is not a string"),
        ('{"body": {"prompt": "a", "messages": [{"role": "user"}]}}', "a chat body needs 'messages'"),
    ],
)
def test_bad_rows_are_refused_with_their_line(tmp_path: Path, line: str, expected: str) -> None:
    source = _jsonl(tmp_path, ['"fine"', line])
    with pytest.raises(BatchInputError) as caught:
        list(iter_rows(source))
    message = str(caught.value)
    assert expected in message
    assert "line 2 of" in message
    assert "\n" not in message


def test_missing_input_file_is_a_clear_error(tmp_path: Path) -> None:
    source = JsonlInputSource(ObjectStoragePath(str(tmp_path / "nope.jsonl")))
    with pytest.raises(BatchInputError, match=r"Cannot read input_path .*nope\.jsonl.*FileNotFoundError"):
        list(iter_rows(source))


def test_non_utf8_input_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'"ok"\n"caf\xe9"\n')
    with pytest.raises(BatchInputError, match=r"line 2 .*UTF-8"):
        list(iter_rows(JsonlInputSource(ObjectStoragePath(str(path)))))


def test_shards_partition_the_rows_round_robin(tmp_path: Path) -> None:
    lines = [json.dumps(f"prompt {n}") for n in range(10)]
    lines.insert(3, "")
    source = _jsonl(tmp_path, lines)
    shards = [[row.index for row in iter_rows(source, shard, 3)] for shard in range(3)]
    assert shards == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    all_ids = sorted(row.custom_id for shard in range(3) for row in iter_rows(source, shard, 3))
    assert all_ids == sorted(row.custom_id for row in iter_rows(source))


def test_a_bad_line_in_another_shard_is_not_parsed(tmp_path: Path) -> None:
    source = _jsonl(tmp_path, ['"a"', "{broken", '"c"'])
    assert [row.custom_id for row in iter_rows(source, 0, 2)] == ["row-1", "row-3"]
    with pytest.raises(BatchInputError, match="line 2"):
        list(iter_rows(source, 1, 2))


@pytest.mark.parametrize(
    "rendered",
    ['["a", {"prompt": "b"}]', "['a', {'prompt': 'b'}]", ("a", {"prompt": "b"})],
)
def test_rendered_inline_inputs_become_a_list(rendered: object) -> None:
    assert coerce_inline_inputs(rendered) == ["a", {"prompt": "b"}]


@pytest.mark.parametrize(
    ("rendered", "expected"),
    [
        ("{{ not rendered", "neither JSON nor a Python list"),
        ({"prompt": "a"}, "must be a list of rows, got dict"),
    ],
)
def test_inline_inputs_that_are_not_a_list_are_refused(rendered: object, expected: str) -> None:
    with pytest.raises(BatchInputError, match=expected):
        coerce_inline_inputs(rendered)
