"""``POST /chat/completions`` and ``POST /completions``: the answer, streamed or not, and the faults that
break it.

Order of checks on a completion request, as OpenRouter applies them: body size (413), key (401/403), JSON and
parameters (400), model and provider routing (400/404/503), rate limit (429), emulator directives (400 when
malformed), moderation (403), credits (402), then latency, injected faults and the generation itself.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from airflow_provider_openrouter.emulator.accounting import GenerationRecord
from airflow_provider_openrouter.emulator.asgi import (
    HTTPError,
    Request,
    Response,
    deliver,
    dumps,
    error_body,
    html_page,
    not_found,
)
from airflow_provider_openrouter.emulator.core import EmulatorCore
from airflow_provider_openrouter.emulator.extras import chat_deltas, pieces, routing_metadata
from airflow_provider_openrouter.emulator.faults import Directives, error_text
from airflow_provider_openrouter.emulator.inference import Inference, parse_chat, parse_text
from airflow_provider_openrouter.emulator.responses import (
    chat_choice,
    chunk_body,
    make_answers,
    result_body,
    text_choice,
    usage_json,
)
from airflow_provider_openrouter.emulator.textgen import Answer, native_finish_reason

_SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
_PROCESSING = b": OPENROUTER PROCESSING\n\n"
_DONE = b"data: [DONE]\n\n"
_KEEP_ALIVE_S = 0.5  # a waiting stream sends the processing comment this often


def _sse(payload: Any) -> bytes:
    return b"data: " + dumps(payload) + b"\n\n"


async def _keep_alive(request: Request, seconds: float) -> None:
    """Wait ``seconds`` of injected latency with the processing comment every _KEEP_ALIVE_S, as OpenRouter
    keeps a slow stream's connection open. The count of comments follows from ``seconds`` alone."""
    for step in range(math.ceil(seconds / _KEEP_ALIVE_S)):
        if step:
            await request.stream(_PROCESSING)
        await asyncio.sleep(min(_KEEP_ALIVE_S, seconds - step * _KEEP_ALIVE_S))


def _wants_metadata(request: Request) -> bool:
    """``X-OpenRouter-Metadata: enabled`` (or its legacy name) asks for ``openrouter_metadata``."""
    headers = request.headers
    value = headers.get("x-openrouter-metadata") or headers.get("x-openrouter-experimental-metadata") or ""
    return value.lower() == "enabled"


