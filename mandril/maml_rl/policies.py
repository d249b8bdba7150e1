"""Categorical policies whose forward pass takes an explicit parameter dict.

Both policies are ``nn.Module`` s holding the meta-parameters ``theta``; ``forward(obs, params)``
evaluates the policy at *any* parameter dict with the same keys (an adapted ``phi`` is a plain
dict of tensors that may still be in the autograd graph of ``theta``). Observations are float
vectors ``(..., D)`` (the sampler one-hot encodes ``Discrete`` observations).

A parameter dict may also be *task-batched*: every tensor carries a leading axis of ``N`` tasks
(``w0`` ``(N, out, in)``), as the inner step of ``N`` tasks at once produces it. Then the
observations must lead with the same axis, ``(N, ..., D)``, and task ``i`` 's observations meet
task ``i`` 's parameters (one batched matrix product per layer).

Initialisation draws from an explicit ``torch.Generator``: no global RNG.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

import torch
from torch import Tensor, nn
from torch.distributions import Categorical

from mandril.functional import Params

__all__ = ["CategoricalMLPPolicy", "TabularSoftmaxPolicy", "Policy", "make_policy", "param_dict", "stack_params",
           "task_params", "expand_params"]

_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def param_dict(module: nn.Module) -> Params:
    """The module's own parameters as a ``{name: tensor}`` dict (the tensors are the ``nn.Parameter`` s)."""
    return dict(module.named_parameters())


def stack_params(params: Sequence[Mapping[str, Tensor]]) -> Params:
    """``N`` parameter dicts as one task-batched dict (each tensor ``(N, ...)``)."""
    if not params:
        raise ValueError("params must be a non-empty sequence of parameter dicts")
    return {name: torch.stack([p[name] for p in params]) for name in params[0]}


def task_params(params: Mapping[str, Tensor], i: int) -> Params:
    """Task ``i`` 's parameters out of a task-batched dict."""
    return {name: value[i] for name, value in params.items()}


def expand_params(params: Mapping[str, Tensor], n: int) -> Params:
    """``params`` repeated for ``n`` tasks as a task-batched dict of views (``(n, ...)``, still in the graph of ``params``).

    Differentiating a sum of per-task losses with respect to these views gives each task's own gradient.
    """
    return {name: value.unsqueeze(0).expand(n, *value.shape) for name, value in params.items()}


class _CategoricalPolicy(nn.Module):
    """Shared part: ``forward`` builds a ``Categorical`` from :meth:`logits`."""

    obs_dim: int
    n_actions: int

    def logits(self, obs: Tensor, params: Optional[Mapping[str, Tensor]] = None) -> Tensor:  # pragma: no cover
        """``(..., D) -> (..., A)`` unnormalised log-probabilities."""
        raise NotImplementedError

    def forward(self, obs: Tensor, params: Optional[Mapping[str, Tensor]] = None) -> Categorical:
        """The action distribution at ``obs`` ``(..., D)`` under ``params`` (default: ``theta``); batch shape ``(...)``."""
        return Categorical(logits=self.logits(obs, params))

    def params(self) -> Params:
        """``theta`` as a dict."""
        return param_dict(self)

    def is_task_batched(self, params: Mapping[str, Tensor]) -> bool:
        """Whether ``params`` carries a leading task axis (one more dimension than ``theta``).

        Raises:
            ValueError: if the keys differ from ``theta`` 's or the shapes fit neither form.
        """
        own = dict(self.named_parameters())
        if set(params) != set(own):
            raise ValueError(f"params must have the keys {sorted(own)}, got {sorted(params)}")
        batched = None
        for name, ref in own.items():
            shape = tuple(params[name].shape)
            this = shape[1:] == tuple(ref.shape) and len(shape) == ref.ndim + 1
            if not this and shape != tuple(ref.shape):
                raise ValueError(f"params[{name!r}] must have shape {tuple(ref.shape)} or (N, *{tuple(ref.shape)}), got {shape}")
            if batched is not None and this != batched:
                raise ValueError("params mixes task-batched and shared tensors")
            batched = this
        return bool(batched)

    def _check_obs(self, obs: Tensor) -> None:
        if obs.shape[-1] != self.obs_dim:
            raise ValueError(f"obs must have last dimension {self.obs_dim}, got shape {tuple(obs.shape)}")


