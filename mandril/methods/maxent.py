"""MaxEnt IRL from scratch on each new task (Ziebart et al. 2008/2010, finite horizon), three reward models.

* ``maxent_tabular``: one free reward per state (or state-action), from zero;
* ``maxent_linear``: a linear reward on the task's features, from zero;
* ``maxent``: a neural reward model (by default the fully convolutional net on a GridWorld's map,
  the MandRIL paper's architecture; an MLP on the features elsewhere), from a random initialisation
  seeded per fit.

All three are one implementation: the reward model differs, the fit is
:func:`mandril.methods.fitting.fit_rewards` (start-conditioned likelihood by default, Adam with a
cosine schedule to a gradient tolerance), and tasks of the same size are fitted in one batched call.

The gradient with respect to the reward table is exactly ``E[mu] - mu_D`` (``H`` rewarded steps;
imitation's ``MCEIRL`` also counts ``s_H``, so its gradient has an extra ``D[H] - mu_D[H]`` term).

:class:`MaxEntIRL` is the same fit for one task with any reward module of your own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any, Callable, ClassVar, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from mandril.core.config import check_numbers
from mandril.data.batch import MetaBatch, check_likelihood, make_batch
from mandril.data.inputs import INPUT_KINDS
from mandril.methods.base import DivergenceError, FitError, FitProblem, Method, MethodOutput, check_problem
from mandril.methods.fitting import FitSettings, QuadraticPenalty, TaskFit, fit_rewards
from mandril.rewards.batched import stack_params
from mandril.rewards.spec import RewardModelSpec, build_reward_model
from mandril_envs.model import TabularModel

__all__ = ["MaxEntConfig", "MaxEntLinearConfig", "MaxEntTabularConfig", "MaxEnt", "MaxEntLinear", "MaxEntTabular", "MaxEntIRL", "torch_dtype", "group_by_shape", "train_batch", "fit_in_groups"]


def torch_dtype(name: str) -> torch.dtype:
    """``"float64"``/``"float32"`` -> the torch dtype (a ValueError naming the value otherwise)."""
    if name not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32', got {name!r}")
    return torch.float64 if name == "float64" else torch.float32


@dataclass(frozen=True)
class MaxEntConfig(FitSettings):
    """Settings of the MaxEnt methods (the optimiser's fields are those of :class:`FitSettings`).

    Attributes:
        reward_model: the reward model (``kind`` ``tabular``, ``linear``, ``mlp`` or ``conv``).
        input_kind: what it reads of a task (``features``; ``map`` or ``rgb`` for ``conv``).
        likelihood: ``"start"`` (conditioned on the demos' own first states) or ``"p0"``.
        temperature: of the MaxEnt likelihood (1: Ziebart's).
        dtype: ``"float64"`` or ``"float32"``.
    """

    reward_model: RewardModelSpec = field(default_factory=lambda: RewardModelSpec("conv"))
    input_kind: str = "map"
    likelihood: str = "start"
    temperature: float = 1.0
    dtype: str = "float64"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.reward_model, RewardModelSpec):
            raise TypeError(f"reward_model must be a RewardModelSpec, got {type(self.reward_model).__name__}")
        if self.input_kind not in INPUT_KINDS:
            raise ValueError(f"input_kind must be one of {list(INPUT_KINDS)}, got {self.input_kind!r}")
        if self.input_kind not in self.reward_model.input_kinds:
            raise ValueError(f"a {self.reward_model.kind} reward model reads {list(self.reward_model.input_kinds)}, not input_kind {self.input_kind!r}")
        check_likelihood(self.likelihood)
        check_numbers(self, positive=("temperature",))
        torch_dtype(self.dtype)



def group_by_shape(problems: Sequence[FitProblem]) -> list[list[int]]:
    """Positions of problems that can share one kernel call (same ``S``, ``A``, ``H``, reward shape and input shape)."""
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(problems):
        key = (p.model.state_dim, p.model.action_dim, p.model.horizon, p.model.reward_matrix.ndim, np.shape(p.inputs))
        groups.setdefault(key, []).append(i)
    return list(groups.values())


class MaxEnt(Method):
    """MaxEnt IRL from scratch with a neural reward model (see the module docstring)."""

    name: ClassVar[str] = "maxent"
    kind: ClassVar[str] = "irl"
    Config: ClassVar[type] = MaxEntConfig
    batched: ClassVar[bool] = True
    family_reward_model: ClassVar[bool] = True

    def initial_models(self, problems: Sequence[FitProblem]) -> tuple[nn.Module, dict[str, torch.Tensor]]:
        """The architecture and every task's starting parameters ``(B, ...)`` (fresh, seeded per task)."""
        c = self.config
        dtype = torch_dtype(c.dtype)
        first = problems[0].model
        n_actions = first.action_dim if first.state_action_reward else None
        modules = [build_reward_model(c.reward_model, p.inputs, p.model.state_dim, p.seed, dtype, n_actions) for p in problems]
        return modules[0], stack_params(modules)

    def fit_batch(self, problems: Sequence[FitProblem]) -> list[Union[MethodOutput, FitError]]:
        """All problems of the same size in one batched fit (see :func:`fit_rewards`)."""
        return fit_in_groups(self, self._check_ready(problems), self.initial_models)


def fit_in_groups(
    method: Method,
    problems: Sequence[FitProblem],
    start: Callable[[list[FitProblem]], tuple[nn.Module, dict]],
    state_action: Optional[bool] = None,
    penalty: Optional[Callable[[list[FitProblem]], QuadraticPenalty]] = None,
) -> list[Union[MethodOutput, FitError]]:
    """Fit ``problems`` by :func:`fit_rewards`, same-size tasks in one batched call each.

    Args:
        method: a MaxEnt-family method (its config extends :class:`FitSettings` and has ``likelihood``,
            ``temperature`` and ``dtype``).
        problems: checked problems.
        start: ``tasks -> (architecture, starting parameters (B, ...))`` of a group.
        state_action: fit state-action rewards (default: when the tasks' rewards are).
        penalty: ``tasks -> QuadraticPenalty`` of a group (a MAP fit's prior), or ``None``.
    """
    c = method.config
    results: list[Union[MethodOutput, FitError]] = [None] * len(problems)  # type: ignore[list-item]
    for group in group_by_shape(problems):
        chosen = [problems[i] for i in group]
        clock = time.perf_counter()
        module, init = start(chosen)
        batch = train_batch(chosen, torch_dtype(c.dtype), method.device, state_action)
        fits = fit_rewards(
            module, init, batch, FitSettings.of(c), likelihood=c.likelihood, temperature=c.temperature, labels=[p.label for p in chosen], method=method.name,
            penalty=None if penalty is None else penalty(chosen),
        )
        seconds = (time.perf_counter() - clock) / len(chosen)
        for i, fit in zip(group, fits):
            results[i] = fit if isinstance(fit, DivergenceError) else MethodOutput(reward=fit.reward, info={**fit.info(), "seconds": seconds})
    return results


def train_batch(problems: Sequence[FitProblem], dtype: torch.dtype, device: Any = None, state_action: Optional[bool] = None) -> MetaBatch:
    """The problems' tasks and demos as one :class:`MetaBatch` (state-action visitation when the rewards are)."""
    models = [p.model for p in problems]
    state_action = models[0].state_action_reward if state_action is None else state_action
    return make_batch(models, [np.asarray(p.inputs) for p in problems], [(p.states, p.actions) for p in problems], None, state_action, dtype, device)


@dataclass(frozen=True)
class MaxEntLinearConfig(MaxEntConfig):
    """:class:`MaxEntConfig` with a linear reward on the features."""

    reward_model: RewardModelSpec = field(default_factory=lambda: RewardModelSpec("linear"))
    input_kind: str = "features"


@dataclass(frozen=True)
class MaxEntTabularConfig(MaxEntConfig):
    """:class:`MaxEntConfig` with one free reward per state."""

    reward_model: RewardModelSpec = field(default_factory=lambda: RewardModelSpec("tabular"))
    input_kind: str = "features"


class MaxEntLinear(MaxEnt):
    """MaxEnt IRL with a linear reward on the task's features, from zero."""

    name: ClassVar[str] = "maxent_linear"
    Config: ClassVar[type] = MaxEntLinearConfig
    family_reward_model: ClassVar[bool] = False


class MaxEntTabular(MaxEnt):
    """MaxEnt IRL with a free reward per state (or state-action), from zero."""

    name: ClassVar[str] = "maxent_tabular"
    Config: ClassVar[type] = MaxEntTabularConfig
    family_reward_model: ClassVar[bool] = False


class MaxEntIRL:
    """MaxEnt IRL on one task with a reward module of your own (the engine of the MaxEnt methods).

    Args:
        reward_model: a ``torch.nn.Module`` mapping a batch of task inputs ``(n, ...)`` to reward
            tables ``(n, S)`` or ``(n, S, A)``; it must work with ``torch.func`` (no batch norm).
            Its parameters are the starting point; they are not changed.
        likelihood: ``"start"`` (default) or ``"p0"`` (:data:`mandril.data.LIKELIHOODS`).
        temperature: of the likelihood.
        **settings: :class:`FitSettings` fields (``lr``, ``max_steps``, ``grad_tol``, ``l2``, ...).

    After :meth:`fit`, :attr:`result` holds the :class:`TaskFit` (steps, status and converged, gradient norm,
    loss, parameters).

    Example::

        irl = MaxEntIRL(LinearReward(n_features), lr=0.05, max_steps=500)
        reward = irl.fit(model, states, actions)   # (S,) numpy
    """

    def __init__(self, reward_model: nn.Module, *, likelihood: str = "start", temperature: float = 1.0, **settings: Any) -> None:
        if not isinstance(reward_model, nn.Module):
            raise TypeError(f"reward_model must be a torch.nn.Module, got {type(reward_model).__name__}")
        unknown = sorted(set(settings) - {f.name for f in fields(FitSettings)})
        if unknown:
            raise TypeError(f"unknown MaxEntIRL settings {unknown}: allowed {sorted(f.name for f in fields(FitSettings))}")
        if not any(p.requires_grad for p in reward_model.parameters()):
            raise ValueError("reward_model has no trainable parameters")
        self.reward_model = reward_model
        self.settings = FitSettings(**settings)
        self.likelihood = check_likelihood(likelihood)
        self.temperature = float(temperature)
        self.result: Optional[TaskFit] = None

    def fit(self, model: TabularModel, states: np.ndarray, actions: np.ndarray, inputs: Optional[np.ndarray] = None) -> np.ndarray:
        """Fit to the demos ``states (n, H+1)``, ``actions (n, H)`` of the task ``model``.

        Args:
            inputs: the reward model's input for this task (default ``model.feature_matrix``).

        Returns:
            The learned reward table, float64 ``(S,)`` or ``(S, A)``.

        Raises:
            DivergenceError: the fit diverged (the message names the step and the rate).
        """
        if not isinstance(model, TabularModel):
            raise TypeError(f"model must be a mandril_envs TabularModel, got {type(model).__name__}")
        dtype = next(self.reward_model.parameters()).dtype
        inputs = np.array(model.feature_matrix) if inputs is None else np.asarray(inputs)
        with torch.no_grad():
            out = self.reward_model(torch.as_tensor(inputs[None], dtype=dtype))
        allowed = [(1, model.state_dim), (1, model.state_dim, model.action_dim)]
        if tuple(out.shape) not in allowed:
            raise ValueError(f"reward_model output {tuple(out.shape)[1:]} must be (S,) = ({model.state_dim},) or (S, A) = {(model.state_dim, model.action_dim)} for this task")
        problem = check_problem(FitProblem(model, inputs, states, actions))
        batch = make_batch([model], [inputs], [(problem.states, problem.actions)], None, out.ndim == 3, dtype)
        init = {k: v.detach().unsqueeze(0) for k, v in self.reward_model.named_parameters()}
        result = fit_rewards(self.reward_model, init, batch, self.settings, likelihood=self.likelihood, temperature=self.temperature, method="MaxEntIRL")[0]
        if isinstance(result, DivergenceError):
            raise result
        self.result = result
        return result.reward

