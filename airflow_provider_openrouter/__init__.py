"""Apache Airflow provider for OpenRouter."""

__version__ = "0.1.0"
