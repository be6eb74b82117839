"""``OpenRouterHook``: an Airflow connection turned into typed OpenRouter calls, one method per API action.

The hook does no I/O in ``__init__`` (DAG files build hooks at parse time): the connection is read on first
use (:attr:`OpenRouterHook.settings`) and the pooled HTTP session is built then
(:attr:`OpenRouterHook.transport`). The wire (headers, retries, rate limit, error mapping) belongs to
:mod:`airflow_provider_openrouter.transport`, imported lazily so that importing this module stays cheap.

Every request is validated before it is sent (and paid for): a bad argument raises
:class:`~airflow_provider_openrouter.exceptions.OpenRouterRequestError` with ``status=None``, naming the
argument, the value and what is expected.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, Unpack, overload
from urllib.parse import quote

from airflow.sdk import BaseHook
from pydantic import ValidationError

from airflow_provider_openrouter import _values
from airflow_provider_openrouter.cost.attribution import (
    AttributionError,
    attribution_fields,
    attribution_setting,
)
from airflow_provider_openrouter.exceptions import (
    OpenRouterError,
    OpenRouterRequestError,
    OpenRouterResponseError,
    scrub,
)
from airflow_provider_openrouter.hooks._attribution import NO_ATTRIBUTION, Attribution, current_task_context
from airflow_provider_openrouter.hooks._billing import BudgetBook, StructuredCompletion, spend
from airflow_provider_openrouter.hooks._connection import (
    connection_attribution,
    settings_from_connection,
)
from airflow_provider_openrouter.hooks._requests import (
    CHAT_PATH,
    COMPLETIONS_PATH,
    ChatParameters,
    CompletionParameters,
    bad_argument,
    build_chat_request,
    build_completion_request,
    failing,
)
from airflow_provider_openrouter.hooks._stream import assemble_chat_stream
from airflow_provider_openrouter.models import (
    ChatCompletion,
    Credits,
    Generation,
    KeyInfo,
    ModelEndpoints,
    ModelList,
    OpenRouterModel,
    TextCompletion,
    plain_decimal,
)

if TYPE_CHECKING:
    from airflow.sdk import Connection
    from pydantic import BaseModel
    from pydantic_ai.models.openrouter import OpenRouterModel as PydanticAIModel

    from airflow_provider_openrouter.budget import OpenRouterBudget
    from airflow_provider_openrouter.embeddings import EmbeddingModelList, Embeddings
    from airflow_provider_openrouter.models import Model
    from airflow_provider_openrouter.transport import (
        AsyncOpenRouterTransport,
        OpenRouterTransport,
        TransportSettings,
    )

__all__ = ["MAX_MODEL_PAGES", "OpenRouterHook", "StructuredCompletion"]

_MODELS_PAGE_SIZE = 500
MAX_MODEL_PAGES = 100
"""At most this many ``GET /models`` pages (of 500 models) are read for one catalog: OpenRouter lists a few
hundred models, so a server still sending pages after that is broken or hostile."""

ResultT = TypeVar("ResultT", bound=OpenRouterModel)
BillableT = TypeVar("BillableT", ChatCompletion, TextCompletion, "Embeddings")
OutputT = TypeVar("OutputT", bound="BaseModel")


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(str(item) for item in value)
    return value


# --- the hook ----------------------------------------------------------------------------------------------


class OpenRouterHook(BaseHook):
    """Talk to OpenRouter through an Airflow connection of type ``openrouter``.

    Connection: password = API key; host = Base URL (default ``https://openrouter.ai/api/v1``); extras are
    described in docs/connection.md. ``__init__`` does no I/O; one pooled session per hook is built on first
    use and reused by every call (and by every thread sharing the hook).

    :param openrouter_conn_id: the connection id.
    :param tenacity_kwargs: optional ``tenacity.Retrying`` arguments for the transport (``stop``, ``wait``,
        ...); what may be resent is fixed by the billing rules.
    :param requests_per_minute: this hook's client-side rate limit, replacing the connection's
        ``requests_per_minute`` extra (``0`` disables it; ``None`` keeps the connection's).
    :param max_connections: the most HTTP connections the hook's pool keeps open; size it to the number of
        threads sharing the hook (default: the transport's).
    :param attribution: the Airflow context sent with every billable request (``metadata``, ``session_id``,
        ``trace``; see :meth:`attribution_for`): ``False`` turns it off, a dict adds the user's own metadata
        pairs; it overrides the connection extra ``attribution`` and is overridden by a call's own.

    The hook is a context manager; :meth:`close` (or leaving the ``with`` block) closes its pool.
    """

    conn_name_attr = "openrouter_conn_id"
    default_conn_name = "openrouter_default"
    conn_type = "openrouter"
    hook_name = "OpenRouter"

    def __init__(
        self,
        openrouter_conn_id: str = default_conn_name,
        *,
        tenacity_kwargs: Mapping[str, Any] | None = None,
        requests_per_minute: float | None = None,
        max_connections: int | None = None,
        attribution: bool | Mapping[str, Any] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.openrouter_conn_id = openrouter_conn_id
        self.attribution = attribution
        self.tenacity_kwargs = tenacity_kwargs
        request = "OpenRouterHook()"
        self.requests_per_minute = _values.number(
            "requests_per_minute", requests_per_minute, failing(request), low=0.0
        )
        self.max_connections = _values.integer("max_connections", max_connections, failing(request), low=1)
        # Python 3.12+ no longer locks cached_property: threads sharing a fresh hook would each read the
        # connection and build a pool of their own, and all but one pool would leak.
        self._lazy_lock = threading.RLock()
        self._settings: TransportSettings | None = None
        self._extra_attribution: tuple[bool, dict[str, str]] | None = None
        self._transport: OpenRouterTransport | None = None
        self._connection_extra: Any = None
        self._catalog: dict[str, Model] | None = None
        self._budgets = BudgetBook()

    def __getstate__(self) -> dict[str, Any]:
        # A copy (deepcopy of an operator, pickling) reads the connection again and opens its own pool.
        state = dict(self.__dict__)
        state.update(
            _lazy_lock=None,
            _settings=None,
            _extra_attribution=None,
            _transport=None,
            _connection_extra=None,
            _catalog=None,
            _budgets=None,
        )
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lazy_lock = threading.RLock()
        self._budgets = BudgetBook()

    def __enter__(self) -> OpenRouterHook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections of this hook (if it opened any) and its budgets' SQL connections. A
        later call opens new ones."""
        with self._lazy_lock:
            transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
        self._budgets.close()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Connection form customisation for Airflow < 3.2 (newer cores read get_provider_info)."""
        from airflow_provider_openrouter.get_provider_info import get_provider_info

        behaviour = get_provider_info()["connection-types"][0]["ui-field-behaviour"]
        return {key.replace("-", "_"): value for key, value in behaviour.items()}

    @property
    def settings(self) -> TransportSettings:
        """The connection, read once and validated, with this hook's ``requests_per_minute`` applied."""
        settings = self._settings
        if settings is None:
            with self._lazy_lock:
                if self._settings is None:
                    self._settings = self._read_connection(self.get_connection(self.openrouter_conn_id))
                settings = self._settings
        return settings

    def _read_connection(self, conn: Connection) -> TransportSettings:
        """The connection's settings with this hook's ``requests_per_minute``; keeps its ``attribution``."""
        settings = settings_from_connection(conn, self.openrouter_conn_id)
        self._extra_attribution = connection_attribution(conn.extra_dejson, self.openrouter_conn_id)
        self._connection_extra = conn.extra_dejson
        if self.requests_per_minute is None:
            return settings
        return dataclasses.replace(settings, requests_per_minute=self.requests_per_minute)

    @property
    def transport(self) -> OpenRouterTransport:
        """The pooled synchronous transport of this hook (``max_connections`` sizes its pool)."""
        transport = self._transport
        if transport is None:
            with self._lazy_lock:
                if self._transport is None:
                    from airflow_provider_openrouter.transport import OpenRouterTransport

                    self._transport = OpenRouterTransport(
                        self.settings, tenacity_kwargs=self.tenacity_kwargs, pool_maxsize=self.max_connections
                    )
                transport = self._transport
        return transport

    def get_conn(self) -> OpenRouterTransport:
        return self.transport

    async def aget_async_transport(self) -> AsyncOpenRouterTransport:
        """A new async transport (for triggers) with this connection's settings, the connection read without
        blocking the event loop; close it with ``aclose()``."""
        from airflow_provider_openrouter.transport import AsyncOpenRouterTransport

        if self._settings is None:
            aget_connection = getattr(self, "aget_connection", None)
            if aget_connection is not None:
                conn = await aget_connection(self.openrouter_conn_id)
            else:  # task SDKs without BaseHook.aget_connection: read it off the event loop
                conn = await asyncio.to_thread(self.get_connection, self.openrouter_conn_id)
            settings = self._read_connection(conn)
            with self._lazy_lock:
                if self._settings is None:
                    self._settings = settings
        # Off the loop too: a new client loads the CA bundle into an SSL context (100-300 ms on a busy host),
        # which would stall every other trigger sharing the triggerer's loop (benchmarks/bench_triggerer_lag).
        return await asyncio.to_thread(
            AsyncOpenRouterTransport, self.settings, tenacity_kwargs=self.tenacity_kwargs
        )

    # --- building requests (no network) -------------------------------------------------------------------

    def build_chat_request(
        self,
        model: str | None = None,
        role: str | None = None,
        content: str | Sequence[Mapping[str, Any]] | None = None,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        attribution: bool | Mapping[str, Any] | str | None = None,
        **parameters: Unpack[ChatParameters],
    ) -> dict[str, Any]:
        """:func:`~airflow_provider_openrouter.hooks._requests.build_chat_request` with the connection's
        ``default_model`` filling a missing model, and the attribution of :meth:`attribution_for` added
        (``attribution=False``: the bare body). Nothing is sent."""
        default_model = self.settings.default_model if not model else None
        body = build_chat_request(
            model,
            role,
            content,
            messages=messages,
            default_model=default_model,
            conn_id=self.openrouter_conn_id,
            **parameters,
        )
        return self.attribution_for(attribution, request=f"POST {CHAT_PATH}").apply(body)

    def attribution_for(
        self,
        attribution: bool | Mapping[str, Any] | str | None = None,
        *,
        context: Mapping[str, Any] | None = None,
        request: str = f"POST {CHAT_PATH}",
        rows: bool = False,
    ) -> Attribution:
        """The attribution of a billable request: the connection extra ``attribution``, then this hook's
        ``attribution``, then ``attribution`` (later ones win; ``False`` turns it off, a dict adds metadata
        pairs), applied to ``context`` (default: the running task's, read once here; none outside a task).

        ``rows=True`` (the batch engine) checks the pairs leave a slot for each row's ``custom_id``. Bad pairs
        raise :class:`OpenRouterConfigurationError` (the extra) or :class:`OpenRouterRequestError` (the
        parameter) before anything is sent.
        """
        if attribution is False:
            return NO_ATTRIBUTION
        self.settings  # noqa: B018 - reading the connection checks and keeps its extra 'attribution'
        extra_enabled, pairs = self._extra_attribution or (True, {})
        try:
            enabled, own = attribution_setting(extra_enabled, self.attribution, attribution)
        except AttributionError as err:
            raise self._attribution_error(err, request) from None
        if not enabled:
            return NO_ATTRIBUTION
        pairs = {**pairs, **own}
        if context is None:
            context = current_task_context()
        try:
            fields = attribution_fields(context, user_pairs=pairs)
            if rows:
                attribution_fields(context, custom_id="-", user_pairs=pairs)
        except AttributionError as err:
            raise self._attribution_error(err, request) from None
        return Attribution(context, True, pairs, fields)

    def _attribution_error(self, err: AttributionError, request: str) -> OpenRouterRequestError:
        return OpenRouterRequestError(
            f"parameter 'attribution' (with the connection extra 'attribution'): {err}",
            request=request,
            conn_id=self.openrouter_conn_id,
            hint="Pass attribution=False (off), True (on) or a dict of your own metadata pairs; nothing was "
            "sent.",
        )

    # --- actions ------------------------------------------------------------------------------------------

    @overload
    def chat_completion(
        self,
        model: str | None = None,
        role: str | None = None,
        content: str | Sequence[Mapping[str, Any]] | None = None,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        idempotency_key: str | None = None,
        stream: bool = False,
        attribution: bool | Mapping[str, Any] | str | None = None,
        output_type: None = None,
        budget: OpenRouterBudget | str | None = None,
        **parameters: Unpack[ChatParameters],
    ) -> ChatCompletion: ...

    @overload
    def chat_completion(
        self,
        model: str | None = None,
        role: str | None = None,
        content: str | Sequence[Mapping[str, Any]] | None = None,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        idempotency_key: str | None = None,
        stream: bool = False,
        attribution: bool | Mapping[str, Any] | str | None = None,
        output_type: type[OutputT],
        budget: OpenRouterBudget | str | None = None,
        **parameters: Unpack[ChatParameters],
    ) -> StructuredCompletion[OutputT]: ...

    @overload
    def chat_completion(
        self,
        model: str | None = None,
        role: str | None = None,
        content: str | Sequence[Mapping[str, Any]] | None = None,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        idempotency_key: str | None = None,
        stream: bool = False,
        attribution: bool | Mapping[str, Any] | str | None = None,
        output_type: str,
        budget: OpenRouterBudget | str | None = None,
        **parameters: Unpack[ChatParameters],
    ) -> StructuredCompletion[Any]: ...

    def chat_completion(
        self,
        model: str | None = None,
        role: str | None = None,
        content: str | Sequence[Mapping[str, Any]] | None = None,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        idempotency_key: str | None = None,
        stream: bool = False,
        attribution: bool | Mapping[str, Any] | str | None = None,
        output_type: type[BaseModel] | str | None = None,
        budget: OpenRouterBudget | str | None = None,
        **parameters: Unpack[ChatParameters],
    ) -> ChatCompletion | StructuredCompletion[Any]:
        """Send a chat completion (billable) and return the typed answer.

        Accepts the connector's flat form (``model``, ``role``, ``content``) and the full API: ``messages``
        and the typed ``parameters`` of :class:`~airflow_provider_openrouter.hooks._requests.ChatParameters`
        (``temperature=0.2``, ``max_tokens=256``, ``provider={...}``); a bad value raises before anything is
        sent. An error OpenRouter reports inside a 200 body raises like its status. ``stream=True`` receives
        the answer as server-sent events (OpenRouter's keep-alives then hold the connection open through a
        long generation, so the read timeout measures silence, not total time) and returns the same assembled
        ChatCompletion; an error event mid-stream raises. ``attribution``: see :meth:`attribution_for`; the
        body names the running task (``metadata``, ``session_id``, ``trace``).

        ``output_type`` (a pydantic class, or its dotted path ``"pkg.module.Class"``): the request asks for
        JSON of the class's schema (``response_format`` json_schema, strict when the model's catalog entry
        lists ``structured_outputs``; give no ``response_format`` of your own), and the answer is validated
        into it. The result is then a
        :class:`~airflow_provider_openrouter.hooks._billing.StructuredCompletion`: ``.output`` is the
        instance, ``.completion`` the whole ChatCompletion. An answer that does not
        validate raises :class:`~airflow_provider_openrouter.structured.InvalidOutputError` (billed), whose
        ``completion`` is the answer that was paid for.

        ``budget`` (an :class:`~airflow_provider_openrouter.budget.OpenRouterBudget`, or the name of one
        declared in the connection extra ``budgets``): the request's worst case is reserved before it is
        sent, and :class:`~airflow_provider_openrouter.budget.BudgetExhaustedError` (nothing sent) raised
        when it does not fit; see :mod:`~airflow_provider_openrouter.hooks._billing`.
        """
        output_class = None
        if output_type is not None:
            from airflow_provider_openrouter.structured import (
                load_output_type,
                response_format_for,
                supports_strict,
            )

            output_class = load_output_type(output_type)
            if parameters.get("response_format") is not None:
                raise OpenRouterRequestError(
                    "output_type and response_format were both given: output_type sends the response_format "
                    "of its class",
                    request=f"POST {CHAT_PATH}",
                    hint="Leave response_format out.",
                )
            chosen = (model or "").strip() or self.settings.default_model
            strict = supports_strict(self.model_entry(chosen))
            parameters["response_format"] = response_format_for(output_class, strict=strict)
        body = self.build_chat_request(
            model, role, content, messages=messages, attribution=attribution, **parameters
        )
        completion = self.send_chat_request(
            body, idempotency_key=idempotency_key, stream=stream, budget=budget
        )
        if output_class is None:
            return completion
        from airflow_provider_openrouter.structured import InvalidOutputError, validate_output

        try:
            return StructuredCompletion(validate_output(output_class, completion), completion)
        except InvalidOutputError as err:
            err.completion = completion
            raise

    def send_chat_request(
        self,
        body: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        stream: bool = False,
        budget: OpenRouterBudget | str | None = None,
    ) -> ChatCompletion:
        """POST a body built by :meth:`build_chat_request` (the batch engine's per-row call), reserving its
        worst case in ``budget`` first (see :meth:`chat_completion`)."""
        return self._send_billable(
            ChatCompletion, CHAT_PATH, body, idempotency_key=idempotency_key, budget=budget, stream=stream
        )

    def completion(
        self,
        model: str | None = None,
        prompt: str | Sequence[str] | None = None,
        *,
        idempotency_key: str | None = None,
        attribution: bool | Mapping[str, Any] | str | None = None,
        budget: OpenRouterBudget | str | None = None,
        **parameters: Unpack[CompletionParameters],
    ) -> TextCompletion:
        """Send a legacy text completion (``POST /completions``, billable).

        OpenRouter removed this endpoint from its current API; where it answers 404/410 this raises
        :class:`~airflow_provider_openrouter.exceptions.OpenRouterEndpointGoneError`, which points to the chat
        operator. ``budget``: as for :meth:`chat_completion`.
        """
        body = build_completion_request(
            model,
            prompt,
            default_model=self.settings.default_model if not model else None,
            conn_id=self.openrouter_conn_id,
            **parameters,
        )
        body = self.attribution_for(attribution, request=f"POST {COMPLETIONS_PATH}").apply(body)
        return self._send_billable(
            TextCompletion, COMPLETIONS_PATH, body, idempotency_key=idempotency_key, budget=budget
        )

    def _send_billable(
        self,
        cls: type[BillableT],
        path: str,
        body: Mapping[str, Any],
        *,
        idempotency_key: str | None,
        budget: OpenRouterBudget | str | None,
        stream: bool = False,
    ) -> BillableT:
        resolved = self.budget_for(budget)
        reservation = self._budgets.reserve(self, resolved, body) if resolved is not None else None

        def send() -> BillableT:
            if stream:
                data = assemble_chat_stream(
                    self.transport.stream(path, body, idempotency_key=idempotency_key)
                )
            else:
                data = self.transport.post(path, body, idempotency_key=idempotency_key)
            return self._result(cls, data, f"POST {path}", billed=True)

        return spend(reservation, send)

    def budget_for(self, budget: OpenRouterBudget | str | None) -> OpenRouterBudget | None:
        """The budget ``budget`` names: itself, or the one of that name declared in the connection extra
        ``budgets``; a bad name or setting raises a one-line error before anything is sent."""
        if budget is None:
            return None
        from airflow_provider_openrouter.budget import resolve_budget

        self.settings  # noqa: B018 - reading the connection keeps its extra
        return resolve_budget(budget, self._connection_extra)

    def model_entry(self, model_id: str | None) -> Model | None:
        """The catalog entry of ``model_id`` (``None`` when the catalog has no such model). The catalog is
        read once per hook (:meth:`list_models`) and kept: what a model supports does not change within a
        task."""
        if not model_id:
            return None
        with self._lazy_lock:
            if self._catalog is None:
                self._catalog = {entry.id: entry for entry in self.list_models().data}
            return self._catalog.get(model_id)

    def get_credits(self) -> Credits:
        """Credits bought and used (``GET /credits``; OpenRouter requires a management key for it)."""
        return self._result(
            Credits, self._data(self.transport.get("/credits"), "GET /credits"), "GET /credits"
        )

    def get_generation(self, generation_id: str) -> Generation:
        """What a generation cost and how it ran (``GET /generation?id=``).

        Stats appear a moment after the completion; until then OpenRouter answers 404
        (:class:`~airflow_provider_openrouter.exceptions.OpenRouterNotFoundError`).
        """
        request = "GET /generation"
        if not isinstance(generation_id, str) or _values.unset(generation_id):
            raise bad_argument("generation_id", generation_id, "a generation id such as 'gen-...'", request)
        return self.parse_generation(self.transport.get("/generation", {"id": generation_id.strip()}))

    def parse_generation(self, payload: Mapping[str, Any]) -> Generation:
        """The typed :class:`Generation` of a ``GET /generation`` answer (fetched here or by a trigger)."""
        request = "GET /generation"
        return self._result(Generation, self._data(payload, request), request)

    def list_model_endpoints(self, author: str, slug: str | None = None) -> ModelEndpoints:
        """The provider endpoints serving ``author/slug`` (``GET /models/{author}/{slug}/endpoints``).

        ``author`` may be a whole model id (``"openai/gpt-4o"``) when ``slug`` is omitted. Both parts must
        have OpenRouter's id shape (see :func:`~airflow_provider_openrouter._values.model_id_part`) and are
        sent as quoted path segments, so no request leaves ``/models``.
        """
        request = "GET /models/{author}/{slug}/endpoints"
        if slug is None:
            if isinstance(author, str) and author.strip() and "/" not in author:
                raise OpenRouterRequestError(
                    f"the model id {_values.shown(author)} has no '/': expected 'author/slug' such as "
                    "'openai/gpt-4o-mini'",
                    request=request,
                )
            if isinstance(author, str) and "/" in author:
                author, slug = author.strip().split("/", 1)
        elif isinstance(author, str) and "/" in author:
            raise OpenRouterRequestError(
                f"author must not contain '/' when slug is given, got {_values.shown(author)}",
                request=request,
                hint="Pass the whole model id alone (list_model_endpoints('author/slug')), or author and "
                "slug separately.",
            )
        fail = failing(request)
        segments = [
            quote(_values.model_id_part(name, value, fail, part=name), safe="")
            for name, value in (("author", author), ("slug", slug))
        ]
        path = f"/models/{segments[0]}/{segments[1]}/endpoints"
        return self._result(
            ModelEndpoints, self._data(self.transport.get(path), f"GET {path}"), f"GET {path}"
        )

    def list_models(
        self, *, limit: int | None = None, offset: int | None = None, **filters: Any
    ) -> ModelList:
        """The model catalog (``GET /models``), every page unless ``limit`` asks for one page.

        ``filters`` are OpenRouter's query parameters (``category``, ``supported_parameters``,
        ``output_modalities``, ``q``, ``sort``, ...); lists are sent comma-separated, booleans as true/false.
        Paging stops at the last page, at a page that brings no model not seen before (a server that ignores
        ``offset``), and after :data:`MAX_MODEL_PAGES` pages, which raises rather than return a catalog that
        may be incomplete.
        """
        request = "GET /models"
        params = {key: _query_value(value) for key, value in filters.items() if value is not None}
        fail = failing(request)
        page_limit = _values.integer("limit", limit, fail, low=1)
        start = _values.integer("offset", offset, fail, low=0) or 0
        if page_limit is not None:
            params.update(limit=page_limit, offset=start)
            return self._result(ModelList, self.transport.get("/models", params), request)
        if start:
            params["offset"] = start
        first = self.transport.get("/models", params)
        rows = list(first.get("data") or [])
        seen = {row.get("id") for row in rows if isinstance(row, Mapping)}
        total = first.get("total_count")
        next_link = (first.get("links") or {}).get("next")
        pages = 1
        while next_link or (isinstance(total, int) and len(rows) + start < total):
            if pages >= MAX_MODEL_PAGES:
                raise OpenRouterResponseError(
                    f"the catalog did not end after {MAX_MODEL_PAGES} pages of up to {_MODELS_PAGE_SIZE} "
                    f"models ({len(rows)} models so far)",
                    conn_id=self.openrouter_conn_id,
                    request=request,
                    billed=False,
                    hint="Check the Base URL of the connection: OpenRouter's catalog is far smaller. Pass "
                    "limit= and offset= to read it one page at a time.",
                )
            page = self.transport.get(
                "/models", {**params, "offset": start + len(rows), "limit": _MODELS_PAGE_SIZE}
            )
            pages += 1
            fresh = [
                row
                for row in page.get("data") or ()
                if not isinstance(row, Mapping) or row.get("id") not in seen
            ]
            if not fresh:
                break
            rows.extend(fresh)
            seen.update(row.get("id") for row in fresh if isinstance(row, Mapping))
            next_link = (page.get("links") or {}).get("next")
        merged = {**first, "data": rows, "links": {**(first.get("links") or {}), "next": None}}
        return self._result(ModelList, merged, request)

    def get_key(self) -> KeyInfo:
        """Limits and usage of the connection's API key (``GET /key``; any key may call it)."""
        return self._result(KeyInfo, self._data(self.transport.get("/key"), "GET /key"), "GET /key")

    def test_connection(self) -> tuple[bool, str]:
        """Check the connection with ``GET /key`` (not billable). The message never contains the key."""
        try:
            key = self.get_key()
        except OpenRouterError as err:
            return False, str(err)
        except Exception as err:  # the UI shows the message; keep it one scrubbed line
            secrets = (self._settings.api_key,) if self._settings is not None else ()
            return False, " ".join(scrub(f"{type(err).__name__}: {err}", secrets).split())[:300]
        limit = f"limit {plain_decimal(key.limit)} USD" if key.limit is not None else "no spending limit"
        used = plain_decimal(key.usage) if key.usage is not None else "0"
        return True, (
            f"Connected to {self.settings.base_url} with connection '{self.openrouter_conn_id}': the API key "
            f"works ({limit}, {used} USD used)."
        )

    # --- helpers -----------------------------------------------------------------------------------------

    def _data(self, payload: Mapping[str, Any], request: str) -> Any:
        """The ``data`` member of an OpenRouter envelope."""
        data = payload.get("data")
        if not isinstance(data, Mapping):
            raise OpenRouterResponseError(
                f"the answer has no 'data' object (keys: {', '.join(sorted(payload)) or 'none'})",
                conn_id=self.openrouter_conn_id,
                request=request,
                billed=False,
            )
        return data

    def _result(
        self, cls: type[ResultT], data: Mapping[str, Any], request: str, *, billed: bool | None = False
    ) -> ResultT:
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            first = err.errors()[0]
            location = ".".join(str(part) for part in first.get("loc", ())) or "body"
            generation_id = data.get("id") if isinstance(data.get("id"), str) else None
            raise OpenRouterResponseError(
                f"the answer does not fit {cls.__name__}: {location}: {first.get('msg')}",
                conn_id=self.openrouter_conn_id,
                request=request,
                generation_id=generation_id,
                billed=billed,
            ) from None

    # --- embeddings (airflow_provider_openrouter.embeddings) ----------------------------------------------

    def embeddings(
        self,
        model: str | None = None,
        input: str | Sequence[Any] | None = None,
        *,
        dimensions: int | str | None = None,
        encoding_format: str | None = None,
        input_type: str | None = None,
        provider: Mapping[str, Any] | str | None = None,
        user: str | None = None,
        extra_body: Mapping[str, Any] | str | None = None,
        idempotency_key: str | None = None,
        attribution: bool | Mapping[str, Any] | str | None = None,
        budget: OpenRouterBudget | str | None = None,
    ) -> Embeddings:
        """Embed ``input`` (``POST /embeddings``, billable) and return the typed vectors, usage and cost.

        Arguments as :func:`~airflow_provider_openrouter.embeddings.build_embeddings_request` (checked before
        anything is sent; a missing ``model`` falls back to the connection's ``default_model``);
        ``attribution`` and ``budget`` as in :meth:`chat_completion`.
        """
        from airflow_provider_openrouter.embeddings import EMBEDDINGS_PATH, build_embeddings_request

        body = build_embeddings_request(
            model,
            input,
            dimensions=dimensions,
            encoding_format=encoding_format,
            input_type=input_type,
            provider=provider,
            user=user,
            extra_body=extra_body,
            default_model=self.settings.default_model if not model else None,
            conn_id=self.openrouter_conn_id,
        )
        body = self.attribution_for(attribution, request=f"POST {EMBEDDINGS_PATH}").apply(body)
        return self.send_embeddings_request(body, idempotency_key=idempotency_key, budget=budget)

    def send_embeddings_request(
        self,
        body: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        budget: OpenRouterBudget | str | None = None,
    ) -> Embeddings:
        """POST a body built by ``build_embeddings_request`` (the batch engine's per-row call for
        ``endpoint="embeddings"``), reserving its worst case in ``budget`` first."""
        from airflow_provider_openrouter.embeddings import EMBEDDINGS_PATH, Embeddings

        return self._send_billable(
            Embeddings, EMBEDDINGS_PATH, body, idempotency_key=idempotency_key, budget=budget
        )

    def list_embedding_models(
        self, *, limit: int | None = None, offset: int | None = None
    ) -> EmbeddingModelList:
        """The embedding models (``GET /embeddings/models``; ``GET /models`` leaves them out)."""
        from airflow_provider_openrouter.embeddings import EMBEDDING_MODELS_PATH, EmbeddingModelList

        request = f"GET {EMBEDDING_MODELS_PATH}"
        fail = failing(request)
        params = {
            name: value
            for name, value in (
                ("limit", _values.integer("limit", limit, fail, low=1)),
                ("offset", _values.integer("offset", offset, fail, low=0)),
            )
            if value is not None
        }
        return self._result(EmbeddingModelList, self.transport.get(EMBEDDING_MODELS_PATH, params), request)

    def get_pydantic_ai_model(
        self, model: str | None = None, *, attribution: bool | Mapping[str, Any] | str | None = None
    ) -> PydanticAIModel:
        """This connection as a pydantic-ai model, for agents and common-ai (needs the ``common-ai`` extra):
        its Base URL, key, app attribution headers and timeouts, and the task's attribution on each request;
        see :func:`~airflow_provider_openrouter.interop.pydantic_ai.pydantic_ai_model`."""
        from airflow_provider_openrouter.interop.pydantic_ai import pydantic_ai_model

        return pydantic_ai_model(self, model, attribution=attribution)
