"""Triggers: idempotent waits that run in the triggerer, never a billable request."""
