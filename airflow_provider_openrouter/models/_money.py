"""Money and the base of every result: :data:`Money` (a Decimal written as plain text), :class:`PlainDecimal`
(a Decimal XCom stores as plain text) and :class:`OpenRouterModel`."""

# No ``from __future__ import annotations`` here: real annotation objects spare pydantic from compiling and
# evaluating annotation strings at import, which DAG files pay for at parse time.
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainSerializer

Number = int | float


def plain_decimal(value: Decimal) -> str:
    """``value`` in plain decimal notation, as prices and costs are written everywhere: ``"0.00000015"``,
    never ``str(Decimal)``'s ``"1.5E-7"``."""
    return format(value, "f")


Money = Annotated[Decimal, PlainSerializer(plain_decimal, return_type=str, when_used="json")]
"""A price or cost in USD: a :class:`~decimal.Decimal`, written to JSON (XCom, files) as plain decimal
text."""


class PlainDecimal(Decimal):
    """A :class:`~decimal.Decimal` that XCom stores as plain decimal text (``"0.00000015"``).

    Airflow's serde stores a bare ``Decimal`` as a float, which is neither exact nor plain (``1.5e-07``). The
    billable operators push XCom ``cost`` as this class; a downstream task gets it back as a ``Decimal``.
    """

    __version__ = 1

    def serialize(self) -> str:
        return plain_decimal(self)

    @classmethod
    def deserialize(cls, data: Any, version: int) -> "PlainDecimal":
        return cls(str(data))


class OpenRouterModel(BaseModel):
    """Base of every result: unknown fields kept, no clash with pydantic's ``model_`` namespace."""

    model_config = ConfigDict(extra="allow", protected_namespaces=(), defer_build=True)
