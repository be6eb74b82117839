"""Interop with the official common-ai provider and pydantic-ai (both optional: ``pip install
'airflow-provider-openrouter[common-ai]'``). Nothing here is imported by the rest of the provider."""
