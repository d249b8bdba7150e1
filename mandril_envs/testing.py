"""Reusable checks for tabular task envs: run them on your own env as the suite's tests do.

Each ``check_*`` function raises ``AssertionError`` with a message naming what is wrong. They need
only numpy and gymnasium, except the two SB3 checks (run by ``check_all`` when stable-baselines3 is
installed: then 13 checks). ``check_all(env_id)`` runs them all on a registered id, prints one line
(which checks passed) and returns a :class:`CheckReport`; it raises if a check failed, unless
``strict=False``.

    from mandril_envs.testing import check_all
    report = check_all("mandril_envs/GridWorld-v0")   # prints "mandril_envs/GridWorld-v0: all 11 checks passed ..."
    report.results[0].name, report.results[0].passed  # ("check_env", True)
"""

from __future__ import annotations

import importlib.util
import json
import math
import pickle
import re
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional

import gymnasium as gym
import numpy as np

from gymnasium.utils.env_checker import check_env

from mandril_envs.base import TabularTaskEnv
from mandril_envs.model import TabularModel
from mandril_envs.tasks import Task

__all__ = [
    "switch_model",
    "check_model",
    "check_step_matches_model",
    "check_seeded_determinism",
    "check_tasks",
    "check_pickle",
    "check_spec_roundtrip",
    "check_vector_env",
    "check_step_after_truncation",
    "check_render_modes",
    "check_seals_names",
    "check_sb3_check_env",
    "check_sb3_make_vec_env",
    "sb3_installed",
    "deterministic_observation_ids",
    "CheckResult",
    "CheckReport",
    "check_all",
]


def switch_model(horizon: int = 2) -> TabularModel:
    """A model small enough to work by hand: 2 states, action 0 stays, action 1 switches state;
    state reward ``r = [0, 1]``; start in state 0. With ``H = 2``: optimal ``V[0] = [1, 2]``, soft
    ``V[1] = [log 2, 1 + log 2]``, soft first move from state 0 switches with probability ``e / (1 + e)``."""
    dense = np.zeros((2, 2, 2))
    dense[0, 0, 0] = dense[1, 0, 1] = dense[0, 1, 1] = dense[1, 1, 0] = 1.0
    return TabularModel.from_dense(dense, np.array([0.0, 1.0]), np.array([1.0, 0.0]), horizon)


def _base(env: gym.Env) -> TabularTaskEnv:
    base = env.unwrapped
    assert isinstance(base, TabularTaskEnv), f"{type(base).__name__} is not a TabularTaskEnv"
    return base


def check_model(env: gym.Env) -> None:
    """The seals/imitation names exist with the right shapes; rows sum to 1; dense == successor form."""
    base = _base(env)
    n_states, n_actions = base.state_dim, base.action_dim
    transition = base.transition_matrix
    assert transition.shape == (n_states, n_actions, n_states), f"transition_matrix shape {transition.shape}"
    assert transition.dtype == np.float64, f"transition_matrix dtype {transition.dtype}"
    np.testing.assert_allclose(transition.sum(axis=2), 1.0, atol=1e-12, err_msg="transition rows must sum to 1")
    assert base.reward_matrix.shape in ((n_states,), (n_states, n_actions)), f"reward_matrix shape {base.reward_matrix.shape}"
    assert base.initial_state_dist.shape == (n_states,), f"initial_state_dist shape {base.initial_state_dist.shape}"
    assert abs(base.initial_state_dist.sum() - 1) < 1e-12, "initial_state_dist must sum to 1"
    assert isinstance(base.horizon, int) and base.horizon >= 1, f"horizon {base.horizon!r}"
    assert base.feature_matrix.shape[0] == n_states, f"feature_matrix shape {base.feature_matrix.shape}"
    rebuilt = np.zeros_like(transition)
    s, a, _ = np.indices(base.successor_indices.shape)
    np.add.at(rebuilt, (s, a, base.successor_indices), base.successor_probs)
    np.testing.assert_array_equal(rebuilt, transition, err_msg="dense transition_matrix differs from the successor form")
    assert isinstance(base.action_space, gym.spaces.Discrete) and base.action_space.n == n_actions, "action_space must be Discrete(A)"


