"""``map_prior``: the simplest way to use the training tasks, a Gaussian prior over reward parameters
fitted on them and used as a MAP penalty on a new task (issue 17).

* ``prepare``: a converged MaxEnt fit of every training task's demos (:func:`fit_rewards`, the same
  likelihood as every MaxEnt-family method, a small L2 ``pool_l2``), with linear parameters on the
  task's features where the family's reward is a state reward, the reward table otherwise
  (``parameters = "auto"``; the RL^2 random MDPs' and the bandits' rewards are state-action rewards,
  which no state feature describes). The prepared state is these per-task parameters ``(N, P)``.
* the prior: their mean ``m`` and a shrunk covariance ``Sigma`` (:func:`estimate_prior`): ``"diagonal"``,
  ``"ledoit_wolf"`` (Ledoit and Wolf 2004: the sample covariance pulled toward a multiple of the
  identity by the weight that minimises the expected Frobenius loss) or ``"low_rank"`` (probabilistic
  PCA: the top ``rank`` principal directions plus isotropic noise); a setting, chosen on validation tasks.
* ``fit``: MAP MaxEnt on the new task's ``n`` demos: the MaxEnt objective (per demo and step) plus
  ``(1/2) (theta - m)^T P (theta - m)`` with ``P = prior_scale * Sigma^-1 / (n H)``, which is the
  Gaussian prior's weight against ``n`` demos' likelihood when ``prior_scale = 1``; the fit starts at
  ``m``. One optimiser: the penalty is :class:`~mandril.methods.fitting.QuadraticPenalty` on the fit
  every MaxEnt method runs. ``prior_scale = 0`` is plain MaxEnt with the same ``l2``.

It is what MandRIL must beat to claim that its prior is worth meta-learning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence, Union

import numpy as np
import torch

from mandril.core.checkpoint import CheckpointError
from mandril.core.config import check_ints, check_numbers
from mandril.data.batch import check_likelihood
from mandril.methods.base import DivergenceError, FitError, FitProblem, Method, MethodOutput, hide_reward
from mandril.methods.fitting import FitSettings, QuadraticPenalty, fit_rewards
from mandril.methods.maxent import fit_in_groups, torch_dtype, train_batch
from mandril.methods.trained import training_source
from mandril.rewards.batched import expand_params
from mandril.rewards.spec import RewardModelSpec, build_reward_model

__all__ = ["MapPriorConfig", "MapPrior", "GaussianPrior", "estimate_prior", "COVARIANCES", "PARAMETERS"]

#: The covariance estimates of the fitted Gaussian prior (``MapPriorConfig.covariance``).
COVARIANCES = ("diagonal", "ledoit_wolf", "low_rank")
#: What the prior is over (``MapPriorConfig.parameters``): chosen by the reward model, linear weights or the reward table.
PARAMETERS = ("auto", "linear", "tabular")


@dataclass(frozen=True)
class MapPriorConfig(FitSettings):
    """``map_prior`` settings (the new-task fit's optimiser fields are those of :class:`FitSettings`).

    Attributes:
        l2: an extra ``(l2 / 2) ||theta||^2`` on new tasks (default 0: the prior is the regulariser).
        parameters: ``"linear"`` (on the task's features), ``"tabular"`` (the reward table) or
            ``"auto"``: tabular where the family's rewards are state-action rewards, else linear.
        covariance: how the prior's covariance is shrunk: ``"diagonal"``, ``"ledoit_wolf"``, ``"low_rank"``.
        rank: principal directions of ``"low_rank"`` (>= 1; at most ``P - 1`` are used).
        prior_scale: multiplies the prior's precision (>= 0; 1: the Gaussian prior against ``n`` demos).
        pool_l2: L2 of the per-task fits on the training pool (>= 0).
        pool_max_steps: their iteration budget (>= 1; L-BFGS, gradient tolerance 1e-5).
        likelihood, temperature, dtype: as for every MaxEnt-family method.
    """

    l2: float = 0.0
    parameters: str = "auto"
    covariance: str = "ledoit_wolf"
    rank: int = 2
    prior_scale: float = 1.0
    pool_l2: float = 0.01
    pool_max_steps: int = 300
    likelihood: str = "start"
    temperature: float = 1.0
    dtype: str = "float64"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.parameters not in PARAMETERS:
            raise ValueError(f"parameters must be one of {list(PARAMETERS)}, got {self.parameters!r}")
        if self.covariance not in COVARIANCES:
            raise ValueError(f"covariance must be one of {list(COVARIANCES)}, got {self.covariance!r}")
        check_ints(self, rank=1, pool_max_steps=1)
        check_numbers(self, positive=("temperature",), non_negative=("prior_scale", "pool_l2"))
        check_likelihood(self.likelihood)
        torch_dtype(self.dtype)

    def kind_for(self, state_action: bool) -> str:
        """The reward model's kind: ``parameters``, or for ``"auto"`` tabular on state-action rewards, else linear."""
        if self.parameters != "auto":
            return self.parameters
        return "tabular" if state_action else "linear"


@dataclass(frozen=True)
class GaussianPrior:
    """``N(mean, covariance)`` over flattened reward parameters, with its ``precision`` (the inverse)."""

    mean: np.ndarray
    covariance: np.ndarray
    precision: np.ndarray


def estimate_prior(thetas: np.ndarray, covariance: str = "ledoit_wolf", rank: int = 2) -> GaussianPrior:
    """The mean and a shrunk covariance of per-task parameters ``thetas (N, P)``.

    ``"diagonal"``: the per-parameter variances. ``"ledoit_wolf"``: ``(1 - d) S + d mu I`` with ``S`` the
    sample covariance (divisor ``N``), ``mu = tr(S) / P`` and ``d`` Ledoit and Wolf's estimate of the
    best weight (``min(1, b^2 / ||S - mu I||_F^2)``, ``b^2 = sum_i ||x_i x_i^T - S||_F^2 / N^2``).
    ``"low_rank"``: probabilistic PCA (Tipping and Bishop 1999), ``U (L - s I) U^T + s I`` with the top
    ``rank`` eigenpairs ``(L, U)`` of ``S`` and ``s`` the mean of its other eigenvalues. Every
    variance is floored at ``1e-8`` times the mean variance (and at 1e-12), so the precision exists.

    Raises:
        ValueError: fewer than 2 tasks, non-finite parameters, an unknown ``covariance``.
    """
    thetas = np.asarray(thetas, dtype=np.float64)
    if thetas.ndim != 2 or thetas.shape[0] < 2 or not np.all(np.isfinite(thetas)):
        raise ValueError(f"thetas must be finite (N, P) with N >= 2 tasks, got shape {thetas.shape}")
    if covariance not in COVARIANCES:
        raise ValueError(f"covariance must be one of {list(COVARIANCES)}, got {covariance!r}")
    n, p = thetas.shape
    mean = thetas.mean(0)
    centred = thetas - mean
    sample = centred.T @ centred / n
    if covariance == "diagonal":
        cov = np.diag(np.diag(sample))
    elif covariance == "ledoit_wolf":
        mu = np.trace(sample) / p
        target_gap = float(((sample - mu * np.eye(p)) ** 2).sum())
        spread = float(sum(((np.outer(x, x) - sample) ** 2).sum() for x in centred)) / n**2
        weight = 1.0 if target_gap <= 0 else min(1.0, spread / target_gap)
        cov = (1.0 - weight) * sample + weight * mu * np.eye(p)
    else:
        values, vectors = np.linalg.eigh(sample)  # ascending
        k = min(rank, p - 1)
        noise = float(values[: p - k].mean())
        top = vectors[:, p - k :]
        cov = (top * (values[p - k :] - noise)) @ top.T + noise * np.eye(p)
    floor = max(1e-8 * float(np.trace(sample)) / p, 1e-12)
    values, vectors = np.linalg.eigh(0.5 * (cov + cov.T))
    values = np.maximum(values, floor)
    cov = (vectors * values) @ vectors.T
    precision = (vectors / values) @ vectors.T
    return GaussianPrior(mean, cov, 0.5 * (precision + precision.T))


class MapPrior(Method):
    """MaxEnt with a Gaussian prior over reward parameters fitted on the training tasks (module docstring)."""

    name: ClassVar[str] = "map_prior"
    kind: ClassVar[str] = "meta-irl"
    Config: ClassVar[type] = MapPriorConfig
    needs_preparation: ClassVar[bool] = True
    batched: ClassVar[bool] = True
    fit_only_settings: ClassVar[tuple[str, ...]] = (
        "optimizer", "lr", "max_steps", "grad_tol", "l2", "l2_center", "schedule", "history", "max_abs_reward", "covariance", "rank", "prior_scale",
    )

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.thetas: Any = None  # (N, P) per-task parameters of the training pool
        self.model_kind: str = ""
        self.prior: Any = None

    # --- preparation ----------------------------------------------------------------------------
    def _prepare(self, data: Any, *, checkpoint: Any, log_dir: Any, progress: bool, checkpoint_metadata: Any = None) -> None:
        # one batched fit of the pool (minutes at most): no training checkpoint to continue from
        c = self.config
        source = training_source(data, "features", c.dtype, self.device)
        dataset = source.dataset
        kind = c.kind_for(source.state_action)
        problems = [
            FitProblem(hide_reward(model), inputs, dataset.states[i], dataset.actions[i], label=f"train/{i}")
            for i, (model, inputs) in enumerate(zip(source.models, source.inputs))
        ]
        module = self._module(kind, problems[0])
        init = expand_params({k: v.detach() for k, v in module.named_parameters()}, len(problems))
        batch = train_batch(problems, torch_dtype(c.dtype), self.device)
        settings = FitSettings(l2=c.pool_l2, max_steps=c.pool_max_steps)
        fits = fit_rewards(module, init, batch, settings, likelihood=c.likelihood, temperature=c.temperature, labels=[p.label for p in problems], method=self.name)
        kept = [f for f in fits if not isinstance(f, DivergenceError)]
        if len(kept) < 2:
            raise FitError(f"{self.name}: only {len(kept)} of {len(fits)} training tasks could be fitted; a prior needs at least 2")
        thetas = torch.stack([torch.cat([v.reshape(-1) for v in f.params.values()]) for f in kept]).cpu()
        self._set_state(kind, thetas)

    def _module(self, kind: str, problem: FitProblem) -> torch.nn.Module:
        c = self.config
        model = problem.model
        n_actions = model.action_dim if model.state_action_reward else None
        module = build_reward_model(RewardModelSpec(kind), np.asarray(problem.inputs), model.state_dim, 0, torch_dtype(c.dtype), n_actions)
        return module if self.device is None else module.to(self.device)

    def _set_state(self, kind: str, thetas: torch.Tensor) -> None:
        c = self.config
        self.model_kind, self.thetas = kind, thetas
        self.prior = estimate_prior(thetas.numpy(), c.covariance, c.rank)

    def state_dict(self) -> dict:
        """The training pool's fitted parameters ``(N, P)`` and the reward model's kind (the prior is
        computed from them with the current covariance setting, so a sweep over it reuses one preparation)."""
        if self.thetas is None:
            raise RuntimeError(f"{self.name} has nothing to save: prepare it first")
        return {"model_kind": self.model_kind, "thetas": self.thetas.detach().cpu()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        try:
            kind, thetas = state["model_kind"], state["thetas"]
        except (KeyError, TypeError):
            raise CheckpointError(f"{self.name}: the prepared state must hold 'model_kind' and 'thetas'") from None
        if kind not in ("linear", "tabular") or not isinstance(thetas, torch.Tensor) or thetas.ndim != 2:
            raise CheckpointError(f"{self.name}: the prepared state holds model_kind {kind!r} and thetas of type {type(thetas).__name__}")
        self._set_state(kind, thetas.to(torch.float64))
        self.prepared = True

    # --- new tasks --------------------------------------------------------------------------------
    def fit_batch(self, problems: Sequence[FitProblem]) -> list[Union[MethodOutput, FitError]]:
        """MAP MaxEnt of every task (same-size tasks in one batched fit), from the prior mean."""
        problems = self._check_ready(problems)
        c = self.config
        dtype = torch_dtype(c.dtype)
        mean = torch.as_tensor(self.prior.mean, dtype=dtype, device=self.device)
        precision = torch.as_tensor(self.prior.precision, dtype=dtype, device=self.device)

        def start(chosen: list[FitProblem]) -> tuple[Any, dict]:
            module = self._module(self.model_kind, chosen[0])
            shapes = {k: tuple(v.shape) for k, v in module.named_parameters()}
            if sum(int(np.prod(s)) for s in shapes.values()) != mean.shape[0]:
                raise ValueError(f"{self.name}: the prior is over {mean.shape[0]} parameters, a {self.model_kind} reward on this task has {shapes}")
            pieces = torch.split(mean, [int(np.prod(s)) for s in shapes.values()])
            return module, expand_params({k: p.reshape(shapes[k]) for k, p in zip(shapes, pieces)}, len(chosen))

        def penalty(chosen: list[FitProblem]) -> QuadraticPenalty:
            weights = torch.as_tensor([c.prior_scale / (p.states.shape[0] * p.model.horizon) for p in chosen], dtype=dtype, device=self.device)
            return QuadraticPenalty(mean.expand(len(chosen), -1), weights[:, None, None] * precision)

        return fit_in_groups(self, problems, start, None, penalty)
