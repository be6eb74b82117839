"""The built-in catalog and the model listing filters."""

from __future__ import annotations

from decimal import Decimal

import httpx

from airflow_provider_openrouter.emulator import catalog


def test_catalog_is_big_and_varied_enough() -> None:
    assert len(catalog.MODELS) >= 20
    assert len({model.author for model in catalog.MODELS}) >= 5
    assert sum(len(model.endpoints) >= 2 for model in catalog.MODELS) >= 5
    free = [model for model in catalog.MODELS if model.id.endswith(":free")]
    assert free and all(model.pricing["prompt"] == model.pricing["completion"] == "0" for model in free)
    assert len({model.id for model in catalog.MODELS}) == len(catalog.MODELS)


def test_prices_are_decimal_strings_and_the_first_endpoint_is_the_cheapest() -> None:
    for model in catalog.MODELS:
        totals = [Decimal(e.prompt_price) + Decimal(e.completion_price) for e in model.endpoints]
        assert totals[0] == min(totals), model.id
        assert model.pricing["prompt"] == model.endpoints[0].prompt_price
        for endpoint in model.endpoints:
            assert endpoint.provider.name in {p.name for p in catalog.PROVIDERS}


def test_listing_filters_and_sorts(http: httpx.Client) -> None:
    def ids(**params: str) -> list[str]:
        return [model["id"] for model in http.get("/models", params=params).json()["data"]]

    everything = ids()
    assert set(ids(model_authors="anthropic,qwen")) == {
        m for m in everything if m.split("/")[0] in ("anthropic", "qwen")
    }
    with_reasoning = ids(supported_parameters="reasoning,tools")
    assert with_reasoning and "openai/gpt-4o-mini" not in with_reasoning
    cheapest_first = ids(sort="pricing-low-to-high")
    assert cheapest_first[0].endswith(":free")
    assert "openai/gpt-4.1" in ids(context="1000000") and "openai/gpt-4o" not in ids(context="1000000")
    assert ids(q="haiku") == ["anthropic/claude-3.5-haiku"]
    assert ids(output_modalities="image") == ["google/gemini-2.5-flash-image"]
    assert ids(output_modalities="audio") == []
    assert http.get("/models/count", params={"output_modalities": "image"}).json()["data"]["count"] == 1
    assert all(
        Decimal(m["pricing"]["prompt"]) * 1_000_000 <= 1
        for m in http.get("/models", params={"max_price": "1"}).json()["data"]
    )
    page = http.get("/models", params={"offset": 5, "limit": 5}).json()
    assert [m["id"] for m in page["data"]] == everything[5:10]
    assert page["links"]["next"] == "/api/v1/models?offset=10&limit=5"
    assert http.get("/models", params={"limit": 0}).status_code == 400


def test_next_link_keeps_the_filters_and_replaces_only_the_offset(http: httpx.Client) -> None:
    filters = "supported_parameters=tools%2Creasoning&sort=pricing-low-to-high"
    selected = [model["id"] for model in http.get(f"/models?{filters}").json()["data"]]
    assert len(selected) > 4
    first = http.get(f"/models?{filters}&limit=2").json()
    assert first["links"]["next"] == f"/api/v1/models?{filters}&limit=2&offset=2"
    middle = http.get(f"/models?offset=2&{filters}&limit=2").json()
    assert middle["links"]["next"] == f"/api/v1/models?offset=4&{filters}&limit=2"
    seen, link = [], f"/api/v1/models?{filters}&limit=2"
    while link is not None:  # following the links walks exactly the filtered selection
        page = http.get(link.removeprefix("/api/v1")).json()
        seen.extend(model["id"] for model in page["data"])
        link = page["links"]["next"]
    assert seen == selected
