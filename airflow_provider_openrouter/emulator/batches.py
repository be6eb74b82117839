"""The Batch API: ``POST /batches``, ``GET /batches/{id}``, ``GET /batches`` and ``DELETE /batches/{id}``.

A batch's status is a function of the time since its creation: validating for the first fifth of
``--batch-duration-s``, in_progress until four fifths, finalizing until the end, then completed. Its requests
are answered in the background right after creation (in small slices, so the server stays responsive while a
batch of 10,000 runs), each exactly as ``POST /chat/completions`` would answer it, directives included; a
request with a fault directive ends as a per-result error and is not billed. Results are billed once, when a
terminal batch is first read; if the credits cannot cover them, the read answers 402 until they can. A batch
for ``/v1/embeddings`` (with an embeddings model) answers each row as ``POST /embeddings`` would.

A ``[[emulator: batch=failed]]`` directive in any request makes the batch end ``failed`` (``error.message``
set, ``results`` null, nothing billed); ``[[emulator: batch=expired]]`` makes it end ``expired``, with results
for the requests before the one carrying it and a ``batch_expired`` error for that one and every later one.
"""

from __future__ import annotations

import asyncio
import math
import random
import string
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

from airflow_provider_openrouter.emulator.accounting import GenerationRecord, money
from airflow_provider_openrouter.emulator.asgi import TOO_DEEP, HTTPError, Request, Response, dumps
from airflow_provider_openrouter.emulator.core import EmulatorCore
from airflow_provider_openrouter.emulator.embeddings import embeddings_body, parse_embeddings
from airflow_provider_openrouter.emulator.faults import content_digest, error_text
from airflow_provider_openrouter.emulator.inference import parse_chat, pick_endpoint
from airflow_provider_openrouter.emulator.responses import chat_choice, make_answers, result_body, usage_json
from airflow_provider_openrouter.emulator.validation import check_provider

TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings")
MAX_REQUESTS = 5_000  # OpenRouter's limit per POST /batches (batch-api guide)
_ID_CHARS = string.ascii_lowercase + string.digits
_SLICE = 200  # requests answered between two yields to the event loop
BATCH_FAILED_MESSAGE = "The provider could not process this batch; none of its requests ran or was billed"
_EXPIRED_ERROR = {
    "message": "The batch expired before this request was run",
    "type": "batch_expired",
    "error_type": "timeout",
}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


@dataclass
class Batch:
    id: str
    seq: int
    key: str
    endpoint: str
    model: str
    provider_name: str
    provider_prefs: dict[str, Any] | None
    created_at: int
    created_mono: float
    duration_s: float
    requests: list[dict[str, Any]]
    results: list[dict[str, Any]] | None = None
    records: list[tuple[GenerationRecord, tuple[str, bytes]]] = field(default_factory=list)
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal = Decimal(0)
    billed: bool = False
    outcome: str = "completed"  # or what a [[emulator: batch=...]] directive in one of its requests says
    worker: asyncio.Task[None] | None = None
    released_body: bytes | None = None

    def status(self, now: float) -> str:
        """The status by the clock, held at finalizing until every request has been answered."""
        elapsed = now - self.created_mono
        if elapsed >= self.duration_s and self.results is not None:
            return self.outcome
        if elapsed < self.duration_s * 0.2:
            return "validating"
        if elapsed < self.duration_s * 0.8:
            return "in_progress"
        return "finalizing"

    def to_json(self, status: str, *, results: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        terminal = status in TERMINAL
        total = len(self.requests)
        usage = None
        if terminal:
            usage = {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens,
                "cost": money(self.cost),
                "is_byok": False,
            }
        finalized_at = self.created_at + math.ceil(self.duration_s)
        expires_at = None if status == "validating" else self.created_at + 86400
        if status == "expired":
            expires_at = finalized_at  # the window ended when the batch did
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": self.model,
            "completion_window": "24h",
            "status": status,
            "created_at": self.created_at,
            "expires_at": expires_at,
            "finalized_at": finalized_at if terminal else None,
            "error": {"message": BATCH_FAILED_MESSAGE} if status == "failed" else None,
            "provider": None if status == "validating" else self.provider_name,
            "request_counts": {
                "total": total,
                "completed": total - self.failed if terminal else 0,
                "failed": self.failed if terminal else 0,
            },
            "results": None if status == "failed" else results,
            "usage": usage,
        }


