"""The task families, one module each."""

from mandril_envs.envs.bandit import BanditEnv
from mandril_envs.envs.gridworld import GridWorldEnv
from mandril_envs.envs.gridworld_intent import GridWorldIntentEnv
from mandril_envs.envs.intent import LinearIntent
from mandril_envs.envs.tabular_mdp import TabularMDPEnv

__all__ = ["BanditEnv", "GridWorldEnv", "GridWorldIntentEnv", "LinearIntent", "TabularMDPEnv"]
