"""The emulator's ASGI application: the route table and dispatch over the resource modules.

Each resource lives in its own module, on the shared :class:`~.core.EmulatorCore` (state, keys, checks):
completions.py (chat and legacy completions), account.py and activity.py (credits, key, generation,
activity), models.py (the catalog routes), batches.py (the Batch API), embeddings.py, and admin.py
(``/__emulator``). This module imports them; none imports it.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow_provider_openrouter.emulator.account import Account
from airflow_provider_openrouter.emulator.accounting import NOT_SERVED
from airflow_provider_openrouter.emulator.activity import activity_route
from airflow_provider_openrouter.emulator.admin import Admin
from airflow_provider_openrouter.emulator.asgi import (
    API_PREFIX,
    TOO_DEEP,
    Disconnected,
    HTTPError,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    error_body,
    html_page,
    not_found,
    read_body,
)
from airflow_provider_openrouter.emulator.batches import BatchStore
from airflow_provider_openrouter.emulator.completions import Completions
from airflow_provider_openrouter.emulator.config import EmulatorSettings
from airflow_provider_openrouter.emulator.core import EmulatorCore
from airflow_provider_openrouter.emulator.embeddings import Embeddings
from airflow_provider_openrouter.emulator.faults import error_text
from airflow_provider_openrouter.emulator.models import ModelRoutes

log = logging.getLogger("airflow_provider_openrouter.emulator")


class Emulator(EmulatorCore):
    """One emulated OpenRouter account as an ASGI app: the core's state, served by the resource routes."""

    def __init__(self, settings: EmulatorSettings | None = None) -> None:
        super().__init__(settings)
        completions = Completions(self)
        account = Account(self)
        models = ModelRoutes(self)
        self.batches = BatchStore(self)
        admin = Admin(self, self.batches)
        self._models = models
        self._admin = admin
        self._exact: dict[tuple[str, str], tuple[str, Any, bool]] = {}
        for method, path, handler in (
            ("POST", "/chat/completions", completions.chat_completions),
            ("POST", "/completions", completions.text_completions),
            ("POST", "/embeddings", Embeddings(self).create),
            ("GET", "/embeddings/models", models.embedding_models),
            ("GET", "/credits", account.credits),
            ("GET", "/activity", activity_route(self)),
            ("GET", "/generation", account.generation),
            ("GET", "/models", models.models),
            ("GET", "/models/user", models.models_for_user),
            ("GET", "/models/count", models.models_count),
            ("GET", "/key", account.key),
            ("GET", "/auth/key", account.key),
            ("GET", "/providers", models.providers),
            ("POST", "/batches", self.batches.create),
            ("GET", "/batches", self.batches.list),
        ):
            self._exact[(method, path)] = (f"{method} {path}", handler, False)
        for method, path, handler in (
            ("GET", "/__emulator/stats", admin.stats),
            ("POST", "/__emulator/reset", admin.reset),
            ("GET", "/__emulator/config", admin.config),
            ("POST", "/__emulator/config", admin.config),
            ("POST", "/__emulator/models", admin.add_model),
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
        patterned = api or path.startswith("/__emulator/")
        found = self._exact.get((method, path)) or (self._pattern(method, path) if patterned else None)
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
                return not_found()
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
            return "GET /models/{author}/{slug}/endpoints", self._models.model_endpoints, False
        if method == "GET" and path.startswith("/model/"):
            return "GET /model/{author}/{slug}", self._models.model, False
        if path.startswith("/__emulator/models/") and method in ("PATCH", "DELETE"):
            return f"{method} /__emulator/models/{{author}}/{{slug}}", self._admin.change_model, True
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
            return html_page(502)
        return Response.json(
            error_body(502, "Provider returned error", {"raw": "emulated", "provider_name": None})
        )


def create_app(settings: EmulatorSettings | None = None, **values: Any) -> Emulator:
    """An emulator app for any ASGI server; ``values`` are settings by their JSON names."""
    if settings is None:
        settings = EmulatorSettings(**values)
    elif values:
        settings.update(values)
    return Emulator(settings)
