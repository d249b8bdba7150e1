"""Env settings checked before any work: the kwargs a family is made with, and what its tasks can plan.

Everything that later turns a family's settings into work (a suite, ``mandril train``, ``mandril-envs
demos generate``, :func:`mandril_envs.dataset.collect`) checks them here first, so a setting that would
fail every task at run time is refused at once, in one line naming the key:

* :func:`check_env_kwargs` (cheap, nothing is built): the keys are strings; ``render_mode`` is one
  the env declares in ``metadata["render_modes"]`` (gymnasium would otherwise wrap an env that only
  offers ``ansi`` in ``HumanRendering`` for ``"human"``: a window and a 0.25 s sleep per step); and
  the keys ``gym.make`` consumes itself to wrap the env (:data:`WRAPPER_KWARGS`) are refused unless
  they change nothing: ``autoreset`` and ``apply_api_compatibility`` only ``false``,
  ``disable_env_checker`` any bool (the passive checker changes no result), ``max_episode_steps`` only
  the family's own horizon (checked by :func:`make_env`, which knows it). An earlier ``TimeLimit`` ends
  episodes before the horizon, ``autoreset`` starts a new episode inside a demo, and the old step API
  returns four values: each corrupts every demo.
* :func:`make_env`: the env is built (its constructor checks every family setting and the size of a
  task's model) and must be a :class:`~mandril_envs.base.TabularTaskEnv`.
* :func:`check_plannable`: the finite-horizon plan of one task (soft at the expert's temperature and
  at temperature 1, optimal, and the uniform policy's return) must be finite and within
  :data:`MAX_PLAN_VALUE` (rewards such as ``goal_reward = 1e308`` overflow the first backup; an expert
  temperature of ``1e-300`` overflows ``Q / temperature``), and the plan must fit in memory (a
  ``horizon`` of ``10**9`` is refused here, naming it); and the optimal return must exceed the uniform
  policy's (else every policy is optimal and normalized EVD is 0/0: all rewards equal, say).
* :func:`check_env_settings`: all of the above, plus the sizes of the datasets the caller will draw.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional

import gymnasium as gym
import numpy as np

from mandril_envs.base import TabularTaskEnv
from mandril_envs.registration import check_env_id
from mandril_envs.sizes import check_fits, plan_nbytes

__all__ = [
    "WRAPPER_KWARGS",
    "MAX_PLAN_VALUE",
    "declared_render_modes",
    "check_env_kwargs",
    "check_env_id_config",
    "make_env",
    "check_plannable",
    "check_env_settings",
]

#: The keyword arguments ``gymnasium.make`` consumes itself (they wrap the env, never reach it), and
#: what each would do to the suite's fixed-horizon episodes.
WRAPPER_KWARGS: dict[str, str] = {
    "max_episode_steps": "a TimeLimit wrapper: episodes truncated before the family's horizon (only the horizon itself is allowed)",
    "autoreset": "an AutoResetWrapper: a new episode starts inside a demo (only false is allowed)",
    "apply_api_compatibility": "the old 4-value step API (only false is allowed)",
    "disable_env_checker": "whether gymnasium's passive env checker wraps the env (true or false; it changes no result)",
}

#: The largest value (reward-to-go, Q value) a task's plan may reach. Fitting and scoring add, subtract
#: and square such numbers (returns, EVD, their variances across tasks); a square overflows float64
#: above about 1.3e154, so plans beyond 1e150 leave no room and are refused.
MAX_PLAN_VALUE = 1e150


def _creator(env_id: str) -> Any:
    spec = gym.spec(env_id)
    return spec.entry_point if callable(spec.entry_point) else gym.envs.registration.load_env_creator(spec.entry_point)


def declared_render_modes(env_id: str) -> list[str]:
    """``metadata["render_modes"]`` of the class registered under ``env_id`` (nothing is built)."""
    return list(getattr(_creator(env_id), "metadata", {}).get("render_modes", []) or [])


def check_env_id_config(env_id: str, family: str, config: Mapping[str, Any], where: str = "env id") -> str:
    """``env_id`` if it names ``family`` and the kwargs it registers agree with ``config``, else raise.

    An id names a family and fixes some of its settings (``mandril_envs/Bandit-K50-v0``: ``n_arms =
    50``); tasks (a dataset's) carry their complete config. An id that makes another family, or whose
    registered kwargs the config contradicts, does not describe those tasks: a dataset whose env id
    was edited, or one collected with kwargs that override its id's own.

    Raises:
        ValueError: naming ``where``, the id and the first disagreement.
    """
    from mandril_envs.tasks import same_plain

    made = getattr(_creator(env_id), "family", None)
    if made != family:
        raise ValueError(f"{where} {env_id!r} makes {made!r} tasks, but the tasks are {family!r} tasks")
    for key, value in gym.spec(env_id).kwargs.items():
        if key in config and not same_plain(config[key], value):
            raise ValueError(f"{where} {env_id!r} registers {key} = {value!r}, but the tasks' config has {key} = {config[key]!r:.40}: the id does not describe these tasks")
    return env_id


def check_env_kwargs(env_id: str, kwargs: Any, where: str = "env_kwargs") -> dict:
    """``kwargs`` as a dict if ``gym.make(env_id, **kwargs)`` would make the env itself, unwrapped and
    with a render mode it declares (see the module docstring); nothing is built.

    Args:
        env_id: a registered id (the caller has checked it, e.g. with :func:`check_env_id`).
        kwargs: the env kwargs.
        where: how to name them in errors, e.g. ``"[families.grid] env_kwargs"``.

    Raises:
        TypeError: not a mapping of string keys; a wrapper key of the wrong type.
        ValueError: a render mode the env does not declare, a wrapper key that would change the episodes.
    """
    if not isinstance(kwargs, Mapping):
        raise TypeError(f"{where} must be a table (JSON object) of env kwargs, got {type(kwargs).__name__} {kwargs!r:.80}")
    stray = [key for key in kwargs if not isinstance(key, str)]
    if stray:
        raise TypeError(f"{where} keys must be strings, got {stray[0]!r:.40}")
    kwargs = dict(kwargs)
    mode = kwargs.get("render_mode")
    if mode is not None:
        declared = declared_render_modes(env_id)
        if mode not in declared:
            raise ValueError(f"{where} render_mode {mode!r:.40} is not declared by {env_id} (it offers {declared}); gymnasium would wrap the env to fake it")
    for key in ("autoreset", "apply_api_compatibility", "disable_env_checker"):
        if key in kwargs and not isinstance(kwargs[key], bool):
            raise TypeError(f"{where} {key} must be true or false, got {type(kwargs[key]).__name__} {kwargs[key]!r:.40}")
    for key in ("autoreset", "apply_api_compatibility"):
        if kwargs.get(key):
            raise ValueError(f"{where} {key} = true is refused: gymnasium.make would apply {WRAPPER_KWARGS[key]}")
    steps = kwargs.get("max_episode_steps")
    if "max_episode_steps" in kwargs and (isinstance(steps, bool) or not isinstance(steps, int)):
        raise TypeError(f"{where} max_episode_steps must be an int (the family's horizon), got {type(steps).__name__} {steps!r:.40}")
    return kwargs


def make_env(env_id: Any, kwargs: Any = None, where: str = "env_kwargs", *, trusted_ids: Iterable[str] = ()) -> gym.Env:
    """``gym.make(env_id, **kwargs)`` after :func:`check_env_kwargs`; the env must be a mandril_envs env
    and ``max_episode_steps``, if given, its horizon.

    Raises:
        TypeError / ValueError: naming ``where``, the key and what is allowed (the env's own checks
            of its settings too).
    """
    env_id = check_env_id(env_id, f"{where}: env id", allow=trusted_ids)
    kwargs = check_env_kwargs(env_id, {} if kwargs is None else kwargs, where)
    try:
        env = gym.make(env_id, **kwargs)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{where}: {' '.join(str(error).split())}") from None
    except gym.error.Error as error:
        raise ValueError(f"{where}: {' '.join(str(error).split())}") from None
    base = env.unwrapped
    if not isinstance(base, TabularTaskEnv):
        raise TypeError(f"{where}: {env_id} is not a mandril_envs env (its unwrapped env is a {type(base).__name__})")
    steps = kwargs.get("max_episode_steps")
    if steps is not None and steps != base.model.horizon:
        raise ValueError(f"{where} max_episode_steps = {steps} differs from the family's horizon {base.model.horizon}: gymnasium.make would apply {WRAPPER_KWARGS['max_episode_steps']}")
    return env


def _largest(name: str, array: np.ndarray, where: str) -> None:
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{where}: the {name} overflows float64 (not finite)")
    top = float(np.max(np.abs(array))) if array.size else 0.0
    if top > MAX_PLAN_VALUE:
        raise ValueError(f"{where}: the {name} reaches {top:.3g}, more than the {MAX_PLAN_VALUE:.0e} fitting and scoring can compute with in float64")


def check_plannable(env: gym.Env, expert: Any = None, where: str = "env", temperatures: Mapping[str, float] = {}) -> None:
    """Refuse a task (the env's current one) whose plans are not finite numbers float64 can work with.

    Plans the task softly at temperature 1 (the MaxEnt likelihood) and at the expert's temperature
    (``expert.policy == "soft"``), optimally, and evaluates the uniform policy (the scores' 1): each
    plan's values, Q values and policy must be finite, and values within :data:`MAX_PLAN_VALUE`.
    The plan's size is checked first (``horizon`` named).

    Args:
        env: a mandril_envs env (its current task is planned).
        expert: :class:`mandril_envs.demos.ExpertSettings` or ``None``.
        where: how to name the settings in errors.
        temperatures: further soft plans to check, ``{what: temperature}`` (e.g. a method's likelihood
            temperature, ``{"method 'mandril' temperature": 0.01}``).

    Raises:
        ValueError: naming ``where``, the plan and what overflowed.
    """
    from mandril_envs.planning import check_return_gap, policy_evaluation, soft_value_iteration, value_iteration

    base = env.unwrapped
    if not isinstance(base, TabularTaskEnv):
        raise TypeError(f"{where}: not a mandril_envs env ({type(base).__name__})")
    model = base.model
    check_fits(plan_nbytes(model.horizon, model.state_dim, model.action_dim),
               f"{where} horizon={model.horizon}: one task's plan (H, S, A) = ({model.horizon}, {model.state_dim}, {model.action_dim})")
    _largest("reward table", model.state_action_rewards(), where)
    plans = [("soft plan at temperature 1", 1.0)]
    if expert is not None and expert.policy == "soft" and expert.temperature != 1.0:
        plans.append((f"expert's soft plan at temperature {expert.temperature:g}", expert.temperature))
    plans += [(f"soft plan at the {what} {value:g}", float(value)) for what, value in temperatures.items() if value != 1.0]
    with np.errstate(all="ignore"):  # overflow is what is checked for
        for name, temperature in plans:
            plan = soft_value_iteration(model, temperature=temperature)
            _largest(f"{name} (values)", plan.values, where)
            _largest(f"{name} (Q values)", plan.q_values, where)
            if not np.all(np.isfinite(plan.policy)):
                raise ValueError(f"{where}: the {name} has a policy that is not finite (the temperature is too small for these rewards)")
        optimal = value_iteration(model)
        _largest("optimal plan (values)", optimal.values, where)
        uniform = np.full((model.horizon, model.state_dim, model.action_dim), 1.0 / model.action_dim)
        uniform_values = policy_evaluation(model, uniform)
        _largest("uniform policy's values", uniform_values, where)
    try:
        check_return_gap(float(model.initial_state_dist @ optimal.values[0]), float(model.initial_state_dist @ uniform_values[0]))
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def check_env_settings(
    env_id: Any,
    kwargs: Any = None,
    where: str = "env_kwargs",
    *,
    expert: Any = None,
    split: Optional[str] = None,
    datasets: Iterable[tuple[tuple[str, str], int, int]] = (),
    temperatures: Mapping[str, float] = {},
    trusted_ids: Iterable[str] = (),
) -> gym.Env:
    """Every check of a family's settings before any work; returns the env (made once).

    Args:
        env_id, kwargs, where: as :func:`make_env`.
        expert: the demonstrator (:class:`~mandril_envs.demos.ExpertSettings`), or ``None``.
        split: the split whose task 0 is planned (default: the env's first split).
        datasets: ``((name of n_tasks, name of n_demos), n_tasks, n_demos)`` of every dataset the
            caller will draw, checked to fit in memory (the names as the caller's user typed them,
            e.g. ``("--tasks", "--demos")``).
        temperatures: further soft plans to check (see :func:`check_plannable`).

    Raises:
        TypeError / ValueError: one line naming ``where`` and the key.
    """
    from mandril_envs.dataset import check_collect_size

    env = make_env(env_id, kwargs, where, trusted_ids=trusted_ids)
    base = env.unwrapped
    model = base.model
    check_fits(plan_nbytes(model.horizon, model.state_dim, model.action_dim),
               f"{where} horizon={model.horizon}: one task's plan (H, S, A) = ({model.horizon}, {model.state_dim}, {model.action_dim})")
    for names, n_tasks, n_demos in datasets:
        check_collect_size(env, n_tasks, n_demos, names=names)
    split = split if split is not None else base.splits[0]
    task = base.sample_tasks(1, split, seed=0)[0]
    base.set_task(task)
    check_plannable(env, expert, f"{where} ({split} task 0)", temperatures)
    return env
