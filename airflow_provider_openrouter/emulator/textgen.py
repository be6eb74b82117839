"""Deterministic answers: text, JSON that fits a schema, tool calls, and the token estimate.

Everything here is a pure function of the request (model, messages, tools, response format, the request's
``seed``) and the emulator's ``--seed``; temperature and the other sampling parameters are ignored. So the
same request always gets the same answer, and tests can compare answers exactly.

Token estimate (documented in docs/emulator.md): a text of ``n`` characters is ``ceil(n / 4)`` tokens.
``prompt_tokens = 3 + sum over messages of (4 + tokens(text of the message) + 85 per image, file, audio or
video part) + tokens(JSON of tools) + tokens(JSON of response_format)``;
``completion_tokens = tokens(answer)``, where the answer of a tool call is the function name followed by the
JSON of its arguments.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from airflow_provider_openrouter.emulator.schemagen import schema_json
from airflow_provider_openrouter.emulator.words import WORDS as _WORDS

_WORD_OF_BYTE = tuple(_WORDS[byte % len(_WORDS)] for byte in range(256))  # the words are lower case
_CAPITAL_OF_BYTE = tuple(word.capitalize() for word in _WORD_OF_BYTE)  # a sentence's first word
_MEDIA_PART_TOKENS = 85
# Gemini's image models count 1,290 output tokens per generated image.
IMAGE_TOKENS = 1290


def tokens(text: str) -> int:
    return (len(text) + 3) // 4


def _part_text_and_media(content: Any) -> tuple[str, int]:
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        return "", 0
    texts: list[str] = []
    media = 0
    for part in content:
        if isinstance(part, dict) and part.get("type") == "text":
            texts.append(str(part.get("text", "")))
        else:
            media += 1
    return "\n".join(texts), media


def message_text(message: dict[str, Any]) -> str:
    """The text a message carries (content, name, tool-call arguments): what the token estimate counts."""
    text, _ = _part_text_and_media(message.get("content"))
    extra = [str(message["name"])] if message.get("name") else []
    for call in message.get("tool_calls") or ():
        function = (call.get("function") or {}) if isinstance(call, dict) else {}
        extra.append(f"{function.get('name', '')}{function.get('arguments', '')}")
    return "\n".join([text, *extra]) if extra else text


def prompt_tokens(messages: list[dict[str, Any]], tools: Any = None, response_format: Any = None) -> int:
    total = 3
    for message in messages:
        text, media = _part_text_and_media(message.get("content"))
        total += 4 + tokens(text) + media * _MEDIA_PART_TOKENS
        if message.get("name") or message.get("tool_calls"):
            total += tokens(message_text(message)) - tokens(text)
    if tools:
        total += tokens(json.dumps(tools, separators=(",", ":")))
    if response_format:
        total += tokens(json.dumps(response_format, separators=(",", ":")))
    return total


# Built once: json.dumps with options builds an encoder per call.
_canonical_json = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode


def answer_digest(model: str, messages: Any, request_seed: Any, emulator_seed: int) -> bytes:
    """64 bytes that determine one answer: a pure function of its inputs (dict key order does not matter)."""
    canonical = _canonical_json(messages)
    return hashlib.blake2b(
        f"{model}\x00{emulator_seed}\x00{request_seed}\x00{canonical}".encode(), digest_size=64
    ).digest()


def sentence_text(digest: bytes) -> str:
    """Sentences of 4 to 12 plain words, 12 to 39 words in all, read straight from the digest's bytes.

    Plain text is the hot path of the emulator, so it takes no random generator: byte 0 gives the word count,
    bytes 1-39 the words, bytes 41-50 the sentence lengths.
    """
    count = 12 + digest[0] % 28
    words = [_WORD_OF_BYTE[byte] for byte in digest[1 : 1 + count]]
    position = 0
    for length_byte in digest[41:]:
        if position >= count:
            break
        words[position] = _CAPITAL_OF_BYTE[digest[1 + position]]
        position += 4 + length_byte % 9
        if position < count:
            words[position - 1] += "."
    words[-1] += "."
    return " ".join(words)


_NATIVE_FINISH = {
    "anthropic": {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"},
    "google": {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"},
}


@functools.lru_cache(maxsize=4096)  # a handful per model; every answer asks twice
def native_finish_reason(model_id: str, finish_reason: str | None) -> str | None:
    if finish_reason is None:
        return None
    return _NATIVE_FINISH.get(model_id.split("/", 1)[0], {}).get(finish_reason, finish_reason)


@dataclass(slots=True)
class Answer:
    """What the model 'said'. ``content`` is None for a tool call and a refusal.

    The optional parts (see :mod:`.extras`) are None unless the request asked for them; ``completion_tokens``
    counts the reasoning and image tokens too, as OpenRouter bills them.
    """

    content: str | None
    tool_calls: list[dict[str, Any]] | None
    finish_reason: str
    completion_tokens: int
    reasoning: str | None = None
    reasoning_details: list[dict[str, Any]] | None = None
    refusal: str | None = None
    annotations: list[dict[str, Any]] | None = None
    images: list[dict[str, Any]] | None = None
    logprobs: list[dict[str, Any]] | None = None  # one entry per token of content (or of refusal)
    reasoning_tokens: int = 0
    image_tokens: int = 0


def cut_text(text: str, stop: Any, max_tokens: int | None) -> tuple[str, str]:
    """Apply ``stop`` sequences and ``max_tokens``; returns (text, finish_reason)."""
    stops = [stop] if isinstance(stop, str) else [s for s in (stop or ()) if isinstance(s, str)]
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    if cut >= 0:
        text = text[:cut]
    if max_tokens is not None and tokens(text) > max_tokens:
        return text[: max_tokens * 4], "length"
    return text, "stop"


def chosen_tool(tools: Any, tool_choice: Any) -> dict[str, Any] | None:
    """The function tool the request forces, or None when the model may answer in text."""
    functions = [t for t in tools or () if isinstance(t, dict) and t.get("type") == "function"]
    if not functions:
        return None
    if tool_choice == "required":
        return functions[0]
    if isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
        wanted = (tool_choice.get("function") or {}).get("name")
        return next((t for t in functions if (t.get("function") or {}).get("name") == wanted), None)
    return None


def answer(
    *,
    model_id: str,
    messages: Any,
    request_seed: Any,
    emulator_seed: int,
    response_format: Any = None,
    tool: dict[str, Any] | None = None,
    stop: Any = None,
    max_tokens: int | None = None,
    break_schema: bool = False,
) -> Answer:
    """The answer to one input; ``break_schema`` makes a ``json_schema`` answer one its schema rejects."""
    digest = answer_digest(model_id, messages, request_seed, emulator_seed)
    if tool is not None:
        function = tool.get("function") or {}
        name = str(function.get("name", ""))
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        arguments = schema_json(parameters, digest, f"tools: function {name!r} parameters", (",", ":"))
        call_id = "call_" + hashlib.blake2b(f"{name}{arguments}".encode(), digest_size=12).hexdigest()
        calls = [
            {
                "id": call_id,
                "type": "function",
                "index": 0,
                "function": {"name": name, "arguments": arguments},
            }
        ]
        return Answer(None, calls, "tool_calls", tokens(name + arguments))
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {"type": "object"}
        where = "response_format.json_schema.schema"
        text = schema_json(schema, digest, where, (", ", ": "), broken=break_schema)
        stop = (
            None  # a stop sequence that cut the JSON would make it invalid; providers apply it to text only
        )
    elif kind == "json_object":
        text = json.dumps({"answer": sentence_text(digest)}, separators=(", ", ": "))
        stop = None
    else:
        text = sentence_text(digest)
    text, finish = cut_text(text, stop, max_tokens)
    return Answer(text, None, finish, tokens(text))
