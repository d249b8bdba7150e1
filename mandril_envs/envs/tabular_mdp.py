"""Random tabular MDPs (the RL^2 family), with a linear-reward variant that has a prior over intent."""

from __future__ import annotations

from typing import Optional

import numpy as np

from mandril_envs.base import TabularTaskEnv
from mandril_envs.model import TabularModel
from mandril_envs.tasks import TaskLike
from mandril_envs.validation import check_choice, check_float, check_int

# Seed of the family-level draws (the shared mean of the linear task weights).
_FAMILY_STREAM = 7_219


class TabularMDPEnv(TabularTaskEnv):
    """A random finite-horizon MDP with Dirichlet transitions.

    ## Description
    The RL^2 random MDP (Duan et al. 2016): ``n_states`` states, ``n_actions`` actions, each row
    ``P(. | s, a)`` drawn from ``Dirichlet(dirichlet_alpha)``, episodes of ``horizon`` steps starting
    in a uniformly random state. With ``reward_type="linear"`` the mean reward is a state reward
    ``r(s) = phi(s) . w``: the features ``phi`` are drawn per task and the weights around a mean
    shared by every task of the family, so a prior over intent exists to be learned.

    ## Spaces
    Action: ``Discrete(n_actions)``. Observation: the state index (``obs_type="index"``),
    its one-hot vector (``"onehot"``) or its feature row (``"features"``).

    ## Reward
    ``reward_type="state_action"`` (default): means ``N(reward_mean, reward_std^2)`` per ``(s, a)``;
    ``reward_matrix`` is ``(S, A)``. ``"linear"``: ``reward_matrix = phi @ w`` of shape ``(S,)``, with
    ``phi ~ N(0, 1)^(S x F)`` and ``w = w_bar + weight_std * N(0, 1)^F``, where ``w_bar ~ N(0, 1)^F`` is
    fixed by ``family_seed``. ``step()`` returns the mean plus ``N(0, reward_noise^2)`` noise.
    Note that imitation's ``mce_partition_fh`` supports state rewards only, so it runs on the
    ``linear`` variant but not on the ``(S, A)`` rewards of the default one.

    ## Tasks
    ``params = {"transitions": S x A x S, "reward": S x A}`` (default) or
    ``{"transitions", "features": S x F, "weights": F}`` (linear). Train and test tasks come from
    disjoint seed streams (``SeedSequence([seed, split, index])``), so they differ with probability
    one; the test tasks are never drawn in training.

    ## Versions
    v0: first release. Registered: ``TabularMDP-v0`` (RL^2 defaults) and ``TabularMDP-Linear-v0``.
    """

    family = "TabularMDP"

    def __init__(
        self,
        n_states: int = 10,
        n_actions: int = 5,
        horizon: int = 10,
        dirichlet_alpha: float = 1.0,
        reward_type: str = "state_action",
        reward_mean: float = 1.0,
        reward_std: float = 1.0,
        reward_noise: float = 1.0,
        n_features: int = 4,
        weight_std: float = 0.5,
        family_seed: int = 0,
        obs_type: str = "index",
        task: Optional[TaskLike] = None,
        render_mode: Optional[str] = None,
    ) -> None:
        config = {
            "n_states": check_int("n_states", n_states, 1),
            "n_actions": check_int("n_actions", n_actions, 1),
            "horizon": check_int("horizon", horizon, 1),
            "dirichlet_alpha": check_float("dirichlet_alpha", dirichlet_alpha, 0.0, strict_min=True),
            "reward_type": check_choice("reward_type", reward_type, ("state_action", "linear")),
            "reward_mean": check_float("reward_mean", reward_mean),
            "reward_std": check_float("reward_std", reward_std, 0.0),
            "reward_noise": check_float("reward_noise", reward_noise, 0.0),
            "n_features": check_int("n_features", n_features, 1),
            "weight_std": check_float("weight_std", weight_std, 0.0),
            "family_seed": check_int("family_seed", family_seed, 0),
        }
        super().__init__(config, task, obs_type, render_mode)

    @property
    def shared_weight_mean(self) -> np.ndarray:
        """``(F,)`` the mean of the task weights (linear variant), fixed by ``family_seed``."""
        rng = np.random.default_rng(np.random.SeedSequence([self.config["family_seed"], _FAMILY_STREAM]))
        return rng.normal(0.0, 1.0, self.config["n_features"])

    def _sample_params(self, rng: np.random.Generator, split: str) -> dict:
        c = self.config
        s, a = c["n_states"], c["n_actions"]
        transitions = rng.dirichlet(np.full(s, c["dirichlet_alpha"]), size=(s, a))
        if c["reward_type"] == "state_action":
            return {"transitions": transitions, "reward": rng.normal(c["reward_mean"], c["reward_std"], (s, a))}
        features = rng.normal(0.0, 1.0, (s, c["n_features"]))
        weights = self.shared_weight_mean + c["weight_std"] * rng.normal(0.0, 1.0, c["n_features"])
        return {"transitions": transitions, "features": features, "weights": weights}

    def _check_params(self, params: dict) -> None:
        c = self.config
        s, a, f = c["n_states"], c["n_actions"], c["n_features"]
        keys = {"transitions", "reward"} if c["reward_type"] == "state_action" else {"transitions", "features", "weights"}
        if set(params) != keys:
            raise ValueError(f"TabularMDP ({c['reward_type']}) task params must have keys {sorted(keys)}, got {sorted(params)}")
        shapes = {"transitions": (s, a, s), "reward": (s, a), "features": (s, f), "weights": (f,)}
        for key in keys:
            try:
                value = np.asarray(params[key], dtype=np.float64)
            except (TypeError, ValueError):
                raise TypeError(f"params[{key!r}] must be numeric nested lists of shape {shapes[key]}") from None
            if value.shape != shapes[key]:
                raise ValueError(f"params[{key!r}] must have shape {shapes[key]}, got {value.shape}")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"params[{key!r}] must be finite")
        transitions = np.asarray(params["transitions"], dtype=np.float64)
        if transitions.min() < 0 or np.abs(transitions.sum(axis=2) - 1).max() > 1e-8:
            raise ValueError("params['transitions'] rows must be probability distributions (non-negative, summing to 1)")

    def _build_model(self, params: dict) -> TabularModel:
        c = self.config
        transitions = np.asarray(params["transitions"], np.float64)
        if c["reward_type"] == "state_action":
            reward = np.asarray(params["reward"], np.float64)
            features = np.eye(c["n_states"])
        else:
            features = np.asarray(params["features"], np.float64)
            reward = features @ np.asarray(params["weights"], np.float64)
        p0 = np.full(c["n_states"], 1.0 / c["n_states"])
        return TabularModel.from_dense(transitions, reward, p0, c["horizon"], features)

    def sample_rewards(self, means: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``means`` plus ``N(0, reward_noise^2)`` noise (none when ``reward_noise`` is 0)."""
        means = np.asarray(means, dtype=np.float64)
        sigma = self.config["reward_noise"]
        return means + rng.normal(0.0, sigma, size=means.shape) if sigma > 0 else means.copy()
