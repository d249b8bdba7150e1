"""MAML for RL with a TRPO outer loop (Finn, Abbeel and Levine 2017) on the mandril_envs task families.

Modules, one job each: :mod:`~mandril.maml_rl.config` (TOML run config), :mod:`~mandril.maml_rl.policies`
(categorical policies over explicit parameter dicts), :mod:`~mandril.maml_rl.sampler` (vectorised
multi-task episodes), :mod:`~mandril.maml_rl.baseline` (linear feature baseline),
:mod:`~mandril.maml_rl.advantages` (returns, GAE), :mod:`~mandril.maml_rl.trpo` (CG, Hessian-vector
products, line search), :mod:`~mandril.maml_rl.metalearner` (the MAML-TRPO step),
:mod:`~mandril.maml_rl.reference` (bandit and MDP reference policies), :mod:`~mandril.maml_rl.trainer`
(training loop), :mod:`~mandril.maml_rl.evaluation` (held-out test), :mod:`~mandril.maml_rl.cli`.

Importing this package imports torch; import the submodules you need.
"""

from mandril.maml_rl.config import Config, load_config
from mandril.maml_rl.metalearner import MAMLTRPO
from mandril.maml_rl.policies import CategoricalMLPPolicy, TabularSoftmaxPolicy
from mandril.maml_rl.sampler import EpisodeBatch, MultiTaskSampler
from mandril.maml_rl.trainer import Trainer

__all__ = ["Config", "load_config", "MAMLTRPO", "CategoricalMLPPolicy", "TabularSoftmaxPolicy", "EpisodeBatch",
           "MultiTaskSampler", "Trainer"]
