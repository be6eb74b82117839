"""Output types of the structured tests, at module scope as XCom needs (tests name them by dotted path)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict


class Priority(StrEnum):
    low = "low"
    high = "high"


class Address(BaseModel):
    city: str
    zip: str | None = None


class Ticket(BaseModel):
    """A support ticket as a typed record."""

    title: str
    priority: Priority = Priority.low
    tags: list[str] = []
    address: Address | None = None


class OpenMapping(BaseModel):
    counts: dict[str, int]


class AnyValue(BaseModel):
    value: Any


class ExtraAllowed(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
