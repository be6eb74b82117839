"""The answers of a completion request and the JSON bodies that carry them: choices, usage, the result and the
stream chunk, shared by the synchronous routes and the Batch API."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from airflow_provider_openrouter.emulator.asgi import HTTPError
from airflow_provider_openrouter.emulator.extras import decorate, logprobs_json, message_extras
from airflow_provider_openrouter.emulator.inference import Inference
from airflow_provider_openrouter.emulator.schemagen import SchemaError
from airflow_provider_openrouter.emulator.textgen import (
    Answer,
    answer,
    answer_digest,
    native_finish_reason,
)


def make_answers(inference: Inference, emulator_seed: int) -> list[Answer]:
    """One answer per input of ``inference`` (a chat has one, a legacy prompt list one per prompt)."""
    extras = (
        inference.reasoning
        or inference.web
        or inference.images
        or inference.refuse
        or inference.top_logprobs is not None
    )
    found = []
    for given in inference.inputs:
        try:
            made = answer(
                model_id=inference.model.id,
                messages=given,
                request_seed=inference.seed,
                emulator_seed=emulator_seed,
                response_format=inference.response_format,
                tool=inference.tool,
                stop=inference.stop,
                max_tokens=inference.max_tokens,
                break_schema=inference.invalid_json,
            )
        except SchemaError as exc:
            raise HTTPError(400, str(exc)) from None
        if extras:
            decorate(made, inference, answer_digest(inference.model.id, given, inference.seed, emulator_seed))
        found.append(made)
    return found


def usage_json(inference: Inference, answers: list[Answer], *, billed: bool = True) -> dict[str, Any]:
    """``usage`` of these answers; all zero cost when the answer is not billed."""
    completion_tokens = reasoning = images = 0
    for given in answers:
        completion_tokens += given.completion_tokens
        reasoning += given.reasoning_tokens
        images += given.image_tokens
    prompt_cost, completion_cost = inference.cost(completion_tokens)
    if not billed:
        prompt_cost = completion_cost = Decimal(0)
    completion_details = {"reasoning_tokens": reasoning, "audio_tokens": 0}
    if images:
        completion_details["image_tokens"] = images
    return {
        "prompt_tokens": inference.prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": inference.prompt_tokens + completion_tokens,
        "cost": float(prompt_cost + completion_cost),
        "is_byok": False,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": completion_details,
        "cost_details": {
            "upstream_inference_cost": None,
            "upstream_inference_prompt_cost": float(prompt_cost),
            "upstream_inference_completions_cost": float(completion_cost),
        },
    }


def _message(given: Answer) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": given.content,
        "refusal": given.refusal,
        "reasoning": given.reasoning,
    }
    if given.tool_calls is not None:
        message["tool_calls"] = given.tool_calls
    if given.reasoning_details is not None or given.annotations is not None or given.images is not None:
        message.update(message_extras(given))
    return message


def chat_choice(inference: Inference, given: Answer, index: int = 0) -> dict[str, Any]:
    return {
        "index": index,
        "logprobs": None if given.logprobs is None else logprobs_json(given),
        "finish_reason": given.finish_reason,
        "native_finish_reason": native_finish_reason(inference.model.id, given.finish_reason),
        "message": _message(given),
    }


def text_choice(inference: Inference, given: Answer, index: int = 0) -> dict[str, Any]:
    return {
        "text": given.content or "",
        "index": index,
        "logprobs": None,
        "finish_reason": given.finish_reason,
        "native_finish_reason": native_finish_reason(inference.model.id, given.finish_reason),
        "reasoning": None,
    }


def result_body(
    inference: Inference,
    gen_id: str,
    created: int,
    choices: list[dict[str, Any]],
    usage: dict[str, Any],
) -> dict[str, Any]:
    return {
        "id": gen_id,
        "object": "chat.completion" if inference.kind == "chat" else "text_completion",
        "created": created,
        "model": inference.model.id,
        "provider": inference.endpoint.provider.name,
        "system_fingerprint": None,
        "service_tier": None,
        "choices": choices,
        "usage": usage,
    }


def chunk_body(
    inference: Inference, gen_id: str, created: int, choices: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "id": gen_id,
        "object": "chat.completion.chunk" if inference.kind == "chat" else "text_completion",
        "created": created,
        "model": inference.model.id,
        "provider": inference.endpoint.provider.name,
        "choices": choices,
    }
