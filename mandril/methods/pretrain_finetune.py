"""Pre-train + fine-tune: the MandRIL paper's transfer baseline.

Pre-training fits one reward model to all training tasks' demos pooled (the MandRIL loop with no
inner step: each iteration's loss is the MaxEnt likelihood of a batch of tasks' demos at the shared
parameters). On a new task the model is fine-tuned by a converged MaxEnt fit
(:func:`mandril.methods.fitting.fit_rewards`, the same likelihood as every MaxEnt-family method)
from the pre-trained weights, by default regularised toward them (``l2_center = "init"``) rather
than toward zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence, Union

from mandril.core.config import check_ints, check_numbers
from mandril.data.batch import check_likelihood
from mandril.data.inputs import INPUT_KINDS
from mandril.methods.base import FitError, FitProblem, MethodOutput
from mandril.methods.fitting import FitSettings
from mandril.methods.maxent import fit_in_groups, torch_dtype
from mandril.methods.meta_trainer import MandRILConfig
from mandril.methods.trained import TrainedRewardMethod
from mandril.rewards.batched import expand_params
from mandril.rewards.spec import RewardModelSpec

__all__ = ["PretrainFinetuneConfig", "PretrainFinetune"]


@dataclass(frozen=True)
class PretrainFinetuneConfig(FitSettings):
    """Pre-train + fine-tune settings (the fine-tuning optimiser's fields are those of :class:`FitSettings`).

    Attributes:
        reward_model, input_kind: the model and what it reads (as MandRIL's, for a fair comparison).
        likelihood, temperature, dtype: as for every MaxEnt-family method.
        pretrain_iterations: pre-training steps (Adam).
        pretrain_lr: Adam's rate in pre-training.
        pretrain_batch_size: tasks per pre-training step.
        pretrain_demos: demos per task per step.
        seed: seeds the initialisation and the pre-training draws.
        checkpoint_every: pre-training checkpoint period (when the harness gives a path).
    """

    l2_center: str = "init"
    reward_model: RewardModelSpec = field(default_factory=lambda: RewardModelSpec("conv"))
    input_kind: str = "map"
    likelihood: str = "start"
    temperature: float = 1.0
    dtype: str = "float64"
    pretrain_iterations: int = 1500
    pretrain_lr: float = 3e-3
    pretrain_batch_size: int = 16
    pretrain_demos: int = 10
    seed: int = 0
    checkpoint_every: int = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.input_kind not in INPUT_KINDS or self.input_kind not in self.reward_model.input_kinds:
            raise ValueError(f"input_kind must be one of {list(self.reward_model.input_kinds)} for a {self.reward_model.kind} reward model, got {self.input_kind!r}")
        check_likelihood(self.likelihood)
        torch_dtype(self.dtype)
        check_ints(self, pretrain_iterations=0, pretrain_batch_size=1, pretrain_demos=1, seed=0, checkpoint_every=1)
        check_numbers(self, positive=("pretrain_lr",))


class PretrainFinetune(TrainedRewardMethod):
    """One reward model pre-trained on all training tasks' demos, fine-tuned per new task."""

    family_reward_model: ClassVar[bool] = True
    name: ClassVar[str] = "pretrain_finetune"
    kind: ClassVar[str] = "meta-irl"
    Config: ClassVar[type] = PretrainFinetuneConfig
    batched: ClassVar[bool] = True
    progress_label: ClassVar[str] = "pre-training"
    fit_only_settings: ClassVar[tuple[str, ...]] = ("optimizer", "lr", "max_steps", "grad_tol", "l2", "l2_center", "schedule", "history", "checkpoint_every")

    def trainer_config(self) -> MandRILConfig:
        c = self.config
        return MandRILConfig(
            inner_steps=0, meta_batch_size=c.pretrain_batch_size, n_train_demos=1, n_test_demos=c.pretrain_demos, meta_lr=c.pretrain_lr,
            temperature=c.temperature, likelihood=c.likelihood, max_abs_reward=c.max_abs_reward, dtype=c.dtype, seed=c.seed,
        )

    def iterations(self) -> int:
        return self.config.pretrain_iterations

    def fit_batch(self, problems: Sequence[FitProblem]) -> list[Union[MethodOutput, FitError]]:
        """Fine-tune every task from the pre-trained weights, same-size tasks in one batched fit."""
        problems = self._check_ready(problems)
        trainer = self.require_trainer()

        def start(chosen: list[FitProblem]) -> tuple[Any, dict]:
            return trainer.reward_model, expand_params({k: v.detach() for k, v in trainer.theta.items()}, len(chosen))

        return fit_in_groups(self, problems, start, self.architecture["n_actions"] is not None)
