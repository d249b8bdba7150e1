"""Expert demonstrations rolled out through the env itself.

``generate(env, n_episodes, policy="soft")`` plans on the env's own model (the numpy planner of
:mod:`mandril_envs.planning`) and steps the env with the expert's actions, so every recorded
transition is one the env really sampled. Each :class:`Trajectory` has exactly ``horizon`` steps.

The command line (``python -m mandril_envs.demos --help``) writes datasets of many tasks; see
:mod:`mandril_envs.dataset` for the file format.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import gymnasium as gym
import numpy as np

from mandril_envs.base import TabularTaskEnv
from mandril_envs.planning import check_policy, soft_value_iteration, value_iteration
from mandril_envs.validation import check_choice, check_float, check_int, check_probability

__all__ = ["Trajectory", "ExpertSettings", "expert_policy", "generate", "rollout", "task_demo_seed", "task_demos"]

EXPERT_POLICIES = ("soft", "optimal", "epsilon")


@dataclass(frozen=True)
class Trajectory:
    """One episode of exactly ``H`` steps.

    Attributes:
        states: ``(H+1,)`` int64, ``s_0 .. s_H`` (state indices, whatever the observation type).
        actions: ``(H,)`` int64, ``a_0 .. a_{H-1}``.
        rewards: ``(H,)`` float64, what ``step()`` returned (noisy for families with reward noise).
        observations: ``(H+1, ...)``, what the env observed (``reset`` then every ``step``).
    """

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    observations: np.ndarray

    def __post_init__(self) -> None:
        horizon = self.actions.shape[0]
        if self.states.shape != (horizon + 1,) or self.rewards.shape != (horizon,) or self.observations.shape[0] != horizon + 1:
            raise ValueError(
                f"trajectory shapes disagree: states {self.states.shape}, actions {self.actions.shape}, "
                f"rewards {self.rewards.shape}, observations {self.observations.shape}; want (H+1,), (H,), (H,), (H+1, ...)"
            )

    @property
    def horizon(self) -> int:
        """``H``."""
        return int(self.actions.shape[0])

    def to_imitation(self) -> Any:
        """This episode as ``imitation.data.types.TrajectoryWithRew`` (needs imitation installed).

        The episode was truncated at the horizon, not terminated, so ``terminal=False``.
        """
        from imitation.data.types import TrajectoryWithRew

        return TrajectoryWithRew(
            obs=self.observations, acts=self.actions, infos=None, terminal=False, rews=self.rewards.astype(np.float32)
        )


@dataclass(frozen=True)
class ExpertSettings:
    """How the expert acts.

    Attributes:
        policy: ``"soft"`` (MaxEnt soft-optimal, ``pi ~ exp(Q / temperature)``), ``"optimal"``
            (value iteration, ties to the lowest action) or ``"epsilon"`` (optimal, uniform random
            action with probability ``epsilon``).
        temperature: soft-policy temperature (> 0).
        epsilon: exploration rate of ``"epsilon"``, in [0, 1].
    """

    policy: str = "soft"
    temperature: float = 1.0
    epsilon: float = 0.1

    def __post_init__(self) -> None:
        check_choice("policy", self.policy, EXPERT_POLICIES)
        object.__setattr__(self, "temperature", check_float("temperature", self.temperature, 0.0, strict_min=True))
        object.__setattr__(self, "epsilon", check_probability("epsilon", self.epsilon))


def _unwrapped(env: gym.Env) -> TabularTaskEnv:
    base = env.unwrapped
    if not isinstance(base, TabularTaskEnv):
        raise TypeError(f"env must be a mandril_envs env (its unwrapped env a TabularTaskEnv), got {type(base).__name__}")
    return base


def expert_policy(env: gym.Env, settings: ExpertSettings = ExpertSettings()) -> np.ndarray:
    """``(H, S, A)`` the expert's time-indexed policy for the env's current task."""
    model = _unwrapped(env).model
    if settings.policy == "soft":
        return soft_value_iteration(model, temperature=settings.temperature).policy
    greedy = value_iteration(model).policy
    if settings.policy == "optimal":
        return greedy
    return (1.0 - settings.epsilon) * greedy + settings.epsilon / model.action_dim


def _action_rng(seed: int) -> np.random.Generator:
    """The generator of a rollout's action draws (its own stream of the rollout's ``seed``)."""
    return np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))


def _draw_action(cumulative_row: np.ndarray, uniform: float, n_actions: int) -> int:
    """The action a policy row draws where the uniform draw is ``uniform`` (``cumulative_row``: its running sums)."""
    return min(int(np.searchsorted(cumulative_row, uniform * cumulative_row[-1], side="right")), n_actions - 1)


def rollout(env: gym.Env, policy: np.ndarray, n_episodes: int, seed: int = 0) -> list[Trajectory]:
    """Roll ``policy (H, S, A)`` out through ``env`` for ``n_episodes`` episodes.

    ``policy`` passes :func:`mandril_envs.planning.check_policy` (float32 rows are accepted and renormalised).

    The env is reset with ``seed`` once, then without a seed, so the episodes continue one stream;
    the actions are drawn from a generator seeded by ``seed`` as well. Same seed, same episodes.
    """
    n_episodes = check_int("n_episodes", n_episodes, 0)
    seed = check_int("seed", seed, 0)
    base = _unwrapped(env)
    horizon, n_actions = base.model.horizon, base.model.action_dim
    policy = check_policy(base.model, policy)
    cumulative = np.cumsum(policy, axis=2)
    action_rng = _action_rng(seed)
    trajectories = []
    for episode in range(n_episodes):
        obs, info = env.reset(seed=seed if episode == 0 else None)
        states, actions, rewards, observations = [info["state"]], [], [], [obs]
        for t in range(horizon):
            action = _draw_action(cumulative[t, states[-1]], action_rng.random(), n_actions)
            obs, reward, terminated, truncated, info = env.step(action)
            states.append(info["state"])
            actions.append(action)
            rewards.append(reward)
            observations.append(obs)
            if terminated or (truncated and t < horizon - 1):
                raise RuntimeError(f"episode ended at step {t + 1} before the horizon {horizon}: envs of this suite never end early")
        trajectories.append(
            Trajectory(
                np.asarray(states, np.int64), np.asarray(actions, np.int64), np.asarray(rewards, np.float64), np.asarray(observations)
            )
        )
    return trajectories


#: Wrappers that pass ``reset`` and ``step`` through unchanged (``gym.make``'s own).
_PASSIVE_WRAPPERS = tuple(getattr(gym.wrappers, name) for name in ("OrderEnforcing", "PassiveEnvChecker") if hasattr(gym.wrappers, name))


def _steps_are_model_draws(env: gym.Env, base: TabularTaskEnv) -> bool:
    """Whether every ``env.step`` is :meth:`TabularTaskEnv.step`: no wrapper but ``gym.make``'s passive ones,
    the base class's step and reward draw."""
    layer = env
    while layer is not base:
        if type(layer) not in _PASSIVE_WRAPPERS:
            return False
        layer = layer.env  # type: ignore[attr-defined]
    cls = type(base)
    return cls.step is TabularTaskEnv.step and cls._sample_reward is TabularTaskEnv._sample_reward


