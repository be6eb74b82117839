"""Get credits: the connector's "Get credits" action (GET /credits)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_openrouter.exceptions import OpenRouterError
from airflow_provider_openrouter.models import Credits, plain_decimal
from airflow_provider_openrouter.operators._base import OpenRouterBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class OpenRouterGetCreditsOperator(OpenRouterBaseOperator):
    """Read the account's purchased and used credits (USD). Not billable; safe to retry.

    OpenRouter answers ``/credits`` only for a **management key**; with an ordinary inference key it answers
    403 (``OpenRouterPermissionError``). Point ``openrouter_conn_id`` at a connection holding a management
    key.

    :param openrouter_conn_id: the OpenRouter connection (default ``openrouter_default``), templated.

    **XCom contract**: ``return_value`` is a ``models.Credits`` (``total_credits``, ``total_usage`` as
    ``Decimal``; ``remaining`` = the difference). No other keys. It is the answer's inner ``data`` object:
    the connector's ``data.total_credits`` is ``result.total_credits``.
    """

    result_type = Credits

    def execute(self, context: Context) -> Credits:
        with self.hook:
            try:
                credits = self.hook.get_credits()
            except OpenRouterError as err:
                self.log_failure("get credits", err)
                raise
            self.log.info(
                "OpenRouter credits: %s purchased, %s used (USD)",
                plain_decimal(credits.total_credits),
                plain_decimal(credits.total_usage),
            )
            return credits
