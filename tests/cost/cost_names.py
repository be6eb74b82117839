"""Names the cost audit tests share (connection ids, models)."""

INFERENCE_CONN = "openrouter_cost_it"
MANAGEMENT_CONN = "openrouter_cost_mgmt"
SQL_CONN = "cost_audit_sqlite"
MODELS = ("openai/gpt-4o-mini", "anthropic/claude-3.5-haiku")