def _episodes_from_model(env: gym.Env, base: TabularTaskEnv, cumulative: np.ndarray, n_episodes: int, seed: int, action_rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The episodes :func:`rollout` steps through ``env``, drawn from the model for all episodes at once.

    The same generators give the same numbers in the same order: each episode's ``reset`` (through the
    wrappers: ``s_0`` by the env's ``initial_state``), then its ``H`` steps' draws from ``np_random`` (the
    reward's Bernoulli draw, if any, before the successor's, as in ``step``), taken as one array; the
    action draws, one per step, from ``action_rng`` in episode order. Then step ``t`` of every episode is
    one vectorised lookup (:meth:`TabularModel.next_states`; a sorted row's ``searchsorted(side="right")``
    counted as its entries ``<=`` the point). A Gaussian reward draw takes a varying number of the
    generator's bits, so it cannot be drawn ahead: with Gaussian noise the steps are taken one by one, with
    ``step``'s draws but without the wrappers and observations. The env ends as ``step`` leaves it.

    Returns:
        ``states (n, H+1)``, ``actions (n, H)``, ``rewards (n, H)``, equal to :func:`rollout`'s bit for bit.
    """
    model = base.model
    horizon, n_actions = model.horizon, model.action_dim
    noise = base.reward_noise()
    if noise.kind == "gaussian":
        return _episodes_step_by_step(env, base, cumulative, n_episodes, seed, action_rng)
    bernoulli = noise.kind == "bernoulli"
    draws = 2 if bernoulli else 1
    states = np.empty((n_episodes, horizon + 1), np.int64)
    env_draws = np.empty((n_episodes, horizon, draws))
    for episode in range(n_episodes):
        _, info = env.reset(seed=seed if episode == 0 else None)
        states[episode, 0] = info["state"]
        env_draws[episode] = base.np_random.random(horizon * draws).reshape(horizon, draws)
    action_draws = action_rng.random((n_episodes, horizon))
    actions = np.empty((n_episodes, horizon), np.int64)
    rewards = np.empty((n_episodes, horizon))
    table = model.reward_matrix
    for t in range(horizon):
        now = states[:, t]
        rows = cumulative[t, now]
        chosen = np.minimum((rows <= (action_draws[:, t] * rows[:, -1])[:, None]).sum(-1), n_actions - 1)
        means = table[now, chosen] if table.ndim == 2 else table[now]
        rewards[:, t] = (env_draws[:, t, 0] < means).astype(np.float64) if bernoulli else means
        states[:, t + 1] = model.next_states(now, chosen, env_draws[:, t, -1])
        actions[:, t] = chosen
    if n_episodes:
        base._end_episode_at(states[-1, -1], actions[-1, -1])
    return states, actions, rewards


def _episodes_step_by_step(env: gym.Env, base: TabularTaskEnv, cumulative: np.ndarray, n_episodes: int, seed: int, action_rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_episodes_from_model` one step at a time: ``step``'s draws in ``step``'s order."""
    model = base.model
    horizon, n_actions = model.horizon, model.action_dim
    states = np.empty((n_episodes, horizon + 1), np.int64)
    actions = np.empty((n_episodes, horizon), np.int64)
    rewards = np.empty((n_episodes, horizon))
    table = model.reward_matrix
    action_draws = action_rng.random((n_episodes, horizon))
    for episode in range(n_episodes):
        _, info = env.reset(seed=seed if episode == 0 else None)
        state, rng = info["state"], base.np_random  # a seeded reset makes a new generator
        states[episode, 0] = state
        for t in range(horizon):
            action = actions[episode, t] = _draw_action(cumulative[t, state], action_draws[episode, t], n_actions)
            rewards[episode, t] = base._sample_reward(state, action, float(table[state, action] if table.ndim == 2 else table[state]))
            state = states[episode, t + 1] = model.sample_next_state(state, action, rng)
    if n_episodes:
        base._end_episode_at(states[-1, -1], actions[-1, -1])
    return states, actions, rewards


def generate(
    env: gym.Env,
    n_episodes: int,
    policy: str = "soft",
    seed: int = 0,
    temperature: float = 1.0,
    epsilon: float = 0.1,
) -> list[Trajectory]:
    """Expert demonstrations of the env's current task, rolled out through the env itself.

    Args:
        env: a mandril_envs env (wrapped or not).
        n_episodes: number of episodes, each exactly ``horizon`` steps.
        policy: ``"soft"``, ``"optimal"`` or ``"epsilon"`` (see :class:`ExpertSettings`).
        seed: seeds the env's reset and the expert's action draws.
        temperature: soft-expert temperature.
        epsilon: epsilon-expert exploration rate.

    Returns:
        ``n_episodes`` :class:`Trajectory` objects.
    """
    settings = ExpertSettings(policy, temperature, epsilon)
    return rollout(env, expert_policy(env, settings), n_episodes, seed)


def task_demo_seed(seed: int, task: Any) -> int:
    """The rollout seed of a task's demos in the demo stream ``seed``.

    ``SeedSequence([seed, split code, task index, task seed])``: a function of the task's identity,
    not of where it sits in a list, so a task's demos are the same whichever subset of tasks is
    drawn. Datasets, the benchmark and ``mandril adapt`` all draw demos through it.
    """
    from mandril_envs.tasks import SPLIT_CODES

    seed = check_int("seed", seed, 0)
    return int(np.random.SeedSequence([seed, SPLIT_CODES[task.split], int(task.index), int(task.seed)]).generate_state(1)[0])


def task_demos(env: gym.Env, n_episodes: int, seed: int, expert: ExpertSettings = ExpertSettings()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n_episodes`` expert demos of the env's current task from the demo stream ``seed``.

    Episode ``k`` does not depend on how many are drawn after it, so the first ``n`` demos of a
    longer draw are the demos of a draw of ``n``.

    Returns:
        ``states (n, H+1)``, ``actions (n, H)``, ``rewards (n, H)``.
    """
    base = _unwrapped(env)
    n_episodes = check_int("n_episodes", n_episodes, 0)
    policy, demo_seed = expert_policy(env, expert), task_demo_seed(seed, base.task)
    if _steps_are_model_draws(env, base):  # the same episodes as rollout's, drawn a step of every episode at a time
        cumulative = np.cumsum(check_policy(base.model, policy), axis=2)
        return _episodes_from_model(env, base, cumulative, n_episodes, demo_seed, _action_rng(demo_seed))
    trajectories = rollout(env, policy, n_episodes, demo_seed)
    horizon = base.model.horizon
    if not trajectories:
        return np.empty((0, horizon + 1), np.int64), np.empty((0, horizon), np.int64), np.empty((0, horizon))
    return (
        np.stack([t.states for t in trajectories]),
        np.stack([t.actions for t in trajectories]),
        np.stack([t.rewards for t in trajectories]),
    )


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m mandril_envs.demos``: see :mod:`mandril_envs.cli`."""
    from mandril_envs.cli import main as cli_main

    return cli_main(["demos", *(argv if argv is not None else __import__("sys").argv[1:])])


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
