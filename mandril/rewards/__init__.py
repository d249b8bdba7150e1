"""Reward models (torch modules mapping a task's input to a reward table) and their spec/factory."""

from mandril.rewards.batched import Params, batched_rewards, expand_params, stack_params, unstack_params
from mandril.rewards.models import ACTIVATIONS, ConvReward, LinearReward, MLPReward, TabularReward, image_to_tensor
from mandril.rewards.spec import INPUT_KIND_OF, REWARD_KINDS, RewardModelSpec, build_reward_model

__all__ = [
    "ACTIVATIONS",
    "ConvReward",
    "INPUT_KIND_OF",
    "LinearReward",
    "MLPReward",
    "Params",
    "REWARD_KINDS",
    "RewardModelSpec",
    "TabularReward",
    "batched_rewards",
    "build_reward_model",
    "expand_params",
    "image_to_tensor",
    "stack_params",
    "unstack_params",
]
