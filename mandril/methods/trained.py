"""What the methods that learn from the training tasks share: one reward model trained by the
:class:`~mandril.methods.meta_trainer.MandRIL` loop (MandRIL meta-trains it; pre-train + fine-tune and
the demo-conditioned baseline pre-train it with no inner step), checkpointed and restorable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Mapping, Optional, Sequence

import numpy as np

from mandril.core.checkpoint import CheckpointError
from mandril.data.sources import DatasetSource, TaskSource
from mandril.methods.base import Method
from mandril.methods.maxent import torch_dtype
from mandril.methods.meta_trainer import MandRIL, MandRILConfig
from mandril.rewards.spec import build_reward_model
from mandril_envs.dataset import DemoDataset

__all__ = ["TrainedRewardMethod", "training_source"]


def _on_cpu(value: Any) -> Any:
    """``value`` with every tensor moved to the CPU (so a state written on a GPU loads anywhere)."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _on_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_on_cpu(v) for v in value)
    return value


def training_source(data: Any, input_kind: str, dtype_name: str, device: Any = None) -> DatasetSource:
    """``data`` as a :class:`DatasetSource` reading ``input_kind``: a :class:`DemoDataset` is wrapped, a
    source is checked (its input kind and dtype must be the method's)."""
    if isinstance(data, DemoDataset):
        return DatasetSource(data, input_kind, dtype=torch_dtype(dtype_name), device=device)
    if isinstance(data, DatasetSource):
        if data.input_kind != input_kind or data.dtype != torch_dtype(dtype_name):
            raise ValueError(f"the training source reads {data.input_kind!r} inputs as {data.dtype}, the method needs {input_kind!r} as {dtype_name}")
        return data
    raise TypeError(f"training data must be a DemoDataset or a DatasetSource, got {type(data).__name__}")


class TrainedRewardMethod(Method):
    """A method whose reward model is trained on the training tasks by the MandRIL loop.

    Subclasses give the trainer's config (:meth:`trainer_config`), the number of iterations, the
    progress label, and (optionally) wrap the source (:meth:`wrap_source`). The config must have
    ``reward_model``, ``input_kind``, ``dtype`` and ``checkpoint_every`` fields.
    """

    needs_preparation: ClassVar[bool] = True
    progress_label: ClassVar[str] = "training"

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.trainer: Optional[MandRIL] = None
        self.architecture: Optional[dict] = None

    # --- what subclasses decide -----------------------------------------------------------------
    def trainer_config(self) -> MandRILConfig:  # pragma: no cover - every subclass overrides
        """The meta-trainer's config that this method's settings make (its preparation)."""
        raise NotImplementedError

    def iterations(self) -> int:  # pragma: no cover - every subclass overrides
        """How many training iterations the preparation runs."""
        raise NotImplementedError

    def wrap_source(self, source: DatasetSource) -> TaskSource:
        """The source the trainer draws from (default: the training source itself)."""
        return source

    def model_input_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape the reward model reads, given the task input's shape (default: the same)."""
        return input_shape

    def check_training(self, pool_demos: int, scored_n: Sequence[int]) -> None:
        """Each training draw takes ``n_train_demos + n_test_demos`` distinct demos of a task: the pool must hold them."""
        c = self.trainer_config()
        needed = c.most_train_demos + c.n_test_demos
        if needed > pool_demos:
            raise ValueError(f"{self.name} draws {'up to ' if c.n_train_demos_choices else ''}{needed} demos per training task ({c.most_train_demos} + {c.n_test_demos}), "
                             f"but the training pool has {pool_demos}: raise [train] n_demos to at least {needed}")

    # --- preparation ----------------------------------------------------------------------------
    def _build_trainer(self, architecture: Mapping[str, Any]) -> MandRIL:
        c = self.config
        sample = np.zeros(tuple(architecture["input_shape"]))
        n_actions = architecture["n_actions"]
        model = build_reward_model(c.reward_model, sample, int(architecture["n_states"]), self.trainer_config().seed, torch_dtype(c.dtype), n_actions)
        if self.device is not None:
            model = model.to(self.device)
        return MandRIL(model, self.trainer_config())

    def _prepare(self, data: Any, *, checkpoint: Any, log_dir: Any, progress: bool, checkpoint_metadata: Optional[Mapping[str, Any]] = None) -> None:
        source = training_source(data, self.input_kind, self.config.dtype, self.device)
        first = source.models[0]
        self.architecture = {
            "input_shape": list(self.model_input_shape(tuple(np.shape(source.inputs[0])))),
            "n_states": first.state_dim,
            "n_actions": first.action_dim if source.state_action else None,
        }
        self.trainer = self._build_trainer(self.architecture)
        path = Path(checkpoint) if checkpoint is not None else None
        if path is not None and path.is_file():
            self.trainer.load_checkpoint(path, checkpoint_metadata)
        self.trainer.meta_train(
            self.wrap_source(source), self.iterations(), log_dir=log_dir, checkpoint_path=path, checkpoint_every=self.config.checkpoint_every,
            progress=progress, tensorboard=log_dir is not None, desc=f"{self.name}: {self.progress_label}", checkpoint_metadata=checkpoint_metadata,
        )
        if path is not None:
            self.trainer.save_checkpoint(path, checkpoint_metadata)

    def state_dict(self) -> dict:
        """The trained reward model, the trainer's state and the architecture it was built for (tensors on the CPU)."""
        if self.trainer is None or self.architecture is None:
            raise RuntimeError(f"{self.name} has nothing to save: prepare it first")
        return {"architecture": dict(self.architecture), "trainer": _on_cpu(self.trainer.state_dict())}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Rebuild the reward model and restore the trainer from :meth:`state_dict`."""
        try:
            architecture = dict(state["architecture"])
            trainer_state = state["trainer"]
        except (KeyError, TypeError):
            raise CheckpointError(f"{self.name}: the prepared state must hold 'architecture' and 'trainer'") from None
        trainer = self._build_trainer(architecture)
        trainer.load_state(trainer_state, f"{self.name} prepared state")
        self.trainer, self.architecture = trainer, architecture
        self.prepared = True

    def _moved(self) -> None:
        if self.trainer is not None:  # rebuild on the device from the saved state (the optimizer follows the parameters)
            self.load_state_dict(self.state_dict())

    def require_trainer(self) -> MandRIL:
        """The trained trainer (after :meth:`~mandril.methods.base.Method.prepare` or :meth:`load_state_dict`)."""
        if self.trainer is None:
            raise RuntimeError(f"{self.name} is not prepared")  # _check_ready normally catches this first
        return self.trainer
