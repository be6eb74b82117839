"""A request body read the fast way means what json.loads means, and its billed-twice digest does not depend
on whether the parsed body is reused."""

from __future__ import annotations

import json

import pytest

from airflow_provider_openrouter.emulator.asgi import HTTPError, Request
from airflow_provider_openrouter.emulator.faults import content_digest

SCOPE = {"type": "http", "method": "POST", "query_string": b"", "http_version": "1.1", "headers": []}
BODY = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Grüße \U0001f600"}]}


def _request(raw: bytes) -> Request:
    return Request(SCOPE, send=None, path="/chat/completions", body=raw)  # type: ignore[arg-type]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32-be"])
def test_a_body_in_any_encoding_json_allows_parses_as_json_loads_parses_it(encoding: str) -> None:
    raw = json.dumps(BODY, ensure_ascii=False).encode(encoding)
    assert _request(raw).json_body() == json.loads(raw) == BODY


def test_a_lone_surrogate_sent_as_utf_8_bytes_parses_as_json_loads_parses_it() -> None:
    raw = b'{"model": "a\xed\xa0\x80"}'
    assert _request(raw).json_body() == json.loads(raw) == {"model": "a\ud800"}


@pytest.mark.parametrize("raw", [b'{"model": "a\xff"}', b'{"model": ', b'{"a": "\\ud800"}x'])
def test_a_body_that_is_not_json_gets_the_same_400_as_json_loads_gives(raw: bytes) -> None:
    with pytest.raises((ValueError, UnicodeDecodeError)) as expected:
        json.loads(raw)
    with pytest.raises(HTTPError) as answered:
        _request(raw).json_body()
    assert answered.value.status == 400
    assert f"({expected.value})" in answered.value.message


def test_the_digest_of_an_attributed_body_is_the_same_from_its_bytes_or_its_parsed_form() -> None:
    raw = json.dumps({**BODY, "metadata": {"try": "2"}, "trace": {"trace_id": "t"}}).encode()
    request = _request(raw)
    parsed = request.json_body()
    assert request.parsed is parsed
    another_try = {**BODY, "metadata": {"try": "3"}}  # the same request, sent again by a later try
    assert content_digest(raw, parsed) == content_digest(raw) == content_digest(another_try)
