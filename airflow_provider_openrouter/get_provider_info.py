"""Provider metadata read by Airflow's providers manager (entry point ``apache_airflow_provider``).

Airflow 3.2+ reads ``connection-types`` (form labels, hidden fields, extras) from here without importing the
hook, so this module must stay import-free and cheap.
"""

from __future__ import annotations

from typing import Any

_HOOK_CLASS = "airflow_provider_openrouter.hooks.openrouter.OpenRouterHook"


def _field(label: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"label": label, "description": description, "schema": schema}


def get_provider_info() -> dict[str, Any]:
    """Return the provider description; keys follow Airflow's ``provider_info.schema.json``."""
    return {
        "package-name": "airflow-provider-openrouter",
        "name": "OpenRouter",
        "description": (
            "`OpenRouter <https://openrouter.ai/>`__: one HTTP API in front of hundreds of LLMs. "
            "Chat and text completions, credits, generation lookups, the model catalog and batch completions."
        ),
        "integrations": [
            {
                "integration-name": "OpenRouter",
                "external-doc-url": "https://openrouter.ai/docs/api-reference/overview",
                "tags": ["ai", "llm", "generative-ai", "openrouter"],
            }
        ],
        "hooks": [
            {
                "integration-name": "OpenRouter",
                "python-modules": ["airflow_provider_openrouter.hooks.openrouter"],
            }
        ],
        "operators": [
            {
                "integration-name": "OpenRouter",
                "python-modules": [
                    "airflow_provider_openrouter.operators.chat",
                    "airflow_provider_openrouter.operators.completion",
                    "airflow_provider_openrouter.operators.credits",
                    "airflow_provider_openrouter.operators.generation",
                    "airflow_provider_openrouter.operators.models",
                    "airflow_provider_openrouter.operators.batch",
                    "airflow_provider_openrouter.operators.cost_audit",
                    "airflow_provider_openrouter.operators.catalog",
                    "airflow_provider_openrouter.operators.embeddings",
                    "airflow_provider_openrouter.operators.budget_guard",
                ],
            }
        ],
        "triggers": [
            {
                "integration-name": "OpenRouter",
                "python-modules": [
                    "airflow_provider_openrouter.triggers.batch",
                    "airflow_provider_openrouter.triggers.generation",
                    "airflow_provider_openrouter.triggers.generation_stats",
                    "airflow_provider_openrouter.triggers.budget_guard",
                ],
            }
        ],
        "task-decorators": [
            {
                "name": "openrouter",
                "class-name": "airflow_provider_openrouter.decorators.openrouter.openrouter_task",
            }
        ],
        "sensors": [
            {
                "integration-name": "OpenRouter",
                "python-modules": ["airflow_provider_openrouter.sensors.generation"],
            }
        ],
        "connection-types": [
            {
                "connection-type": "openrouter",
                "hook-class-name": _HOOK_CLASS,
                "hook-name": "OpenRouter",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login"],
                    "relabeling": {"password": "API Key", "host": "Base URL"},
                    "placeholders": {
                        "host": "https://openrouter.ai/api/v1",
                        "password": "sk-or-v1-...",
                    },
                },
                "conn-fields": {
                    "app_url": _field(
                        "App URL",
                        "Your app's URL, sent as HTTP-Referer (OpenRouter's app attribution and rankings).",
                        {"type": ["string", "null"]},
                    ),
                    "app_title": _field(
                        "App title",
                        "Your app's display name, sent as X-OpenRouter-Title and X-Title.",
                        {"type": ["string", "null"]},
                    ),
                    "default_model": _field(
                        "Default model",
                        "Model id used when an operator or hook call names none, e.g. openai/gpt-4o-mini.",
                        {"type": ["string", "null"]},
                    ),
                    "timeout": _field(
                        "Read timeout (s)",
                        "Seconds to wait for an answer. A billable request that times out is not resent.",
                        {"type": ["number", "null"], "minimum": 0, "default": 120},
                    ),
                    "connect_timeout": _field(
                        "Connect timeout (s)",
                        "Seconds to wait for the TCP/TLS connection.",
                        {"type": ["number", "null"], "minimum": 0, "default": 10},
                    ),
                    "max_retries": _field(
                        "Max retries",
                        "How often a retryable failure (408, 429, 5xx answered with OpenRouter's error "
                        "envelope, connection refused) is retried.",
                        {"type": ["integer", "null"], "minimum": 0, "default": 5},
                    ),
                    "max_retry_wait": _field(
                        "Max total retry wait (s)",
                        "Upper bound on the time one call spends waiting between retries.",
                        {"type": ["number", "null"], "minimum": 0, "default": 300},
                    ),
                    "requests_per_minute": _field(
                        "Requests per minute",
                        "Client-side limit shared by every task of this connection in one process "
                        "(default 100, the connector's throttling). 0 disables it.",
                        {"type": ["number", "null"], "minimum": 0, "default": 100},
                    ),
                    "retry_ambiguous": _field(
                        "Retry ambiguous failures",
                        "Also resend a billable request whose answer was lost (read timeout, reset, "
                        "truncated body, proxy page, 524). This can bill twice; off by default.",
                        {"type": ["boolean", "null"], "default": False},
                    ),
                    "attribution": _field(
                        "Attribution",
                        "Every billable request names the Airflow DAG, task, run and try that sent it "
                        "(metadata, session_id, trace). false turns it off; a JSON object such as "
                        '{"team": "search"} adds your own metadata pairs. Operators\' attribution wins.',
                        {"type": ["string", "null"]},
                    ),
                },
            }
        ],
    }
