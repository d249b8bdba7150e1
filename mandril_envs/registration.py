"""Registration of the suite's ids under the ``mandril_envs`` namespace."""

from __future__ import annotations

from typing import Iterable

import gymnasium as gym

__all__ = ["ENV_IDS", "NAMESPACE", "register_envs", "check_env_id"]

#: The Gymnasium namespace of the suite's ids.
NAMESPACE = "mandril_envs"

_ENTRY = {
    "GridWorld": "mandril_envs.envs.gridworld:GridWorldEnv",
    "GridWorldIntent": "mandril_envs.envs.gridworld_intent:GridWorldIntentEnv",
    "TabularMDP": "mandril_envs.envs.tabular_mdp:TabularMDPEnv",
    "Bandit": "mandril_envs.envs.bandit:BanditEnv",
}

#: id -> (family, default kwargs)
_VARIANTS: dict[str, tuple[str, dict]] = {
    "mandril_envs/GridWorld-v0": ("GridWorld", {}),
    "mandril_envs/GridWorld-16x16-v0": ("GridWorld", {"size": 16}),
    "mandril_envs/GridWorld-32x32-v0": ("GridWorld", {"size": 32}),
    "mandril_envs/GridWorld-Intent-v0": ("GridWorldIntent", {}),
    "mandril_envs/TabularMDP-v0": ("TabularMDP", {}),
    "mandril_envs/TabularMDP-Linear-v0": ("TabularMDP", {"reward_type": "linear"}),
    "mandril_envs/Bandit-v0": ("Bandit", {}),
    "mandril_envs/Bandit-K5-v0": ("Bandit", {"n_arms": 5}),
    "mandril_envs/Bandit-K10-v0": ("Bandit", {"n_arms": 10}),
    "mandril_envs/Bandit-K50-v0": ("Bandit", {"n_arms": 50}),
}

#: Every registered id, in a stable order.
ENV_IDS: tuple[str, ...] = tuple(_VARIANTS)


def register_envs() -> None:
    """Register every id (idempotent: ids already registered are left alone)."""
    for env_id, (family, kwargs) in _VARIANTS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=_ENTRY[family], kwargs=dict(kwargs), disable_env_checker=False)


def check_env_id(env_id: object, where: str = "env id", *, allow: Iterable[str] = ()) -> str:
    """``env_id`` if it is a registered id of the ``mandril_envs/`` namespace, else raise.

    Use it on every id read from a file (a dataset, a run's ``run.json``, a suite, a config) before
    it reaches ``gym.make``: gymnasium imports the module named by an id of the form
    ``module:Name-v0``, so an id in a file someone hands you could otherwise run code from any
    module on the path (or the current folder). Ids in ``allow`` (e.g. the one a user typed on the
    command line) are accepted as they are.

    Args:
        env_id: the id to check.
        where: how to name it in the error (e.g. ``"data.npz: env_id"``).
        allow: further ids the user explicitly trusts.

    Raises:
        TypeError: not a string.
        ValueError: a ``module:`` id, an id outside the namespace, or one that is not registered;
            the message names ``where``, the id and what is allowed.
    """
    if not isinstance(env_id, str):
        raise TypeError(f"{where} must be a string, got {type(env_id).__name__} {env_id!r:.80}")
    if env_id in set(allow):
        return env_id
    if ":" in env_id:
        raise ValueError(
            f"{where} {env_id!r:.120} names a module to import (the 'module:Env' form); an id read from a file must be a "
            f"registered {NAMESPACE}/ id, e.g. {ENV_IDS[0]!r}"
        )
    if not env_id.startswith(NAMESPACE + "/") or env_id not in gym.registry:
        known = sorted(i for i in gym.registry if str(i).startswith(NAMESPACE + "/"))
        raise ValueError(f"{where} {env_id!r:.120} is not a registered {NAMESPACE}/ id; known ids: {', '.join(known)}")
    return env_id
