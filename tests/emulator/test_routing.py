"""Where the API is served: only under /api/v1, as on OpenRouter. A path it does not serve gets the web site's
HTML 404 page; a known route that finds nothing keeps the API's JSON error envelope."""

from __future__ import annotations

import httpx
import pytest

from airflow_provider_openrouter.emulator.testing import RunningEmulator


def _is_html_404(response: httpx.Response) -> bool:
    return response.status_code == 404 and response.headers["content-type"].startswith("text/html")


def test_the_api_is_served_only_under_api_v1(http: httpx.Client, emulator: RunningEmulator) -> None:
    auth = {"Authorization": f"Bearer {emulator.api_key}"}
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=emulator.root_url, headers=auth, trust_env=False, timeout=30) as root:
        assert _is_html_404(root.get("/models"))
        assert _is_html_404(root.post("/chat/completions", json=chat))
        assert _is_html_404(root.get("/model/openai/gpt-4o-mini"))
        assert _is_html_404(root.post("/api/v1chat/completions", json=chat))
        assert root.get("/__emulator/stats").status_code == 200  # the admin routes stay at the root
    assert http.get("/__emulator/stats").status_code == 200  # and under /api/v1
    assert http.get("/models").status_code == 200
    assert http.post("/chat/completions", json=chat).status_code == 200
    stats = emulator.stats()
    assert stats["billed_generations"] == 1
    assert stats["requests"]["POST /chat/completions"] == {"200": 1}
    assert stats["requests"]["POST /chat/completions (not served)"] == {"404": 1}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("GET", ""),
        ("GET", "/"),
        ("GET", "/chat/completions"),  # a known path with another method
        ("POST", "/models"),
        ("GET", "/embeddings"),
    ],
)
def test_a_path_the_api_does_not_serve_is_an_html_404(
    http: httpx.Client, emulator: RunningEmulator, method: str, path: str
) -> None:
    response = http.request(method, emulator.base_url + path)
    assert _is_html_404(response), (response.status_code, response.text[:200])
    assert "<html" in response.text


@pytest.mark.parametrize(
    "path",
    [
        "/model/acme/unknown",
        "/models/acme/unknown/endpoints",
        "/generation?id=gen-0-unknown",
        "/batches/batch_unknown",
    ],
)
def test_a_known_route_that_finds_nothing_keeps_the_json_envelope(http: httpx.Client, path: str) -> None:
    response = http.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == 404


def test_legacy_completions_switched_off_with_404_is_a_path_not_served(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    emulator.configure(legacy_completions="404")
    assert _is_html_404(http.post("/completions", json={"prompt": "hi"}))
    assert emulator.stats()["requests"]["POST /completions"] == {"404": 1}
