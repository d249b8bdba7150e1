"""mandril: learning reward functions from few demonstrations.

MandRIL (meta-inverse RL), MaxEnt IRL and the other baselines behind one interface
(:mod:`mandril.methods`), scored the same way against the true model (:func:`score`), MAML-TRPO
(:mod:`mandril.maml_rl`), and the benchmark harness.

    >>> import mandril
    >>> method = mandril.make("maxent_linear")            # or "mandril", "airl", "bc", ...
    >>> output = method.fit(model, inputs, states, actions)
    >>> mandril.score(true_model, output).normalized_evd   # 0: the expert, 1: a uniform random policy
"""

from mandril.eval import Scores, score, shown_and_heldout_demos
from mandril.methods import METHODS, MandRIL, MandRILConfig, MaxEntIRL, Method, MethodOutput, hide_reward, make
from mandril_envs._version import __version__  # the one version source of the project

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
