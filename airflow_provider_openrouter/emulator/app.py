"""The emulator's ASGI application: routes, auth, accounting, faults and streaming.

Order of checks on a completion request, as OpenRouter applies them: body size (413), key (401/403), JSON and
parameters (400), model and provider routing (400/404/503), rate limit (429), emulator directives (400 when
malformed), moderation (403), credits (402), then latency, injected faults and the generation itself.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import time
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

from airflow_provider_openrouter.emulator import catalog
from airflow_provider_openrouter.emulator.accounting import NOT_SERVED, GenerationRecord, Ledger, Stats, money
from airflow_provider_openrouter.emulator.activity import activity_route
from airflow_provider_openrouter.emulator.asgi import (
    TOO_DEEP,
    USER_ID,
    Disconnected,
    HTTPError,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    dumps,
    error_body,
    read_body,
)
from airflow_provider_openrouter.emulator.batches import BatchStore
from airflow_provider_openrouter.emulator.config import EmulatorSettings, SettingError, key_label
from airflow_provider_openrouter.emulator.extras import chat_deltas, pieces, routing_metadata
from airflow_provider_openrouter.emulator.faults import (
    AttemptCounter,
    DirectiveError,
    Directives,
    RateLimiter,
    content_digest,
    daily_limit_headers,
    error_text,
    parse_directives,
)
from airflow_provider_openrouter.emulator.inference import (
    Inference,
    chat_choice,
    chunk_body,
    parse_chat,
    parse_text,
    result_body,
    text_choice,
    usage_json,
)
from airflow_provider_openrouter.emulator.textgen import Answer, native_finish_reason

log = logging.getLogger("airflow_provider_openrouter.emulator")

API_PREFIX = "/api/v1"
MANAGEMENT_PREFIX = "sk-or-mgmt-"
INFERENCE_PREFIX = "sk-or-"
_SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
_PROCESSING = b": OPENROUTER PROCESSING\n\n"
_DONE = b"data: [DONE]\n\n"
_KEEP_ALIVE_S = 0.5  # a waiting stream sends the processing comment this often
_FREE_DAILY_SMALL_ACCOUNT = 50  # OpenRouter: 50 free requests a day below 10 USD of credits, 1000 above
_FREE_DAILY = 1000
# What openrouter.ai answers for a path it does not serve, /api/v1/... included: a web page, not the envelope.
_NOT_FOUND_PAGE = (
    b'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>404: This page could not be found.'
    b"</title></head><body><div><h1>404</h1><h2>This page could not be found.</h2></div></body></html>"
)
_HTML_PAGE = (
    "<html>\r\n<head><title>{status} Bad Gateway</title></head>\r\n<body>\r\n<center><h1>{status} Bad Gateway"
    "</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
)


def _utc_day() -> int:
    return int(time.time() // 86400)  # epoch days begin at UTC midnight


def _rate_limited(message: str, headers: list[tuple[bytes, bytes]]) -> HTTPError:
    """OpenRouter's 429: the limit's headers on the response, and echoed in the envelope's metadata."""
    return HTTPError(
        429,
        message,
        {"error_type": "rate_limit_exceeded", "headers": {k.decode(): v.decode() for k, v in headers}},
        headers,
    )


def _not_found() -> Response:
    return Response(404, _NOT_FOUND_PAGE, [(b"content-type", b"text/html; charset=utf-8")])


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


def _middle_truncate(text: str, limit: int = 100) -> str:
    if len(text) <= limit:
        return text
    head = (limit - 3) // 2
    return text[:head] + "..." + text[-(limit - 3 - head) :]


