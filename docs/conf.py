"""Sphinx configuration of the documentation site (see docs/README.md): MyST Markdown pages plus autodoc.

Built by .ci/run with warnings as errors (the command is in docs/README.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

# The package is imported from the work tree, so the API reference documents the code next to these pages.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

project = "airflow-provider-openrouter"
author = "airflow-provider-openrouter contributors"
copyright = "the airflow-provider-openrouter contributors"

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
root_doc = "index"
# README.md describes how to build the site; it is not a page of it.
exclude_patterns = ["README.md", "_build"]

# Links such as [x](operators.md#what-every-operator-shares) are checked against generated heading anchors.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_class_signature = "separated"
autodoc_default_options = {"show-inheritance": True}
# Pydantic's own machinery (model_config, validators) is not part of this provider's API.
autodoc_inherit_docstrings = False

html_theme = "alabaster"
html_title = "OpenRouter provider for Apache Airflow"
html_theme_options = {"description": "Apache Airflow 3 provider for OpenRouter", "show_relbars": True}
