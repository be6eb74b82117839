"""The optional parts of a chat answer, and how a stream carries them.

Each part appears only when the request asks for it (docs/emulator.md, "Optional parts of an answer"), and the
stream carries exactly what the non-streamed answer holds, so a client that assembles a stream gets the same
message:

* reasoning (``reasoning`` or ``include_reasoning: true`` on a model whose catalog entry supports reasoning):
  ``message.reasoning`` and ``message.reasoning_details``, whose shapes follow the model's family (OpenAI: a
  ``reasoning.summary`` and a ``reasoning.encrypted``; Anthropic: a signed ``reasoning.text``; Google: a
  ``reasoning.text`` and a ``reasoning.encrypted``; others: a ``reasoning.text``). Streamed as fragments that
  share the detail's ``index``: their ``text`` / ``summary`` concatenate, the other keys are the detail's own.
* web citations (``plugins: [{"id": "web"}]`` or a ``:online`` model): ``message.annotations`` of
  ``url_citation``s into the content; streamed on the last delta.
* ``logprobs: true``: ``choice.logprobs.content``, one entry per four characters (the token estimate's token),
  with ``top_logprobs`` alternatives; streamed per chunk, each chunk holding the entries of its own text.
* ``[[emulator: refuse]]``: ``message.refusal``, content null, ``finish_reason: "stop"``; streamed as
  ``delta.refusal``.
* ``modalities`` with ``image`` on a model with image output: ``message.images``; streamed on the last delta.
* ``X-OpenRouter-Metadata: enabled``: ``openrouter_metadata`` at the top level; streamed on the usage chunk.

Everything is a pure function of the answer's digest, so it is the same in both modes and on every call.
"""

from __future__ import annotations

import base64
import random
import struct
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_openrouter.emulator.textgen import IMAGE_TOKENS, Answer, sentence_text, tokens

if TYPE_CHECKING:
    from airflow_provider_openrouter.emulator.inference import Inference

STREAM_PIECE_CHARS = 20  # a multiple of the 4 characters of a token, so logprobs split along chunks
REFUSAL_TEXT = "I'm sorry, but I can't help with that request."
_TOKEN_CHARS = 4
_REASONING_FORMATS = {
    "openai": "openai-responses-v1",
    "anthropic": "anthropic-claude-v1",
    "google": "google-gemini-v1",
}
_CITED_SENTENCES = 3
Delta = tuple[dict[str, Any], dict[str, Any] | None]  # (delta, choice.logprobs of its chunk)


def pieces(text: str) -> list[str]:
    """How a stream cuts a text into chunks; always at least one (possibly empty) piece."""
    step = STREAM_PIECE_CHARS
    return [text[i : i + step] for i in range(0, len(text), step)] or [""]


def _sub_digest(digest: bytes, purpose: bytes) -> random.Random:
    return random.Random(digest + purpose)


def _b64(rng: random.Random, size: int) -> str:
    return base64.b64encode(rng.randbytes(size)).decode("ascii")


def reasoning_parts(model_id: str, digest: bytes, text: str) -> list[dict[str, Any]]:
    """The ``reasoning_details`` a model of this family returns for the reasoning ``text``."""
    author = model_id.split("/", 1)[0]
    fmt = _REASONING_FORMATS.get(author, "unknown")
    rng = _sub_digest(digest, b"reasoning-details")
    if author == "openai":
        return [
            {"type": "reasoning.summary", "summary": text, "format": fmt, "index": 0},
            {"type": "reasoning.encrypted", "data": "gAAAAA" + _b64(rng, 96), "format": fmt, "index": 1},
        ]
    first: dict[str, Any] = {"type": "reasoning.text", "text": text, "format": fmt, "index": 0}
    if author == "anthropic":
        first["signature"] = _b64(rng, 48)
    if author == "google":
        return [first, {"type": "reasoning.encrypted", "data": _b64(rng, 72), "format": fmt, "index": 1}]
    return [first]