class CategoricalMLPPolicy(_CategoricalPolicy):
    """``pi(a | o) = softmax(MLP(o))``.

    Parameters ``w0, b0, ..., wL, bL``; ``w_i`` is ``(out, in)``. Hidden layers are Xavier-uniform
    with zero biases; the output layer is scaled by ``0.01`` so the initial policy is near uniform.

    Args:
        obs_dim: ``D``.
        n_actions: ``A``.
        hidden_sizes: hidden widths (may be empty: a linear softmax policy).
        activation: ``"tanh"`` or ``"relu"``.
        generator: draws the initial weights.
        dtype: parameter dtype.
    """

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        hidden_sizes: Sequence[int] = (32, 32),
        activation: str = "tanh",
        *,
        generator: torch.Generator,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        if obs_dim < 1 or n_actions < 1:
            raise ValueError(f"obs_dim and n_actions must be >= 1, got obs_dim={obs_dim}, n_actions={n_actions}")
        if activation not in ("tanh", "relu"):
            raise ValueError(f"activation must be 'tanh' or 'relu', got {activation!r}")
        self.obs_dim, self.n_actions = int(obs_dim), int(n_actions)
        self.activation = activation
        sizes = [self.obs_dim, *map(int, hidden_sizes), self.n_actions]
        self.n_layers = len(sizes) - 1
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            weight = (torch.rand((fan_out, fan_in), generator=generator, dtype=dtype) * 2 - 1) * bound
            if i == self.n_layers - 1:
                weight = weight * 0.01
            self.register_parameter(f"w{i}", nn.Parameter(weight))
            self.register_parameter(f"b{i}", nn.Parameter(torch.zeros(fan_out, dtype=dtype)))

    def logits(self, obs: Tensor, params: Optional[Mapping[str, Tensor]] = None) -> Tensor:
        """``(..., D) -> (..., A)``; task-batched ``params``: ``(N, ..., D) -> (N, ..., A)``."""
        self._check_obs(obs)
        p = self.params() if params is None else params
        act = torch.tanh if self.activation == "tanh" else torch.relu
        if p["w0"].ndim == 3:  # task-batched: one batched matrix product per layer
            n = p["w0"].shape[0]
            if obs.ndim < 2 or obs.shape[0] != n:
                raise ValueError(f"task-batched params need obs (N={n}, ..., D), got shape {tuple(obs.shape)}")
            x = obs.reshape(n, -1, self.obs_dim)
            for i in range(self.n_layers):
                x = torch.baddbmm(p[f"b{i}"].unsqueeze(1), x, p[f"w{i}"].transpose(1, 2))
                if i < self.n_layers - 1:
                    x = act(x)
            return x.reshape(*obs.shape[:-1], self.n_actions)
        x = obs
        for i in range(self.n_layers):
            x = x @ p[f"w{i}"].T + p[f"b{i}"]
            if i < self.n_layers - 1:
                x = act(x)
        return x


class TabularSoftmaxPolicy(_CategoricalPolicy):
    """``pi(a | o) = softmax(o @ logits)``: a logit table when observations are one-hot.

    Parameter ``logits`` ``(D, A)``, initialised to zero (the uniform policy). With a one-hot
    state observation the REINFORCE step moves each visited state's logits independently.
    """

    def __init__(self, obs_dim: int, n_actions: int, *, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        if obs_dim < 1 or n_actions < 1:
            raise ValueError(f"obs_dim and n_actions must be >= 1, got obs_dim={obs_dim}, n_actions={n_actions}")
        self.obs_dim, self.n_actions = int(obs_dim), int(n_actions)
        self.logits_table = nn.Parameter(torch.zeros((self.obs_dim, self.n_actions), dtype=dtype))

    def logits(self, obs: Tensor, params: Optional[Mapping[str, Tensor]] = None) -> Tensor:
        """``(..., D) -> (..., A)``; task-batched ``params``: ``(N, ..., D) -> (N, ..., A)``."""
        self._check_obs(obs)
        p = self.params() if params is None else params
        table = p["logits_table"]
        if table.ndim == 3:
            n = table.shape[0]
            if obs.ndim < 2 or obs.shape[0] != n:
                raise ValueError(f"task-batched params need obs (N={n}, ..., D), got shape {tuple(obs.shape)}")
            return torch.bmm(obs.reshape(n, -1, self.obs_dim), table).reshape(*obs.shape[:-1], self.n_actions)
        return obs @ table


Policy = _CategoricalPolicy


def make_policy(kind: str, obs_dim: int, n_actions: int, *, hidden_sizes: Sequence[int] = (32, 32),
                activation: str = "tanh", dtype: str = "float64", generator: torch.Generator) -> Policy:
    """Build the policy named by ``kind`` (``"mlp"`` or ``"tabular"``)."""
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    if kind == "mlp":
        return CategoricalMLPPolicy(obs_dim, n_actions, hidden_sizes, activation, generator=generator, dtype=_DTYPES[dtype])
    if kind == "tabular":
        return TabularSoftmaxPolicy(obs_dim, n_actions, dtype=_DTYPES[dtype])
    raise ValueError(f"policy kind must be 'mlp' or 'tabular', got {kind!r}")
