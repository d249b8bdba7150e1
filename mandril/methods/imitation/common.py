"""The imitation / Stable-Baselines3 plumbing the three methods share (imports both: load it lazily).

* :class:`QuietLogger`: an imitation ``HierarchicalLogger`` that prints nothing and writes no file
  or folder (``imitation.util.logger.configure(format_strs=[])`` still creates a folder under the
  temporary directory, and one more per ``accumulate_means`` context).
* :func:`seeded_global_rngs`: SB3 draws from the global ``random`` / ``numpy`` / ``torch``
  generators (it seeds them through ``set_random_seed``; imitation's replay buffer and data loaders
  draw from them too). A fit seeds them from its own seed and restores their previous states
  afterwards, so a fit is deterministic for a seed and leaves the caller's RNGs as they were.
* :class:`StateColumnsRewardNet`: a reward net over :class:`~.adapters.Observations` that hands its
  inner net (built on the state columns alone, ``Box(S)``) the one-hot state and ``done = False``
  (episodes are truncated at the horizon, never terminated; imitation marks the generator's last
  transition done but our demos' not, so reading ``done`` would let the discriminator tell them
  apart by a flag rather than by behaviour).
* :class:`ExpertBatches`: the demos' transitions in minibatches for the discriminator and for BC,
  drawn with a numpy generator (imitation's own torch ``DataLoader`` of the demos cost about a third
  of a BC fit and a quarter of a discriminator step, in per-transition Python calls).
* :func:`build_ppo`: the PPO generator.
* :func:`check_finite`: the divergence check.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
from typing import Any, Iterator, Optional

import numpy as np
import torch
from imitation.rewards import reward_nets
from imitation.util import logger as imitation_logger
from stable_baselines3.common import logger as sb_logger

from mandril.methods.base import DivergenceError
from mandril.methods.imitation.adapters import Observations

__all__ = ["QuietLogger", "ExpertBatches", "seeded_global_rngs", "derive_seed", "StateColumnsRewardNet", "build_state_reward_net", "build_ppo", "check_finite"]


class QuietLogger(imitation_logger.HierarchicalLogger):
    """A ``HierarchicalLogger`` with no output formats and no folder: records are kept in memory
    (``name_to_value``) until the next ``dump`` clears them; nothing is printed or written."""

    def __init__(self) -> None:
        super().__init__(sb_logger.Logger(folder=None, output_formats=[]), format_strs=[])

    @contextlib.contextmanager
    def accumulate_means(self, name: str) -> Iterator[None]:
        """As the parent's, with the sub-logger made here in memory (the parent would make a folder)."""
        key = os.path.join(*self._accumulate_prefixes, name)
        if key not in self._cached_loggers:
            self._cached_loggers[key] = sb_logger.Logger(folder=None, output_formats=[])
        with super().accumulate_means(name):
            yield


class ExpertBatches:
    """Minibatches of the demos' transitions for ``AdversarialTrainer.train_disc(expert_samples=...)``.

    Each :meth:`next` is ``batch_size`` distinct transitions drawn uniformly (without replacement
    within a batch) by a ``numpy`` generator seeded with ``seed``, as a dict of the ``Transitions``
    fields imitation reads: ``obs (B, D)``, ``acts (B,)``, ``next_obs (B, D)``, ``dones (B,)``.

    Args:
        trajectories: the demos as imitation trajectories (:func:`~.adapters.demos_to_trajectories`).
        batch_size: transitions per batch, at most the number of demo transitions.
        seed: the generator's seed.
    """

    def __init__(self, trajectories: list, batch_size: int, seed: int) -> None:
        from imitation.data import rollout

        transitions = rollout.flatten_trajectories(trajectories)
        self._fields = {name: np.asarray(getattr(transitions, name)) for name in ("obs", "acts", "next_obs", "dones")}
        self.n_transitions = len(transitions)
        if not 1 <= batch_size <= self.n_transitions:
            raise ValueError(f"batch_size must be in [1, {self.n_transitions}] (the demo transitions), got {batch_size}")
        self.batch_size = batch_size
        self._rng = np.random.default_rng(seed)

    def next(self) -> dict[str, np.ndarray]:
        """The next batch (fresh arrays)."""
        rows = self._rng.choice(self.n_transitions, size=self.batch_size, replace=False)
        return {name: values[rows] for name, values in self._fields.items()}

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        """Endless batches (each iterator continues the one generator): what imitation's BC takes as
        ``demonstrations`` in place of its ``DataLoader``; train it with ``n_batches``, never ``n_epochs``."""
        while True:
            yield self.next()


