"""The one version of the project (the ``mandril`` distribution: ``mandril`` and ``mandril_envs``).

pyproject.toml reads it (``[tool.setuptools.dynamic]``); ``mandril_envs.__version__`` and
``mandril.__version__`` import it. Change it here only.
"""

__version__ = "0.2.0"
