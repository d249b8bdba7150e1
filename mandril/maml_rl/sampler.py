"""A multi-task episode sampler in one process: many tasks, many episodes, one batch.

For a batch of tasks the sampler runs ``n_episodes`` fixed-horizon episodes per task. Each task
may have its own policy parameters (the adapted ``phi_i``, as a task-batched parameter dict).
Two backends give episodes of the same distribution:

* ``"model"`` (default): every step of every episode of every task at once, from the tasks'
  known models (``env.unwrapped.model``: initial-state distribution, successor form, mean rewards)
  and the family's own reward noise (``env.unwrapped.sample_rewards``), in numpy; one policy
  forward per time step for the whole batch. The env classes stay the one place that knows a
  family (dynamics, rewards, observations); this is just their model stepped in bulk.
* ``"gym"``: Gymnasium vector envs (``envs_per_task`` sub-envs per task, episodes in rounds), the
  envs' own ``step``. Slower (Python per env step) but it runs the env code itself, so it is the
  cross-check of the model backend, and works for any task env with ``sample_tasks``/``set_task``.
  Episode boundaries do not rely on autoreset: every round resets the vector env itself with
  explicit per-sub-env seeds, steps it exactly ``horizon`` times and masks any step after an
  episode ended, so Gymnasium 0.29.1 (autoreset inside ``step``) and 1.x (autoreset on the next
  ``step``) give the same episodes for the same seed.

Randomness: actions come from the ``torch.Generator`` passed in; the model backend draws initial
states, rewards and next states from ``np.random.default_rng(seed)``; the gym backend seeds each
sub-env's reset from it. Same seed, same batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, Union

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from mandril.functional import Params
from mandril.maml_rl.policies import Policy, stack_params

__all__ = ["EpisodeBatch", "MultiTaskSampler", "encode_observations", "observation_dim"]

ParamsArg = Union[Mapping[str, Tensor], Sequence[Mapping[str, Tensor]]]


@dataclass
class EpisodeBatch:
    """Episodes of several tasks, padded to the horizon.

    Attributes:
        observations: ``(N, T, B, D)`` encoded observations ``o_t`` (``N`` tasks, ``T`` steps, ``B`` episodes).
        actions: ``(N, T, B)`` int64.
        rewards: ``(N, T, B)``; zero where ``mask`` is zero.
        mask: ``(N, T, B)``; 1 for real steps, 0 for padding after an episode ended.
        tasks: the ``N`` tasks (``mandril_envs.Task``).
    """

    observations: Tensor
    actions: Tensor
    rewards: Tensor
    mask: Tensor
    tasks: list

    @property
    def n_tasks(self) -> int:
        """``N``."""
        return int(self.actions.shape[0])

    @property
    def n_episodes(self) -> int:
        """``B``."""
        return int(self.actions.shape[2])

    def episode_returns(self) -> Tensor:
        """``(N, B)`` undiscounted return of each episode."""
        return (self.rewards * self.mask).sum(dim=1)

    def n_steps(self) -> int:
        """The number of real (unmasked) env steps in the batch."""
        return int(self.mask.sum().item())

    def task(self, i: int) -> "EpisodeBatch":
        """The episodes of task ``i`` (keeping a leading task axis of size 1)."""
        return EpisodeBatch(self.observations[i : i + 1], self.actions[i : i + 1], self.rewards[i : i + 1],
                            self.mask[i : i + 1], [self.tasks[i]])


def observation_dim(space: spaces.Space) -> int:
    """``D`` of the encoded observation: ``n`` for ``Discrete(n)`` (one-hot), the flat size for ``Box``."""
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if isinstance(space, spaces.Box):
        return int(np.prod(space.shape))
    raise TypeError(f"observation space must be Discrete or Box, got {space}")


def encode_observations(space: spaces.Space, obs: Any, dtype: torch.dtype) -> Tensor:
    """Batched observations ``(M, ...)`` from a vector env as ``(M, D)`` floats (``Discrete``: one-hot)."""
    array = np.asarray(obs)
    if isinstance(space, spaces.Discrete):
        index = torch.as_tensor(array.astype(np.int64) - int(space.start)).reshape(-1)
        return torch.nn.functional.one_hot(index, int(space.n)).to(dtype)
    return torch.as_tensor(array.reshape(array.shape[0], -1), dtype=dtype)


class _TaskSlot(gym.Wrapper):
    """Outermost wrapper of each sub-env: knows its slot, installs its own task from a list.

    ``vector_env.call("install", tasks)`` gives every sub-env the same list and each picks
    ``tasks[slot]``: works for sync and async vector envs on Gymnasium 0.29.1 and 1.x.
    """

    def __init__(self, env: gym.Env, slot: int) -> None:
        super().__init__(env)
        self.slot = slot

    def install(self, tasks: Sequence[Any]) -> None:
        """Install ``tasks[self.slot]`` in the underlying env."""
        self.env.unwrapped.set_task(tasks[self.slot])


class _MakeEnv:
    """A picklable env factory (for ``AsyncVectorEnv``)."""

    def __init__(self, env_id: str, kwargs: Mapping[str, Any], slot: int) -> None:
        self.env_id, self.kwargs, self.slot = env_id, dict(kwargs), slot

    def __call__(self) -> gym.Env:
        import mandril_envs  # noqa: F401  (registers the ids in a worker process)

        return _TaskSlot(gym.make(self.env_id, disable_env_checker=True, **self.kwargs), self.slot)


_BACKENDS = ("model", "gym")


class MultiTaskSampler:
    """Samples padded episode batches for many tasks at once.

    Args:
        env_id: a registered id whose ``env.unwrapped`` has ``sample_tasks``/``set_task`` and a
            ``horizon`` (every :class:`mandril_envs.TabularTaskEnv` does).
        env_kwargs: keyword arguments of ``gymnasium.make``.
        max_tasks: the most tasks sampled side by side (larger task lists are processed in chunks).
        envs_per_task: ``"gym"`` backend: the most sub-envs per task.
        vector: ``"gym"`` backend: ``"sync"`` or ``"async"`` vector env.
        backend: ``"model"`` (batched from the known model) or ``"gym"`` (vector envs); see the module docstring.
        dtype: dtype of the observation and reward tensors.

    Raises:
        TypeError: if the action space is not ``Discrete`` or the env has no tasks (or, for the
            ``"model"`` backend, no model).
        ValueError: for an unknown backend or vector kind, or sizes below 1.
    """

    def __init__(self, env_id: str, env_kwargs: Optional[Mapping[str, Any]] = None, *, max_tasks: int = 20,
                 envs_per_task: int = 20, vector: str = "sync", backend: str = "model",
                 dtype: torch.dtype = torch.float64) -> None:
        import mandril_envs  # noqa: F401

        if vector not in ("sync", "async"):
            raise ValueError(f"vector must be 'sync' or 'async', got {vector!r}")
        if backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {list(_BACKENDS)}, got {backend!r}")
        if max_tasks < 1 or envs_per_task < 1:
            raise ValueError(f"max_tasks and envs_per_task must be >= 1, got {max_tasks} and {envs_per_task}")
        self.env_id, self.env_kwargs = env_id, dict(env_kwargs or {})
        self.max_tasks, self.envs_per_task, self.vector, self.dtype = int(max_tasks), int(envs_per_task), vector, dtype
        self.backend = backend
        try:
            self.probe = gym.make(env_id, disable_env_checker=True, **self.env_kwargs)
        except gym.error.Error as error:
            raise ValueError(f"env id {env_id!r} cannot be made: {error}") from None
        if not isinstance(self.probe.action_space, spaces.Discrete):
            raise TypeError(f"env {env_id!r} must have a Discrete action space for a categorical policy, got {self.probe.action_space}")
        unwrapped = self.probe.unwrapped
        if not (hasattr(unwrapped, "sample_tasks") and hasattr(unwrapped, "set_task") and hasattr(unwrapped, "horizon")):
            raise TypeError(f"env {env_id!r} is not a task family (needs sample_tasks, set_task and horizon on env.unwrapped)")
        if backend == "model" and not all(hasattr(unwrapped, name) for name in ("model", "sample_rewards", "observation")):
            raise TypeError(f"env {env_id!r} has no known model to sample from (needs model, sample_rewards and observation "
                            f"on env.unwrapped): use backend 'gym'")
        self.observation_space = self.probe.observation_space
        self.obs_dim = observation_dim(self.observation_space)
        self.n_actions = int(self.probe.action_space.n)
        self.horizon = int(unwrapped.horizon)
        self._vector_envs: dict[int, gym.vector.VectorEnv] = {}
        self._tables: tuple[tuple, _TaskTables] | None = None

    # --- tasks ---------------------------------------------------------------------------
    def sample_tasks(self, n: int, split: str = "train", seed: int = 0, start: int = 0) -> list:
        """Tasks ``start .. start+n-1`` of ``split`` (see ``TabularTaskEnv.sample_tasks``)."""
        return self.probe.unwrapped.sample_tasks(n, split, seed=seed, start=start)

    def models(self, tasks: Sequence[Any]) -> list:
        """The known model (``TabularModel``) of each task."""
        env = self.probe.unwrapped
        out = []
        for task in tasks:
            env.set_task(task)
            out.append(env.model)
        return out

    # --- vector envs -----------------------------------------------------------------------
    def _vector_env(self, n_sub: int) -> gym.vector.VectorEnv:
        if n_sub not in self._vector_envs:
            fns = [_MakeEnv(self.env_id, self.env_kwargs, slot) for slot in range(n_sub)]
            if self.vector == "sync":
                self._vector_envs[n_sub] = gym.vector.SyncVectorEnv(fns)
            else:
                self._vector_envs[n_sub] = gym.vector.AsyncVectorEnv(fns)
        return self._vector_envs[n_sub]

    def close(self) -> None:
        """Close every vector env (and the async workers)."""
        for env in self._vector_envs.values():
            env.close()
        self._vector_envs.clear()
        self.probe.close()

    def __enter__(self) -> "MultiTaskSampler":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- sampling ----------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, policy: Policy, params: ParamsArg, tasks: Sequence[Any], n_episodes: int, *, seed: int,
               generator: torch.Generator) -> EpisodeBatch:
        """Run ``n_episodes`` episodes in each task.

        Args:
            policy: the policy module (its ``logits`` take a parameter dict).
            params: one parameter dict for every task, a task-batched dict (every tensor with a
                leading axis of ``N``, see :func:`mandril.maml_rl.policies.stack_params`) or a list
                of ``N`` dicts.
            tasks: the ``N`` tasks.
            n_episodes: ``B``, episodes per task.
            seed: seeds the env randomness (see the module docstring).
            generator: draws the actions.

        Returns:
            :class:`EpisodeBatch` with ``(N, T, B, ...)`` tensors, ``T = horizon``.
        """
        tasks = list(tasks)
        if not tasks:
            raise ValueError("tasks must be a non-empty list")
        if isinstance(n_episodes, bool) or not isinstance(n_episodes, int) or n_episodes < 1:
            raise ValueError(f"n_episodes must be an int >= 1, got {n_episodes!r}")
        if not isinstance(params, Mapping):
            if len(params) != len(tasks):
                raise ValueError(f"params must be one dict or one dict per task ({len(tasks)}), got a list of {len(params)}")
            params = stack_params(params)
        batched = policy.is_task_batched(params)
        if batched and next(iter(params.values())).shape[0] != len(tasks):
            raise ValueError(f"task-batched params must have a leading axis of {len(tasks)} (one per task), "
                             f"got {next(iter(params.values())).shape[0]}")
        rng = np.random.default_rng(seed)
        parts = []
        for start in range(0, len(tasks), self.max_tasks):
            chunk = tasks[start : start + self.max_tasks]
            chunk_params = {k: v[start : start + len(chunk)] for k, v in params.items()} if batched else params
            if self.backend == "model":
                parts.append(self._sample_model(policy, chunk_params, chunk, n_episodes, rng, generator))
            else:
                parts.append(self._sample_gym(policy, chunk_params, batched, chunk, n_episodes, rng, generator))
        return EpisodeBatch(*(torch.cat([p[i] for p in parts]) for i in range(4)), tasks)  # type: ignore[arg-type]

    def _task_tables(self, tasks: list) -> "_TaskTables":
        """The chunk's models as stacked arrays (kept for the next call with the same tasks)."""
        key = tuple(tasks)
        if self._tables is not None and self._tables[0] == key:  # the tasks compare by value
            return self._tables[1]
        env = self.probe.unwrapped
        models, obs = [], []
        for task in tasks:
            env.set_task(task)
            models.append(env.model)
            obs.append(np.asarray([env.observation(s) for s in range(env.model.state_dim)]))
        tables = _TaskTables.build(models, [encode_observations(self.observation_space, o, self.dtype) for o in obs])
        if tables.horizon != self.horizon:
            raise ValueError(f"task horizon {tables.horizon} differs from the env's {self.horizon}")
        self._tables = (key, tables)
        return tables

    def _sample_model(self, policy: Policy, params: Params, tasks: list, n_episodes: int, rng: np.random.Generator,
                      generator: torch.Generator) -> tuple[Tensor, ...]:
        tables = self._task_tables(tasks)
        n_tasks, horizon, dtype = len(tasks), tables.horizon, self.dtype
        rows = np.arange(n_tasks)[:, None]  # (N, 1): broadcasts against (N, B) state/action indices
        state = _draw(tables.initial_cdf[:, None, :], rng.random((n_tasks, n_episodes)))  # (N, B)
        obs_t, act_t, rew_t = [], [], []
        for _t in range(horizon):
            x = tables.observations[torch.as_tensor(rows), torch.as_tensor(state)]  # (N, B, D)
            probs = torch.softmax(policy.logits(x, params), dim=-1).reshape(n_tasks * n_episodes, -1)
            actions = torch.multinomial(probs, 1, generator=generator).reshape(n_tasks, n_episodes)
            a = actions.numpy()
            reward = self.probe.unwrapped.sample_rewards(tables.rewards[rows, state, a], rng)
            state = tables.successors[rows, state, a, _draw(tables.successor_cdf[rows, state, a], rng.random((n_tasks, n_episodes)))]
            obs_t.append(x)
            act_t.append(actions)
            rew_t.append(torch.as_tensor(reward, dtype=dtype))
        observations = torch.stack(obs_t, dim=1)  # (N, T, B, D)
        actions = torch.stack(act_t, dim=1)
        rewards = torch.stack(rew_t, dim=1)
        return observations, actions, rewards, torch.ones_like(rewards)

    def _sample_gym(self, policy: Policy, params: Params, batched: bool, tasks: list, n_episodes: int,
                    seed_rng: np.random.Generator, generator: torch.Generator) -> tuple[Tensor, ...]:
        n_tasks = len(tasks)
        rounds = math.ceil(n_episodes / self.envs_per_task)
        per_task = math.ceil(n_episodes / rounds)
        n_sub = n_tasks * per_task
        env = self._vector_env(n_sub)
        env.call("install", [task for task in tasks for _ in range(per_task)])
        horizon, dtype = self.horizon, self.dtype
        obs_all, act_all, rew_all, mask_all = [], [], [], []
        for _ in range(rounds):
            seeds = seed_rng.integers(0, 2**31 - 1, size=n_sub).tolist()
            obs, _ = env.reset(seed=seeds)
            alive = torch.ones(n_sub, dtype=torch.bool)
            obs_t, act_t, rew_t, mask_t = [], [], [], []
            for _t in range(horizon):
                x = encode_observations(self.observation_space, obs, dtype)  # (n_sub, D)
                if batched:
                    logits = policy.logits(x.reshape(n_tasks, per_task, -1), params).reshape(n_sub, -1)
                else:
                    logits = policy.logits(x, params)
                probs = torch.softmax(logits, dim=-1)
                actions = torch.multinomial(probs, 1, generator=generator).squeeze(1)
                obs, reward, terminated, truncated, _ = env.step(actions.numpy())
                obs_t.append(x)
                act_t.append(actions)
                mask_t.append(alive.to(dtype))
                rew_t.append(torch.as_tensor(np.asarray(reward), dtype=dtype) * alive.to(dtype))
                alive = alive & ~torch.as_tensor(np.logical_or(terminated, truncated))
            # (T, n_sub, ...) -> (n_tasks, T, per_task, ...)
            obs_all.append(torch.stack(obs_t).reshape(horizon, n_tasks, per_task, -1).transpose(0, 1))
            act_all.append(torch.stack(act_t).reshape(horizon, n_tasks, per_task).transpose(0, 1))
            rew_all.append(torch.stack(rew_t).reshape(horizon, n_tasks, per_task).transpose(0, 1))
            mask_all.append(torch.stack(mask_t).reshape(horizon, n_tasks, per_task).transpose(0, 1))
        keep = slice(0, n_episodes)
        return (
            torch.cat(obs_all, dim=2)[:, :, keep].contiguous(),
            torch.cat(act_all, dim=2)[:, :, keep].contiguous(),
            torch.cat(rew_all, dim=2)[:, :, keep].contiguous(),
            torch.cat(mask_all, dim=2)[:, :, keep].contiguous(),
        )


