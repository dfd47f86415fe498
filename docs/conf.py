"""Sphinx configuration of the sb3-denoise-pg documentation (build: ``make docs``)."""

import os
import sys

# The package is imported from the source tree, so that the API reference documents the checked-out code
sys.path.insert(0, os.path.abspath(".."))
# The documentation's own Sphinx extensions
sys.path.insert(0, os.path.abspath("_ext"))

with open(os.path.join(os.path.dirname(__file__), "..", "sb3_denoise_pg", "version.txt")) as file_handler:
    __version__ = file_handler.read().strip()

project = "sb3-denoise-pg"
author = "sb3-denoise-pg contributors"
copyright = "2026, sb3-denoise-pg contributors"
version = __version__
release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    # MathJax served from the built site, not a CDN: the equations render offline
    "sphinx-mathjax-offline",
    # Every figure under benchmarks/ must be shown on some page
    "repository_figures",
]

templates_path: list[str] = []
exclude_patterns = ["_build"]
root_doc = "index"

# Signatures keep their type hints; the parameter text comes from the docstrings' :param: fields
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
autodoc_class_signature = "separated"
# Methods without a docstring of their own would inherit gymnasium's and SB3's, written for other doc toolchains
autodoc_inherit_docstrings = False

html_theme = "sphinx_rtd_theme"
html_title = f"sb3-denoise-pg {release}"
html_static_path = ["_static"]
html_css_files = ["wrap.css"]
