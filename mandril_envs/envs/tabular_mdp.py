"""Random tabular MDPs (the RL^2 family), with a linear-reward variant that has a prior over intent."""

from __future__ import annotations

from typing import Optional

import numpy as np

from mandril_envs.base import TabularTaskEnv
from mandril_envs.envs.intent import LinearIntent
from mandril_envs.model import TabularModel
from mandril_envs.priors import GaussianRewardPrior, RewardPrior
from mandril_envs.reward_noise import RewardNoise
from mandril_envs.sizes import ModelShape
from mandril_envs.tasks import TaskLike
from mandril_envs.validation import check_choice, check_float, check_int, check_number_array

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

    ## Reward-model inputs
    ``reward_input("features")``: the feature matrix ``(S, F)``. For the linear variant a linear
    reward model on it represents every task exactly, and the family's prior is ``w_bar``
    (:meth:`linear_intent` gives both, for oracles); for the default variant it is the identity
    (a tabular state reward; the true reward is state-action).

    ## Tasks
    ``params = {"transitions": S x A x S, "reward": S x A}`` (default) or
    ``{"transitions", "features": S x F, "weights": F}`` (linear). Train and test tasks come from
    disjoint seed streams (``SeedSequence([seed, split, index])``), so they differ with probability
    one; the test tasks are never drawn in training.

    ## Information (linear variant)
    What n demos reveal (``benchmarks/information_curve.py``, 24 ``"test"`` tasks of
    ``TabularMDP-Linear-v0``; mean normalized EVD for n = 1, 2, 4, 8, 16, 32 soft-expert demos):
    converged start-conditioned MaxEnt with a tabular reward 0.85, 0.73, 0.70, 0.59, 0.46, 0.39;
    linear on the features 0.80, 0.69, 0.68, 0.48, 0.35, 0.23; the posterior mode under the
    family's prior (exact likelihood of the actions) 0.20, 0.13, 0.087, 0.044, 0.033, 0.022; the
    prior mean reward alone 0.32. MaxEnt learns slowly here because the transitions are very
    random (Dirichlet(1)): its ``log Z - <mu_D, r>`` is only a surrogate of the likelihood of the
    actions on stochastic dynamics, and the states a demo visits are mostly the dynamics' doing.
    ``weight_std = 1`` (tasks spread as far around ``w_bar`` as ``w_bar`` varies between
    families): with 0.5 the prior alone scored 0.098 and the posterior mode 0.064 from one demo and
    0.023 from 16, so little was left for further demos to show.

    ## Versions
    v0: first release. Registered: ``TabularMDP-v0`` (RL^2 defaults) and ``TabularMDP-Linear-v0``.
    The default ``weight_std`` became 1.0 (from 0.5) when the family was made a benchmark family.
    """

    family = "TabularMDP"
    reward_input_kinds = ("features",)
    size_arguments = ("n_states", "n_actions", "n_features")

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
        weight_std: float = 1.0,
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

    def _model_shape(self, config: dict, obs_type: str) -> ModelShape:
        s, a, linear = config["n_states"], config["n_actions"], config["reward_type"] == "linear"
        f = config["n_features"] if linear else s
        params = s * a * s + (s * f + f if linear else s * a)  # the transitions are the task's parameters: dense
        return ModelShape(s, a, s, f, state_action_reward=not linear, dense=True, param_numbers=params, observation_bytes=self._observation_nbytes(obs_type, s, f))

    @property
    def shared_weight_mean(self) -> np.ndarray:
        """``(F,)`` the mean of the task weights (linear variant), fixed by ``family_seed``."""
        rng = np.random.default_rng(np.random.SeedSequence([self.config["family_seed"], _FAMILY_STREAM]))
        return rng.normal(0.0, 1.0, self.config["n_features"])

    def linear_intent(self) -> LinearIntent:
        """The current task's reward as ``features @ weights`` with the family's prior (linear variant only).

        ``basis`` is the task's ``feature_matrix (S, F)``, ``mean`` the :attr:`shared_weight_mean`,
        ``std`` is ``weight_std`` for every weight, ``true`` the task's weights.

        Raises:
            ValueError: for ``reward_type="state_action"`` (its reward is not linear in a prior-bearing vector).
        """
        if self.config["reward_type"] != "linear":
            raise ValueError(f"linear_intent needs reward_type='linear', this env has reward_type={self.config['reward_type']!r}")
        n_features = self.config["n_features"]
        return LinearIntent(
            np.asarray(self.task.params["features"], np.float64),
            self.shared_weight_mean,
            np.full(n_features, self.config["weight_std"]),
            np.asarray(self.task.params["weights"], np.float64),
            tuple(f"weights[{i}]" for i in range(n_features)),
        )

    def reward_prior(self) -> RewardPrior:
        """The family's prior over the current task's reward: ``N(reward_mean, reward_std^2)`` for each
        state-action mean (default variant, identity basis), or :meth:`linear_intent`'s Gaussian prior on
        the weights, ``reward = features @ weights`` (linear variant)."""
        c = self.config
        if c["reward_type"] == "linear":
            return self.linear_intent().prior()
        s, a = c["n_states"], c["n_actions"]
        return GaussianRewardPrior((s, a), np.full(s * a, c["reward_mean"]), np.full(s * a, c["reward_std"]))

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
        arrays = {key: check_number_array(f"params[{key!r}]", params[key], shapes[key]) for key in sorted(keys)}
        transitions = arrays["transitions"]
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

    def reward_noise(self) -> RewardNoise:
        """``N(0, reward_noise^2)`` around the mean (none when ``reward_noise=0``)."""
        sigma = self.config["reward_noise"]
        return RewardNoise("gaussian", sigma) if sigma > 0 else RewardNoise("none")
