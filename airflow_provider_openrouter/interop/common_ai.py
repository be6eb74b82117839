"""An OpenRouter adapter for common-ai's ``LLMBatchOperator`` / ``@task.llm_batch`` (common-ai >= 1.0.0).

common-ai finds it through the entry point group ``airflow.providers.common.ai.batch_adapters`` (declared in
our ``pyproject.toml``) by the prefix of ``model_id``:
``LLMBatchOperator(model_id="openrouter:openai/gpt-4o-mini", llm_conn_id="openrouter_default", ...)`` runs on
OpenRouter's Batch API, through this provider's transport:

* ``POST /batches`` is billable: it carries an ``X-Idempotency-Key`` and is resent only when it provably did
  not run (never sent, or OpenRouter's error envelope); a lost answer raises (``billed=None``) and common-ai's
  intent record makes the next try look for the batch (:meth:`~OpenRouterBatchAdapter.find_orphaned_batch`)
  before it submits again.
* Every request names the task that sent it (``metadata``, ``session_id``, ``trace``), as the provider's own
  operators do, with the connection's ``attribution`` extra, ``app_url`` and ``app_title`` applied.
* Results come inline from ``GET /batches/{id}`` (OpenRouter has no result files); each row's ``usage``
  carries OpenRouter's ``cost`` and the generation id, and the total is logged.

common-ai hands an adapter only the connection's password and host. Inside the task, the adapter reads the
whole connection (``llm_conn_id`` of the running operator, extras included); the triggerer, which only polls,
uses the key and host alone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from airflow.providers.common.ai.batch.base import (
    BatchAdapter,
    BatchState,
    BatchStatus,
    ExtractedOutput,
    RawResultItem,
    SubmitResult,
)
from airflow.providers.common.ai.exceptions import LLMBatchLimitExceededError, LLMBatchModelMismatchError

from airflow_provider_openrouter.batch import MAX_BATCH_REQUESTS
from airflow_provider_openrouter.batch.batch_api import BATCH_ENDPOINT, DEFAULT_MAX_BYTES
from airflow_provider_openrouter.exceptions import OpenRouterConfigurationError, OpenRouterRequestError
from airflow_provider_openrouter.hooks._attribution import NO_ATTRIBUTION, Attribution, current_task_context
from airflow_provider_openrouter.hooks._connection import normalize_base_url
from airflow_provider_openrouter.hooks.openrouter import OpenRouterHook
from airflow_provider_openrouter.models import ChatCompletion, plain_decimal

if TYPE_CHECKING:
    from airflow.providers.common.ai.batch.base import BatchRequest
    from airflow.providers.common.ai.batch.output_schema import OutputSpec

    from airflow_provider_openrouter.transport import OpenRouterTransport

__all__ = ["OpenRouterBatchAdapter"]

log = logging.getLogger(__name__)

_STATUS: dict[str, BatchStatus] = {
    "validating": "in_progress",
    "in_progress": "in_progress",
    "finalizing": "in_progress",
    "cancelling": "in_progress",
    "completed": "completed",
    "failed": "failed",
    "expired": "expired",
    "cancelled": "cancelled",
}
# A batch is created a moment after the intent common-ai records before submitting; and clocks differ.
_ORPHAN_SLACK = timedelta(minutes=5)
_LIST_PAGE = 100
_DEFAULT_MAX_TOKENS = 1024  # LLMBatchOperator's own default


class OpenRouterBatchAdapter(BatchAdapter):
    """common-ai's ``BatchAdapter`` for OpenRouter's Batch API (``model_id="openrouter:<author>/<slug>"``).

    One model per batch, at most 5,000 requests (OpenRouter's limits); a larger input fails before anything
    is sent and asks for ``.expand()``. Structured output is sent as a non-strict ``json_schema`` (common-ai
    validates each row into ``output_type``; a row that does not fit is its ``invalid_output``). OpenRouter
    has no cancel for batches, so :meth:`cancel_batch` raises; common-ai logs that and the batch runs on.
    """

    name = "openrouter"
    conn_types = frozenset({"openrouter"})
    max_requests = MAX_BATCH_REQUESTS
    max_payload_bytes = DEFAULT_MAX_BYTES
    allows_per_request_model = False

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        client: OpenRouterTransport | None = None,
    ) -> None:
        self._hook = _running_task_hook(api_key)
        self._attribution: Attribution | None = None
        self._expected: tuple[str, int] | None = None
        if client is not None:
            self._client = client
        elif self._hook is not None:
            self._client = self._hook.transport
        else:
            self._client = _bare_transport(api_key, base_url)

    # --- request side -------------------------------------------------------------------------------------

    def build_output_directive(self, spec: OutputSpec) -> dict[str, Any]:
        if not spec.is_structured:
            return {}
        return {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": spec.schema_name, "strict": False, "schema": spec.json_schema},
            }
        }

    def validate_requests(
        self,
        requests: list[BatchRequest],
        *,
        model: str,
        output_spec: OutputSpec,
        idempotency_key: str,
        **options: Any,
    ) -> None:
        self.check_custom_id_length(idempotency_key, len(requests))
        if len(requests) > self.max_requests:
            raise LLMBatchLimitExceededError(
                f"OpenRouter's Batch API takes at most {self.max_requests} requests per batch; got "
                f"{len(requests)}. Split the input with .expand() so each task instance submits at most "
                f"{self.max_requests}."
            )
        for index, request in enumerate(requests):
            own = self.resolve_request_model(
                request.get("model"), default_bare_model=model, request_index=index
            )
            if own != model:
                raise LLMBatchModelMismatchError(
                    f"Request {index} sets model={request.get('model')!r}, but an OpenRouter batch runs one "
                    f"model ({model!r}). Use one model, or one task per model."
                )
        size = len(
            json.dumps(self._batch_body(requests, model, idempotency_key, output_spec, options)).encode()
        )
        if size > self.max_payload_bytes:
            raise LLMBatchLimitExceededError(
                f"This batch is {size} bytes of JSON; one POST /batches to OpenRouter takes at most "
                f"{self.max_payload_bytes}. Split the input with .expand()."
            )
        self._expected = (model, len(requests))

    def submit(
        self,
        requests: list[BatchRequest],
        *,
        model: str,
        idempotency_key: str,
        input_fingerprint: str,
        output_spec: OutputSpec,
        **options: Any,
    ) -> SubmitResult:
        body = self._batch_body(requests, model, idempotency_key, output_spec, options)
        # One key per task instance and input: a resend after a lost answer is recognised by OpenRouter, and a
        # changed input is a new batch.
        answer = self._client.post(
            "/batches", body, billable=True, idempotency_key=f"{idempotency_key}-{input_fingerprint[:16]}"
        )
        batch_id = answer.get("id")
        if not isinstance(batch_id, str) or not batch_id:
            raise OpenRouterRequestError(
                f"POST /batches answered without a batch id (keys: {sorted(answer)})",
                request="POST /batches",
                billed=None,
            )
        log.info("OpenRouter batch %s: %d requests to %s", batch_id, len(requests), model)
        return SubmitResult(batch_id=batch_id, provider_input_ref=None)

    def _batch_body(
        self,
        requests: list[BatchRequest],
        model: str,
        idempotency_key: str,
        output_spec: OutputSpec,
        options: Mapping[str, Any],
    ) -> dict[str, Any]:
        """The ``POST /batches`` body; ``options`` are common-ai's ``system_prompt``, ``max_tokens`` and
        ``request_params`` (the same for the size check and the submission)."""
        directive = self.build_output_directive(output_spec)
        attribution = self._request_attribution()
        lines = []
        for index, request in enumerate(requests):
            messages = []
            system = request.get("system_prompt") or options.get("system_prompt")
            if system:
                messages.append({"role": "system", "content": system})
            messages.append({"role": "user", "content": request["prompt"]})
            # The user's parameters first, so they cannot replace the model, the prompt or the directive.
            body = {
                **(options.get("request_params") or {}),
                **(request.get("params") or {}),
                "model": model,
                "messages": messages,
                "max_tokens": request.get("max_tokens") or options.get("max_tokens") or _DEFAULT_MAX_TOKENS,
                **directive,
            }
            custom_id = f"{idempotency_key}-{index}"
            lines.append({"custom_id": custom_id, "body": attribution.apply(body, custom_id)})
        return {"endpoint": BATCH_ENDPOINT, "model": model, "requests": lines, "completion_window": "24h"}

    def _request_attribution(self) -> Attribution:
        if self._attribution is None:
            self._attribution = (
                self._hook.attribution_for(request="POST /batches", rows=True)
                if self._hook is not None
                else NO_ATTRIBUTION
            )
        return self._attribution

    # --- polling and results ------------------------------------------------------------------------------

    def get_batch(self, batch_id: str) -> BatchState:
        batch = self._client.get(f"/batches/{batch_id}")
        counts = batch.get("request_counts") or {}
        status = _STATUS.get(str(batch.get("status")), "in_progress")
        total, completed, failed = (int(counts.get(key) or 0) for key in ("total", "completed", "failed"))
        rest = max(total - completed - failed, 0)
        return BatchState(
            status=status,
            counts={
                "succeeded": completed,
                "errored": failed,
                "expired": rest if status == "expired" else 0,
                "cancelled": rest if status == "cancelled" else 0,
            }
            if counts
            else None,
            error_message=(batch.get("error") or {}).get("message"),
        )

    def cancel_batch(self, batch_id: str) -> None:
        raise OpenRouterRequestError(
            f"OpenRouter's Batch API cannot cancel batch {batch_id}: it runs (and is billed) until it ends",
            request=f"DELETE /batches/{batch_id}",
            hint="Wait for it to end; DELETE /batches/{id} only removes a finished batch.",
        )

    def iter_results(self, batch_id: str) -> Iterator[RawResultItem]:
        batch = self._client.get(f"/batches/{batch_id}")  # fetched now, so a bad id raises here
        return self._items(batch_id, batch.get("results") or [])

    def _items(self, batch_id: str, results: list[dict[str, Any]]) -> Iterator[RawResultItem]:
        total = Decimal(0)
        for result in results:
            item = _raw_item(result)
            if item is None:
                log.warning("OpenRouter batch %s: skipped a result without a usable custom_id", batch_id)
                continue
            cost = (item.usage or {}).get("cost")
            if cost is not None:
                total += Decimal(str(cost))
            yield item
        log.info("OpenRouter batch %s: %d results cost %s USD", batch_id, len(results), plain_decimal(total))

    def extract_output(self, raw: RawResultItem, spec: OutputSpec) -> ExtractedOutput:
        if not raw.raw:
            return ExtractedOutput(kind="absent")
        return ExtractedOutput(kind="json_text" if spec.is_structured else "text", text=raw.raw)

    def find_orphaned_batch(
        self, idempotency_key: str, input_fingerprint: str, not_before: str
    ) -> str | None:
        """The batch a lost ``POST /batches`` answer created, if there is exactly one candidate.

        OpenRouter batches carry no metadata, so a candidate is a batch of the same model and request count
        (from :meth:`validate_requests`, which common-ai calls first) created since ``not_before`` (less a
        few minutes of clock slack). None: nothing was created, common-ai submits. Several: raises, naming
        them, since adopting the wrong one would land another run's rows.
        """
        if self._expected is None:
            return None
        model, count = self._expected
        since = datetime.fromisoformat(not_before) - _ORPHAN_SLACK if not_before else None
        candidates = [
            str(item["id"])
            for item in self._list_batches(since)
            if item.get("model") == model and (item.get("request_counts") or {}).get("total") == count
        ]
        if len(candidates) > 1:
            raise OpenRouterRequestError(
                f"the answer to a batch submission was lost and {len(candidates)} batches could be it "
                f"({', '.join(candidates)}); none was adopted and nothing was resubmitted",
                request="GET /batches",
                hint="Set on_orphaned_intent='fail' and land the right batch by hand, or clear the task's "
                "state file under result_path to submit again.",
            )
        return candidates[0] if candidates else None

    def _list_batches(self, since: datetime | None) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {"limit": _LIST_PAGE}
        if since is not None:
            params["created_after"] = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        while True:
            page = self._client.get("/batches", params)
            data = page.get("data") or []
            yield from data
            if not data or not page.get("last_id"):
                return
            params = {**params, "after": page["last_id"]}

    def close(self) -> None:
        if self._hook is not None:
            self._hook.close()
        else:
            self._client.close()


def _raw_item(result: Mapping[str, Any]) -> RawResultItem | None:
    custom_id = str(result.get("custom_id") or "")
    prefix, _, index_text = custom_id.rpartition("-")
    if not prefix or not index_text.isdigit():
        return None
    index = int(index_text)
    response = result.get("response") if isinstance(result.get("response"), Mapping) else None
    body = response.get("body") if response is not None else None
    error = result.get("error")
    if error or not isinstance(body, Mapping):
        details = error if isinstance(error, Mapping) else {}
        expired = details.get("type") == "batch_expired" or details.get("code") == "batch_expired"
        return RawResultItem(
            custom_id=custom_id,
            index=index,
            provider_status="expired" if expired else "errored",
            model=None,
            usage=None,
            finish_reason=None,
            error={
                "type": "provider_error",
                "message": str(details.get("message") or "the request failed"),
                "provider_code": str(details.get("error_type") or details.get("type") or "") or None,
                "stage": "provider",
                "billed": False,
            },
            raw=None,
        )
    answer = ChatCompletion.model_validate(body)
    usage = answer.usage
    # common-ai copies this mapping into the row as is: OpenRouter's cost and generation id ride along.
    row_usage: dict[str, Any] = {
        "input_tokens": usage.prompt_tokens if usage else 0,
        "output_tokens": usage.completion_tokens if usage else 0,
        "cost": plain_decimal(answer.cost) if answer.cost is not None else None,
        "generation_id": answer.id,
    }
    return RawResultItem(
        custom_id=custom_id,
        index=index,
        provider_status="success",
        model=answer.model,
        usage=row_usage,
        finish_reason=answer.finish_reason,
        error=None,
        raw=answer.text or None,  # None (a refusal, or only tool calls): common-ai's 'absent'
    )


def _running_task_hook(api_key: str | None) -> OpenRouterHook | None:
    """The hook of the running common-ai task's ``llm_conn_id`` (the whole connection: extras, attribution),
    if this adapter is built for that connection; ``None`` outside a task (the triggerer)."""
    context = current_task_context()
    conn_id = getattr(context.get("task") if context else None, "llm_conn_id", None)
    if not isinstance(conn_id, str):
        return None
    hook = OpenRouterHook(conn_id)
    return hook if hook.settings.api_key == (api_key or "").strip() else None


def _bare_transport(api_key: str | None, base_url: str | None) -> OpenRouterTransport:
    from airflow_provider_openrouter.transport import OpenRouterTransport, TransportSettings

    conn_id = "common-ai batch"
    if not api_key:
        raise OpenRouterConfigurationError(
            "the connection has no API key: put the OpenRouter key in its password field", conn_id=conn_id
        )
    settings = TransportSettings(conn_id=conn_id, base_url=normalize_base_url(base_url), api_key=api_key)
    return OpenRouterTransport(settings)
