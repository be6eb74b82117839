"""Sensors: idempotent waits on OpenRouter (GETs only), deferrable to the triggerer."""
