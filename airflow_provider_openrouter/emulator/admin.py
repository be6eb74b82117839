"""The emulator's own routes under ``/__emulator`` (also without the ``/api/v1`` prefix): stats, reset and
live settings, and the catalog changes a test makes while the emulator runs (see docs/emulator.md):

* ``PATCH /__emulator/models/{author}/{slug}``: a JSON merge patch of the model's ``GET /models`` object
  (``pricing``, ``context_length``, ``top_provider``, ``supported_parameters``, ``name``...). The listed
  price is the price of the endpoint that serves requests without provider preferences, so the next request
  is billed at it.
* ``DELETE /__emulator/models/{author}/{slug}``: the model leaves the catalog; requests naming it get
  OpenRouter's 400 "... is not a valid model ID", its endpoints route a 404.
* ``POST /__emulator/models``: add a model from a full ``GET /models`` object.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from airflow_provider_openrouter.emulator.asgi import HTTPError, Request, Response
from airflow_provider_openrouter.emulator.batches import BatchStore
from airflow_provider_openrouter.emulator.catalog import CatalogError
from airflow_provider_openrouter.emulator.config import SettingError
from airflow_provider_openrouter.emulator.core import EmulatorCore


class Admin:
    """The admin routes of one emulator."""

    def __init__(self, core: EmulatorCore, batches: BatchStore) -> None:
        self.core = core
        self.batches = batches

    async def stats(self, request: Request) -> Response:
        query = parse_qs(request.query.decode("latin-1"))
        wanted = query.get("billed_by", [])
        if wanted not in ([], ["identity"]):
            raise HTTPError(400, f"billed_by: expected 'identity' (or no billed_by), got {wanted[0]!r}")
        generations = query.get("generations") == ["attribution"]
        return Response.json(
            self.core.stats.to_json(
                self.core.ledger, self.batches.count(), by_identity=bool(wanted), generations=generations
            )
        )

    async def reset(self, request: Request) -> Response:
        """Back to the start: usage, generations, batches, stats, limits, catalog and startup settings."""
        self.core.reset()
        self.batches.clear()
        return Response.json({"reset": True, "settings": self.core.settings.to_json()})

    async def config(self, request: Request) -> Response:
        core = self.core
        if request.method == "POST":
            try:
                changed = core.settings.update(request.json_body())
            except SettingError as exc:
                raise HTTPError(400, str(exc)) from None
            if "seed" in changed:
                core.random.seed(core.settings.seed)
        return Response.json({"settings": core.settings.to_json()})

    async def change_model(self, request: Request) -> Response:
        """PATCH or DELETE ``/__emulator/models/{author}/{slug}``."""
        model_id = request.path.removeprefix("/__emulator/models/")
        try:
            if request.method == "DELETE":
                self.core.catalog.remove(model_id)
                return Response.json({"deleted": True, "id": model_id})
            return Response.json({"data": self.core.catalog.update(model_id, request.json_body())})
        except CatalogError as exc:
            raise HTTPError(exc.status, str(exc)) from None

    async def add_model(self, request: Request) -> Response:
        """POST ``/__emulator/models``."""
        try:
            return Response.json({"data": self.core.catalog.add(request.json_body())}, status=201)
        except CatalogError as exc:
            raise HTTPError(exc.status, str(exc)) from None
