"""What both clients read from an Airflow connection: :class:`TransportSettings` and the headers it sends."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from airflow_provider_openrouter import __version__
from airflow_provider_openrouter.exceptions import OpenRouterConfigurationError
from airflow_provider_openrouter.ratelimit import DEFAULT_REQUESTS_PER_MINUTE

__all__ = ["POOL_MAXSIZE", "USER_AGENT", "TransportSettings", "header_value_problem", "requests_ca_bundle"]

USER_AGENT = f"airflow-provider-openrouter/{__version__}"
POOL_MAXSIZE = 128
"""Connections kept per host: enough for the batch engine's worker threads to share one session."""


@dataclass(frozen=True)
class TransportSettings:
    """Everything the wire needs, read once from an Airflow connection. ``api_key`` never shows in repr."""

    conn_id: str
    base_url: str
    api_key: str = field(repr=False)
    app_url: str | None = None
    app_title: str | None = None
    timeout: float = 120.0
    connect_timeout: float = 10.0
    max_retries: int = 5
    max_retry_wait: float = 300.0
    requests_per_minute: float | None = DEFAULT_REQUESTS_PER_MINUTE
    retry_ambiguous: bool = False
    default_model: str | None = None

    def __post_init__(self) -> None:
        """Refuse what the HTTP library would refuse (or turn into something else) before anything is sent.

        The messages name the connection and the field, never the key or any part of it.
        """
        problem = self.header_problem()
        if problem is not None:
            raise OpenRouterConfigurationError(problem, conn_id=self.conn_id, secrets=self.secrets)
        if "@" in urlsplit(self.base_url).netloc:
            # requests would send the user:password part as Basic auth in place of the bearer key.
            raise OpenRouterConfigurationError(
                f"the Base URL of connection '{self.conn_id}' carries a user name or password before '@' "
                "(not shown); remove it from the host field and put the API key in the password field",
                conn_id=self.conn_id,
                secrets=self.secrets,
            )

    def header_problem(self) -> str | None:
        """Why a field sent as a header (API key, app_url, app_title) cannot be sent, or None."""
        fields = [
            ("the API key (password field)", self.api_key, True),
            ("the extra app_url", self.app_url, False),
            ("the extra app_title", self.app_title, False),
        ]
        for label, value, is_key in fields:
            problem = header_value_problem(value or "", key=is_key)
            if problem is not None:
                advice = "; paste the key again as one line" if is_key else ""
                return (
                    f"{label} of connection '{self.conn_id}' contains {problem}, which an HTTP header cannot "
                    f"carry{advice}"
                )
        return None

    def headers(self) -> dict[str, str]:
        """Headers sent on every request: auth, attribution and identification."""
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }
        if self.app_url:
            headers["HTTP-Referer"] = self.app_url
        if self.app_title:
            # X-OpenRouter-Title is current; X-Title is what older deployments read.
            headers["X-OpenRouter-Title"] = self.app_title
            headers["X-Title"] = self.app_title
        return headers

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.api_key,) if self.api_key else ()


def header_value_problem(value: str, *, key: bool = False) -> str | None:
    """What keeps ``value`` out of an HTTP header, or None. An API key (``key``) must be printable ASCII
    without spaces; other values may carry spaces and Latin-1 letters (what requests can encode). The answer
    names the kind of character and its position, never the character or its neighbours."""
    for position, char in enumerate(value, 1):
        code = ord(char)
        if char in "\r\n":
            what = "a line break"
        elif code < 32 or code == 127 or 128 <= code < 160:
            what = "a control character"
        elif char.isspace() and (key or position == 1):
            what = "whitespace"
        elif code > (126 if key else 255):
            what = "a non-ASCII character" if key else "a character outside Latin-1"
        else:
            continue
        return f"{what} (character {position} of {len(value)})"
    return None


def requests_ca_bundle() -> str | None:
    """The CA bundle the environment names for requests (``REQUESTS_CA_BUNDLE``, else ``CURL_CA_BUNDLE``),
    which both clients honour, or None."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None
