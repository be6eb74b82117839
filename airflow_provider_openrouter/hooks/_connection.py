"""Reading an Airflow connection of type ``openrouter`` into transport settings (no network).

The one place that knows the connection's fields and extras: password = API key, host = Base URL, and the
extras listed in docs/connection.md, each also read in Airflow's legacy ``extra__openrouter__<name>`` form. A
bad value raises one :class:`~airflow_provider_openrouter.exceptions.OpenRouterConfigurationError` naming the
connection and the extra; the API key never appears in it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from airflow_provider_openrouter.cost.attribution import AttributionError, attribution_setting
from airflow_provider_openrouter.exceptions import OpenRouterConfigurationError

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from airflow_provider_openrouter.transport import TransportSettings

__all__ = ["DEFAULT_BASE_URL", "connection_attribution", "normalize_base_url", "settings_from_connection"]

DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"
_LEGACY_EXTRA_PREFIX = "extra__openrouter__"
_LOOPBACK_HOSTS = ("localhost", "::1", "[::1]")
_TRUE = frozenset({"1", "true", "yes", "on", "y", "t"})
_FALSE = frozenset({"0", "false", "no", "off", "n", "f", ""})


def normalize_base_url(host: str | None, *, port: int | None = None, schema: str | None = None) -> str:
    """The API base URL from a connection's Base URL (host) field.

    Empty means OpenRouter itself. A host without a scheme gets ``https://`` (``http://`` for loopback); a
    host without a path gets the connection's schema field as path, else ``/api/v1``; a separate port is
    added when the host carries none.
    """
    text = (host or "").strip()
    if not text:
        return DEFAULT_BASE_URL
    if "://" not in text:
        bare = (
            text.split("/", 1)[0].rsplit(":", 1)[0] if not text.startswith("[") else text.split("]")[0] + "]"
        )
        loopback = bare in _LOOPBACK_HOSTS or bare.startswith("127.")
        text = f"{'http' if loopback else 'https'}://{text}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"Base URL {host!r} is not an http(s) URL such as {DEFAULT_BASE_URL}")
    netloc = parts.netloc
    if port and parts.port is None:
        netloc = f"{netloc}:{port}"
    path = parts.path.rstrip("/")
    if not path:
        path = "/" + schema.strip("/") if schema and schema.strip("/") else "/api/v1"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def _extra_value(extra: Mapping[str, Any], name: str) -> Any:
    """An extra by name, falling back to the legacy ``extra__openrouter__<name>`` form; blanks are None."""
    for key in (name, _LEGACY_EXTRA_PREFIX + name):
        value = extra.get(key)
        if value is not None and not (isinstance(value, str) and not value.strip()):
            return value.strip() if isinstance(value, str) else value
    return None


def settings_from_connection(conn: Connection, conn_id: str | None = None) -> TransportSettings:
    """Read a connection into :class:`TransportSettings`; bad values raise one clear configuration error.

    Fields: password = API key; host = Base URL (default ``https://openrouter.ai/api/v1``). Extras (each also
    read as ``extra__openrouter__<name>``): ``app_url``, ``app_title``, ``default_model``, ``timeout``,
    ``connect_timeout``, ``max_retries``, ``max_retry_wait``, ``requests_per_minute`` (0 disables the client
    limit), ``retry_ambiguous``.
    """
    from airflow_provider_openrouter.transport import TransportSettings

    conn_id = conn_id or conn.conn_id

    def fail(message: str) -> OpenRouterConfigurationError:
        return OpenRouterConfigurationError(message, conn_id=conn_id, secrets=(conn.password or "",))

    api_key = (conn.password or "").strip()
    if api_key.lower().startswith("bearer "):
        api_key = api_key[7:].strip()
    if not api_key:
        raise fail(f"connection '{conn_id}' has no API key: put the OpenRouter key in its password field")
    try:
        base_url = normalize_base_url(conn.host, port=conn.port, schema=conn.schema)
    except ValueError as err:
        raise fail(str(err)) from None
    raw_extra = conn.extra
    if isinstance(raw_extra, str) and raw_extra.strip():
        try:
            extra = json.loads(raw_extra)
        except ValueError:
            raise fail(f"the extra of connection '{conn_id}' is not valid JSON") from None
    else:
        extra = raw_extra or {}
    if not isinstance(extra, Mapping):
        raise fail(f"the extra of connection '{conn_id}' must be a JSON object, got {type(extra).__name__}")

    def number(name: str, default: float, *, integer: bool = False) -> Any:
        value = _extra_value(extra, name)
        if value is None:
            return default
        try:
            if isinstance(value, bool):
                raise ValueError
            number_value = float(value)
            if number_value < 0 or number_value != number_value:
                raise ValueError
            if integer:
                if number_value != int(number_value):
                    raise ValueError
                return int(number_value)
            return number_value
        except (TypeError, ValueError):
            kind = "a whole number" if integer else "a number"
            raise fail(f"extra '{name}' must be {kind} >= 0, got {value!r}") from None

    retry_ambiguous = _extra_value(extra, "retry_ambiguous")
    if retry_ambiguous is not None and not isinstance(retry_ambiguous, bool):
        flag = str(retry_ambiguous).strip().lower()
        if flag not in _TRUE | _FALSE:
            raise fail(f"extra 'retry_ambiguous' must be true or false, got {retry_ambiguous!r}")
        retry_ambiguous = flag in _TRUE

    def string(name: str) -> str | None:
        value = _extra_value(extra, name)
        return None if value is None else str(value)

    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older task SDK: the connection's password is masked anyway
        pass
    else:
        mask_secret(api_key)

    return TransportSettings(
        conn_id=conn_id,
        base_url=base_url,
        api_key=api_key,
        app_url=string("app_url"),
        app_title=string("app_title"),
        timeout=number("timeout", 120.0),
        connect_timeout=number("connect_timeout", 10.0),
        max_retries=number("max_retries", 5, integer=True),
        max_retry_wait=number("max_retry_wait", 300.0),
        requests_per_minute=number("requests_per_minute", 100.0),
        retry_ambiguous=bool(retry_ambiguous),
        default_model=string("default_model"),
    )


def connection_attribution(extra: Any, conn_id: str | None) -> tuple[bool, dict[str, str]] | None:
    """The connection extra ``attribution``, checked (``None`` when the extra is not set)."""
    if not isinstance(extra, Mapping):
        return None
    value = _extra_value(extra, "attribution")
    if value is None:
        return None
    try:
        return attribution_setting(value)
    except AttributionError as err:
        raise OpenRouterConfigurationError(
            f"extra 'attribution' of connection '{conn_id}': {err}",
            conn_id=conn_id,
            hint="Set it to false (off), true (on) or a JSON object of your own metadata pairs.",
        ) from None