def _chi_square_bound(dof: int, sigmas: float = 6.0) -> float:
    return dof + sigmas * math.sqrt(2 * max(dof, 1)) + 10.0


def check_step_matches_model(env: gym.Env, n_steps: Optional[int] = None, seed: int = 0, min_count: int = 30) -> None:
    """``step()`` samples from ``transition_matrix`` and pays ``reward_matrix`` on average.

    Runs uniformly random actions for ``n_steps`` steps and pools a chi-square statistic over every
    visited ``(s, a)`` with at least ``min_count`` visits: it must stay within 6 standard deviations
    of its degrees of freedom, and no transition of probability 0 may occur. Mean rewards per
    ``(s, a)`` must lie within 6 standard errors of the model's. ``n_steps`` defaults to
    ``50 S A`` (at least 20,000, at most 400,000).
    """
    base = _base(env)
    if n_steps is None:
        n_steps = min(max(20_000, 50 * base.state_dim * base.action_dim), 400_000)
    rng = np.random.default_rng(seed)
    n_states, n_actions = base.state_dim, base.action_dim
    counts = np.zeros((n_states, n_actions, n_states))
    reward_sum = np.zeros((n_states, n_actions))
    reward_sq = np.zeros((n_states, n_actions))
    _, info = env.reset(seed=seed)
    state = info["state"]
    for _ in range(n_steps):
        action = int(rng.integers(n_actions))
        _, reward, terminated, truncated, info = env.step(action)
        counts[state, action, info["state"]] += 1
        reward_sum[state, action] += reward
        reward_sq[state, action] += reward * reward
        assert not terminated, "envs of this suite never terminate"
        if truncated:
            _, info = env.reset()
        state = info["state"]
    transition = base.transition_matrix
    impossible = (counts > 0) & (transition == 0)
    assert not impossible.any(), f"step() made transitions of probability 0: {np.argwhere(impossible)[:5].tolist()}"
    visits = counts.sum(axis=2)
    pairs = visits >= min_count
    assert pairs.any(), f"no (s, a) pair was visited {min_count} times in {n_steps} steps"
    expected = visits[:, :, None] * transition
    support = (transition > 0) & pairs[:, :, None]
    statistic = float((((counts - expected) ** 2)[support] / expected[support]).sum())
    dof = int(support.sum() - pairs.sum())
    assert statistic <= _chi_square_bound(dof), f"transition frequencies do not match transition_matrix: chi2 = {statistic:.1f} on {dof} dof"
    mean_reward = reward_sum[pairs] / visits[pairs]
    variance = np.maximum(reward_sq[pairs] / visits[pairs] - mean_reward**2, 0.0)
    model_reward = base.model.state_action_rewards()[pairs]
    # the 1/n term keeps the bound honest when a rare outcome (a Bernoulli arm near 0 or 1) was never seen
    tolerance = 6.0 * np.sqrt((variance + 1.0 / visits[pairs]) / visits[pairs]) + 1e-9
    worst = np.abs(mean_reward - model_reward) - tolerance
    assert worst.max() <= 0, f"mean rewards differ from reward_matrix by more than 6 standard errors (worst excess {worst.max():.3g})"


def _rollout(env: gym.Env, seed: int, n_episodes: int = 2) -> list[tuple[Any, ...]]:
    record: list[tuple[Any, ...]] = []
    obs, info = env.reset(seed=seed)
    record.append((np.asarray(obs).tolist(), json.dumps(info, sort_keys=True)))
    env.action_space.seed(seed)
    for _ in range(n_episodes):
        for _ in range(_base(env).horizon):
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            record.append((np.asarray(obs).tolist(), reward, terminated, truncated, json.dumps(info, sort_keys=True)))
        obs, info = env.reset()
        record.append((np.asarray(obs).tolist(), json.dumps(info, sort_keys=True)))
    return record


