"""Emulator settings: one table drives the CLI flags, ``--help`` and ``POST /__emulator/config``.

Every live setting has a flag ``--some-name`` and a JSON name ``some_name``. Process-only flags (host, port,
log level) are defined in ``__main__``, because they cannot change while the server runs.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

DEFAULT_FAULT_STATUSES = (500, 502, 503, 524, 529)
LEGACY_COMPLETIONS_MODES = ("enabled", "404", "410")
# A stream's final usage chunk: no choice, as OpenRouter documents it, or one empty one, as real streams show.
USAGE_CHUNK_CHOICES = ("empty", "one")


def key_label(key: str) -> str:
    """How a key is shown anywhere (GET /key, settings, logs): never the whole key."""
    return f"{key[:8]}...{key[-3:]}" if len(key) > 14 else f"{key[:3]}..."


class SettingError(ValueError):
    """A setting value that cannot be used; the message names the setting and what it accepts."""


MAX_LATENCY_MS = 60_000.0  # a request never waits longer than a minute on purpose
MAX_DELAY_S = 3_600.0
MAX_BATCH_DURATION_S = 86_400.0  # OpenRouter's 24 h completion window
MAX_RPM = 1_000_000.0
MAX_COUNT = 1_000_000_000
MAX_USD = Decimal(1_000_000_000)
FAIL_NEXT_FAULTS = ("reset", "truncate", "html", "error_in_200")


def _bounded_float(high: float, unit: str = "") -> Callable[[str, Any], float]:
    """A parser of a number from 0 to ``high``: inf, NaN or a huge value would hang or break requests."""

    def parse(name: str, value: Any) -> float:
        try:
            number = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError, OverflowError):
            number = math.nan
        if not 0 <= number <= high:
            raise SettingError(f"{name}: expected a number from 0 to {high:g}{unit}, got {value!r}")
        return number

    return parse


def _probability(name: str, value: Any) -> float:
    return _bounded_float(1.0)(name, value)


def _whole_number(high: int) -> Callable[[str, Any], int]:
    def parse(name: str, value: Any) -> int:
        try:
            number = int(value) if not isinstance(value, bool) else -1
        except (TypeError, ValueError, OverflowError):
            number = -1
        if not 0 <= number <= high or (isinstance(value, float) and value != number):
            raise SettingError(f"{name}: expected a whole number from 0 to {high:,}, got {value!r}")
        return number

    return parse


def _usd(name: str, value: Any) -> Decimal:
    if isinstance(value, bool):
        raise SettingError(f"{name}: expected an amount in USD, got {value!r}")
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise SettingError(f"{name}: expected an amount in USD such as 12.5, got {value!r}") from None
    if not amount.is_finite() or not 0 <= amount <= MAX_USD:
        raise SettingError(f"{name}: expected an amount in USD from 0 to {MAX_USD:,}, got {value!r}")
    return amount


def _optional_usd(name: str, value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    return _usd(name, value)


def _statuses(name: str, value: Any) -> tuple[int, ...]:
    items: Iterable[Any] = value.split(",") if isinstance(value, str) else value
    try:
        statuses = tuple(int(str(item).strip()) for item in items)
    except (TypeError, ValueError):
        raise SettingError(f"{name}: expected HTTP statuses such as 500,502,503, got {value!r}") from None
    if not statuses or any(not 400 <= status <= 599 for status in statuses):
        raise SettingError(f"{name}: expected one or more HTTP error statuses (400-599), got {value!r}")
    return statuses


def _strings(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,) if value else ()
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) and item for item in value):
        raise SettingError(f"{name}: expected a list of non-empty strings, got {value!r}")
    return tuple(value)


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise SettingError(f"{name}: expected a non-empty string, got {value!r}")
    return value


def _one_of(*options: str) -> Callable[[str, Any], str]:
    def parse(name: str, value: Any) -> str:
        text = str(value)
        if text not in options:
            raise SettingError(f"{name}: expected one of {', '.join(options)}, got {value!r}")
        return text

    return parse


def _fail_next(name: str, value: Any) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise SettingError(
            f'{name}: expected an object such as {{"GET /credits": [503, 503]}}, got {value!r}'
        )
    script: dict[str, list[str]] = {}
    for route, faults in value.items():
        if not isinstance(route, str) or " /" not in route:
            raise SettingError(f"{name}: keys are 'METHOD /path' as in the stats, got {route!r}")
        if not isinstance(faults, list):
            raise SettingError(
                f"{name}[{route!r}]: expected a list of statuses or fault names, got {faults!r}"
            )
        for index, fault in enumerate(faults):
            text = str(fault) if isinstance(fault, int | str) and not isinstance(fault, bool) else ""
            if not (text in FAIL_NEXT_FAULTS or (text.isdigit() and 400 <= int(text) <= 599)):
                raise SettingError(
                    f"{name}[{route!r}][{index}]: expected an HTTP error status 400-599 or one of "
                    f"{', '.join(FAIL_NEXT_FAULTS)}, got {fault!r}"
                )
        script[route.upper().split(" ", 1)[0] + " " + route.split(" ", 1)[1]] = [str(f) for f in faults]
    return script


@dataclass(frozen=True)
class SettingSpec:
    name: str
    parse: Callable[[str, Any], Any]
    default: Any
    metavar: str
    help: str
    repeatable: bool = False
    cli: bool = True


SPECS: tuple[SettingSpec, ...] = (
    SettingSpec(
        "api_key",
        _strings,
        (),
        "KEY",
        "Accept only this inference key (repeatable). Default: any bearer token starting sk-or-.",
        repeatable=True,
    ),
    SettingSpec("credits", _usd, Decimal("100"), "USD", "Total account credits in USD (GET /credits)."),
    SettingSpec(
        "key_limit",
        _optional_usd,
        None,
        "USD",
        "Spending limit of every inference key in USD (GET /key). Default: unlimited.",
    ),
    SettingSpec(
        "generation_delay_s",
        _bounded_float(MAX_DELAY_S, " seconds"),
        0.5,
        "S",
        "GET /generation answers 404 until this many seconds after the completion (after the end of a "
        "streamed one), as OpenRouter does while it records the generation.",
    ),
    SettingSpec(
        "batch_duration_s",
        _bounded_float(MAX_BATCH_DURATION_S, " seconds"),
        1.0,
        "S",
        "Time from batch creation to completed (validating, in_progress, finalizing on the way).",
    ),
    SettingSpec(
        "latency_ms",
        _bounded_float(MAX_LATENCY_MS, " ms"),
        0.0,
        "MEAN",
        "Mean latency added to each completion request, in milliseconds (at most 60000).",
    ),
    SettingSpec(
        "latency_jitter_ms",
        _bounded_float(MAX_LATENCY_MS, " ms"),
        0.0,
        "J",
        "Latency varies uniformly within +/- J milliseconds around the mean.",
    ),
    SettingSpec(
        "fault_rate",
        _probability,
        0.0,
        "P",
        "Fraction (0..1) of completion requests answered with a random --fault-statuses error "
        "before any generation (never billed).",
    ),
    SettingSpec(
        "fault_statuses",
        _statuses,
        DEFAULT_FAULT_STATUSES,
        "LIST",
        "Comma-separated statuses that --fault-rate draws from. Default: 500,502,503,524,529.",
    ),
    SettingSpec(
        "rate_limit_rpm",
        _bounded_float(MAX_RPM),
        0.0,
        "R",
        "Requests per minute per key on completion and batch-create endpoints (token bucket); 0 = off.",
    ),
    SettingSpec(
        "rate_limit_burst",
        _whole_number(MAX_COUNT),
        0,
        "B",
        "Bucket size of that limit; 0 = one minute's worth (same as R).",
    ),
    SettingSpec(
        "free_model_rpm",
        _bounded_float(MAX_RPM),
        20.0,
        "R",
        "Requests per minute per key to :free models, independent of --rate-limit-rpm (OpenRouter: 20).",
    ),
    SettingSpec(
        "max_body_bytes",
        _whole_number(MAX_COUNT),
        32 * 1024 * 1024,
        "N",
        "Request bodies larger than this get 413.",
    ),
    SettingSpec(
        "flagged_word",
        _strings,
        (),
        "WORD",
        "A prompt containing this word (case-insensitive) gets 403 with moderation metadata (repeatable).",
        repeatable=True,
    ),
    SettingSpec(
        "down_model",
        _strings,
        (),
        "MODEL",
        "Treat this model as unavailable, so the request falls back to the next of `models` (repeatable).",
        repeatable=True,
    ),
    SettingSpec(
        "default_model", _text, "openai/gpt-4o-mini", "MODEL", "Model used when a request names none."
    ),
    SettingSpec(
        "legacy_completions",
        _one_of(*LEGACY_COMPLETIONS_MODES),
        "enabled",
        "MODE",
        "POST /completions: enabled, or answer 404 / 410 as a server that dropped the legacy endpoint.",
    ),
    SettingSpec(
        "usage_chunk_choices",
        _one_of(*USAGE_CHUNK_CHOICES),
        "empty",
        "FORM",
        "The choices of a stream's final usage chunk: empty ([], as documented) or one (a single choice "
        "with an empty delta and finish_reason null, as real OpenRouter streams send it).",
    ),
    SettingSpec(
        "seed",
        _whole_number(2**63 - 1),
        0,
        "N",
        "Seed of the generated text and of random faults and latency.",
    ),
    SettingSpec(
        "fail_next",
        _fail_next,
        {},
        "",
        'Admin only: {"METHOD /path": [status or fault name, ...]} fails the next requests of that route.',
        cli=False,
    ),
)

SPECS_BY_NAME = {spec.name: spec for spec in SPECS}


class EmulatorSettings:
    """The live settings. Attribute names are the JSON names; values are already validated."""

    api_key: tuple[str, ...]
    credits: Decimal
    key_limit: Decimal | None
    generation_delay_s: float
    batch_duration_s: float
    latency_ms: float
    latency_jitter_ms: float
    fault_rate: float
    fault_statuses: tuple[int, ...]
    rate_limit_rpm: float
    rate_limit_burst: int
    free_model_rpm: float
    max_body_bytes: int
    flagged_word: tuple[str, ...]
    down_model: tuple[str, ...]
    default_model: str
    legacy_completions: str
    usage_chunk_choices: str
    seed: int
    fail_next: dict[str, list[str]]

    def __init__(self, **values: Any) -> None:
        for spec in SPECS:
            setattr(self, spec.name, copy.deepcopy(spec.default))
        self.update(values)

    def update(self, values: dict[str, Any]) -> list[str]:
        """Validate every value first, then apply them all (all or nothing). Returns the names changed."""
        unknown = sorted(set(values) - set(SPECS_BY_NAME))
        if unknown:
            raise SettingError(
                f"unknown setting(s) {', '.join(unknown)}; known settings: {', '.join(SPECS_BY_NAME)}"
            )
        parsed = {name: SPECS_BY_NAME[name].parse(name, value) for name, value in values.items()}
        for name, value in parsed.items():
            setattr(self, name, value)
        return list(parsed)

    def copy(self) -> EmulatorSettings:
        clone = EmulatorSettings.__new__(EmulatorSettings)
        clone.__dict__.update(copy.deepcopy(self.__dict__))
        return clone

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for spec in SPECS:
            value = getattr(self, spec.name)
            if spec.name == "api_key":
                value = [key_label(key) for key in value]
            elif isinstance(value, Decimal):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[spec.name] = value
        return out
