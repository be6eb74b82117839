"""An offline OpenRouter API for tests, demos and benchmarks (``openrouter-emulator``).

Importing this package is cheap: the server, the catalog and the pytest helpers load only where they are used.
See docs/emulator.md.
"""