def check_seeded_determinism(make_env: Callable[[], gym.Env], seed: int = 123) -> None:
    """Two envs from ``make_env`` reset with the same seed give the same episodes; another seed differs."""
    first, second = _rollout(make_env(), seed), _rollout(make_env(), seed)
    assert first == second, "same seed, different rollouts"
    other = _rollout(make_env(), seed + 1)
    base = _base(make_env())
    if base.state_dim > 1 or base.action_dim > 1:
        assert other != first, "different seeds gave identical rollouts"


def check_tasks(env: gym.Env, n: int = 5) -> None:
    """Tasks are deterministic, JSON round-trip exactly, rebuild the same model, and splits are disjoint."""
    base = _base(env)
    for split in base.splits:
        tasks = base.sample_tasks(n, split, seed=3)
        again = base.sample_tasks(n, split, seed=3)
        assert tasks == again, f"sample_tasks({n}, {split!r}, seed=3) is not deterministic"
        assert base.sample_tasks(1, split, seed=3, start=2)[0] == tasks[2], "task index must not depend on how many are drawn"
        assert base.sample_tasks(n, split, seed=4) != tasks, "a different seed gave the same tasks"
        for task in tasks:
            text = task.to_json()
            assert Task.from_json(text) == task and Task.from_json(text).to_json() == text, "task JSON round trip is not exact"
    train = {json.dumps(t.params, sort_keys=True) for t in base.sample_tasks(n, "train", seed=0)}
    for split in base.splits:
        if split != "train":
            held_out = {json.dumps(t.params, sort_keys=True) for t in base.sample_tasks(n, split, seed=0)}
            assert not train & held_out, f"train and {split!r} tasks overlap"
    task = base.sample_tasks(1, "test", seed=9)[0]
    base.set_task(task)
    model_a = base.model
    base.set_task(json.loads(task.to_json()))
    np.testing.assert_array_equal(model_a.transition_matrix, base.model.transition_matrix)
    np.testing.assert_array_equal(model_a.reward_matrix, base.model.reward_matrix)
    np.testing.assert_array_equal(model_a.feature_matrix, base.model.feature_matrix)


def check_pickle(env: gym.Env, seed: int = 5) -> None:
    """A pickled and unpickled env continues exactly like the original."""
    env.reset(seed=seed)
    env.step(env.action_space.sample())
    clone = pickle.loads(pickle.dumps(env))
    for _ in range(3):
        action = int(env.action_space.sample())
        a, b = env.step(action), clone.step(action)
        assert np.array_equal(np.asarray(a[0]), np.asarray(b[0])) and a[1:] == b[1:], "unpickled env diverged"
        if a[3]:
            break


def check_spec_roundtrip(env_id: str) -> None:
    """The spec survives JSON and the env it makes has the same task and model."""
    env = gym.make(env_id)
    spec = gym.envs.registration.EnvSpec.from_json(env.spec.to_json())
    remade = spec.make()
    assert _base(remade).task == _base(env).task, "spec round trip changed the task"
    np.testing.assert_array_equal(_base(remade).transition_matrix, _base(env).transition_matrix)


def check_vector_env(env_id: str, n_envs: int = 3, seed: int = 0, **make_kwargs: Any) -> None:
    """``SyncVectorEnv`` runs a full horizon plus one step (through the reset) with the right shapes."""
    vector = gym.vector.SyncVectorEnv([lambda: gym.make(env_id, **make_kwargs) for _ in range(n_envs)])
    obs, _ = vector.reset(seed=seed)
    assert len(obs) == n_envs
    horizon = _base(vector.envs[0]).horizon
    saw_truncation = False
    for _ in range(horizon + 1):
        obs, reward, terminated, truncated, _ = vector.step(vector.action_space.sample())
        assert reward.shape == (n_envs,) and not terminated.any()
        saw_truncation |= bool(truncated.all())
    assert saw_truncation, "vector env never reported truncation at the horizon"
    vector.close()


