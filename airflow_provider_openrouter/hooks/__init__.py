"""Hooks of the OpenRouter provider."""

from __future__ import annotations

from airflow_provider_openrouter.hooks.openrouter import OpenRouterHook, StructuredCompletion

__all__ = ["OpenRouterHook", "StructuredCompletion"]
