"""Sphinx configuration of the bss2 documentation.

Pages under ``_generated/`` are written at build time from their single sources: the register map from
``hal/registers.yaml`` (through ``bss2.hal.regmap``), the wire-format golden examples from
``hal/wire_examples.yaml``, and the performance tables from the benchmark JSON files in
``docs/benchmarks/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

project = "bss2"
author = "the bss2 developers"
copyright = "2026, the bss2 developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"undoc-members": False, "show-inheritance": True}
nitpicky = False
exclude_patterns = ["_build", "benchmarks"]
html_theme = "alabaster"
html_static_path: list[str] = []
suppress_warnings = ["autodoc.import_object", "ref.python"]


def setup(app):  # noqa: ANN001, ANN201
    from docgen import generate_all

    app.connect("builder-inited", lambda _app: generate_all(HERE / "_generated"))