class Emulator:
    """One emulated OpenRouter account. State lives in memory, shared by every request of the process."""

    def __init__(self, settings: EmulatorSettings | None = None) -> None:
        self.settings = settings or EmulatorSettings()
        self._initial_settings = self.settings.copy()
        self.ledger = Ledger(self.settings)
        self.stats = Stats()
        self.limiter = RateLimiter()
        self.attempts = AttemptCounter()
        self.random = random.Random(self.settings.seed)
        self._free_requests: dict[str, tuple[int, int]] = {}  # key: (UTC day number, requests that day)
        self.batches = BatchStore(self)
        self._exact: dict[tuple[str, str], tuple[str, Any, bool]] = {}
        for method, path, handler in (
            ("POST", "/chat/completions", self.chat_completions),
            ("POST", "/completions", self.text_completions),
            ("GET", "/credits", self.credits),
            ("GET", "/activity", activity_route(self)),
            ("GET", "/generation", self.generation),
            ("GET", "/models", self.models),
            ("GET", "/models/user", self.models_for_user),
            ("GET", "/models/count", self.models_count),
            ("GET", "/key", self.key),
            ("GET", "/auth/key", self.key),
            ("GET", "/providers", self.providers),
            ("POST", "/batches", self.batches.create),
            ("GET", "/batches", self.batches.list),
        ):
            self._exact[(method, path)] = (f"{method} {path}", handler, False)
        for method, path, handler in (
            ("GET", "/__emulator/stats", self.admin_stats),
            ("POST", "/__emulator/reset", self.admin_reset),
            ("GET", "/__emulator/config", self.admin_config),
            ("POST", "/__emulator/config", self.admin_config),
        ):
            self._exact[(method, path)] = (f"{method} {path}", handler, True)

    # ---------------------------------------------------------------- dispatch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self._lifespan(receive, send)
            return
        path: str = scope["path"]
        api = path.startswith(API_PREFIX + "/")
        if api:
            path = path[len(API_PREFIX) :]
        method: str = scope["method"]
        found = self._exact.get((method, path)) or (self._pattern(method, path) if api else None)
        if found is not None and not (api or found[2]):
            found = None  # OpenRouter serves its API only under /api/v1; admin routes are at both places
        try:
            body = await read_body(receive, self.settings.max_body_bytes)
        except Disconnected:  # half a request (the server's request timeout closed it): nothing is run
            return
        request = Request(scope, send, path, body or b"")
        # The raw path for what is not served, so a call that missed /api/v1 is not counted as the API route
        route, handler, admin = found or (f"{method} {scope['path']}{NOT_SERVED}", None, False)
        request.route = route
        stats = self.stats
        if not admin:
            stats.in_flight += 1
            stats.in_flight_max = max(stats.in_flight_max, stats.in_flight)
        try:
            response = await self._answer(request, handler, admin, body is None)
            if response is not None:
                await request.respond(response)
        finally:
            if not admin:
                stats.in_flight -= 1
                stats.count(route, request.status)
                if request.status == "429":
                    stats.rate_limited += 1

    async def _answer(self, request: Request, handler: Any, admin: bool, too_large: bool) -> Response | None:
        """The handler's response, or the error envelope for whatever stopped it."""
        try:
            if handler is None:
                return _not_found()
            if too_large:
                raise HTTPError(
                    413,
                    f"Request body is larger than the {self.settings.max_body_bytes} bytes allowed",
                    {"error_type": "payload_too_large"},
                )
            response = None if admin else await self._scripted_fault(request)
            if response is None and request.status == "":
                response = await handler(request)
            return response
        except HTTPError as exc:
            return Response.error(exc)
        except RecursionError:  # a body that parsed, nested too deeply for what reads it (schemas, tools)
            return Response.error(HTTPError(400, TOO_DEEP))
        except Exception as exc:  # an emulator bug must still answer with the envelope, and say where
            log.exception("emulator: unexpected error in %s", request.route)
            return Response.error(HTTPError(500, f"emulator internal error in {request.route}: {exc!r}"))

    def _pattern(self, method: str, path: str) -> tuple[str, Any, bool] | None:
        if method == "GET" and path.startswith("/models/") and path.endswith("/endpoints"):
            return "GET /models/{author}/{slug}/endpoints", self.model_endpoints, False
        if method == "GET" and path.startswith("/model/"):
            return "GET /model/{author}/{slug}", self.model, False
        if path.startswith("/batches/") and method in ("GET", "DELETE"):
            handler = self.batches.get if method == "GET" else self.batches.delete
            return f"{method} /batches/{{id}}", handler, False
        return None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _scripted_fault(self, request: Request) -> Response | None:
        """``fail_next`` (admin config): fail the next requests of a route, before any work (not billed)."""
        script = self.settings.fail_next.get(request.route)
        if not script:
            return None
        fault = script.pop(0)
        self.stats.faults[fault] += 1
        if fault.isdigit():
            message, error_type = error_text(int(fault))
            raise HTTPError(int(fault), message, {"error_type": error_type})
        if fault in ("reset", "truncate"):
            await request.drop_connection(reset=True)
            return None
        if fault == "html":
            return Response(502, _HTML_PAGE.format(status=502).encode(), [(b"content-type", b"text/html")])
        return Response.json(
            error_body(502, "Provider returned error", {"raw": "emulated", "provider_name": None})
        )

    # ---------------------------------------------------------------- keys

    def _bearer(self, request: Request) -> tuple[str, bool]:
        """(key, is_management_key) of the request, or 401 as OpenRouter answers it."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise HTTPError(401, "No auth credentials found")
        if token.startswith(MANAGEMENT_PREFIX):
            return token, True
        accepted = self.settings.api_key
        if token.startswith(INFERENCE_PREFIX) and (not accepted or token in accepted):
            return token, False
        raise HTTPError(401, "User not found.")

    def inference_key(self, request: Request) -> str:
        key, management = self._bearer(request)
        if management:
            raise HTTPError(
                403,
                "Management keys cannot be used to make API calls to completion endpoints; "
                "use an inference API key (https://openrouter.ai/settings/keys)",
                {"error_type": "permission_denied"},
            )
        return key

    # ---------------------------------------------------------------- completions

    async def chat_completions(self, request: Request) -> Response | None:
        key = self.inference_key(request)
        return await self._inference(request, key, parse_chat(request.json_body(), self.settings))

    async def text_completions(self, request: Request) -> Response | None:
        mode = self.settings.legacy_completions
        if mode == "404":  # a server without the route answers as for any path it does not serve
            return _not_found()
        key = self.inference_key(request)
        if mode != "enabled":
            raise HTTPError(
                int(mode),
                "The legacy /completions endpoint is not available on this server; use /chat/completions",
                {"error_type": "not_found"},
            )
        return await self._inference(request, key, parse_text(request.json_body(), self.settings))

    def check_rate_limit(self, key: str, model: catalog.Model | None) -> None:
        settings = self.settings
        now = time.monotonic()
        limited = self.limiter.check(key, "all", settings.rate_limit_rpm, settings.rate_limit_burst, now)
        if limited is None and model is not None and model.is_free:
            limited = self.limiter.check(key, "free", settings.free_model_rpm, 0, now)
            used = self._free_used(key)
            if limited is None and used >= self._free_daily_limit():
                daily = self._free_daily_limit()
                raise _rate_limited(
                    "Rate limit exceeded: free-models-per-day", daily_limit_headers(daily, time.time())
                )
            if limited is None:
                self._free_requests[key] = (_utc_day(), used + 1)
        if limited is not None:
            raise _rate_limited(limited.message, limited.headers(time.time()))

    def _free_used(self, key: str) -> int:
        """The key's requests to free models today; the count starts again at UTC midnight."""
        day, used = self._free_requests.get(key, (0, 0))
        return used if day == _utc_day() else 0

    def _free_daily_limit(self) -> int:
        return _FREE_DAILY if self.settings.credits >= 10 else _FREE_DAILY_SMALL_ACCOUNT

    def directives(self, inference: Inference, *, in_batch: bool = False) -> Directives | None:
        """The request's directives, checked; ``refuse`` and ``invalid-json`` are applied to ``inference``."""
        try:
            found = parse_directives(inference.texts)
        except DirectiveError as exc:
            raise HTTPError(400, str(exc)) from None
        if found is not None and found.batch is not None and not in_batch:
            raise HTTPError(
                400, f"emulator directive batch={found.batch} only applies to a request inside a batch"
            )
        if found is not None and found.refuse:
            if inference.kind != "chat":
                raise HTTPError(400, "emulator directive refuse only applies to POST /chat/completions")
            inference.refuse = True
        if found is not None and found.invalid_json:
            kind = (
                inference.response_format.get("type") if isinstance(inference.response_format, dict) else None
            )
            if inference.kind != "chat" or kind != "json_schema":
                raise HTTPError(
                    400,
                    "emulator directive invalid-json only applies to POST /chat/completions with "
                    'response_format {"type": "json_schema"}',
                )
            inference.invalid_json = True
        return found

    def moderate(self, inference: Inference) -> None:
        words = self.settings.flagged_word
        if not words:
            return
        for text in inference.texts:
            lowered = text.lower()
            for word in words:
                if word.lower() in lowered:
                    provider = inference.endpoint.provider.name
                    raise HTTPError(
                        403,
                        f"{inference.model.id} requires moderation on {provider}. Your input was flagged for "
                        f'"{word}". No credits were charged.',
                        {
                            "reasons": [word],
                            "flagged_input": _middle_truncate(text),
                            "provider_name": provider,
                            "model_slug": inference.model.id,
                        },
                    )

    def check_credits(self, key: str, inference: Inference) -> None:
        """The pre-flight check: the most the request can cost must fit what the key may still spend."""
        needed = inference.max_cost()
        spendable = self.ledger.spendable(key)
        if needed <= spendable and (needed > 0 or spendable >= 0):
            return
        key_remaining = self.ledger.key_remaining(key)
        limited_by = (
            "key_limit"
            if key_remaining is not None and key_remaining < self.ledger.remaining_credits()
            else "credits"
        )
        price = inference.endpoint.completion
        prompt_cost = inference.prompt_tokens * inference.endpoint.prompt
        affordable = int((spendable - prompt_cost) / price) if price and spendable > prompt_cost else 0
        wanted = inference.max_tokens or inference.model.max_completion_tokens
        raise HTTPError(
            402,
            f"This request requires more credits, or fewer max_tokens. You requested up to {wanted} tokens, "
            f"but can only afford {affordable}. To increase, visit https://openrouter.ai/settings/credits "
            "and upgrade to a paid account",
            {"provider_name": None, "limited_by": limited_by},
        )

    def _latency_s(self, directives: Directives | None) -> float:
        if directives is not None and directives.latency_ms is not None:
            return directives.latency_ms / 1000
        mean, jitter = self.settings.latency_ms, self.settings.latency_jitter_ms
        if jitter:
            mean += self.random.uniform(-jitter, jitter)
        return max(0.0, mean) / 1000

    def _decide_fault(self, body_hash: bytes, directives: Directives | None) -> str | None:
        settings = self.settings
        if settings.fault_rate and self.random.random() < settings.fault_rate:
            return str(self.random.choice(settings.fault_statuses))
        if (
            directives is not None
            and directives.fault is not None
            and self.attempts.next_attempt_fails(body_hash, directives.times)
        ):
            return directives.fault
        return None

    def new_generation_id(self) -> str:
        return f"gen-{int(time.time())}-{os.urandom(10).hex()}"

    def generation_record(
        self,
        key: str,
        inference: Inference,
        gen_id: str,
        answers: list[Answer],
        *,
        streamed: bool,
        latency_s: float,
        request: Request | None = None,
    ) -> GenerationRecord:
        completion_tokens = reasoning = image_tokens = images = 0
        for given in answers:
            completion_tokens += given.completion_tokens
            if given.reasoning_tokens or given.images:
                reasoning += given.reasoning_tokens
                image_tokens += given.image_tokens
                images += len(given.images or ())
        prompt_cost, completion_cost = inference.cost(completion_tokens)
        headers = request.headers if request is not None else {}
        finish = answers[0].finish_reason
        # A stream's stats appear only after its end (see publish); the rest count from now.
        available_at = math.inf if streamed else time.monotonic() + self.settings.generation_delay_s
        return GenerationRecord(
            id=gen_id,
            key=key,
            model=inference.model.id,
            provider_name=inference.endpoint.provider.name,
            created=time.time(),
            available_at=available_at,
            tokens_prompt=inference.prompt_tokens,
            tokens_completion=completion_tokens,
            cost=prompt_cost + completion_cost,
            finish_reason=finish,
            native_finish_reason=native_finish_reason(inference.model.id, finish),
            streamed=streamed,
            latency_ms=int(latency_s * 1000) + 25,
            http_referer=headers.get("http-referer"),
            user_agent=headers.get("user-agent"),
            app_title=headers.get("x-openrouter-title") or headers.get("x-title"),
            external_user=inference.user,
            session_id=inference.session_id or headers.get("x-session-id"),
            metadata=inference.metadata,
            trace=inference.trace,
            request_id=gen_id.replace("gen-", "req-", 1),
            tokens_reasoning=reasoning,
            tokens_images=image_tokens,
            images=images,
        )

    def publish(self, record: GenerationRecord) -> None:
        """Start the stats delay of a generation whose answer has now been sent (or lost)."""
        record.available_at = time.monotonic() + self.settings.generation_delay_s

    def _bill(self, request: Request, record: GenerationRecord) -> None:
        idempotency_key = request.headers.get("x-idempotency-key")
        identity = None
        if idempotency_key:
            identity = (idempotency_key, content_digest(request.body))
        self.ledger.bill(record, identity)

    async def _inference(self, request: Request, key: str, inference: Inference) -> Response | None:
        self.check_rate_limit(key, inference.model)
        directives = self.directives(inference)
        self.moderate(inference)
        self.check_credits(key, inference)
        fault = (
            self._decide_fault(content_digest(request.body), directives)
            if directives is not None or self.settings.fault_rate
            else None
        )
        latency = self._latency_s(directives)
        if fault is not None:
            self.stats.faults[fault] += 1
            if fault.isdigit():
                if latency:
                    await asyncio.sleep(latency)
                raise self._status_fault(int(fault), inference, directives)
        if inference.stream:
            await self._stream(request, key, inference, fault, latency, directives)
            return None
        if latency:
            await asyncio.sleep(latency)
        return await self._complete(request, key, inference, fault, directives, latency)

    def _status_fault(self, status: int, inference: Inference, directives: Directives | None) -> HTTPError:
        message, error_type = error_text(status)
        metadata: dict[str, Any] = {
            "error_type": error_type,
            "provider_name": inference.endpoint.provider.name,
        }
        if status >= 500:  # OpenRouter masks upstream 5xx messages and drops the provider code
            metadata = {"error_type": error_type}
        headers = []
        if directives is not None and directives.retry_after is not None:
            headers.append((b"retry-after", f"{directives.retry_after:g}".encode()))
        return HTTPError(status, message, metadata, headers)

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
        gen_id = self.new_generation_id()
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
        answers = inference.answers(self.settings.seed)
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
        record = self.generation_record(
            key, inference, gen_id, answers, streamed=False, latency_s=latency, request=request
        )
        self._bill(request, record)
        result = result_body(inference, gen_id, created, choices, usage_json(inference, answers))
        if _wants_metadata(request):
            result["openrouter_metadata"] = routing_metadata(inference, latency)
        body = dumps(result)
        if fault == "reset":
            await request.drop_connection(reset=True)
            return None
        if fault == "truncate":
            request.status = "200"
            await request.send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        *headers,
                    ],
                }
            )
            await request.stream(body[: len(body) // 2])
            await request.drop_connection(reset=False)
            return None
        if fault == "html":
            status = directives.status if directives is not None and directives.status else 502
            return Response(
                status,
                _HTML_PAGE.format(status=status).encode(),
                [(b"content-type", b"text/html; charset=UTF-8")],
            )
        return Response(200, body, [(b"content-type", b"application/json"), *headers])

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
        gen_id = self.new_generation_id()
        created = int(time.time())
        status = directives.status if directives is not None and directives.status else 502
        # Made before the stream starts: a request no answer can be made for still gets its 400.
        answers = inference.answers(self.settings.seed)
        if fault in ("html", "reset"):  # the generation ran and is billed; its answer is then lost
            await asyncio.sleep(latency)
            lost = self.generation_record(
                key, inference, gen_id, answers, streamed=True, latency_s=latency, request=request
            )
            self._bill(request, lost)
            try:
                if fault == "reset":
                    await request.drop_connection(reset=True)
                else:
                    await request.respond(
                        Response(
                            status,
                            _HTML_PAGE.format(status=status).encode(),
                            [(b"content-type", b"text/html; charset=UTF-8")],
                        )
                    )
            finally:
                self.publish(lost)
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
            record = self.generation_record(
                key, inference, gen_id, answers, streamed=True, latency_s=latency, request=request
            )
            self._bill(request, record)
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
                self.publish(record)

    def _usage_chunk_choices(self, inference: Inference) -> list[dict[str, Any]]:
        if self.settings.usage_chunk_choices == "empty":
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

    # ---------------------------------------------------------------- account

    async def credits(self, request: Request) -> Response:
        _, management = self._bearer(request)
        if not management:
            raise HTTPError(
                403,
                "Only management keys can fetch credits: "
                "create one at https://openrouter.ai/settings/management-keys",
                {"error_type": "permission_denied"},
            )
        return Response.json(
            {
                "data": {
                    "total_credits": money(self.settings.credits),
                    "total_usage": money(self.ledger.total_usage),
                }
            }
        )

    async def key(self, request: Request) -> Response:
        key, management = self._bearer(request)
        usage = money(self.ledger.key_usage(key))
        limit = self.settings.key_limit if not management else None
        remaining = self.ledger.key_remaining(key) if limit is not None else None
        budget = None
        if limit is not None and remaining is not None:
            budget = {
                "scope": "api_key",
                "limit_usd": money(limit),
                "spend_usd": usage,
                "remaining_usd": money(remaining),
                "include_byok": False,
                "reset_interval": None,
                "resets_at": None,
                "budget_id": None,
                "guardrail_id": None,
            }
        used = self._free_used(key)
        daily = self._free_daily_limit()
        return Response.json(
            {
                "data": {
                    "label": key_label(key),
                    "limit": money(limit) if limit is not None else None,
                    "limit_remaining": money(remaining) if remaining is not None else None,
                    "limit_reset": None,
                    "usage": usage,
                    "usage_daily": usage,
                    "usage_weekly": usage,
                    "usage_monthly": usage,
                    "byok_usage": 0,
                    "byok_usage_daily": 0,
                    "byok_usage_weekly": 0,
                    "byok_usage_monthly": 0,
                    "include_byok_in_limit": False,
                    "is_free_tier": self.settings.credits < 10,
                    "is_management_key": management,
                    "is_provisioning_key": management,
                    "creator_user_id": USER_ID,
                    "organization_id": None,
                    "workspace_id": None,
                    "expires_at": None,
                    "allowed_data_regions": ["global"],
                    "budgets": [budget] if budget else [],
                    "effective_budget": budget,
                    "free_model_daily_requests": {
                        "limit": daily,
                        "remaining": max(0, daily - used),
                        "used": used,
                    },
                    "rate_limit": {
                        "requests": -1,
                        "interval": "10s",
                        "note": "This field is deprecated and safe to ignore.",
                    },
                }
            }
        )

    async def generation(self, request: Request) -> Response:
        self._bearer(request)
        ids = parse_qs(request.query.decode("latin-1")).get("id")
        if not ids or not ids[0]:
            raise HTTPError(400, "id: required query parameter (the gen-... id of a completion)")
        record = self.ledger.generations.get(ids[0])
        if record is None or time.monotonic() < record.available_at:
            raise HTTPError(404, "Generation not found")
        return Response.json({"data": record.to_json()})

    # ---------------------------------------------------------------- catalog

    async def models(self, request: Request) -> Response:
        query = parse_qs(request.query.decode("latin-1"))
        models = _filter_models(query)
        total = len(models)
        offset = _int_query(query, "offset", 0, 0, None)
        limit = _int_query(query, "limit", None, 1, 1000)
        next_link = None
        if limit is not None or offset:
            end = offset + (limit if limit is not None else total)
            if end < total and limit is not None:
                next_link = f"{API_PREFIX}{request.path}?{_with_offset(request.query.decode('latin-1'), end)}"
            models = models[offset:end]
        return Response.json(
            {
                "data": [catalog.MODEL_JSON[model.id] for model in models],
                "links": {"next": next_link},
                "total_count": total,
            }
        )

    async def models_for_user(self, request: Request) -> Response:
        self._bearer(request)
        return await self.models(request)

    async def models_count(self, request: Request) -> Response:
        return Response.json(
            {"data": {"count": len(_filter_models(parse_qs(request.query.decode("latin-1"))))}}
        )

    async def model_endpoints(self, request: Request) -> Response:
        model_id = request.path[len("/models/") : -len("/endpoints")]
        body = catalog.ENDPOINTS_JSON.get(model_id)
        if body is None:
            raise HTTPError(404, f"No endpoints found for model {model_id}", {"error_type": "not_found"})
        return Response.json(body)

    async def model(self, request: Request) -> Response:
        model_id = request.path[len("/model/") :]
        body = catalog.MODEL_JSON.get(model_id)
        if body is None:
            raise HTTPError(404, f"Model {model_id} not found", {"error_type": "not_found"})
        return Response.json({"data": body})

    async def providers(self, request: Request) -> Response:
        return Response.json(catalog.PROVIDERS_JSON)

    # ---------------------------------------------------------------- admin

    async def admin_stats(self, request: Request) -> Response:
        wanted = parse_qs(request.query.decode("latin-1")).get("billed_by", [])
        if wanted not in ([], ["identity"]):
            raise HTTPError(400, f"billed_by: expected 'identity' (or no billed_by), got {wanted[0]!r}")
        generations = parse_qs(request.query.decode("latin-1")).get("generations") == ["attribution"]
        return Response.json(
            self.stats.to_json(
                self.ledger, self.batches.count(), by_identity=bool(wanted), generations=generations
            )
        )

    async def admin_reset(self, request: Request) -> Response:
        """Back to the start: usage, generations, batches, stats, limits, and the startup settings."""
        self.settings.__dict__.clear()
        self.settings.__dict__.update(self._initial_settings.copy().__dict__)
        self.ledger.reset()
        self.stats.reset()
        self.limiter.clear()
        self.attempts.clear()
        self.batches.clear()
        self._free_requests.clear()
        self.random.seed(self.settings.seed)
        return Response.json({"reset": True, "settings": self.settings.to_json()})

    async def admin_config(self, request: Request) -> Response:
        if request.method == "POST":
            changes = request.json_body()
            try:
                changed = self.settings.update(changes)
            except SettingError as exc:
                raise HTTPError(400, str(exc)) from None
            if "seed" in changed:
                self.random.seed(self.settings.seed)
        return Response.json({"settings": self.settings.to_json()})


def _int_query(
    query: dict[str, list[str]], name: str, default: int | None, low: int, high: int | None
) -> Any:
    values = query.get(name)
    if not values or values[0] == "":
        return default
    try:
        value = int(values[0])
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"from {low} to {high}"
        raise HTTPError(400, f"{name}: expected a whole number {bound}, got {values[0]!r}")
    return value


def _with_offset(query: str, offset: int) -> str:
    """The request's query as the client wrote it, filters and all, with only ``offset`` replaced or added."""
    parts = [part for part in query.split("&") if part]
    found = [index for index, part in enumerate(parts) if part.split("=", 1)[0] == "offset"]
    if not found:
        return "&".join([*parts, f"offset={offset}"])
    parts[found[0]] = f"offset={offset}"
    return "&".join(part for index, part in enumerate(parts) if index not in found[1:])


def _csv(query: dict[str, list[str]], name: str) -> list[str]:
    return [item.strip() for value in query.get(name, ()) for item in value.split(",") if item.strip()]


def _price_filter(query: dict[str, list[str]], name: str) -> Decimal | None:
    values = query.get(name)
    if not values:
        return None
    try:
        price = Decimal(values[0])
    except ArithmeticError:
        price = Decimal("NaN")
    if not price.is_finite() or price < 0:
        raise HTTPError(
            400, f"{name}: expected a price >= 0 in USD per million tokens, such as 0.5, got {values[0]!r}"
        )
    return price / Decimal(1_000_000)


_SORTS = {
    "newest": lambda m: -m.created,
    "pricing-low-to-high": lambda m: m.endpoints[0].prompt + m.endpoints[0].completion,
    "pricing-high-to-low": lambda m: -(m.endpoints[0].prompt + m.endpoints[0].completion),
    "context-high-to-low": lambda m: -m.context_length,
    "throughput-high-to-low": lambda m: -max(e.throughput_p50 for e in m.endpoints),
    "latency-low-to-high": lambda m: min(e.latency_p50_ms for e in m.endpoints),
}


def _filter_models(query: dict[str, list[str]]) -> list[catalog.Model]:
    """The models a ``GET /models`` query selects, in the order it asks for (default: newest first)."""
    models = list(catalog.MODELS)
    output = set(_csv(query, "output_modalities") or ["text"])
    if "all" not in output:
        models = [m for m in models if output.intersection(m.output_modalities)]
    inputs = set(_csv(query, "input_modalities"))
    if inputs:
        models = [m for m in models if inputs <= set(m.input_modalities)]
    params = set(_csv(query, "supported_parameters"))
    if params:
        models = [m for m in models if params <= set(m.supported_parameters)]
    authors = set(_csv(query, "model_authors"))
    if authors:
        models = [m for m in models if m.author in authors]
    providers = {p.lower() for p in _csv(query, "providers")}
    if providers:
        models = [m for m in models if any(e.matches(p) for e in m.endpoints for p in providers)]
    arch = {a.lower() for a in _csv(query, "arch")}
    if arch:
        models = [m for m in models if m.tokenizer.lower() in arch]
    text = (query.get("q") or [""])[0].lower()
    if text:
        models = [m for m in models if text in f"{m.id} {m.name} {m.description}".lower()]
    context = _int_query(query, "context", None, 0, None)
    if context is not None:
        models = [m for m in models if m.context_length >= context]
    for name, attr, keep_above in (
        ("min_price", "prompt", True),
        ("max_price", "prompt", False),
        ("min_output_price", "completion", True),
        ("max_output_price", "completion", False),
    ):
        bound = _price_filter(query, name)
        if bound is not None:
            models = [
                m
                for m in models
                if (getattr(m.endpoints[0], attr) >= bound) == keep_above
                or getattr(m.endpoints[0], attr) == bound
            ]
    sort = (query.get("sort") or ["newest"])[0]
    models.sort(key=_SORTS.get(sort, _SORTS["newest"]))
    return models


def create_app(settings: EmulatorSettings | None = None, **values: Any) -> Emulator:
    """An emulator app for any ASGI server; ``values`` are settings by their JSON names."""
    if settings is None:
        settings = EmulatorSettings(**values)
    elif values:
        settings.update(values)
    return Emulator(settings)