def citations(content: str, digest: bytes) -> list[dict[str, Any]]:
    """``url_citation`` annotations, each spanning one of the first sentences of ``content``."""
    rng = _sub_digest(digest, b"citations")
    found: list[dict[str, Any]] = []
    start = 0
    while start < len(content) and len(found) < _CITED_SENTENCES:
        end = content.find(". ", start)
        end = len(content) if end < 0 else end + 1
        number = len(found) + 1
        slug = f"{rng.getrandbits(32):08x}"
        found.append(
            {
                "type": "url_citation",
                "url_citation": {
                    "url": f"https://example.com/source-{number}-{slug}",
                    "title": f"Source {number}: {content[start:end][:40].strip()}",
                    "content": content[start:end],
                    "start_index": start,
                    "end_index": end,
                },
            }
        )
        start = end + 1
    return found


def token_logprobs(text: str, top: int, digest: bytes) -> list[dict[str, Any]]:
    """One TokenLogprob per token of ``text`` (4 characters each), with ``top`` alternatives."""
    rng = _sub_digest(digest, b"logprobs")
    entries = []
    for start in range(0, len(text), _TOKEN_CHARS):
        token = text[start : start + _TOKEN_CHARS]
        logprob = round(-rng.random() * 2.0, 6)
        alternatives = [{"token": token, "logprob": logprob, "bytes": list(token.encode())}]
        for rank in range(1, top):
            other = f"{token}{rank}"
            alternatives.append(
                {
                    "token": other,
                    "logprob": round(logprob - rank - rng.random(), 6),
                    "bytes": list(other.encode()),
                }
            )
        entries.append(
            {
                "token": token,
                "logprob": logprob,
                "bytes": list(token.encode()),
                "top_logprobs": alternatives[:top],
            }
        )
    return entries


def png_data_url(digest: bytes) -> str:
    """A valid 8x8 PNG of one colour taken from the digest, as a ``data:`` URL."""
    width = height = 8
    raw = b"".join(b"\x00" + bytes(digest[:3]) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def decorate(given: Answer, inference: Inference, digest: bytes) -> None:
    """Add to ``given`` the optional parts ``inference`` asks for, and count their tokens."""
    if inference.refuse:
        given.content, given.tool_calls, given.refusal, given.finish_reason = None, None, REFUSAL_TEXT, "stop"
    if inference.reasoning:
        text = sentence_text(_sub_digest(digest, b"reasoning").randbytes(64))
        budget = inference.max_tokens
        if budget is not None:  # reasoning tokens come out of max_tokens first, as on reasoning models
            if tokens(text) > budget:
                text = text[: budget * _TOKEN_CHARS]
                given.finish_reason = "length"
            left = budget - tokens(text)
            if given.content is not None and tokens(given.content) > left:
                given.content, given.finish_reason = given.content[: left * _TOKEN_CHARS], "length"
        given.reasoning = text
        given.reasoning_details = reasoning_parts(inference.model.id, digest, text)
        given.reasoning_tokens = tokens(text)
    if inference.images:
        given.images = [{"type": "image_url", "image_url": {"url": png_data_url(digest)}}]
        given.image_tokens = IMAGE_TOKENS
    if inference.web:
        given.annotations = citations(given.content or "", digest)
    if inference.top_logprobs is not None and given.tool_calls is None:
        given.logprobs = token_logprobs(given.content or given.refusal or "", inference.top_logprobs, digest)
    text_tokens = (
        given.completion_tokens
        if given.tool_calls is not None
        else tokens(given.content or given.refusal or "")
    )
    given.completion_tokens = text_tokens + given.reasoning_tokens + given.image_tokens


def logprobs_json(given: Answer) -> dict[str, Any]:
    """``choice.logprobs`` of a non-streamed answer that has logprobs."""
    if given.refusal is not None:
        return {"content": None, "refusal": given.logprobs}
    return {"content": given.logprobs, "refusal": None}


def message_extras(given: Answer) -> dict[str, Any]:
    """The optional keys of ``choice.message`` this answer has."""
    extras: dict[str, Any] = {}
    if given.reasoning_details is not None:
        extras["reasoning_details"] = given.reasoning_details
    if given.annotations is not None:
        extras["annotations"] = given.annotations
    if given.images is not None:
        extras["images"] = given.images
    return extras


def _reasoning_deltas(details: Sequence[dict[str, Any]]) -> list[Delta]:
    deltas: list[Delta] = []
    for detail in details:
        key = {"reasoning.text": "text", "reasoning.summary": "summary"}.get(detail["type"])
        if key is None:  # an encrypted block arrives whole
            deltas.append(({"role": "assistant", "reasoning_details": [detail]}, None))
            continue
        parts = pieces(detail[key])
        for position, piece in enumerate(parts):
            fragment = {**detail, key: piece}
            if position < len(parts) - 1:
                fragment.pop("signature", None)  # the signature closes the block
            deltas.append(({"role": "assistant", "reasoning": piece, "reasoning_details": [fragment]}, None))
    return deltas


def _tool_call_deltas(calls: list[dict[str, Any]]) -> list[Delta]:
    call = calls[0]
    function = call["function"]
    opening: dict[str, Any] = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "index": 0,
                "id": call["id"],
                "type": "function",
                "function": {"name": function["name"], "arguments": ""},
            }
        ],
    }
    deltas: list[Delta] = [(opening, None)]
    deltas += [
        ({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}, None)
        for piece in pieces(function["arguments"])
    ]
    return deltas


