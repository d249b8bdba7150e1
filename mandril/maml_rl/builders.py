"""Build the sampler and the policy a config describes (shared by training and evaluation)."""

from __future__ import annotations

from typing import Optional

import torch

from mandril.maml_rl.config import Config
from mandril.maml_rl.policies import Policy, make_policy
from mandril.maml_rl.sampler import MultiTaskSampler

__all__ = ["build_sampler", "build_policy", "DTYPES"]

#: The config's ``dtype`` names and their torch dtypes.
DTYPES = {"float64": torch.float64, "float32": torch.float32}


def build_sampler(config: Config, max_tasks: Optional[int] = None) -> MultiTaskSampler:
    """The sampler of ``config`` (``max_tasks`` defaults to the meta-batch size)."""
    return MultiTaskSampler(config.env.id, config.env.kwargs, max_tasks=max_tasks or config.maml.meta_batch_size,
                            envs_per_task=config.sampler.envs_per_task, vector=config.sampler.vector, backend=config.sampler.backend,
                            dtype=DTYPES[config.policy.dtype])


def build_policy(config: Config, sampler: MultiTaskSampler, generator: torch.Generator) -> Policy:
    """The policy of ``config`` for the sampler's spaces, initialised from ``generator``."""
    p = config.policy
    return make_policy(p.kind, sampler.obs_dim, sampler.n_actions, hidden_sizes=p.hidden_sizes, activation=p.activation,
                       dtype=p.dtype, generator=generator)
