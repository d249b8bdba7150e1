"""MaxEnt IRL from scratch on one task (Ziebart et al. 2008/2010, finite horizon).

Minimises the MaxEnt negative log-likelihood :func:`mandril.planning.maxent_nll` of the demos
over the parameters of a reward model, with a torch optimizer; the gradient with respect to the
reward table is exactly ``E[mu] - mu_D`` (time convention: ``H`` rewarded steps; see
:mod:`mandril.planning.kernels`). The result is a reward table over the task's states
(or state-actions), as every method of mandril returns.

Differences from imitation's ``MCEIRL``: its demo occupancy and its expected visitation count
``s_H`` too (``H + 1`` rows), so its gradient has an extra ``D[H] - mu_D[H]`` term; ours is the
exact gradient of the MaxEnt likelihood of ``H``-step demos. It stops on the L-infinity distance
of the visitations or the gradient norm; we stop on the gradient norm.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn

from mandril.functional import NonFiniteLossError
from mandril.planning import METHODS, TaskBatch, empirical_visitation, maxent_nll
from mandril_envs.model import TabularModel

__all__ = ["MaxEntIRLConfig", "MaxEntIRL", "FitHistory", "OPTIMIZERS"]

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}
OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


@dataclass(frozen=True)
class MaxEntIRLConfig:
    """Settings of :class:`MaxEntIRL`.

    Attributes:
        steps: the most optimizer steps (>= 1).
        optimizer: ``"adam"`` or ``"sgd"`` (or pass a factory to :class:`MaxEntIRL`).
        lr: learning rate of the named optimizer (> 0).
        grad_tol: stop once the L2 norm of the loss gradient over all parameters is at most this (>= 0).
        l2: weight of ``l2 / 2 * ||params||^2`` added to the loss (>= 0).
        temperature: soft-policy temperature of the likelihood (> 0).
        method: ``"analytic"`` or ``"autograd"`` backward of the log-partition.
        dtype: ``"float64"`` or ``"float32"`` for the reward model and the planner.
        progress: show a tqdm progress bar.
    """

    steps: int = 200
    optimizer: str = "adam"
    lr: float = 0.1
    grad_tol: float = 1e-4
    l2: float = 0.0
    temperature: float = 1.0
    method: str = "analytic"
    dtype: str = "float64"
    progress: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be an int >= 1, got {self.steps!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)} (or a factory passed to MaxEntIRL), got {self.optimizer!r}")
        for name, low, strict in (("lr", 0.0, True), ("grad_tol", 0.0, False), ("l2", 0.0, False), ("temperature", 0.0, True)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            if value < low or (strict and value == low):
                raise ValueError(f"{name} must be {'>' if strict else '>='} {low}, got {value}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {list(METHODS)}, got {self.method!r}")
        if self.dtype not in ("float64", "float32"):
            raise ValueError(f"dtype must be 'float64' or 'float32', got {self.dtype!r}")

    @property
    def torch_dtype(self) -> torch.dtype:
        """The torch dtype named by :attr:`dtype`."""
        return torch.float64 if self.dtype == "float64" else torch.float32


@dataclass
class FitHistory:
    """What one :meth:`MaxEntIRL.fit` did.

    Attributes:
        losses: the loss (MaxEnt NLL plus the L2 term) before each step taken, then at the end.
        grad_norms: the gradient norm at the same points.
        converged: whether the gradient norm reached ``grad_tol``.
        steps: optimizer steps taken.
    """

    losses: list[float] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)
    converged: bool = False
    steps: int = 0


class MaxEntIRL:
    """MaxEnt IRL on one task: fit a reward model to demos by the exact MaxEnt likelihood gradient.

    Args:
        reward_model: a ``torch.nn.Module`` mapping the task's input (by default its
            ``feature_matrix (S, F)``) to a reward table ``(S,)`` or ``(S, A)``; trained in place
            from its current parameters (e.g. :class:`mandril.rewards.LinearReward`).
        optimizer: ``"adam"``/``"sgd"`` (overrides ``config.optimizer``) or a factory
            ``params -> torch.optim.Optimizer`` (then ``config.lr`` is not used).
        steps: overrides ``config.steps``.
        config: :class:`MaxEntIRLConfig`; further keyword arguments override its fields.

    After :meth:`fit`, :attr:`history` holds the losses and gradient norms.

    Example::

        irl = MaxEntIRL(LinearReward(model.feature_matrix.shape[1]), steps=300, progress=False)
        reward = irl.fit(model, demos)   # (S,) numpy
    """

    def __init__(
        self,
        reward_model: nn.Module,
        optimizer: Union[str, OptimizerFactory, None] = None,
        steps: Optional[int] = None,
        *,
        config: Optional[MaxEntIRLConfig] = None,
        **overrides: Any,
    ) -> None:
        if not isinstance(reward_model, nn.Module):
            raise TypeError(f"reward_model must be a torch.nn.Module, got {type(reward_model).__name__}")
        if config is not None and not isinstance(config, MaxEntIRLConfig):
            raise TypeError(f"config must be a MaxEntIRLConfig, got {type(config).__name__}")
        fields = asdict(config if config is not None else MaxEntIRLConfig())
        unknown = sorted(set(overrides) - set(fields))
        if unknown:
            raise TypeError(f"unknown MaxEntIRL settings {unknown}: allowed {sorted(fields)}")
        fields.update(overrides)
        self._factory: Optional[OptimizerFactory] = None
        if isinstance(optimizer, str):
            fields["optimizer"] = optimizer
        elif optimizer is not None:
            if not callable(optimizer):
                raise TypeError(f"optimizer must be a name in {sorted(OPTIMIZERS)} or a callable params -> Optimizer, got {optimizer!r}")
            self._factory = optimizer
        if steps is not None:
            fields["steps"] = steps
        self.config = MaxEntIRLConfig(**fields)
        self.reward_model = reward_model.to(self.config.torch_dtype)
        if not any(p.requires_grad for p in self.reward_model.parameters()):
            raise ValueError("reward_model has no trainable parameters")
        self.history = FitHistory()

    def _optimizer(self) -> torch.optim.Optimizer:
        params = [p for p in self.reward_model.parameters() if p.requires_grad]
        if self._factory is not None:
            optimizer = self._factory(params)
            if not isinstance(optimizer, torch.optim.Optimizer):
                raise TypeError(f"the optimizer factory must return a torch.optim.Optimizer, got {type(optimizer).__name__}")
            return optimizer
        return OPTIMIZERS[self.config.optimizer](params, lr=self.config.lr)

    def _reward(self, inputs: Tensor, model: TabularModel) -> Tensor:
        reward = self.reward_model(inputs)
        allowed = [(model.state_dim,), (model.state_dim, model.action_dim)]
        if not isinstance(reward, Tensor) or tuple(reward.shape) not in allowed:
            shape = tuple(reward.shape) if isinstance(reward, Tensor) else type(reward).__name__
            raise ValueError(f"reward_model output {shape} must be (S,) = {allowed[0]} or (S, A) = {allowed[1]} for this task")
        return reward

    def fit(
        self,
        model: TabularModel,
        demos: Union[Sequence[Any], np.ndarray],
        inputs: Union[Tensor, np.ndarray, None] = None,
    ) -> np.ndarray:
        """Fit the reward model to ``demos`` of the task ``model``.

        Args:
            model: the task's known dynamics (its reward is not used).
            demos: trajectories (``states (H+1,)``, ``actions (H,)``, e.g.
                :class:`mandril_envs.demos.Trajectory`) or their empirical visitation ``mu_D``
                (``(S,)`` or ``(S, A)``, summing to ``H``).
            inputs: the reward model's input for this task; default ``model.feature_matrix``.

        Returns:
            The learned reward table, float64 numpy ``(S,)`` or ``(S, A)``.
        """
        if not isinstance(model, TabularModel):
            raise TypeError(f"model must be a mandril_envs TabularModel, got {type(model).__name__}")
        cfg = self.config
        dtype = cfg.torch_dtype
        device = next(self.reward_model.parameters()).device
        if inputs is None:
            inputs = np.array(model.feature_matrix)
        inputs = torch.as_tensor(inputs, dtype=dtype, device=device)
        batch = TaskBatch.from_models([model], dtype=dtype, device=device)
        with torch.no_grad():
            state_action = self._reward(inputs, model).ndim == 2
        if isinstance(demos, np.ndarray):
            mu_demo = np.asarray(demos, dtype=np.float64)
            if state_action and mu_demo.ndim == 1:
                raise ValueError(f"demos is a state visitation {mu_demo.shape}, but the reward model gives state-action rewards")
        else:
            mu_demo = empirical_visitation(model, demos, state_action=state_action)
        mu_demo_t = torch.as_tensor(mu_demo[None], dtype=dtype, device=device)
        params = [p for p in self.reward_model.parameters() if p.requires_grad]
        optimizer = self._optimizer()
        history = self.history = FitHistory()

        def evaluate() -> Tensor:
            optimizer.zero_grad()
            reward = self._reward(inputs, model)
            if not bool(torch.isfinite(reward.detach()).all()):
                raise NonFiniteLossError(f"the reward model's output is NaN or inf at step {history.steps}: lower the learning rate")
            loss = maxent_nll(batch, reward[None], mu_demo_t, cfg.temperature, cfg.method)[0]
            if cfg.l2 > 0:
                loss = loss + 0.5 * cfg.l2 * sum((p * p).sum() for p in params)
            loss.backward()
            return loss.detach()

        from tqdm.auto import tqdm

        with tqdm(total=cfg.steps, desc="MaxEnt IRL", disable=not cfg.progress, leave=False) as bar:
            while True:
                loss = evaluate()
                value = float(loss)
                norm = math.sqrt(sum(float((p.grad * p.grad).sum()) for p in params if p.grad is not None))
                if not (math.isfinite(value) and math.isfinite(norm)):
                    raise NonFiniteLossError(f"MaxEnt IRL loss {value} / gradient norm {norm} at step {history.steps}: lower the learning rate")
                history.losses.append(value)
                history.grad_norms.append(norm)
                if norm <= cfg.grad_tol:
                    history.converged = True
                    break
                if history.steps >= cfg.steps:
                    break
                # the closure hands the gradient just computed to the optimizer's first call and
                # re-evaluates on later calls (line searches, e.g. LBFGS)
                first = [loss]
                optimizer.step(lambda: first.pop() if first else evaluate())
                history.steps += 1
                bar.update(1)
                bar.set_postfix(loss=f"{value:.4g}", grad=f"{norm:.2e}", refresh=False)
        optimizer.zero_grad()
        with torch.no_grad():
            return self._reward(inputs, model).detach().cpu().to(torch.float64).numpy().copy()
