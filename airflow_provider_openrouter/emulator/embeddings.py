"""``POST /embeddings``: deterministic vectors, billed and faulted like a completion.

A vector is a pure function of the model, the requested ``dimensions`` and the input: the input's features
(its lower-cased words, weight 1, and each word's character trigrams, weight 1/2; for a token array its
tokens and token pairs) are hashed, each to two signed positions of the vector, which is then scaled to unit
length. So the same input always gives the same vector, and texts that share words or word pieces are closer
by cosine than texts that share none. ``GET /embeddings/models`` is in models.py.

Tokens: a text counts as in a completion (``ceil(characters / 4)``), a token array its length, a multimodal
input its text parts plus 85 per image, audio, video or file part. ``usage.cost`` is the prompt tokens at the
model's prompt price. Fault directives in an input's text apply as to a completion; ``mid_stream`` (there is
no stream) answers like ``error_in_200``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import math
import re
import struct
from functools import lru_cache
from typing import Any

from airflow_provider_openrouter.emulator.asgi import HTTPError, Request, Response, deliver, dumps, error_body
from airflow_provider_openrouter.emulator.catalog import Catalog
from airflow_provider_openrouter.emulator.config import EmulatorSettings
from airflow_provider_openrouter.emulator.core import EmulatorCore
from airflow_provider_openrouter.emulator.inference import Inference, route, routed_fields
from airflow_provider_openrouter.emulator.textgen import tokens
from airflow_provider_openrouter.emulator.validation import check_parameters, fail

ENCODINGS = ("float", "base64")
MAX_INPUTS = 2048  # OpenAI's limit per embeddings request
_MEDIA_TOKENS = 85
_WORD = re.compile(r"\w+")


def _input_items(value: Any) -> list[Any]:
    """``input`` as a list of items: strings, token arrays, or multimodal ``{content: [parts]}`` objects."""
    if isinstance(value, str) or (isinstance(value, list) and value and _is_tokens(value)):
        return [value]
    if not isinstance(value, list) or not value:
        raise fail("input", "a string, an array of strings or token arrays, or [{content: [parts]}]", value)
    if len(value) > MAX_INPUTS:
        raise HTTPError(400, f"input: at most {MAX_INPUTS} inputs per request, got {len(value)}; split them")
    for index, item in enumerate(value):
        good = (
            (isinstance(item, str) and item)
            or (isinstance(item, list) and item and _is_tokens(item))
            or (isinstance(item, dict) and isinstance(item.get("content"), list) and item["content"])
        )
        if not good:
            raise fail(f"input[{index}]", "a non-empty string, token array or {content: [parts]}", item)
    return value


def _is_tokens(value: list[Any]) -> bool:
    return all(isinstance(token, int) and not isinstance(token, bool) and token >= 0 for token in value)


def _text_and_media(item: Any) -> tuple[str, list[str]]:
    """The text of an item, and one string per media part (its URL or data, which its features hash)."""
    if isinstance(item, str):
        return item, []
    texts, media = [], []
    for part in item.get("content", ()) if isinstance(item, dict) else ():
        if isinstance(part, dict) and part.get("type") == "text":
            texts.append(str(part.get("text", "")))
        else:
            media.append(dumps(part).decode())
    return "\n".join(texts), media


def _item_tokens(item: Any) -> int:
    if isinstance(item, list):
        return len(item)
    text, media = _text_and_media(item)
    return tokens(text) + _MEDIA_TOKENS * len(media)


def parse_embeddings(body: dict[str, Any], settings: EmulatorSettings, catalog: Catalog) -> Inference:
    check_parameters(body)
    items = _input_items(body.get("input"))
    routed = route(body, settings, catalog, embeddings=True)
    model = routed.model
    native = model.dimensions or 1536
    dimensions = body.get("dimensions")
    if dimensions is not None:
        if "dimensions" not in model.supported_parameters:
            raise HTTPError(400, f"dimensions: {model.id} does not support choosing dimensions; leave it out")
        if isinstance(dimensions, bool) or not isinstance(dimensions, int) or not 1 <= dimensions <= native:
            raise fail("dimensions", f"a whole number from 1 to {native} (the model's size)", dimensions)
    encoding = body.get("encoding_format") or "float"
    if encoding not in ENCODINGS:
        raise fail("encoding_format", "'float' or 'base64'", encoding)
    if body.get("input_type") is not None and not isinstance(body["input_type"], str):
        raise fail("input_type", "a string such as 'search_query'", body["input_type"])
    counts = [_item_tokens(item) for item in items]
    for index, count in enumerate(counts):
        if count > model.context_length:
            raise HTTPError(
                400,
                f"input[{index}] is about {count} tokens; {model.id} embeds at most {model.context_length}. "
                "Split it into smaller pieces.",
                {"error_type": "context_length_exceeded"},
            )
    return Inference(
        kind="embeddings",
        inputs=items,
        texts=[_text_and_media(item)[0] for item in items if not isinstance(item, list)],
        stream=False,
        max_tokens=None,
        stop=None,
        seed=None,
        response_format=None,
        tool=None,
        prompt_tokens=sum(counts),
        **routed_fields(body, routed),
        dimensions=dimensions or native,
        encoding_format=encoding,
    )


@lru_cache(maxsize=65_536)
def _positions(salt: str, feature: str, dimensions: int) -> tuple[int, float, int, float]:
    """Where a feature lands in a vector of ``dimensions``: two positions and their signs."""
    value = int.from_bytes(hashlib.blake2b(f"{salt}\x00{feature}".encode(), digest_size=16).digest(), "big")
    first, second = value % dimensions, (value >> 64) % dimensions
    return first, 1.0 if value >> 62 & 1 else -1.0, second, 1.0 if value >> 126 & 1 else -1.0


def _features(item: Any) -> list[tuple[str, float]]:
    if isinstance(item, list):
        pairs = [(f"b{a},{b}", 0.5) for a, b in itertools.pairwise(item)]
        return [(f"t{token}", 1.0) for token in item] + pairs
    text, media = _text_and_media(item)
    found: list[tuple[str, float]] = [(f"m{part}", 1.0) for part in media]
    for word in _WORD.findall(text.lower()):
        found.append((f"w{word}", 1.0))
        padded = f"#{word}#"
        found.extend((f"c{padded[i : i + 3]}", 0.5) for i in range(len(padded) - 2))
    if not found:  # only punctuation or spaces: its characters still tell such texts apart
        found = [(f"c{char}", 1.0) for char in text]
    return found


def vector(item: Any, model_id: str, dimensions: int) -> list[float]:
    """The unit vector of one input (see the module docstring)."""
    values = [0.0] * dimensions
    for feature, weight in _features(item):
        first, first_sign, second, second_sign = _positions(model_id, feature, dimensions)
        values[first] += first_sign * weight
        values[second] += second_sign * weight
    norm = math.sqrt(sum(value * value for value in values)) or 1.0
    return [round(value / norm, 8) for value in values]


def _encoded(values: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":  # little-endian float32, as OpenAI's API and SDK use it
        return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
    return values


def embeddings_body(inference: Inference, gen_id: str, *, billed: bool = True) -> dict[str, Any]:
    """The answer of ``POST /embeddings`` (and of a ``/v1/embeddings`` batch row); ``billed=False``: an
    answered error's empty list at no cost."""
    cost = inference.cost(0)[0] if billed else 0
    data = [
        {
            "object": "embedding",
            "embedding": _encoded(
                vector(item, inference.model.id, inference.dimensions), inference.encoding_format
            ),
            "index": index,
        }
        for index, item in enumerate(inference.inputs if billed else ())
    ]
    prompt = inference.prompt_tokens if billed else 0
    return {
        "id": gen_id,
        "object": "list",
        "model": inference.model.id,
        "data": data,
        "usage": {
            "prompt_tokens": prompt,
            "total_tokens": prompt,
            "cost": float(cost),
            "is_byok": False,
            "cost_details": {
                "upstream_inference_cost": None,
                "upstream_inference_prompt_cost": float(cost),
                "upstream_inference_completions_cost": 0.0,
            },
        },
    }


class Embeddings:
    """``POST /embeddings`` of one emulator."""

    def __init__(self, core: EmulatorCore) -> None:
        self.core = core

    async def create(self, request: Request) -> Response | None:
        core = self.core
        key = core.inference_key(request)
        inference = parse_embeddings(request.json_body(), core.settings, core.catalog)
        directives, fault, latency = await core.admit(request, key, inference)
        if latency:
            await asyncio.sleep(latency)
        gen_id = core.new_generation_id("embd")
        headers = [(b"x-generation-id", gen_id.encode())]
        status = directives.status if directives is not None and directives.status else 502
        if fault in ("error_in_200", "mid_stream"):
            body = error_body(
                status, "Provider returned error", {"provider_name": inference.endpoint.provider.name}
            )
            return Response.json(body, headers=headers)
        if fault == "empty_choices":
            return Response.json(embeddings_body(inference, gen_id, billed=False), headers=headers)
        record = core.generation_record(
            key, inference, gen_id, [], streamed=False, latency_s=latency, request=request
        )
        core.bill(request, record)
        return await deliver(request, dumps(embeddings_body(inference, gen_id)), headers, fault, status)
