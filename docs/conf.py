"""Sphinx configuration for fastconv's documentation (built with -W in CI)."""
import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "fastconv"
author = "the fastconv developers"
copyright = "2026, the fastconv developers"
from fastconv import __version__ as release  # noqa: E402

version = release
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
autosummary_generate = True
numpydoc_show_class_members = False
numpydoc_validation_checks = set()
myst_heading_anchors = 3
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path = ["_static"]
suppress_warnings = ["myst.header"]