def check_step_after_truncation(env: gym.Env, extra_steps: int = 3, seed: int = 0) -> None:
    """Steps after the truncating step are answered gracefully (seals' ``test_rollout_schema`` asks
    for it): they stay in ``s_H``, pay ``0.0``, say ``truncated=True``, warn once; ``reset()`` starts over."""
    base = _base(env)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    for t in range(base.horizon):
        obs, _, terminated, truncated, info = env.step(env.action_space.sample())
        assert not terminated and truncated == (t == base.horizon - 1), f"step {t}: terminated={terminated}, truncated={truncated}"
    last_obs, last_info = obs, info
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(extra_steps):
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            assert env.observation_space.contains(obs), f"observation {obs!r} after the horizon is not in the observation space"
            assert reward == 0.0 and isinstance(reward, float), f"a step after the horizon paid {reward!r}"
            assert not terminated and truncated, "a step after the horizon must say truncated=True, terminated=False"
            assert info == last_info and np.array_equal(np.asarray(obs), np.asarray(last_obs)), "a step after the horizon moved"
    messages = [str(w.message) for w in caught if "after the episode was truncated" in str(w.message)]
    assert len(messages) == 1, f"expected one warning for the steps after the horizon, got {len(messages)}"
    _, info = env.reset()
    assert info["t"] == 0
    _, _, _, truncated, info = env.step(env.action_space.sample())
    assert info["t"] == 1 and truncated == (base.horizon == 1), "reset() after the horizon did not start a new episode"


def check_render_modes(env_id: str, **make_kwargs: Any) -> None:
    """Every declared render mode works as ``gym.make(env_id, render_mode=mode)``, the way SB3's
    ``make_vec_env`` makes envs (it asks for ``"rgb_array"``): ``"rgb_array"`` must be declared and give
    ``(height, width, 3)`` uint8 frames, ``"ansi"`` non-empty text, before and after a step."""
    modes = gym.make(env_id, **make_kwargs).metadata.get("render_modes", [])
    assert "rgb_array" in modes, f"render_modes {modes} lacks 'rgb_array' (SB3's make_vec_env passes render_mode='rgb_array')"
    for mode in modes:
        env = gym.make(env_id, render_mode=mode, **make_kwargs)
        env.reset(seed=0)
        env.action_space.seed(0)
        for _ in range(2):
            frame = env.render()
            if mode == "rgb_array":
                assert isinstance(frame, np.ndarray) and frame.dtype == np.uint8, f"rgb_array render gave {type(frame).__name__} {getattr(frame, 'dtype', '')}"
                assert frame.ndim == 3 and frame.shape[2] == 3 and min(frame.shape[:2]) >= 8, f"rgb_array frame shape {frame.shape}"
            elif mode == "ansi":
                assert isinstance(frame, str) and frame.strip(), f"ansi render gave {frame!r:.80}"
            env.step(env.action_space.sample())
        env.close()


