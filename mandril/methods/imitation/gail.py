"""GAIL (Ho and Ermon 2016) through ``imitation.algorithms.adversarial.gail.GAIL``.

The discriminator ``D(s[, a])`` (imitation's ``BasicRewardNet`` on the one-hot state, and the action
by default) tells the demos from the generator's transitions; the generator, an SB3 PPO policy on a
:class:`~.adapters.TabularModelEnv` of the task, is paid ``-log(1 - D)``. What GAIL learns is the
generator: its ``(H, S, A)`` table is the output. With ``discriminator_reward = true`` the reward the
generator was paid at the end, ``-log(1 - D)`` as an ``(S,)``/``(S, A)`` table, is returned as
well, and the harness then scores that reward as the headline and the policy as ``policy_evd``
(a diagnostic: a GAIL discriminator at equilibrium is not meant to be a reward).

See :mod:`mandril.methods.imitation.adversarial` for the fit loop, seeding and divergence checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from mandril.methods.base import FitProblem, MethodOutput
from mandril.methods.imitation.adversarial import _REWARD_INPUTS, AdversarialConfig, AdversarialMethod, reward_uses_action

__all__ = ["GAILConfig", "GAIL"]


@dataclass(frozen=True)
class GAILConfig(AdversarialConfig):
    """:class:`AdversarialConfig` plus GAIL's discriminator.

    Attributes:
        discriminator_input: what ``D`` reads: ``"state_action"`` (GAIL's), ``"state"``, or ``"auto"``
            (the action exactly when the task's reward is state-action).
        discriminator_reward: also return the generator's final reward ``-log(1 - D)`` as a table.
    """

    discriminator_input: str = "state_action"
    discriminator_reward: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.discriminator_input not in _REWARD_INPUTS:
            raise ValueError(f"discriminator_input must be one of {list(_REWARD_INPUTS)}, got {self.discriminator_input!r}")


class GAIL(AdversarialMethod):
    """GAIL through imitation: the generator's policy table per task."""

    name: ClassVar[str] = "gail"
    Config: ClassVar[type] = GAILConfig
    output: ClassVar[str] = "policy"

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        if self.config.discriminator_reward:
            self.output = "reward+policy"  # type: ignore[misc]

    def _trainer_parts(self, problem: FitProblem, observations: Any, venv: Any) -> tuple[type, Any, dict]:
        from imitation.algorithms.adversarial.gail import GAIL as ImitationGAIL
        from imitation.algorithms.adversarial.gail import RewardNetFromDiscriminatorLogit

        from mandril.methods.imitation.common import build_state_reward_net

        c = self.config
        use_action = reward_uses_action(c.discriminator_input, problem)
        net, logits = build_state_reward_net(observations, venv.action_space, use_action=use_action, hidden=c.reward_hidden)
        return ImitationGAIL, net, {"paid": RewardNetFromDiscriminatorLogit(logits), "use_action": use_action}

    def _read_result(self, problem: FitProblem, observations: Any, trainer: Any, parts: dict) -> MethodOutput:
        import numpy as np

        from mandril.methods.imitation.adapters import policy_table, reward_table

        model = problem.model
        policy = policy_table(trainer.policy, observations, model.action_dim)
        reward = None
        if self.config.discriminator_reward:
            reward = reward_table(parts["paid"], np.eye(model.state_dim, dtype=np.float32), model.action_dim, state_action=parts["use_action"])
        return MethodOutput(reward=reward, policy=policy, info={"discriminator_input": "state_action" if parts["use_action"] else "state"})
