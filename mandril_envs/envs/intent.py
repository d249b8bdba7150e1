"""A task's reward written as a linear function of its intent parameters, with the family's prior.

Families whose per-task intent is a vector of numbers drawn around a shared mean
(``GridWorld-Intent-v0``, ``TabularMDP-Linear-v0``) describe each task by a :class:`LinearIntent`:
what a structure-aware estimator would know before seeing a demo (the basis the visible layout
determines, and the prior) next to the answer (the task's true parameters). It is meant for
oracles and analysis (``benchmarks/information_curve.py``); a reward model sees only
``reward_input(kind)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mandril_envs.priors import GaussianRewardPrior

__all__ = ["LinearIntent"]


@dataclass(frozen=True, eq=False)
class LinearIntent:
    """``reward_matrix == basis @ true`` with ``true ~ N(mean, diag(std^2))`` across tasks.

    Attributes:
        basis: ``(S, P)`` float64: how each intent parameter enters the state reward (fixed by
            what the task shows: its layout, its features).
        mean: ``(P,)``: the prior mean of the parameters (the family's shared mean, for this layout).
        std: ``(P,)``: their prior standard deviation (how far tasks spread around the mean; 0 = fixed).
        true: ``(P,)``: this task's parameters (privileged: the answer).
        names: ``(P,)`` names of the parameters, e.g. ``"terrain[2]"``, ``"goals[0].value"``.
    """

    basis: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    true: np.ndarray
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        basis = np.array(self.basis, dtype=np.float64)
        if basis.ndim != 2:
            raise ValueError(f"basis must be (S, P), got shape {basis.shape}")
        n_params = basis.shape[1]
        for name in ("mean", "std", "true"):
            value = np.array(getattr(self, name), dtype=np.float64)
            if value.shape != (n_params,):
                raise ValueError(f"{name} must have shape (P,) = ({n_params},), got {value.shape}")
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        if (self.std < 0).any():
            raise ValueError(f"std must be >= 0, got minimum {self.std.min()}")
        if len(self.names) != n_params:
            raise ValueError(f"names must have P = {n_params} entries, got {len(self.names)}")
        basis.setflags(write=False)
        object.__setattr__(self, "basis", basis)
        object.__setattr__(self, "names", tuple(self.names))

    def reward(self, params: np.ndarray) -> np.ndarray:
        """``(S,)``: the state reward of intent parameters ``params (P,)``."""
        return self.basis @ np.asarray(params, dtype=np.float64)

    @property
    def prior_reward(self) -> np.ndarray:
        """``(S,)``: the reward of the prior mean (what the shared structure says before any demo)."""
        return self.reward(self.mean)

    @property
    def true_reward(self) -> np.ndarray:
        """``(S,)``: the task's reward (equals the model's ``reward_matrix``)."""
        return self.reward(self.true)

    def prior(self) -> GaussianRewardPrior:
        """The family's prior over this task's state reward (``basis``, ``mean``, ``std``; not ``true``)."""
        return GaussianRewardPrior((self.basis.shape[0],), self.mean, self.std, self.basis, self.names)
