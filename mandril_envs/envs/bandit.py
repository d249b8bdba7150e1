"""Multi-armed bandits (the RL^2 Bernoulli-bandit family)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from mandril_envs import drawing
from mandril_envs.base import TabularTaskEnv
from mandril_envs.model import TabularModel
from mandril_envs.priors import BoxRewardPrior, GaussianRewardPrior, RewardPrior
from mandril_envs.reward_noise import RewardNoise
from mandril_envs.sizes import ModelShape
from mandril_envs.tasks import TaskLike
from mandril_envs.validation import check_choice, check_float_sequence, check_int


class BanditEnv(TabularTaskEnv):
    """A K-armed bandit played for a fixed number of pulls.

    ## Description
    The RL^2 multi-armed bandit (Duan et al. 2016): each task is a set of arm means; the agent
    pulls arms for ``horizon`` steps. As a tabular model it has one state, ``K`` actions and a
    self-loop, so MaxEnt planners and imitation's MCE code run on it unchanged.

    ## Spaces
    Action: ``Discrete(K)``, the arm. Observation: ``Discrete(1)`` (always 0) for
    ``obs_type="index"``; ``"onehot"`` and ``"features"`` give ``[1.0]``.

    ## Reward
    Bernoulli arms (default): reward 1 with probability ``p_k``, else 0. Gaussian arms
    (``arm_distribution="gaussian"``): reward ``N(mu_k, 1)``. ``reward_matrix`` is ``(1, K)``, the
    arm means; ``transition_matrix`` is ``(1, K, 1)`` of ones.

    ## Tasks
    ``params = {"means": [K floats]}``. Bernoulli means are ``U[0, 1]``; Gaussian means are
    ``N(0, 1)``. Train and test tasks come from disjoint seed streams (``SeedSequence([seed, split,
    index])``), so they differ with probability one; the test tasks are never drawn in training.

    ## Information
    How much soft-expert demos reveal depends on the expert's temperature, since the arm means lie in
    ``[0, 1]``: at 1 the expert's odds are at most ``e : 1`` (near-uniform pulls), at 0.1 one demo
    names the best arm. At 0.4 (the quick suite's) the posterior mode under the uniform prior
    (``benchmarks/information_curve.py``, 48 validation tasks of ``Bandit-K10-v0``) has mean
    normalized EVD 0.35, 0.23, 0.15, 0.087, 0.052, 0.021 for n = 1, 2, 4, 8, 16, 32 demos (IQM 0.21,
    0.11, 0.027, 0.012, 0.005, 0.001); the prior alone is 0.82. Converged tabular MaxEnt scores about
    the same (the bandit's MaxEnt likelihood is the soft expert's, and the uniform prior adds little).

    ## Arguments
    ``n_arms`` (K, default 5), ``horizon`` (pulls per episode, default 10),
    ``arm_distribution`` (``"bernoulli"`` or ``"gaussian"``), ``obs_type``, ``task``, ``render_mode``.

    ## Versions
    v0: first release. Registered: ``Bandit-v0`` (K=5), ``Bandit-K5-v0``, ``Bandit-K10-v0``, ``Bandit-K50-v0``.
    """

    family = "Bandit"
    size_arguments = ("n_arms",)

    def __init__(
        self,
        n_arms: int = 5,
        horizon: int = 10,
        arm_distribution: str = "bernoulli",
        obs_type: str = "index",
        task: Optional[TaskLike] = None,
        render_mode: Optional[str] = None,
    ) -> None:
        config = {
            "n_arms": check_int("n_arms", n_arms, 1),
            "horizon": check_int("horizon", horizon, 1),
            "arm_distribution": check_choice("arm_distribution", arm_distribution, ("bernoulli", "gaussian")),
        }
        super().__init__(config, task, obs_type, render_mode)

    def _model_shape(self, config: dict, obs_type: str) -> ModelShape:
        k = config["n_arms"]
        return ModelShape(1, k, 1, 1, state_action_reward=True, param_numbers=k, observation_bytes=self._observation_nbytes(obs_type, 1, 1))

    def _sample_params(self, rng: np.random.Generator, split: str) -> dict:
        k = self.config["n_arms"]
        if self.config["arm_distribution"] == "bernoulli":
            return {"means": rng.uniform(0.0, 1.0, k)}
        return {"means": rng.normal(0.0, 1.0, k)}

    def _check_params(self, params: dict) -> None:
        if set(params) != {"means"}:
            raise ValueError(f"Bandit task params must have exactly the key 'means', got {sorted(params)}")
        means = check_float_sequence("params['means']", params["means"], self.config["n_arms"])
        if self.config["arm_distribution"] == "bernoulli" and not all(0.0 <= m <= 1.0 for m in means):
            raise ValueError(f"Bernoulli arm means must lie in [0, 1], got {means}")

    def _build_model(self, params: dict) -> TabularModel:
        k = self.config["n_arms"]
        return TabularModel(
            successor_indices=np.zeros((1, k, 1), np.int64),
            successor_probs=np.ones((1, k, 1)),
            reward_matrix=np.asarray(params["means"], np.float64)[None, :],
            initial_state_dist=np.ones(1),
            horizon=self.config["horizon"],
            feature_matrix=np.ones((1, 1)),
        )

    @property
    def arm_means(self) -> np.ndarray:
        """``(K,)`` the current task's arm means."""
        return self.model.reward_matrix[0]

    def reward_prior(self) -> RewardPrior:
        """The arm means' prior, ``(1, K)``: ``U[0, 1]`` each (Bernoulli arms) or ``N(0, 1)`` each (Gaussian arms)."""
        k = self.config["n_arms"]
        if self.config["arm_distribution"] == "bernoulli":
            return BoxRewardPrior((1, k), 0.0, 1.0)
        return GaussianRewardPrior((1, k), np.zeros(k), np.ones(k))

    def reward_noise(self) -> RewardNoise:
        """Bernoulli arms pay 0/1; Gaussian arms pay ``N(mean, 1)``."""
        return RewardNoise("bernoulli") if self.config["arm_distribution"] == "bernoulli" else RewardNoise("gaussian", 1.0)

    def _render_rgb(self) -> np.ndarray:
        """Bars of the arm means (Bernoulli: on ``[0, 1]``; Gaussian: from the lowest to the highest
        mean, with 0 in range), the last pulled arm in amber (:func:`~mandril_envs.drawing.arm_bars`)."""
        means = self.arm_means
        if self.config["arm_distribution"] == "bernoulli":
            low, high = 0.0, 1.0
        else:
            low, high = min(0.0, float(means.min())), max(0.0, float(means.max()))
            high = high if high > low else low + 1.0
        return drawing.arm_bars(means, self._last_action, low, high)

    def _render_ansi(self) -> str:
        means = " ".join(f"{m:.2f}" for m in self.arm_means)
        return f"Bandit task {self.task.split}/{self.task.index} pull {self._t}/{self.model.horizon}; arm means: {means}\n"
