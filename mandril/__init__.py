"""mandril: learning reward functions from few demonstrations.

MandRIL (meta-inverse RL), MaxEnt IRL and the other baselines behind one interface
(:mod:`mandril.methods`), scored the same way against the true model (:func:`score`), MAML-TRPO
(:mod:`mandril.maml_rl`), and the benchmark harness.

    >>> import mandril
    >>> method = mandril.make("maxent_linear")            # or "mandril", "airl", "bc", ...
    >>> output = method.fit(model, inputs, states, actions)
    >>> mandril.score(true_model, output).normalized_evd   # 0: the expert, 1: a uniform random policy
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the public API, imported on first use so that `import mandril` (and its CLI's
    # one-line message naming the extra to install) works without torch
    from mandril.eval import Scores, score, shown_and_heldout_demos
    from mandril.methods import METHODS, MandRIL, MandRILConfig, MaxEntIRL, Method, MethodOutput, hide_reward, make

from mandril_envs._version import __version__  # the one version source of the project

_HOMES = {name: "mandril.eval" for name in ("Scores", "score", "shown_and_heldout_demos")}
_HOMES.update({name: "mandril.methods" for name in ("METHODS", "MandRIL", "MandRILConfig", "MaxEntIRL", "Method", "MethodOutput", "hide_reward", "make")})


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mandril' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))


__all__ = [
    "METHODS",
    "MandRIL",
    "MandRILConfig",
    "MaxEntIRL",
    "Method",
    "MethodOutput",
    "Scores",
    "hide_reward",
    "make",
    "score",
    "shown_and_heldout_demos",
    "__version__",
]