def check_seals_names(env: gym.Env) -> None:
    """``env.unwrapped`` reads like seals' ``TabularModelPOMDP`` (what imitation's ``MCEIRL`` reads):
    ``state_space`` is ``Discrete(S)``; ``observation_matrix`` is a writable ``(S, obs_dim)`` array of
    ``obs_dtype`` whose row ``s`` is ``spaces.flatten(observation_space, observation(s))``; the model
    methods agree with the matrices."""
    base = _base(env)
    n_states = base.state_dim
    assert base.state_space == gym.spaces.Discrete(n_states), f"state_space {base.state_space}"
    matrix = base.observation_matrix
    assert matrix.shape == (n_states, base.obs_dim) and matrix.dtype == base.obs_dtype, f"observation_matrix {matrix.shape} {matrix.dtype}, obs_dim {base.obs_dim}, obs_dtype {base.obs_dtype}"
    assert matrix.flags.writeable, "observation_matrix must be writable (torch.as_tensor warns on read-only arrays)"
    assert base.obs_dim == gym.spaces.flatdim(base.observation_space)
    for state in sorted({0, n_states // 2, n_states - 1}):
        flat = gym.spaces.flatten(base.observation_space, base.obs_from_state(state))
        np.testing.assert_array_equal(matrix[state], flat, err_msg=f"observation_matrix[{state}] is not the flattened observation of state {state}")
    assert not base.terminal(0, base.horizon - 1) and base.terminal(0, base.horizon), "terminal() must be True from the horizon on"


def sb3_installed() -> bool:
    """Whether stable-baselines3 can be imported (its checks then join :func:`check_all`)."""
    return importlib.util.find_spec("stable_baselines3") is not None


def check_sb3_check_env(env_id: str, **make_kwargs: Any) -> None:
    """SB3's own ``check_env`` on ``gym.make(env_id)``, with its warnings counted as failures (needs stable-baselines3)."""
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_check_env(gym.make(env_id, **make_kwargs), warn=True)
    messages = sorted({str(w.message).splitlines()[0] for w in caught if "stable_baselines3" in (w.filename or "")})
    assert not messages, f"SB3's check_env warned: {messages}"


def check_sb3_make_vec_env(env_id: str, n_envs: int = 2, seed: int = 0, **make_kwargs: Any) -> None:
    """SB3's ``make_vec_env`` builds the env (with ``render_mode="rgb_array"``), runs a horizon plus one
    step through its automatic reset, and renders every sub-env (needs stable-baselines3)."""
    from stable_baselines3.common.env_util import make_vec_env

    vector = make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=make_kwargs)
    try:
        assert vector.get_attr("render_mode") == ["rgb_array"] * n_envs, f"render modes {vector.get_attr('render_mode')}"
        vector.reset()
        horizon = _base(vector.envs[0]).horizon
        done_at = []
        for t in range(horizon + 1):
            _, rewards, dones, infos = vector.step(np.array([vector.action_space.sample() for _ in range(n_envs)]))
            assert rewards.shape == (n_envs,)
            if dones.all():
                done_at.append(t)
                assert all(info.get("TimeLimit.truncated", False) for info in infos), "the horizon must read as a truncation to SB3"
        assert done_at == [horizon - 1], f"episodes ended at steps {done_at}, expected only at {horizon - 1}"
        frames = vector.get_images()
        assert len(frames) == n_envs and all(f.dtype == np.uint8 and f.ndim == 3 for f in frames)
    finally:
        vector.close()


def deterministic_observation_ids(env_ids: Iterable[str], **make_kwargs: Any) -> list[str]:
    """The ids (as exact regular expressions) whose observations do not depend on the seed.

    seals' ``test_seed(env, env_name, deterministic_envs)`` wants those listed: an env whose
    observations are a function of the actions alone (one start state, deterministic transitions:
    :attr:`TabularModel.is_deterministic`, e.g. every bandit, whose one state never changes) looks the
    same under every seed, and seals counts that as deterministic.
    """
    return [re.escape(env_id) + "$" for env_id in env_ids if _base(gym.make(env_id, **make_kwargs)).model.is_deterministic]


@dataclass(frozen=True)
class CheckResult:
    """One check of :func:`check_all`.

    Attributes:
        name: the check, e.g. ``"pickle"`` (:func:`check_pickle`); ``"check_env"`` is gymnasium's.
        passed: whether it passed.
        message: why it failed (``""`` when it passed).
        seconds: how long it took.
    """

    name: str
    passed: bool
    message: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class CheckReport:
    """What :func:`check_all` checked on ``env_id`` and how each check went, in order."""

    env_id: str
    results: tuple[CheckResult, ...]

    @property
    def passed(self) -> bool:
        """Every check passed."""
        return all(result.passed for result in self.results)

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        """The checks that failed."""
        return tuple(result for result in self.results if not result.passed)

    def summary(self) -> str:
        """One line: how many checks passed, which, and (if any) which failed and why."""
        seconds = sum(result.seconds for result in self.results)
        names = ", ".join(result.name for result in self.results)
        if self.passed:
            return f"{self.env_id}: all {len(self.results)} checks passed ({names}) in {seconds:.1f} s"
        failed = "; ".join(f"{result.name} ({result.message.splitlines()[0] if result.message else 'failed'})" for result in self.failures)
        return f"{self.env_id}: {len(self.results) - len(self.failures)} of {len(self.results)} checks passed; FAILED: {failed}"

    def __str__(self) -> str:
        lines = [self.summary()]
        lines += [f"  {'ok  ' if r.passed else 'FAIL'} {r.name:24s} {r.seconds:6.2f} s  {r.message}".rstrip() for r in self.results]
        return "\n".join(lines)


def check_all(env_id: str, *, quiet: bool = False, strict: bool = True, sb3: Optional[bool] = None, **make_kwargs: Any) -> CheckReport:
    """Every check of this module (and gymnasium's ``check_env``) on a registered id.

    Runs them all (a failing check does not stop the others), prints the one-line
    :meth:`CheckReport.summary` unless ``quiet``, and returns the :class:`CheckReport`. With
    stable-baselines3 installed, SB3's ``check_env`` and ``make_vec_env`` join them
    (``"sb3_check_env"``, ``"sb3_make_vec_env"``).

    Args:
        env_id: a registered id.
        quiet: print nothing.
        strict: raise ``AssertionError`` (its message is the whole report) if any check failed;
            with ``strict=False`` the report is returned either way.
        sb3: run the SB3 checks: ``None`` (default) when stable-baselines3 is installed, ``True``
            always (a failure if it is missing), ``False`` never.
        make_kwargs: passed to ``gym.make`` (the spec round trip is then skipped: it makes the id's defaults).
    """
    make = lambda: gym.make(env_id, **make_kwargs)  # noqa: E731
    checks: list[tuple[str, Callable[[], None]]] = [
        ("check_env", lambda: check_env(make().unwrapped)),
        ("model", lambda: check_model(make())),
        ("step_matches_model", lambda: check_step_matches_model(make())),
        ("seeded_determinism", lambda: check_seeded_determinism(make)),
        ("tasks", lambda: check_tasks(make())),
        ("pickle", lambda: check_pickle(make())),
        ("vector_env", lambda: check_vector_env(env_id, **make_kwargs)),
        ("step_after_truncation", lambda: check_step_after_truncation(make())),
        ("render_modes", lambda: check_render_modes(env_id, **make_kwargs)),
        ("seals_names", lambda: check_seals_names(make())),
    ]
    if not make_kwargs:
        checks.insert(6, ("spec_roundtrip", lambda: check_spec_roundtrip(env_id)))
    if sb3 or (sb3 is None and sb3_installed()):
        checks += [
            ("sb3_check_env", lambda: check_sb3_check_env(env_id, **make_kwargs)),
            ("sb3_make_vec_env", lambda: check_sb3_make_vec_env(env_id, **make_kwargs)),
        ]
    results = []
    for name, check in checks:
        start = time.perf_counter()
        try:
            check()
        except AssertionError as error:
            results.append(CheckResult(name, False, str(error) or "assertion failed", time.perf_counter() - start))
        except Exception as error:  # the env crashed inside a check: that is a failure of the env, reported as such
            results.append(CheckResult(name, False, f"{type(error).__name__}: {error}", time.perf_counter() - start))
        else:
            results.append(CheckResult(name, True, "", time.perf_counter() - start))
    report = CheckReport(env_id, tuple(results))
    if not quiet:
        print(report.summary())
    if strict and not report.passed:
        raise AssertionError(str(report))
    return report
