"""Sphinx extension that generates most of the mandril documentation at build time.

Each generator writes MyST/reST pages under ``docs/`` (folders that git ignores) when the builder starts,
before Sphinx reads any source, so a new family, method, module, tutorial or results folder gets its page
with no change here:

- :mod:`mandril_docs.api`: a page per module of ``mandril_envs`` and ``mandril`` (autodoc), and the check
  that every public name has a docstring;
- :mod:`mandril_docs.families`: a page per registered task family, with pictures the envs render;
- :mod:`mandril_docs.methods`: every method of the registry with its config's fields;
- :mod:`mandril_docs.cli`: the ``--help`` of every command;
- :mod:`mandril_docs.tutorials`: the tutorial scripts, executed, their output captured into the page;
- :mod:`mandril_docs.results`: the committed benchmark results.
"""

from __future__ import annotations

import time
from typing import Any

# The generators import Sphinx themselves, when the build runs them; the package itself does not, so that
# the parts that need no Sphinx (families, results, docstrings) can be tested without it.


def _generate(app: Any) -> None:
    from sphinx.util import logging

    from mandril_docs import api, cli, families, methods, results, tutorials

    logger = logging.getLogger(__name__)
    for name, generator in (("api", api), ("families", families), ("methods", methods), ("cli", cli), ("results", results), ("tutorials", tutorials)):
        start = time.perf_counter()
        generator.generate(app)
        logger.info(f"[mandril_docs] {name} pages generated in {time.perf_counter() - start:.1f} s")


def _quiet_typehints_probe() -> None:
    """Silence sphinx-autodoc-typehints' probe parse of each docstring.

    To find where to insert ``:rtype:``, it parses every docstring once more on its own, outside the page
    (``get_insert_index``), with docutils' default settings, which print what that out-of-context parse
    finds odd straight to stderr (not as Sphinx warnings: they fail nothing). The real rendering of every
    docstring is Sphinx's, whose warnings fail the build; the probe's messages are only noise in the log.
    """
    import warnings

    import sphinx_autodoc_typehints as typehints

    warnings.filterwarnings("ignore", message=".*_RstSnippetParser.set_application.*")  # its use of a Sphinx API deprecated in 10
    probe = typehints.parse

    def quiet(text: str, settings: Any) -> Any:
        settings.report_level = 5  # nothing printed; the document it returns is the same
        return probe(text, settings)

    typehints.parse = quiet


def setup(app: Any) -> dict[str, Any]:
    """Register the generators (on ``builder-inited``) and the docstring hooks."""
    from mandril_docs import docstrings, refs

    _quiet_typehints_probe()

    app.add_config_value("mandril_docs_tutorial_timeout", 120, "env")
    app.connect("builder-inited", _generate)
    app.connect("autodoc-process-docstring", docstrings.section_headings, priority=400)
    docstrings.install_napoleon_wrapper(app)
    app.connect("missing-reference", refs.resolve_short)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
