"""The state one emulated OpenRouter account shares between its routes, and the checks every billable request
passes: keys, rate limits, directives, moderation, credits, faults and latency, and the generation record.

Every resource module (completions, account, models, batches, embeddings, admin) gets this core and imports
nothing of the app that wires them, so no module imports another in a circle.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from typing import Any

from airflow_provider_openrouter.emulator.accounting import GenerationRecord, Ledger, Stats
from airflow_provider_openrouter.emulator.asgi import HTTPError, Request
from airflow_provider_openrouter.emulator.catalog import Catalog, Model
from airflow_provider_openrouter.emulator.config import EmulatorSettings
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
from airflow_provider_openrouter.emulator.inference import Inference
from airflow_provider_openrouter.emulator.textgen import Answer, native_finish_reason

MANAGEMENT_PREFIX = "sk-or-mgmt-"
INFERENCE_PREFIX = "sk-or-"
_FREE_DAILY_SMALL_ACCOUNT = 50  # OpenRouter: 50 free requests a day below 10 USD of credits, 1000 above
_FREE_DAILY = 1000


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


def _middle_truncate(text: str, limit: int = 100) -> str:
    if len(text) <= limit:
        return text
    head = (limit - 3) // 2
    return text[:head] + "..." + text[-(limit - 3 - head) :]


class EmulatorCore:
    """One emulated OpenRouter account. State lives in memory, shared by every request of the process."""

    def __init__(self, settings: EmulatorSettings | None = None) -> None:
        self.settings = settings or EmulatorSettings()
        self._initial_settings = self.settings.copy()
        self.ledger = Ledger(self.settings)
        self.stats = Stats()
        self.limiter = RateLimiter()
        self.attempts = AttemptCounter()
        self.random = random.Random(self.settings.seed)
        self.catalog = Catalog()
        self._free_requests: dict[str, tuple[int, int]] = {}  # key: (UTC day number, requests that day)

    def reset(self) -> None:
        """Back to the start: usage, generations, stats, limits, the catalog and the startup settings."""
        self.settings.__dict__.clear()
        self.settings.__dict__.update(self._initial_settings.copy().__dict__)
        self.ledger.reset()
        self.stats.reset()
        self.limiter.clear()
        self.attempts.clear()
        self.catalog.reset()
        self._free_requests.clear()
        self.random.seed(self.settings.seed)

    # ---------------------------------------------------------------- keys

    def bearer(self, request: Request) -> tuple[str, bool]:
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
        key, management = self.bearer(request)
        if management:
            raise HTTPError(
                403,
                "Management keys cannot be used to make API calls to completion endpoints; "
                "use an inference API key (https://openrouter.ai/settings/keys)",
                {"error_type": "permission_denied"},
            )
        return key

    def check_rate_limit(self, key: str, model: Model | None) -> None:
        settings = self.settings
        now = time.monotonic()
        limited = self.limiter.check(key, "all", settings.rate_limit_rpm, settings.rate_limit_burst, now)
        if limited is None and model is not None and model.is_free:
            limited = self.limiter.check(key, "free", settings.free_model_rpm, 0, now)
            used = self.free_used(key)
            if limited is None and used >= self.free_daily_limit():
                daily = self.free_daily_limit()
                raise _rate_limited(
                    "Rate limit exceeded: free-models-per-day", daily_limit_headers(daily, time.time())
                )
            if limited is None:
                self._free_requests[key] = (_utc_day(), used + 1)
        if limited is not None:
            raise _rate_limited(limited.message, limited.headers(time.time()))

    def free_used(self, key: str) -> int:
        """The key's requests to free models today; the count starts again at UTC midnight."""
        day, used = self._free_requests.get(key, (0, 0))
        return used if day == _utc_day() else 0

    def free_daily_limit(self) -> int:
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
        asked = (
            f"This request requires more credits: its {inference.prompt_tokens} input tokens cost "
            f"{needed} USD"
            if inference.kind == "embeddings"  # no output to cut: only fewer inputs would fit
            else f"This request requires more credits, or fewer max_tokens. You requested up to {wanted} "
            f"tokens, but can only afford {affordable}"
        )
        raise HTTPError(
            402,
            f"{asked}. To increase, visit https://openrouter.ai/settings/credits and upgrade to a paid "
            "account",
            {"provider_name": None, "limited_by": limited_by},
        )

    async def admit(
        self, request: Request, key: str, inference: Inference
    ) -> tuple[Directives | None, str | None, float]:
        """The checks before a billable request runs: rate limit, directives, moderation, credits; then the
        (directives, fault, latency) it gets. A status fault is raised here, after its latency."""
        self.check_rate_limit(key, inference.model)
        directives = self.directives(inference)
        self.moderate(inference)
        self.check_credits(key, inference)
        fault = (
            self.decide_fault(content_digest(request.body, request.parsed), directives)
            if directives is not None or self.settings.fault_rate
            else None
        )
        latency = self.latency_s(directives)
        if fault is not None:
            self.stats.faults[fault] += 1
            if fault.isdigit():
                if latency:
                    await asyncio.sleep(latency)
                raise self.status_fault(int(fault), inference, directives)
        return directives, fault, latency

    @staticmethod
    def status_fault(status: int, inference: Inference, directives: Directives | None) -> HTTPError:
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

    def latency_s(self, directives: Directives | None) -> float:
        if directives is not None and directives.latency_ms is not None:
            return directives.latency_ms / 1000
        mean, jitter = self.settings.latency_ms, self.settings.latency_jitter_ms
        if jitter:
            mean += self.random.uniform(-jitter, jitter)
        return max(0.0, mean) / 1000

    def decide_fault(self, body_hash: bytes, directives: Directives | None) -> str | None:
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

    def new_generation_id(self, prefix: str = "gen") -> str:
        return f"{prefix}-{int(time.time())}-{os.urandom(10).hex()}"

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
        finish = answers[0].finish_reason if answers else None  # an embedding has no finish
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
            request_id="req-" + gen_id.split("-", 1)[1],
            tokens_reasoning=reasoning,
            tokens_images=image_tokens,
            images=images,
            api_type="embeddings" if inference.kind == "embeddings" else "completions",
        )

    def publish(self, record: GenerationRecord) -> None:
        """Start the stats delay of a generation whose answer has now been sent (or lost)."""
        record.available_at = time.monotonic() + self.settings.generation_delay_s

    def bill(self, request: Request, record: GenerationRecord) -> None:
        idempotency_key = request.headers.get("x-idempotency-key")
        identity = None
        if idempotency_key:
            identity = (idempotency_key, content_digest(request.body, request.parsed))
        self.ledger.bill(record, identity)