def _draw(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draws: ``cdf`` ``(..., K)`` cumulative probabilities, ``u`` ``(...)`` uniforms; returns ``(...)`` int64.

    The index of the first entry with ``cdf > u * cdf[-1]`` (as ``TabularModel.sample_next_state``), at most ``K - 1``.
    """
    k = (cdf <= (u * cdf[..., -1])[..., None]).sum(axis=-1)
    return np.minimum(k, cdf.shape[-1] - 1)


@dataclass
class _TaskTables:
    """``N`` tasks' models stacked (successor width padded with zero-probability entries).

    Attributes:
        initial_cdf: ``(N, S)`` cumulative initial-state distribution.
        successors: ``(N, S, A, K)`` next states; ``successor_cdf``: their cumulative probabilities.
        rewards: ``(N, S, A)`` mean rewards.
        observations: ``(N, S, D)`` encoded observation of every state.
        horizon: ``H``.
    """

    initial_cdf: np.ndarray
    successors: np.ndarray
    successor_cdf: np.ndarray
    rewards: np.ndarray
    observations: Tensor
    horizon: int

    @classmethod
    def build(cls, models: Sequence[Any], observations: Sequence[Tensor]) -> "_TaskTables":
        shapes = {(m.state_dim, m.action_dim, m.horizon) for m in models}
        if len(shapes) != 1:
            raise ValueError(f"the tasks of one batch must share (S, A, H), got {sorted(shapes)}")
        width = max(m.n_successors for m in models)
        n, (s, a, horizon) = len(models), next(iter(shapes))
        successors = np.zeros((n, s, a, width), np.int64)
        probs = np.zeros((n, s, a, width))
        for i, m in enumerate(models):
            successors[i, :, :, : m.n_successors] = m.successor_indices
            probs[i, :, :, : m.n_successors] = m.successor_probs
        return cls(
            initial_cdf=np.cumsum(np.stack([m.initial_state_dist for m in models]), axis=-1),
            successors=successors,
            successor_cdf=np.cumsum(probs, axis=-1),
            rewards=np.stack([m.state_action_rewards() for m in models]),
            observations=torch.stack(list(observations)),
            horizon=horizon,
        )
