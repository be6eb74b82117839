"""The logger the engine writes to: a task's logger (structlog in Airflow 3) or a ``logging.Logger``."""

from __future__ import annotations

from typing import Any, Protocol


class Log(Protocol):
    def info(self, msg: str, /, *args: Any) -> Any: ...

    def warning(self, msg: str, /, *args: Any) -> Any: ...

    def error(self, msg: str, /, *args: Any) -> Any: ...
