"""What AIRL and GAIL share: the generator / discriminator settings and one fit loop.

A fit builds a :class:`~.adapters.TabularModelEnv` from the task's model (its reward hidden: the
env pays 0, the generator is paid by the discriminator's reward), turns the demos into imitation
trajectories, builds imitation's trainer (``AIRL`` or ``GAIL``) with an SB3 PPO generator, and runs
``total_timesteps // (n_envs * n_steps)`` rounds of (one PPO rollout and update, then
``disc_updates_per_round`` discriminator steps). The loop is imitation's ``AdversarialTrainer.train``
without its progress bar, with a divergence check after every round.

Determinism: SB3 seeds the global ``random``/``numpy``/``torch`` generators, and imitation's data
loader and replay buffer draw from them. A fit seeds them from its ``seed`` and restores their
states when it ends (:func:`~.common.seeded_global_rngs`): two fits with the same seed give
identical tables, and the caller's RNGs are left as they were. Single-threaded torch is assumed
for bit-identical results (the project's CLIs and tests set one thread).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from mandril.core.config import check_ints, check_numbers
from mandril.methods.base import DivergenceError, FitProblem, Method, MethodOutput
from mandril.methods.imitation.adapters import TIME_FEATURES

__all__ = ["AdversarialConfig", "AdversarialMethod"]

_REWARD_INPUTS = ("auto", "state", "state_action")


def _hidden(name: str, value: tuple[int, ...]) -> None:
    if any(width < 1 for width in value):
        raise ValueError(f"{name} widths must be >= 1, got {list(value)}")


@dataclass(frozen=True)
class AdversarialConfig:
    """Settings of an adversarial fit (AIRL, GAIL).

    The defaults are GAIL's: 32 rounds of 1024 generator steps (64 copies of the env for 16 steps),
    PPO at ``3e-3`` with 3 epochs of minibatches of 256, and 4 discriminator steps per round. The
    number of rounds was chosen on 3 train tasks of 8x8 GridWorld (the package's ``sweep`` module:
    the generator's normalized EVD at 4 demos reached 0.08 after 24 rounds and 0.04 after 32 at
    ``3e-3``; a one-hot time feature was slower). The rest was made cheaper for issue 17 on
    validation tasks (train-split tasks from 1,000,000 on; mean normalized EVD at n = 1 / 4 / 16,
    6 GridWorld and 5-6 TabularMDP-Linear tasks): 8 envs x 128 steps with 5 epochs (the former
    defaults) gave 0.083 / 0.178 / 0.043 and 0.86 / 0.68 / 0.61; 64 x 16 with 3 epochs gave 0.116 /
    0.076 / 0.040 and 0.85 / 0.74 / 0.70 (paired differences within one standard error: GAIL's fits
    vary a lot from task to task) at a third of the cost (3.9 s a fit on one core, from 11.6). Fewer
    PPO steps (3 epochs of 512) were cheaper still but worse on TabularMDP-Linear (0.83 / 0.80 at
    n = 4 / 16), and 16 rounds (of 1024 or 2048 steps) far worse on GridWorld (0.33-0.39 at one
    demo): GAIL needs its rounds. :class:`~.airl.AIRLConfig` changes four of them.

    Attributes:
        total_timesteps: generator environment steps over the whole fit; rounded down to whole
            rounds of ``n_envs * n_steps`` steps (at least one round).
        n_envs: copies of the env the generator steps together (one numpy
            :class:`~.vec_env.TabularVecEnv`: many copies cost little more than one, and fewer
            steps per round mean fewer of imitation's per-step wrapper calls).
        n_steps: PPO rollout length per env and round.
        batch_size: PPO minibatch size (2 .. ``n_envs * n_steps``).
        n_epochs: PPO passes over each rollout.
        gen_lr: PPO learning rate (Adam).
        ent_coef: PPO entropy bonus.
        gamma: PPO discount (also the discount of AIRL's shaping term).
        gae_lambda: PPO GAE lambda.
        policy_hidden: hidden layer widths of PPO's policy and value MLPs.
        time_feature: what the generator's observations add to the one-hot state: ``"none"``,
            ``"onehot"`` (of the step ``t``) or ``"fraction"`` (``t / H``); reward nets never read it.
        reward_hidden: hidden layer widths of the reward / discriminator MLP (``[]``: linear in the
            one-hot input, i.e. a free value per state or state-action).
        demo_batch_size: expert transitions per discriminator step (as many generator ones); clipped
            to the number of demo transitions ``n * H`` when there are fewer (``info`` records the
            value used).
        disc_updates_per_round: discriminator steps after each generator round.
        disc_lr: discriminator learning rate (Adam).
        max_abs_reward: a learned reward of larger magnitude counts as a divergence.
    """

    total_timesteps: int = 32768
    n_envs: int = 64
    n_steps: int = 16
    batch_size: int = 256
    n_epochs: int = 3
    gen_lr: float = 3e-3
    ent_coef: float = 0.0
    gamma: float = 0.95
    gae_lambda: float = 0.95
    policy_hidden: tuple[int, ...] = (64, 64)
    time_feature: str = "none"
    reward_hidden: tuple[int, ...] = (32,)
    demo_batch_size: int = 64
    disc_updates_per_round: int = 4
    disc_lr: float = 1e-3
    max_abs_reward: float = 1e4

    def __post_init__(self) -> None:
        check_ints(self, **{name: 1 for name in ("total_timesteps", "n_envs", "n_steps", "n_epochs", "demo_batch_size", "disc_updates_per_round")})
        rollout = self.n_envs * self.n_steps
        if not 2 <= self.batch_size <= rollout:
            raise ValueError(f"batch_size must be in [2, n_envs * n_steps = {rollout}], got {self.batch_size}")
        if self.total_timesteps < rollout:
            raise ValueError(f"total_timesteps must be >= n_envs * n_steps = {rollout} (one round), got {self.total_timesteps}")
        check_numbers(self, positive=("gen_lr", "disc_lr", "max_abs_reward"), non_negative=("ent_coef",))
        for name in ("gamma", "gae_lambda"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)!r}")
        _hidden("policy_hidden", self.policy_hidden)
        _hidden("reward_hidden", self.reward_hidden)
        if self.time_feature not in TIME_FEATURES:
            raise ValueError(f"time_feature must be one of {list(TIME_FEATURES)}, got {self.time_feature!r}")

    @property
    def rounds(self) -> int:
        """Generator rounds: ``total_timesteps // (n_envs * n_steps)``."""
        return self.total_timesteps // (self.n_envs * self.n_steps)

    def rates(self) -> str:
        """The learning rates, as divergence errors name them."""
        return f"gen_lr={self.gen_lr:g}, disc_lr={self.disc_lr:g}"


def reward_uses_action(setting: str, problem: FitProblem) -> bool:
    """Whether the reward net reads the action: ``"auto"`` follows the task's reward shape (the
    hidden model keeps it: ``(S, A)`` -> yes), else ``setting == "state_action"``."""
    if setting not in _REWARD_INPUTS:
        raise ValueError(f"reward input must be one of {list(_REWARD_INPUTS)}, got {setting!r}")
    return problem.model.state_action_reward if setting == "auto" else setting == "state_action"


class AdversarialMethod(Method):
    """The shared fit of :class:`~.airl.AIRL` and :class:`~.gail.GAIL` (subclasses build the trainer
    and read its result)."""

    kind: ClassVar[str] = "imitation"

    def _trainer_parts(self, problem: FitProblem, observations: Any, venv: Any) -> tuple[type, Any, dict]:
        """``(imitation's trainer class, its reward net, parts)``: ``parts`` is whatever
        :meth:`_read_result` needs."""
        raise NotImplementedError  # pragma: no cover

    def _build_trainer(self, problem: FitProblem, observations: Any, venv: Any, ppo: Any, demos: list, demo_batch_size: int, logger: Any) -> tuple[Any, dict]:
        """``(trainer, parts)``: imitation's trainer on fixed-horizon demos, with this config's discriminator settings."""
        trainer_class, net, parts = self._trainer_parts(problem, observations, venv)
        trainer = trainer_class(
            demonstrations=demos,
            demo_batch_size=demo_batch_size,
            venv=venv,
            gen_algo=ppo,
            reward_net=net,
            n_disc_updates_per_round=self.config.disc_updates_per_round,
            disc_opt_kwargs={"lr": self.config.disc_lr},
            custom_logger=logger,
            allow_variable_horizon=False,
        )
        return trainer, parts

    def _read_result(self, problem: FitProblem, observations: Any, trainer: Any, parts: dict) -> MethodOutput:
        raise NotImplementedError  # pragma: no cover

    def _fit_one(self, problem: FitProblem) -> MethodOutput:
        import torch
        from imitation.util import networks

        from mandril.methods.imitation.adapters import Observations, demos_to_trajectories
        from mandril.methods.imitation.vec_env import make_venv
        from mandril.methods.imitation.common import ExpertBatches, QuietLogger, build_ppo, check_finite, derive_seed, seeded_global_rngs

        c = self.config
        model = problem.model
        observations = Observations(model.state_dim, model.horizon, c.time_feature)
        n_transitions = problem.states.shape[0] * model.horizon
        demo_batch_size = min(c.demo_batch_size, n_transitions)
        seed = derive_seed(problem.seed, 0)
        check = dict(method=self.name, label=problem.label, rates=c.rates())
        disc_losses: list[float] = []
        with seeded_global_rngs(seed):
            venv = make_venv(model, c.time_feature, c.n_envs)
            try:
                ppo = build_ppo(venv, c, seed)
                demos = demos_to_trajectories(problem.states, problem.actions, observations)
                trainer, parts = self._build_trainer(problem, observations, venv, ppo, demos, demo_batch_size, QuietLogger())
                expert = ExpertBatches(demos, demo_batch_size, derive_seed(problem.seed, 1))
                for round_ in range(c.rounds):
                    trainer.train_gen(trainer.gen_train_timesteps)
                    for _ in range(c.disc_updates_per_round):
                        with networks.training(trainer.reward_train):
                            stats = trainer.train_disc(expert_samples=expert.next())
                    check_finite(stats["disc_loss"], what=f"the discriminator loss after round {round_ + 1}", **check)
                    disc_losses.append(float(stats["disc_loss"]))
                for part, module in (("generator policy", trainer.policy), ("reward net", trainer.reward_train)):
                    if not all(bool(torch.isfinite(p).all()) for p in module.parameters()):
                        check_finite(math.nan, what=f"a parameter of the {part}", **check)
            except ValueError as error:  # torch.distributions refuses non-finite logits once the policy has diverged
                if "invalid values" not in str(error):
                    raise
                raise DivergenceError(f"{self.name}: task {problem.label}: the generator's action logits became non-finite: the fit diverged with {c.rates()}") from None
            finally:
                venv.close()
            output = self._read_result(problem, observations, trainer, parts)
        if output.reward is not None:
            check_finite(float(np.abs(output.reward).max()), what="the largest learned reward magnitude", limit=c.max_abs_reward, **check)
        info = {
            "rounds": c.rounds,
            "generator_timesteps": c.rounds * c.n_envs * c.n_steps,
            "demo_batch_size": demo_batch_size,
            "final_disc_loss": disc_losses[-1] if disc_losses else None,
            "mean_disc_loss_last_quarter": float(np.mean(disc_losses[-max(1, len(disc_losses) // 4):])) if disc_losses else None,
            **output.info,
        }
        return MethodOutput(reward=output.reward, policy=output.policy, info=info)