class Completions:
    """The completion routes of one emulator."""

    def __init__(self, core: EmulatorCore) -> None:
        self.core = core

    # ---------------------------------------------------------------- routes

    async def chat_completions(self, request: Request) -> Response | None:
        key = self.core.inference_key(request)
        return await self._inference(
            request, key, parse_chat(request.json_body(), self.core.settings, self.core.catalog)
        )

    async def text_completions(self, request: Request) -> Response | None:
        mode = self.core.settings.legacy_completions
        if mode == "404":  # a server without the route answers as for any path it does not serve
            return not_found()
        key = self.core.inference_key(request)
        if mode != "enabled":
            raise HTTPError(
                int(mode),
                "The legacy /completions endpoint is not available on this server; use /chat/completions",
                {"error_type": "not_found"},
            )
        return await self._inference(
            request, key, parse_text(request.json_body(), self.core.settings, self.core.catalog)
        )

    async def _inference(self, request: Request, key: str, inference: Inference) -> Response | None:
        directives, fault, latency = await self.core.admit(request, key, inference)
        if inference.stream:
            await self._stream(request, key, inference, fault, latency, directives)
            return None
        if latency:
            await asyncio.sleep(latency)
        return await self._complete(request, key, inference, fault, directives, latency)

    def _choices(self, inference: Inference, answers: list[Answer]) -> list[dict[str, Any]]:
        make = chat_choice if inference.kind == "chat" else text_choice
        return [make(inference, given, index) for index, given in enumerate(answers)]

    async def _complete(
        self,
        request: Request,
        key: str,
        inference: Inference,
        fault: str | None,
        directives: Directives | None,
        latency: float,
    ) -> Response | None:
        gen_id = self.core.new_generation_id()
        created = int(time.time())
        headers = [(b"x-generation-id", gen_id.encode())]
        status = directives.status if directives is not None and directives.status else 502
        if fault == "error_in_200":
            return Response.json(
                error_body(
                    status,
                    "Provider returned error",
                    {"raw": f"error code: {status}", "provider_name": inference.endpoint.provider.name},
                ),
                headers=headers,
            )
        answers = make_answers(inference, self.core.settings.seed)
        if fault == "empty_choices":
            return Response.json(
                result_body(inference, gen_id, created, [], usage_json(inference, [], billed=False)),
                headers=headers,
            )
        choices = self._choices(inference, answers)
        if fault == "mid_stream":
            first = choices[0]
            first["finish_reason"] = "error"
            first["native_finish_reason"] = None
            message, error_type = error_text(status)
            first["error"] = {"code": status, "message": message, "metadata": {"error_type": error_type}}
            usage = usage_json(inference, answers, billed=False)
            return Response.json(result_body(inference, gen_id, created, choices, usage), headers=headers)
        record = self.core.generation_record(
            key, inference, gen_id, answers, streamed=False, latency_s=latency, request=request
        )
        self.core.bill(request, record)
        result = result_body(inference, gen_id, created, choices, usage_json(inference, answers))
        if _wants_metadata(request):
            result["openrouter_metadata"] = routing_metadata(inference, latency)
        return await deliver(request, dumps(result), headers, fault, status)

    def _stream_events(
        self, inference: Inference, gen_id: str, created: int, answers: list[Answer]
    ) -> list[bytes]:
        """The data events of a stream up to (not including) the usage chunk."""
        events = []
        chat = inference.kind == "chat"
        for index, given in enumerate(answers):
            native = native_finish_reason(inference.model.id, given.finish_reason)
            deltas = (
                chat_deltas(given)
                if chat
                else [({"text": piece}, None) for piece in pieces(given.content or "")]
            )
            for position, (delta, logprobs) in enumerate(deltas):
                last = position == len(deltas) - 1
                if chat:
                    choice: dict[str, Any] = {"index": index, "delta": delta}
                    if given.logprobs is not None:
                        choice["logprobs"] = logprobs
                else:
                    choice = {"text": delta["text"], "index": index, "logprobs": None}
                choice["finish_reason"] = given.finish_reason if last else None
                choice["native_finish_reason"] = native if last else None
                events.append(_sse(chunk_body(inference, gen_id, created, [choice])))
        return events

    async def _stream(
        self,
        request: Request,
        key: str,
        inference: Inference,
        fault: str | None,
        latency: float,
        directives: Directives | None,
    ) -> None:
        gen_id = self.core.new_generation_id()
        created = int(time.time())
        status = directives.status if directives is not None and directives.status else 502
        # Made before the stream starts: a request no answer can be made for still gets its 400.
        answers = make_answers(inference, self.core.settings.seed)
        if fault in ("html", "reset"):  # the generation ran and is billed; its answer is then lost
            await asyncio.sleep(latency)
            lost = self.core.generation_record(
                key, inference, gen_id, answers, streamed=True, latency_s=latency, request=request
            )
            self.core.bill(request, lost)
            try:
                if fault == "reset":
                    await request.drop_connection(reset=True)
                else:
                    await request.respond(html_page(status))
            finally:
                self.core.publish(lost)
            return
        await request.start_stream([*_SSE_HEADERS, (b"x-generation-id", gen_id.encode())])
        await request.stream(_PROCESSING)
        if fault == "error_in_200":  # the older form: a bare error object as a data event, then the end
            await _keep_alive(request, latency)
            body = error_body(
                status, "Provider returned error", {"provider_name": inference.endpoint.provider.name}
            )
            await request.stream(_sse(body), more=False)
            return
        if fault == "empty_choices":
            answers = [Answer("", None, "stop", 0) for _ in answers]
        events = self._stream_events(inference, gen_id, created, answers)
        # Half the latency passes before the first token, half while the rest of the answer is generated; the
        # processing comment goes on between data events meanwhile, as on OpenRouter.
        await _keep_alive(request, latency / 2)
        record: GenerationRecord | None = None
        if fault not in ("mid_stream", "empty_choices"):  # answered errors are not billed
            record = self.core.generation_record(
                key, inference, gen_id, answers, streamed=True, latency_s=latency, request=request
            )
            self.core.bill(request, record)
        try:
            await request.stream(events[0] + _PROCESSING)
            await _keep_alive(request, latency - latency / 2)
            if fault == "mid_stream":
                for event in events[1 : max(1, len(events) // 2)]:
                    await request.stream(event)
                await request.stream(
                    _sse(self._mid_stream_error(inference, gen_id, created, status)), more=False
                )
                return
            if fault == "truncate":
                for event in events[1 : max(1, len(events) // 2)]:
                    await request.stream(event)
                await request.drop_connection(reset=False)
                return
            for event in events[1:]:
                await request.stream(event)
            usage_chunk = chunk_body(inference, gen_id, created, self._usage_chunk_choices(inference))
            usage_chunk["usage"] = usage_json(inference, answers, billed=record is not None)
            if _wants_metadata(request):
                usage_chunk["openrouter_metadata"] = routing_metadata(inference, latency)
            await request.stream(_sse(usage_chunk) + _DONE, more=False)
        finally:
            if record is not None:  # OpenRouter records a streamed generation once the stream has ended
                self.core.publish(record)

    def _usage_chunk_choices(self, inference: Inference) -> list[dict[str, Any]]:
        if self.core.settings.usage_chunk_choices == "empty":
            return []
        if inference.kind == "chat":
            return [{"index": 0, "delta": {}, "finish_reason": None, "native_finish_reason": None}]
        return [
            {"text": "", "index": 0, "logprobs": None, "finish_reason": None, "native_finish_reason": None}
        ]

    @staticmethod
    def _mid_stream_error(inference: Inference, gen_id: str, created: int, status: int) -> dict[str, Any]:
        message, error_type = error_text(status)
        choice: dict[str, Any] = (
            {"index": 0, "delta": {"content": ""}}
            if inference.kind == "chat"
            else {"text": "", "index": 0, "logprobs": None}
        )
        choice.update(finish_reason="error", native_finish_reason=None)
        chunk = chunk_body(inference, gen_id, created, [choice])
        chunk["error"] = {"code": status, "message": message, "metadata": {"error_type": error_type}}
        return chunk
