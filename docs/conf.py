"""Sphinx configuration of the mandril documentation (``make docs``; no network at build time).

Most pages are generated at build time by :mod:`mandril_docs` (``docs/_ext``): a page per registered task
family with pictures the envs render themselves, the API reference of every module, the methods and
their configs from the registry, the tutorials (executed, their output checked) and the results pages
from ``benchmarks/``. Warnings are errors (``-W``), references are checked (nitpicky), and a public
name without a docstring fails the build.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MPLBACKEND", "Agg")

import mandril_envs  # noqa: E402  (after the path is set)

project = "mandril"
author = "the mandril authors"
copyright = "the mandril authors (MIT)"
release = version = mandril_envs.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx_autodoc_typehints",
    "mandril_docs",  # after napoleon: it replaces napoleon's docstring hook (mandril_docs.docstrings)
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "tutorial_scripts", "README.md"]
html_theme = "furo"
html_title = f"mandril {release}"
html_static_path: list[str] = []

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# API reference: Google-style docstrings (napoleon), type hints in the descriptions.
autodoc_member_order = "bysource"
# no "members" default: a boolean default would override the explicit ":members:" list of each generated page
autodoc_default_options = {"undoc-members": True, "show-inheritance": True}
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # "Attributes:" become fields, so dataclass fields are not described twice
typehints_fully_qualified = False
always_document_param_types = False
typehints_document_rtype = True

# Every cross-reference must resolve. There is no network at build time, so no intersphinx inventory
# can be fetched: references to the types of these third-party packages (and the standard library)
# cannot be resolved and are ignored; every reference into mandril and mandril_envs must resolve.
nitpicky = True
_EXTERNAL = (
    "numpy", "np", "torch", "gymnasium", "gym", "imitation", "stable_baselines3", "minari", "ray",
    "matplotlib", "optuna", "pandas", "scipy", "h5py", "PIL", "tqdm",
    "nn", "reward_nets",  # torch.nn and imitation.rewards.reward_nets, as the modules import them
)
nitpick_ignore_regex = [(r"py:.*", rf"({'|'.join(_EXTERNAL)})(\..*)?")]
nitpick_ignore_regex += [(r"py:.*", r"(pathlib|typing|collections|dataclasses|argparse|concurrent|os|io|types|enum|abc|numbers|contextlib|multiprocessing|subprocess|json|logging|datetime|random|threading|queue|tomllib|re)\..*")]
# Private names (a part that starts with "_") have no page, by design; "..." in a type hint is Ellipsis.
nitpick_ignore_regex += [(r"py:.*", r"(.*\.)?_[A-Za-z]\w*"), (r"py:data", r"Ellipsis")]
# pathlib.Path as the modules import it.
nitpick_ignore_regex += [(r"py:class", r"Path")]
# A TypeVar has no page either (mandril.core.config.T).
nitpick_ignore_regex += [(r"py:class", r"mandril(_envs)?(\.\w+)*\.T")]
