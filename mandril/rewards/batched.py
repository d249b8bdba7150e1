"""Reward models over a batch of tasks, each task with its own parameters (``torch.func``).

Parameters are plain ``dict[str, Tensor]`` with a leading task axis ``B``; the module runs under
``torch.func.vmap`` with ``functional_call``, so one call gives every task's reward table and one
backward pass every task's own gradient.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

__all__ = ["Params", "batched_rewards", "expand_params", "stack_params", "unstack_params"]

#: A model's parameters by name, each with a leading batch dimension when batched.
Params = dict[str, Tensor]


def batched_rewards(reward_model: nn.Module, params: Mapping[str, Tensor], inputs: Tensor) -> Tensor:
    """``(B, S)`` (or ``(B, S, A)``) rewards of ``B`` tasks, task ``b`` with its own parameters ``params[k][b]``.

    Args:
        reward_model: maps a batch of inputs ``(n, ...)`` to rewards ``(n, S)`` (or ``(n, S, A)``).
        params: every parameter with a leading batch axis ``B``.
        inputs: ``(B, ...)``.
    """

    def one(task_params: Params, task_input: Tensor) -> Tensor:
        return functional_call(reward_model, task_params, (task_input.unsqueeze(0),)).squeeze(0)

    return vmap(one)(dict(params), inputs)


def expand_params(params: Mapping[str, Tensor], batch_size: int) -> Params:
    """The same parameters for ``batch_size`` tasks: ``(B, ...)`` views of ``params`` (no copy)."""
    return {k: v.unsqueeze(0).expand(batch_size, *v.shape) for k, v in params.items()}


def stack_params(modules: Sequence[nn.Module]) -> Params:
    """The parameters of same-architecture modules stacked along a new task axis (a copy)."""
    if not modules:
        raise ValueError("stack_params needs at least one module")
    names = [name for name, _ in modules[0].named_parameters()]
    return {name: torch.stack([dict(m.named_parameters())[name].detach() for m in modules]) for name in names}


def unstack_params(params: Mapping[str, Tensor], index: int) -> Params:
    """Task ``index``'s parameters (a detached copy)."""
    return {k: v[index].detach().clone() for k, v in params.items()}
