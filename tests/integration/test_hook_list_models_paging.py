"""``list_models()`` against small fake servers on 127.0.0.1 whose paging never ends: the hook stops."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from airflow_provider_openrouter.exceptions import OpenRouterResponseError
from airflow_provider_openrouter.hooks import OpenRouterHook
from airflow_provider_openrouter.hooks.openrouter import MAX_MODEL_PAGES

Page = Callable[[int], dict[str, Any]]  # request number -> answer body


def _model(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "pricing": {"prompt": "0.000001", "completion": "0.000002"}}


def same_page_forever(_: int) -> dict[str, Any]:
    """A server that ignores ``offset``: the first page again, always with a next link."""
    return {
        "data": [_model("a/one"), _model("a/two")],
        "total_count": 10_000,
        "links": {"next": "/api/v1/models?offset=2"},
    }


def new_models_forever(number: int) -> dict[str, Any]:
    """A hostile server: a new model on every page, always with a next link."""
    return {"data": [_model(f"a/m{number}")], "links": {"next": f"/api/v1/models?offset={number + 1}"}}


@pytest.fixture
def fake_catalog(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Page], list[str]]]:
    """``serve(page)``: a server on 127.0.0.1 answering every GET with ``page(n)``; returns the paths asked,
    and points the connection ``openrouter_fake`` at it."""
    servers: list[ThreadingHTTPServer] = []

    def serve(page: Page) -> list[str]:
        asked: list[str] = []
        counter = itertools.count()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                asked.append(self.path)
                body = json.dumps(page(next(counter))).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        monkeypatch.setenv(
            "AIRFLOW_CONN_OPENROUTER_FAKE",
            json.dumps(
                {
                    "conn_type": "openrouter",
                    "host": f"http://127.0.0.1:{server.server_port}/api/v1",
                    "password": "sk-or-v1-fakecatalog0000000000000000000000000000",
                    "extra": {"requests_per_minute": 0, "max_retries": 0},
                }
            ),
        )
        return asked

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_server_that_ignores_offset_is_read_once(fake_catalog: Callable[[Page], list[str]]) -> None:
    asked = fake_catalog(same_page_forever)
    with OpenRouterHook("openrouter_fake") as hook:
        catalog = hook.list_models()
    assert catalog.ids == ["a/one", "a/two"]
    assert len(asked) == 2  # the page, then the same page again: nothing new, so it stops


def test_endless_new_pages_stop_at_the_bound_with_a_clear_error(
    fake_catalog: Callable[[Page], list[str]],
) -> None:
    asked = fake_catalog(new_models_forever)
    with OpenRouterHook("openrouter_fake") as hook, pytest.raises(OpenRouterResponseError) as caught:
        hook.list_models()
    assert len(asked) == MAX_MODEL_PAGES
    assert f"the catalog did not end after {MAX_MODEL_PAGES} pages" in str(caught.value)
    assert "connection 'openrouter_fake'" in str(caught.value)