def _text_deltas(given: Answer) -> list[Delta]:
    refused = given.refusal is not None
    text = (given.refusal if refused else given.content) or ""
    key = "refusal" if refused else "content"
    per_chunk = STREAM_PIECE_CHARS // _TOKEN_CHARS
    deltas: list[Delta] = []
    for number, piece in enumerate(pieces(text)):
        logprobs = None
        if given.logprobs is not None:
            entries = given.logprobs[number * per_chunk : (number + 1) * per_chunk]
            logprobs = (
                {"content": None, "refusal": entries} if refused else {"content": entries, "refusal": None}
            )
        deltas.append(({"role": "assistant", key: piece}, logprobs))
    return deltas


def chat_deltas(given: Answer) -> list[Delta]:
    """The deltas of one streamed chat choice, in order; the caller puts the finish reason on the last."""
    opening: Delta = ({"role": "assistant", "content": None if given.refusal is not None else ""}, None)
    deltas = [opening, *_reasoning_deltas(given.reasoning_details or ())]
    deltas += _tool_call_deltas(given.tool_calls) if given.tool_calls else _text_deltas(given)
    last = deltas[-1][0]
    if given.annotations is not None:
        last["annotations"] = given.annotations
    if given.images is not None:
        last["images"] = given.images
    return deltas


def routing_metadata(inference: Inference, latency_s: float) -> dict[str, Any]:
    """``openrouter_metadata`` (sent when the request has ``X-OpenRouter-Metadata: enabled``)."""
    chosen = inference.endpoint
    attempts = [
        {"model": model_id, "provider": provider, "status": 503} for model_id, provider in inference.skipped
    ]
    attempts.append({"model": inference.model.id, "provider": chosen.provider.name, "status": 200})
    strategy = "fallback" if inference.skipped else "direct"
    return {
        "attempt": len(attempts),
        "attempts": attempts,
        "endpoints": {
            "available": [
                {"model": inference.model.id, "provider": e.provider.name, "selected": e is chosen}
                for e in inference.model.endpoints
            ],
            "total": len(inference.model.endpoints),
        },
        "generation_time": int(latency_s * 1000) + 25,
        "is_byok": False,
        "region": None,
        "requested": inference.requested,
        "strategy": strategy,
        "summary": f"{strategy}: {inference.requested} served by {chosen.provider.name}",
    }
