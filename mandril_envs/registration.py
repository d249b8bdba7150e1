"""Registration of the suite's ids under the ``mandril_envs`` namespace."""

from __future__ import annotations

import gymnasium as gym

__all__ = ["ENV_IDS", "register_envs"]

_ENTRY = {
    "GridWorld": "mandril_envs.envs.gridworld:GridWorldEnv",
    "TabularMDP": "mandril_envs.envs.tabular_mdp:TabularMDPEnv",
    "Bandit": "mandril_envs.envs.bandit:BanditEnv",
}

#: id -> (family, default kwargs)
_VARIANTS: dict[str, tuple[str, dict]] = {
    "mandril_envs/GridWorld-v0": ("GridWorld", {}),
    "mandril_envs/GridWorld-16x16-v0": ("GridWorld", {"size": 16}),
    "mandril_envs/GridWorld-32x32-v0": ("GridWorld", {"size": 32}),
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
