"""AIRL (Fu, Luo, Levine 2018) through ``imitation.algorithms.adversarial.airl.AIRL``.

The discriminator is ``D = exp(f) / (exp(f) + pi(a|s))`` with ``f(s, a, s') = g(s[, a]) + gamma h(s')
- h(s)`` (the shaped, "disentangled" reward net; ``shaped = false`` drops ``h``). The learned
reward is ``g``, read into a table on every state (and action): ``(S,)`` by default on state-reward
tasks, ``(S, A)`` on tasks whose reward is state-action (``reward_input = "auto"``). The generator
is an SB3 PPO policy on a :class:`~.adapters.TabularModelEnv` of the task; its ``(H, S, A)`` table is
returned too, so the harness scores the reward (headline) and the policy (``policy_evd``).

See :mod:`mandril.methods.imitation.adversarial` for the fit loop, seeding and divergence checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from mandril.methods.base import FitProblem, MethodOutput
from mandril.methods.imitation.adversarial import _REWARD_INPUTS, AdversarialConfig, AdversarialMethod, _hidden, reward_uses_action

__all__ = ["AIRLConfig", "AIRL"]


@dataclass(frozen=True)
class AIRLConfig(AdversarialConfig):
    """:class:`AdversarialConfig` plus AIRL's reward net.

    Defaults differ from :class:`AdversarialConfig`'s (GAIL's) in four fields, chosen on train
    tasks of 8x8 GridWorld (see the package's ``sweep`` module): ``disc_updates_per_round = 32``,
    ``gen_lr = 1e-3``, ``n_epochs = 5``, and 8 rounds (``total_timesteps =
    8192``; 16 before issue 17, which halved the fit: with a discriminator this strong the reward
    table is good from about 8 rounds on). The generator hardly learns (its policy stays near
    uniform, so ``policy_evd`` is poor). With GAIL's 4 (or 8) updates per round the
    generator learns, and once it matches the demos (policy normalized EVD below about 0.15, after
    16-24k steps) the reward table's optimum leaves the goal (normalized EVD about 0.7), in every
    such run tried (3 tasks, 4 demos, 4 settings, linear or MLP ``g``, with or without an entropy
    bonus). A plausible cause: PPO's generator ends up more concentrated on the goal than the
    soft-optimal demos, so the discriminator learns to mark the goal as the generator's.

    Issue 17 (validation tasks, train split from 1,000,000 on; mean normalized EVD at n = 1 / 4 /
    16 over 6 tasks each): 16 rounds of 8 envs x 128 steps (the former defaults) gave 0.030 / 0.023
    / 0.013 on GridWorld and 1.02 / 0.64 / 0.45 on TabularMDP-Linear; 8 rounds of 64 x 16 gave
    0.041 / 0.023 / 0.021 and 0.97 / 0.52 / 0.56, at a fifth to a quarter of the cost (about 2 s a
    fit on one core). Halving the discriminator's steps (16 of 128 transitions) and PPO's epochs (2)
    on top was worse on GridWorld (0.05-0.11).

    Attributes:
        reward_input: what ``g`` reads: ``"auto"`` (the action too exactly when the task's reward is
            state-action), ``"state"`` or ``"state_action"``.
        shaped: add the potential-based shaping term ``gamma h(s') - h(s)`` during training.
        potential_hidden: hidden layer widths of the potential ``h``.
    """

    total_timesteps: int = 8192
    n_epochs: int = 5
    gen_lr: float = 1e-3
    disc_updates_per_round: int = 32
    reward_input: str = "auto"
    shaped: bool = True
    potential_hidden: tuple[int, ...] = (32,)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reward_input not in _REWARD_INPUTS:
            raise ValueError(f"reward_input must be one of {list(_REWARD_INPUTS)}, got {self.reward_input!r}")
        _hidden("potential_hidden", self.potential_hidden)


class AIRL(AdversarialMethod):
    """AIRL through imitation: a reward table (and the generator's policy) per task."""

    name: ClassVar[str] = "airl"
    Config: ClassVar[type] = AIRLConfig
    output: ClassVar[str] = "reward+policy"

    def _trainer_parts(self, problem: FitProblem, observations: Any, venv: Any) -> tuple[type, Any, dict]:
        from imitation.algorithms.adversarial.airl import AIRL as ImitationAIRL

        from mandril.methods.imitation.common import build_state_reward_net

        c = self.config
        use_action = reward_uses_action(c.reward_input, problem)
        net, reward = build_state_reward_net(
            observations, venv.action_space, use_action=use_action, hidden=c.reward_hidden, potential_hidden=c.potential_hidden if c.shaped else None, discount=c.gamma
        )
        return ImitationAIRL, net, {"reward": reward, "use_action": use_action}

    def _read_result(self, problem: FitProblem, observations: Any, trainer: Any, parts: dict) -> MethodOutput:
        import numpy as np

        from mandril.methods.imitation.adapters import policy_table, reward_table

        model = problem.model
        reward = reward_table(parts["reward"], np.eye(model.state_dim, dtype=np.float32), model.action_dim, state_action=parts["use_action"])
        policy = policy_table(trainer.policy, observations, model.action_dim)
        return MethodOutput(reward=reward, policy=policy, info={"reward_input": "state_action" if parts["use_action"] else "state"})