class BatchStore:
    def __init__(self, emulator: EmulatorCore) -> None:
        self.emulator = emulator
        self._batches: dict[str, Batch] = {}
        self._seq_by_id: dict[str, int] = {}  # deleted batches too, so an `after` cursor stays valid
        self._seq = 0
        self._ids = random.Random()

    def count(self) -> int:
        return len(self._batches)

    def clear(self) -> None:
        for batch in self._batches.values():
            if batch.worker is not None:
                batch.worker.cancel()
        self._batches.clear()
        self._seq_by_id.clear()

    # ---------------------------------------------------------------- create

    async def create(self, request: Request) -> Response:
        emulator = self.emulator
        key = emulator.inference_key(request)
        body = request.json_body()
        endpoint = body.get("endpoint")
        if endpoint not in ENDPOINTS:
            raise HTTPError(
                400,
                f"endpoint: expected one of {', '.join(ENDPOINTS)} (the batch endpoints the emulator runs), "
                f"got {endpoint!r}",
            )
        model_id = body.get("model")
        model = emulator.catalog.by_id.get(model_id) if isinstance(model_id, str) else None
        if model is None:
            raise HTTPError(400, f"{model_id} is not a valid model ID")
        if model.is_embeddings != (endpoint == "/v1/embeddings"):
            kind = "an embeddings" if model.is_embeddings else "a chat"
            raise HTTPError(400, f"model: {model.id} is {kind} model, which endpoint {endpoint} does not run")
        if body.get("completion_window", "24h") != "24h":
            raise HTTPError(400, f"completion_window: expected '24h', got {body['completion_window']!r}")
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            raise HTTPError(400, "requests: expected a non-empty array of {custom_id, body} objects")
        if len(requests) > MAX_REQUESTS:
            raise HTTPError(
                400,
                f"requests: a batch holds at most {MAX_REQUESTS:,} requests, got {len(requests):,}; "
                "split them into several batches",
            )
        seen: set[str] = set()
        for index, item in enumerate(requests):
            custom_id = item.get("custom_id") if isinstance(item, dict) else None
            if not isinstance(custom_id, str) or not custom_id or not isinstance(item.get("body"), dict):
                raise HTTPError(
                    400, f"requests[{index}]: expected {{custom_id: non-empty string, body: object}}"
                )
            if custom_id in seen:
                raise HTTPError(400, f"requests[{index}].custom_id {custom_id!r} is used twice in this batch")
            seen.add(custom_id)
        provider_prefs = body.get("provider")
        check_provider(provider_prefs)
        chosen = pick_endpoint(model, provider_prefs, None, set())
        if chosen is None:
            raise HTTPError(404, f"No endpoints found for {model.id} that match provider.only")
        emulator.check_rate_limit(key, None)
        if emulator.ledger.spendable(key) <= 0:
            raise HTTPError(
                402,
                "Insufficient credits to submit a batch. Add more using "
                "https://openrouter.ai/settings/credits",
            )
        self._seq += 1
        batch = Batch(
            id=f"batch_{self._seq:06d}{''.join(self._ids.choices(_ID_CHARS, k=18))}",
            seq=self._seq,
            key=key,
            endpoint=endpoint,
            model=model.id,
            provider_name=chosen.provider.name,
            provider_prefs=provider_prefs,
            created_at=int(time.time()),
            created_mono=time.monotonic(),
            duration_s=emulator.settings.batch_duration_s,
            requests=requests,
        )
        self._batches[batch.id] = batch
        self._seq_by_id[batch.id] = batch.seq
        batch.worker = asyncio.get_running_loop().create_task(self._answer_all(batch))
        return Response.json(batch.to_json("validating"), status=202)

    # ---------------------------------------------------------------- answering

    async def _answer_all(self, batch: Batch) -> None:
        results = []
        for index, item in enumerate(batch.requests):
            if index and index % _SLICE == 0:
                await asyncio.sleep(0)
            try:
                result = self._answer(batch, item["custom_id"], item["body"], index)
            except HTTPError as exc:  # a row no answer can be made for (its schema) fails alone
                result = self._failed(
                    batch, f"{batch.id}_req_{index}", item["custom_id"], exc.status, exc.message
                )
            except RecursionError:  # so does a row too deep to follow, instead of stalling the batch
                result = self._failed(batch, f"{batch.id}_req_{index}", item["custom_id"], 400, TOO_DEEP)
            results.append(result)
            if batch.outcome == "failed":  # nothing of a failed batch runs, is reported or is billed
                batch.records.clear()
                batch.prompt_tokens = batch.completion_tokens = 0
                batch.cost = Decimal(0)
                batch.failed = len(batch.requests)
                break
        batch.results = results

    def _answer(self, batch: Batch, custom_id: str, original: dict[str, Any], index: int) -> dict[str, Any]:
        emulator = self.emulator
        result_id = f"{batch.id}_req_{index}"
        if batch.outcome == "expired":
            return self._error_result(batch, result_id, custom_id, _EXPIRED_ERROR)
        body = dict(original)
        body.pop("stream", None)
        if body.setdefault("model", batch.model) != batch.model:
            return self._failed(
                batch,
                result_id,
                custom_id,
                400,
                f"model {body['model']!r} differs from the batch model {batch.model!r}",
            )
        if batch.provider_prefs and not body.get("provider"):
            body["provider"] = batch.provider_prefs
        try:
            parse = parse_embeddings if batch.endpoint == "/v1/embeddings" else parse_chat
            inference = parse(body, emulator.settings, emulator.catalog)
            directives = emulator.directives(inference, in_batch=True)
            emulator.moderate(inference)
        except HTTPError as exc:
            return self._failed(batch, result_id, custom_id, exc.status, exc.message)
        canonical = content_digest(original)
        if (
            directives is not None
            and directives.batch is not None
            and emulator.attempts.next_attempt_fails(canonical, directives.times)
        ):
            batch.outcome = directives.batch
            emulator.stats.faults[f"batch:{directives.batch}"] += 1
            if batch.outcome == "expired":  # time ran out here: this request and every later one never ran
                return self._error_result(batch, result_id, custom_id, _EXPIRED_ERROR)
        if (
            directives is not None
            and directives.fault is not None
            and emulator.attempts.next_attempt_fails(canonical, directives.times)
        ):
            emulator.stats.faults[f"batch:{directives.fault}"] += 1
            status = directives.fault_status or directives.status or 502
            return self._failed(batch, result_id, custom_id, status, error_text(status)[0])
        embedding = inference.kind == "embeddings"
        answers = [] if embedding else make_answers(inference, emulator.settings.seed)
        gen_id = emulator.new_generation_id("embd" if embedding else "gen")
        record = emulator.generation_record(
            batch.key, inference, gen_id, answers, streamed=False, latency_s=0
        )
        batch.records.append((record, (custom_id, canonical)))
        batch.prompt_tokens += record.tokens_prompt
        batch.completion_tokens += record.tokens_completion
        batch.cost += record.cost
        if embedding:
            result = embeddings_body(inference, gen_id)
        else:
            choices = [chat_choice(inference, answers[0])]
            result = result_body(
                inference, gen_id, int(record.created), choices, usage_json(inference, answers)
            )
        return {
            "id": result_id,
            "custom_id": custom_id,
            "response": {"status_code": 200, "request_id": gen_id, "body": result},
            "error": None,
        }

    def _failed(
        self, batch: Batch, result_id: str, custom_id: str, status: int, message: str
    ) -> dict[str, Any]:
        error = {"message": message, "type": _ERROR_TYPES.get(status, "server_error")}
        return self._error_result(batch, result_id, custom_id, {**error, "error_type": error_text(status)[1]})

    def _error_result(
        self, batch: Batch, result_id: str, custom_id: str, error: dict[str, Any]
    ) -> dict[str, Any]:
        batch.failed += 1
        return {"id": result_id, "custom_id": custom_id, "response": None, "error": {"param": None, **error}}

    # ---------------------------------------------------------------- read, list, delete

    def _lookup(self, request: Request) -> Batch:
        batch_id = request.path[len("/batches/") :]
        batch = self._batches.get(batch_id)
        if batch is None:
            raise HTTPError(404, f"Batch {batch_id} not found")
        return batch

    async def get(self, request: Request) -> Response:
        self.emulator.inference_key(request)
        batch = self._lookup(request)
        if batch.released_body is not None:
            return Response(200, batch.released_body)
        now = time.monotonic()
        if now - batch.created_mono >= batch.duration_s and batch.worker is not None:
            await asyncio.shield(batch.worker)
        status = batch.status(time.monotonic())
        if status not in TERMINAL:
            return Response.json(batch.to_json(status))
        if not batch.billed:
            ledger = self.emulator.ledger
            if batch.cost > ledger.spendable(batch.key):
                body = batch.to_json(status)
                body["error"] = {"code": 402, "message": "Insufficient credits to release batch results"}
                return Response.json(body, status=402)
            for record, identity in batch.records:
                self.emulator.publish(record)
                ledger.bill(record, identity)
            batch.billed = True
            batch.records = []
        batch.released_body = dumps(batch.to_json(status, results=batch.results))
        return Response(200, batch.released_body)

    async def list(self, request: Request) -> Response:
        self.emulator.inference_key(request)
        query = parse_qs(request.query.decode("latin-1"))
        limit_text = (query.get("limit") or ["20"])[0]
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 100:
            raise HTTPError(400, f"limit: expected a whole number from 1 to 100, got {limit_text!r}")
        limit = int(limit_text)
        batches = sorted(self._batches.values(), key=lambda b: b.seq, reverse=True)
        after = (query.get("after") or [""])[0]
        if after:
            if after not in self._seq_by_id:
                raise HTTPError(400, f"after: {after!r} is not the id of a batch of this account")
            cursor = self._seq_by_id[after]
            batches = [b for b in batches if b.seq < cursor]
        now = time.monotonic()
        # Stored jobs collapse finalizing into in_progress, as OpenRouter's listing does.
        statuses = [(b, "in_progress" if (s := b.status(now)) == "finalizing" else s) for b in batches]
        wanted = set(query.get("status", ()))
        if wanted:
            statuses = [(b, s) for b, s in statuses if s in wanted]
        after_time = _timestamp(query, "created_after")
        before_time = _timestamp(query, "created_before")
        statuses = [
            (b, s)
            for b, s in statuses
            if (after_time is None or b.created_at > after_time)
            and (before_time is None or b.created_at < before_time)
        ]
        page = statuses[:limit]
        return Response.json(
            {
                "object": "list",
                "data": [batch.to_json(status) for batch, status in page],
                "first_id": page[0][0].id if page else None,
                "last_id": page[-1][0].id if page else None,
                "has_more": len(statuses) > limit,
            }
        )

    async def delete(self, request: Request) -> Response:
        self.emulator.inference_key(request)
        batch = self._lookup(request)
        if batch.status(time.monotonic()) not in TERMINAL:
            raise HTTPError(409, "Batch is still in progress")
        del self._batches[batch.id]
        return Response.json(
            {
                "id": batch.id,
                "object": "batch",
                "deletion": {
                    "openrouter": "deleted",
                    "upstream": {"provider": batch.provider_name, "status": "deleted"},
                },
            }
        )


def _timestamp(query: dict[str, list[str]], name: str) -> float | None:
    values = query.get(name)
    if not values or not values[0]:
        return None
    text = values[0]
    try:
        return (
            float(text)
            if text.replace(".", "", 1).isdigit()
            else datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        )
    except ValueError:
        raise HTTPError(400, f"{name}: expected an ISO-8601 time or epoch seconds, got {text!r}") from None