def derive_seed(seed: int, stream: int) -> int:
    """A 32-bit seed for the sub-stream ``stream`` of a fit's ``seed`` (what SB3 and numpy accept)."""
    return int(np.random.SeedSequence([int(seed), int(stream)]).generate_state(1)[0])


@contextlib.contextmanager
def seeded_global_rngs(seed: int) -> Iterator[None]:
    """Seed the global ``random``, ``numpy`` and ``torch`` generators with ``seed`` (32-bit) for the
    duration of the block, then put back the states they had before."""
    saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.set_rng_state(saved[2])


class StateColumnsRewardNet(reward_nets.RewardNet):
    """A reward net on :class:`Observations` that reads only their state columns (see the module docstring).

    Args:
        inner: an imitation ``RewardNet`` built on ``observations.state_space()``.
        observations: the env's observations (state columns first).
        action_space: the env's action space.
    """

    def __init__(self, inner: reward_nets.RewardNet, observations: Observations, action_space: Any) -> None:
        super().__init__(observations.space(), action_space, normalize_images=False)
        self.inner = inner
        self.n_states = observations.n_states

    def forward(self, state: torch.Tensor, action: torch.Tensor, next_state: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        """``inner(state[:, :S], action, next_state[:, :S], done=0)``: shape ``(batch,)``."""
        n = self.n_states
        return self.inner(state[:, :n], action, next_state[:, :n], torch.zeros_like(done))


def build_state_reward_net(
    observations: Observations, action_space: Any, *, use_action: bool, hidden: tuple[int, ...], potential_hidden: Optional[tuple[int, ...]] = None, discount: float = 1.0
) -> tuple[StateColumnsRewardNet, reward_nets.RewardNet]:
    """A reward net for the env and the part of it that is the reward.

    The reward ``g`` is imitation's ``BasicRewardNet`` on the one-hot state (and the action when
    ``use_action``) with hidden layers ``hidden`` (``()``: linear, i.e. one free value per state or
    state-action). With ``potential_hidden`` it is shaped as AIRL's disentangled reward:
    ``g(s[, a]) + discount * h(s') - h(s)`` (imitation's ``ShapedRewardNet`` around a
    ``BasicPotentialMLP`` ``h``).

    Returns:
        ``(net, reward)``: ``net`` for the trainer (reads observations), ``reward`` the unshaped
        ``g`` (reads ``Box(S)`` one-hot states: :func:`~.adapters.reward_table` of it on ``eye(S)``).
    """
    state_space = observations.state_space()
    reward = reward_nets.BasicRewardNet(state_space, action_space, use_state=True, use_action=use_action, use_next_state=False, use_done=False, hid_sizes=tuple(hidden))
    inner: reward_nets.RewardNet = reward
    if potential_hidden is not None:
        potential = reward_nets.BasicPotentialMLP(state_space, hid_sizes=tuple(potential_hidden))
        inner = reward_nets.ShapedRewardNet(reward, potential, discount)
    return StateColumnsRewardNet(inner, observations, action_space), reward


def build_ppo(venv: Any, config: Any, seed: int) -> Any:
    """SB3 ``PPO`` on ``venv`` with the config's generator settings, seeded with ``seed``, quiet, on CPU.

    ``config`` needs ``n_steps``, ``batch_size``, ``n_epochs``, ``gen_lr``, ``ent_coef``, ``gamma``,
    ``gae_lambda`` and ``policy_hidden``. PPO seeds the global RNGs (SB3's ``set_random_seed``):
    call it inside :func:`seeded_global_rngs`.
    """
    from stable_baselines3 import PPO

    return PPO(
        "MlpPolicy",
        venv,
        n_steps=config.n_steps,
        batch_size=config.batch_size,
        n_epochs=config.n_epochs,
        learning_rate=config.gen_lr,
        ent_coef=config.ent_coef,
        gamma=config.gamma,
        gae_lambda=config.gae_lambda,
        policy_kwargs={"net_arch": list(config.policy_hidden)},
        seed=seed,
        device="cpu",
        verbose=0,
    )


def check_finite(value: float, *, method: str, label: str, what: str, rates: str, limit: float = math.inf) -> None:
    """Raise a :class:`DivergenceError` naming the method, the task and the rates when ``value`` is
    not finite or its magnitude exceeds ``limit``."""
    if not math.isfinite(value) or abs(value) > limit:
        bound = "" if math.isinf(limit) else f" (limit {limit:g})"
        raise DivergenceError(f"{method}: task {label}: {what} is {value!r}{bound}: the fit diverged with {rates}")
